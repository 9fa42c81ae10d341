/* SPDX-License-Identifier: MIT */
/* Full verification: metadata, then the payload through CRC-32C, then the key. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <kvc/crc32c.h>
#include <kvc/format.h>

#include "verify_internal.h"

/* Large enough for the CRC to run at full speed and for few syscalls,
 * small enough that verifying a 4 GiB slab costs 1 MiB of memory. */
#define VERIFY_CHUNK (1u << 20)

/*
 * How many bytes from off, at most max, are a hole (zeros, not read) or data
 * (read): *hole says which. Without data_at, or when it cannot tell,
 * everything is data. *data_end caches the end of the last data extent
 * found, so a long extent costs one lookup, not one per chunk.
 */
static uint64_t next_run(const struct kvc_source *src, uint64_t off, uint64_t max,
			 uint64_t *data_end, bool *hole)
{
	uint64_t start, end;

	*hole = false;
	if (off < *data_end)
		return max < *data_end - off ? max : *data_end - off;
	if (src->data_at == NULL || src->data_at(src->ctx, off, &start, &end) < 0 ||
	    end <= off) {
		*data_end = UINT64_MAX;
		return max;
	}
	if (start > off) {
		*hole = true;
		return max < start - off ? max : start - off;
	}
	*data_end = end;
	return max < end - off ? max : end - off;
}

/* The holes of a sparse payload are zeros by definition: their CRC is
 * computed, not read, so a header that claims gigabytes over a file of a
 * few blocks costs a few lookups, not a pass over the claimed size. An
 * observer wants every byte, so it gets them all read. */
int kvc_payload_crc(const struct kvc_source *src, const struct kvc_meta *meta,
		    kvc_payload_observer observer, void *observer_ctx, uint32_t *crc_out,
		    struct kvc_err *err)
{
	uint64_t off = meta->payload_offset, left = meta->payload_length, data_end = 0;
	uint32_t crc = 0;
	uint8_t *buf;

	if (observer != NULL)
		data_end = UINT64_MAX;
	buf = malloc(left < VERIFY_CHUNK ? (left ? left : 1) : VERIFY_CHUNK);
	if (buf == NULL)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "verify buffer");
	while (left > 0) {
		bool hole;
		uint64_t run = next_run(src, off, left, &data_end, &hole);
		size_t n = run < VERIFY_CHUNK ? (size_t)run : VERIFY_CHUNK;

		if (hole) {
			crc = kvc_crc32c_zeros(crc, run);
			off += run;
			left -= run;
			continue;
		}
		if (src->read_at(src->ctx, buf, n, off, err) < 0) {
			free(buf);
			return -1;
		}
		crc = kvc_crc32c(crc, buf, n);
		if (observer != NULL)
			observer(observer_ctx, buf, n);
		off += n;
		left -= n;
	}
	free(buf);
	*crc_out = crc;
	return 0;
}

int kvc_check_crc_and_key(const struct kvc_meta *meta, const struct kvc_key *expected_key,
			  uint32_t crc, struct kvc_err *err)
{
	struct kvc_key actual;

	if (crc != meta->payload_crc32c) {
		kvc_err_set(err, KVC_E_CRC_MISMATCH, "crc mismatch: stored 0x%08x, computed 0x%08x",
			    meta->payload_crc32c, crc);
		if (err != NULL) {
			err->stored = meta->payload_crc32c;
			err->actual = crc;
		}
		return -1;
	}
	if (expected_key == NULL)
		return 0;
	if (kvc_meta_key(meta, &actual) < 0)
		return kvc_err_set(err, KVC_E_NO_MEMORY, "SHA-256 of the key");
	if (!kvc_key_equal(&actual, expected_key)) {
		char want[KVC_KEY_HEX_LEN + 1], got[KVC_KEY_HEX_LEN + 1];
		kvc_key_to_hex(expected_key, want);
		kvc_key_to_hex(&actual, got);
		return kvc_err_set(err, KVC_E_KEY_MISMATCH,
				   "key mismatch: expected %s, content is %s", want, got);
	}
	return 0;
}

int kvc_verify(const struct kvc_source *src, unsigned flags,
	       const struct kvc_key *expected_key, struct kvc_meta *meta,
	       kvc_payload_observer observer, void *observer_ctx,
	       struct kvc_err *err)
{
	uint32_t crc;

	if (kvc_parse_meta(src, flags, meta, err) < 0)
		return -1;
	if (kvc_payload_crc(src, meta, observer, observer_ctx, &crc, err) < 0 ||
	    kvc_check_crc_and_key(meta, expected_key, crc, err) < 0)
		goto fail;
	return 0;
fail:
	kvc_meta_clear(meta);
	return -1;
}

int kvc_verify_fd(int fd, unsigned flags, const struct kvc_key *expected_key,
		  struct kvc_meta *meta, struct kvc_err *err)
{
	struct kvc_source src;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return kvc_err_sys(err, errno, "fstat");
	kvc_source_from_fd(&src, &fd, (uint64_t)st.st_size);
	return kvc_verify(&src, flags, expected_key, meta, NULL, NULL, err);
}
