/* SPDX-License-Identifier: MIT */
#ifndef KVC_ERROR_H
#define KVC_ERROR_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Error tags. The format tags use the vocabulary of the KVC v1 reference
 * parser (and of the golden vectors' manifest), so a tag printed by libkvc
 * means the same thing as one printed by the reference.
 */
enum kvc_tag {
	KVC_OK = 0,
	/* format errors, in the reference parser's order of checks */
	KVC_E_BAD_HEADER,
	KVC_E_UNSUPPORTED_VERSION,
	KVC_E_UNKNOWN_SAVE_REASON,
	KVC_E_BAD_TRAILER,
	KVC_E_BAD_LENGTH_PREFIXED_SECTION,
	KVC_E_BAD_TLV,
	KVC_E_UNKNOWN_FINGERPRINT_MODE,
	KVC_E_UNKNOWN_QUANT_BYTE,
	KVC_E_PAYLOAD_LENGTH_MISMATCH,
	KVC_E_TRUNCATED,
	KVC_E_TRAILING_BYTES,
	KVC_E_MISSING_TLV,
	KVC_E_CRC_MISMATCH,
	KVC_E_KEY_MISMATCH,
	/* libkvc's own */
	KVC_E_TOO_LARGE,
	KVC_E_IO,
	KVC_E_NO_MEMORY,
	KVC_E_INVALID_ARGUMENT,
	KVC_E_NOT_FOUND,
	KVC_E_BAD_NAME,
	KVC_E_NO_SPACE,
	KVC_E_EXISTS,      /* a valid slab of the key is already there (publish without adopt) */
	KVC_TAG_COUNT
};

struct kvc_err {
	enum kvc_tag tag;
	int sys_errno;      /* errno of a failed system call, else 0 */
	uint64_t stored;    /* crc_mismatch: stored CRC; unknown_*: the byte */
	uint64_t actual;    /* crc_mismatch: computed CRC */
	char detail[320];   /* human-readable, one line */
};

/* Stable machine name of a tag ("crc_mismatch"). */
const char *kvc_tag_name(enum kvc_tag tag);

/* True when the tag says the *content* of a file is not a valid slab
 * (as opposed to an I/O or resource failure). */
int kvc_tag_is_format_error(enum kvc_tag tag);

/* Fill err (may be NULL) and return -1. */
int kvc_err_set(struct kvc_err *err, enum kvc_tag tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Same, for a failed system call: records errno and appends strerror. */
int kvc_err_sys(struct kvc_err *err, int sys_errno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The errno a caller should see for this error (EBADMSG for bad content). */
int kvc_err_to_errno(const struct kvc_err *err);

#ifdef __cplusplus
}
#endif
#endif
