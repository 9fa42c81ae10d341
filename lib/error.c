/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <kvc/error.h>

static const char *const tag_names[KVC_TAG_COUNT] = {
	[KVC_OK] = "ok",
	[KVC_E_BAD_HEADER] = "bad_header",
	[KVC_E_UNSUPPORTED_VERSION] = "unsupported_version",
	[KVC_E_UNKNOWN_SAVE_REASON] = "unknown_save_reason",
	[KVC_E_BAD_TRAILER] = "bad_trailer",
	[KVC_E_BAD_LENGTH_PREFIXED_SECTION] = "bad_length_prefixed_section",
	[KVC_E_BAD_TLV] = "bad_tlv",
	[KVC_E_UNKNOWN_FINGERPRINT_MODE] = "unknown_fingerprint_mode",
	[KVC_E_UNKNOWN_QUANT_BYTE] = "unknown_quant_byte",
	[KVC_E_PAYLOAD_LENGTH_MISMATCH] = "payload_length_mismatch",
	[KVC_E_TRUNCATED] = "truncated",
	[KVC_E_TRAILING_BYTES] = "trailing_bytes",
	[KVC_E_MISSING_TLV] = "missing_tlv",
	[KVC_E_CRC_MISMATCH] = "crc_mismatch",
	[KVC_E_KEY_MISMATCH] = "key_mismatch",
	[KVC_E_TOO_LARGE] = "too_large",
	[KVC_E_IO] = "io",
	[KVC_E_NO_MEMORY] = "no_memory",
	[KVC_E_INVALID_ARGUMENT] = "invalid_argument",
	[KVC_E_NOT_FOUND] = "not_found",
	[KVC_E_BAD_NAME] = "bad_name",
	[KVC_E_NO_SPACE] = "no_space",
	[KVC_E_EXISTS] = "exists",
};

const char *kvc_tag_name(enum kvc_tag tag)
{
	if ((unsigned)tag >= KVC_TAG_COUNT)
		return "unknown_error";
	return tag_names[tag];
}

int kvc_tag_is_format_error(enum kvc_tag tag)
{
	return tag >= KVC_E_BAD_HEADER && tag <= KVC_E_TOO_LARGE;
}

static void vset(struct kvc_err *err, enum kvc_tag tag, int sys_errno,
		 const char *fmt, va_list ap)
{
	err->tag = tag;
	err->sys_errno = sys_errno;
	err->stored = 0;
	err->actual = 0;
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
}

int kvc_err_set(struct kvc_err *err, enum kvc_tag tag, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vset(err, tag, 0, fmt, ap);
	va_end(ap);
	return -1;
}

int kvc_err_sys(struct kvc_err *err, int sys_errno, const char *fmt, ...)
{
	va_list ap;
	size_t used;
	enum kvc_tag tag = KVC_E_IO;

	if (err == NULL)
		return -1;
	if (sys_errno == ENOSPC || sys_errno == EDQUOT)
		tag = KVC_E_NO_SPACE;
	else if (sys_errno == ENOMEM)
		tag = KVC_E_NO_MEMORY;
	else if (sys_errno == ENOENT)
		tag = KVC_E_NOT_FOUND;
	va_start(ap, fmt);
	vset(err, tag, sys_errno, fmt, ap);
	va_end(ap);
	used = strlen(err->detail);
	snprintf(err->detail + used, sizeof(err->detail) - used, ": %s",
		 strerror(sys_errno));
	return -1;
}

int kvc_err_to_errno(const struct kvc_err *err)
{
	if (kvc_tag_is_format_error(err->tag))
		return EBADMSG;
	switch (err->tag) {
	case KVC_OK:
		return 0;
	case KVC_E_NO_MEMORY:
		return ENOMEM;
	case KVC_E_INVALID_ARGUMENT:
		return EINVAL;
	case KVC_E_NOT_FOUND:
		return ENOENT;
	case KVC_E_BAD_NAME:
		return EINVAL;
	case KVC_E_NO_SPACE:
		return err->sys_errno ? err->sys_errno : ENOSPC;
	case KVC_E_EXISTS:
		return EEXIST;
	default:
		return err->sys_errno ? err->sys_errno : EIO;
	}
}
