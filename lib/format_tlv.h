/* SPDX-License-Identifier: MIT */
/* The TLV records of KVC v1: one table for the parser and the builder. */
#ifndef KVC_FORMAT_TLV_H
#define KVC_FORMAT_TLV_H

#include <stddef.h>

#include <kvc/format.h>

/* A record is tag (u8), value length (u32 LE), value. */
#define TLV_RECORD_OVERHEAD 5

enum tlv_tag {
	TLV_FINGERPRINT = 0x01,        /* 32 bytes */
	TLV_FINGERPRINT_MODE = 0x02,   /* 1 byte */
	TLV_QUANT_TYPE = 0x03,         /* 1 byte */
	TLV_CTX_PARAMS_HASH = 0x04,    /* 32 bytes */
	TLV_HOSTNAME = 0x05,           /* text, optional */
	TLV_WRITER_VERSION = 0x06,     /* text, optional */
	TLV_SAVE_REASON_DETAIL = 0x07, /* text, optional */
	TLV_TOKEN_ID_COUNT = 0x08,     /* u32, informational */
	TLV_TOKEN_IDS = 0x09,          /* u32 LE each */
};

/* The informational text TLVs, in the order the reference writes them,
 * with the kvc_meta field each one fills. */
static const struct tlv_text {
	enum tlv_tag tag;
	size_t meta_offset; /* of a struct kvc_blob in struct kvc_meta */
} tlv_texts[] = {
	{ TLV_HOSTNAME, offsetof(struct kvc_meta, hostname) },
	{ TLV_WRITER_VERSION, offsetof(struct kvc_meta, writer_version) },
	{ TLV_SAVE_REASON_DETAIL, offsetof(struct kvc_meta, save_reason_detail) },
};
#define TLV_TEXT_COUNT (sizeof(tlv_texts) / sizeof(tlv_texts[0]))

#endif
