/* SPDX-License-Identifier: MIT */
/* libkvc: the KVC v1 slab format, cache keys, CRC-32C and the durable store. */
#ifndef KVC_KVC_H
#define KVC_KVC_H

#include <kvc/crc32c.h>
#include <kvc/error.h>
#include <kvc/format.h>
#include <kvc/key.h>
#include <kvc/store.h>
#include <kvc/version.h> /* KVC_VERSION_STRING */

#endif
