/* SPDX-License-Identifier: MIT */
/* The KVC v1 format against the reference's golden vectors, and hostile
 * variations of them. */
#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>
#include <glib.h>

#include <kvc/kvc.h>

#include "test_util.h"
#include "vector_table.h"

static void hex_of(const uint8_t *b, size_t n, char *out)
{
	kvc_hex_encode(b, n, out);
}

static int verify_buf(const uint8_t *data, size_t len, const struct kvc_key *key,
		      unsigned flags, struct kvc_meta *meta, struct kvc_err *err)
{
	const void *ctx = data;
	struct kvc_source src;

	kvc_source_from_buf(&src, &ctx, len);
	return kvc_verify(&src, flags, key, meta, NULL, NULL, err);
}

static int parse_buf(const uint8_t *data, size_t len, struct kvc_meta *meta,
		     struct kvc_err *err)
{
	const void *ctx = data;
	struct kvc_source src;

	kvc_source_from_buf(&src, &ctx, len);
	return kvc_parse_meta(&src, KVC_PARSE_PROMPT, meta, err);
}

static void check_valid_fields(const struct vector *v, const struct kvc_meta *m)
{
	char hex[65];

	hex_of(m->fingerprint, 32, hex);
	assert_string_equal(hex, v->fingerprint);
	hex_of(m->ctx_params_hash, 32, hex);
	assert_string_equal(hex, v->ctx_params_hash);
	assert_int_equal(m->quant_byte, v->quant_byte);
	assert_string_equal(kvc_fingerprint_mode_name(m->fingerprint_mode), v->fingerprint_mode);
	assert_string_equal(kvc_save_reason_name(m->save_reason), v->save_reason);
	assert_int_equal(m->quant_bits, v->quant_bits);
	assert_int_equal(m->context_size, v->context_size);
	assert_true(m->creation_time == v->creation_time);
	assert_true(m->last_used_time == v->last_used_time);
	assert_int_equal(m->hit_count, v->hit_count);
	assert_int_equal(m->cached_token_count, v->cached_token_count);
	assert_int_equal(m->n_tokens, v->token_count);
	if (v->token_count > 0) {
		assert_true(m->tokens[0] == (uint32_t)v->first_token);
		assert_true(m->tokens[m->n_tokens - 1] == (uint32_t)v->last_token);
	}
	assert_true(m->payload_length == v->payload_length);
	assert_true(m->payload_byte_count == v->payload_length);
	assert_true(m->payload_offset == v->payload_offset);
	assert_int_equal(m->payload_crc32c, v->payload_crc32c);
	assert_int_equal(m->prompt_length, v->prompt_length);
	assert_true(m->file_size == v->file_size);
	if (v->hostname == NULL)
		assert_false(m->hostname.present);
	else
		assert_string_equal(m->hostname.data, v->hostname);
	if (v->writer_version == NULL)
		assert_false(m->writer_version.present);
	else
		assert_string_equal(m->writer_version.data, v->writer_version);
	if (v->save_reason_detail == NULL) {
		assert_false(m->save_reason_detail.present);
	} else {
		assert_int_equal(m->save_reason_detail.len, v->save_reason_detail_len);
		assert_memory_equal(m->save_reason_detail.data, v->save_reason_detail,
				    (size_t)v->save_reason_detail_len);
	}
}

static void check_error_detail(const struct vector *v, const struct kvc_err *err)
{
	if (strcmp(v->error_tag, "crc_mismatch") == 0) {
		assert_true(err->stored == v->detail_stored);
		assert_true(err->actual == v->detail_actual);
	} else if (strcmp(v->error_tag, "missing_tlv") == 0) {
		assert_non_null(strstr(err->detail, v->detail_missing));
	} else if (strcmp(v->error_tag, "key_mismatch") == 0) {
		assert_non_null(strstr(err->detail, v->detail_expected_key));
		assert_non_null(strstr(err->detail, v->detail_actual_key));
	} else if (v->detail_stored != 0) {
		/* unsupported_version, unknown_save_reason, unknown_*_byte */
		assert_true(err->stored == v->detail_stored);
	}
}

/* Every vector: the full verdict (tag and detail), the metadata-only
 * verdict, and for valid ones every field of the manifest. */
static void test_vectors(void **state)
{
	(void)state;
	assert_int_equal(N_VECTORS, 36);
	for (size_t i = 0; i < N_VECTORS; i++) {
		const struct vector *v = &vectors[i];
		char *path = vector_path(v->file);
		size_t len;
		uint8_t *data = read_whole(path, &len);
		struct kvc_key key;
		struct kvc_meta meta;
		struct kvc_err err = { 0 };
		int rc;

		assert_true(kvc_key_from_hex(v->key, strlen(v->key), &key));
		assert_true(len == v->file_size);
		rc = verify_buf(data, len, &key, KVC_PARSE_PROMPT, &meta, &err);
		if (v->valid) {
			if (rc != 0)
				fail_msg("%s: %s: %s", v->file, kvc_tag_name(err.tag), err.detail);
			check_valid_fields(v, &meta);
			kvc_meta_clear(&meta);
		} else {
			assert_int_equal(rc, -1);
			if (strcmp(kvc_tag_name(err.tag), v->error_tag) != 0)
				fail_msg("%s: got %s (%s), want %s", v->file,
					 kvc_tag_name(err.tag), err.detail, v->error_tag);
			check_error_detail(v, &err);
		}
		rc = parse_buf(data, len, &meta, &err);
		if (strcmp(v->parse_meta_tag, "ok") == 0) {
			assert_int_equal(rc, 0);
			kvc_meta_clear(&meta);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(kvc_tag_name(err.tag), v->parse_meta_tag);
		}
		g_free(data);
		g_free(path);
	}
}

/* Building from the parsed metadata reproduces the reference writer's
 * prefix byte for byte, and the key derives to the file's name. */
static void test_build_round_trip(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_VECTORS; i++) {
		const struct vector *v = &vectors[i];
		char *path;
		uint8_t *data, *prefix;
		size_t len, prefix_len;
		struct kvc_meta meta;
		struct kvc_err err;
		struct kvc_key key;
		char hex[65];

		if (!v->valid)
			continue;
		path = vector_path(v->file);
		data = read_whole(path, &len);
		assert_int_equal(parse_buf(data, len, &meta, &err), 0);
		assert_int_equal(kvc_build_prefix(&meta, meta.payload_length, meta.payload_crc32c,
						  &prefix, &prefix_len, &err), 0);
		assert_true(prefix_len == meta.payload_offset);
		assert_memory_equal(prefix, data, prefix_len);
		assert_int_equal(kvc_meta_key(&meta, &key), 0);
		kvc_key_to_hex(&key, hex);
		assert_string_equal(hex, v->key);
		free(prefix);
		kvc_meta_clear(&meta);
		g_free(data);
		g_free(path);
	}
}

/* Every truncation and many single-byte corruptions of a valid file are
 * rejected without reading out of bounds (the suite runs under ASan). */
static void test_hostile_mutations(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_VECTORS; i++) {
		const struct vector *v = &vectors[i];
		char *path;
		uint8_t *data;
		size_t len;
		struct kvc_key key;
		struct kvc_meta meta;
		struct kvc_err err;

		if (!v->valid || v->file_size > 100000)
			continue;
		path = vector_path(v->file);
		data = read_whole(path, &len);
		kvc_key_from_hex(v->key, 64, &key);
		for (size_t cut = 0; cut < len; cut++)
			assert_int_equal(verify_buf(data, cut, &key, KVC_PARSE_PROMPT, &meta, &err), -1);
		for (size_t pos = 0; pos < len; pos += 1 + pos / 64) {
			for (int bit = 0; bit < 8; bit += 3) {
				data[pos] ^= (uint8_t)(1u << bit);
				if (verify_buf(data, len, &key, KVC_PARSE_PROMPT, &meta, &err) == 0) {
					/* Only bytes outside the checked content may
					 * change without detection: reserved fields,
					 * hit_count, times, quant_bits, context size,
					 * informational prompt and TLVs. */
					kvc_meta_clear(&meta);
				}
				data[pos] ^= (uint8_t)(1u << bit);
			}
		}
		/* A length field claiming 4 GiB is refused, not allocated. */
		memset(data + KVC_FIXED_SIZE, 0xff, 4);
		assert_int_equal(verify_buf(data, len, &key, 0, &meta, &err), -1);
		assert_string_equal(kvc_tag_name(err.tag), "bad_length_prefixed_section");
		g_free(data);
		g_free(path);
	}
}

/* A payload byte flip is always caught by the CRC. */
static void test_payload_flip_detected(void **state)
{
	char *path = vector_path("valid/2b5b02a7d60b48cda8bfb2a5e1f83f29d24d7adcce1f8dfe74c9752239e8e69f.kvc");
	size_t len;
	uint8_t *data = read_whole(path, &len);
	struct kvc_meta meta;
	struct kvc_err err;

	(void)state;
	for (size_t pos = 1440; pos < len; pos += 4099) {
		data[pos] ^= 0x80;
		assert_int_equal(verify_buf(data, len, NULL, 0, &meta, &err), -1);
		assert_string_equal(kvc_tag_name(err.tag), "crc_mismatch");
		data[pos] ^= 0x80;
	}
	g_free(data);
	g_free(path);
}

/* A valid vector with gap bytes put between its TLVs and its payload
 * (payload_offset moved to match). g_malloc'd. */
static uint8_t *with_gap(const uint8_t *data, size_t len, size_t tlv_end, size_t gap,
			 uint8_t fill, size_t *out_len)
{
	uint8_t *out = g_malloc(len + gap);
	uint64_t offset = tlv_end + gap;

	memcpy(out, data, tlv_end);
	memset(out + tlv_end, fill, gap);
	memcpy(out + tlv_end + gap, data + tlv_end, len - tlv_end);
	for (int i = 0; i < 8; i++)
		out[48 + i] = (uint8_t)(offset >> (8 * i));
	*out_len = len + gap;
	return out;
}

/* Bytes between the TLVs and the payload: accepted up to
 * KVC_MAX_PAYLOAD_GAP whatever they hold (no CRC covers them), refused
 * beyond it with bad_trailer. */
static void test_payload_gap(void **state)
{
	static const size_t gaps[] = { 1, 7, KVC_MAX_PAYLOAD_GAP - 1, KVC_MAX_PAYLOAD_GAP };
	char *path = vector_path("valid/2b5b02a7d60b48cda8bfb2a5e1f83f29d24d7adcce1f8dfe74c9752239e8e69f.kvc");
	size_t len, glen;
	uint8_t *data = read_whole(path, &len), *g;
	struct kvc_meta meta;
	struct kvc_err err;
	struct kvc_key key;
	size_t tlv_end;

	(void)state;
	assert_int_equal(parse_buf(data, len, &meta, &err), 0);
	tlv_end = (size_t)meta.payload_offset; /* the reference leaves no gap */
	assert_int_equal(kvc_meta_key(&meta, &key), 0);
	kvc_meta_clear(&meta);
	for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
		for (int fill = 0; fill < 256; fill += 255) {
			g = with_gap(data, len, tlv_end, gaps[i], (uint8_t)fill, &glen);
			if (verify_buf(g, glen, &key, 0, &meta, &err) != 0)
				fail_msg("gap %zu: %s: %s", gaps[i], kvc_tag_name(err.tag), err.detail);
			assert_true(meta.payload_offset == tlv_end + gaps[i]);
			kvc_meta_clear(&meta);
			g_free(g);
		}
	}
	g = with_gap(data, len, tlv_end, KVC_MAX_PAYLOAD_GAP + 1, 0, &glen);
	assert_int_equal(parse_buf(g, glen, &meta, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "bad_trailer");
	g_free(g);
	/* A gap as large as a whole second slab: refused the same way. */
	g = with_gap(data, len, tlv_end, len, 0, &glen);
	memcpy(g + tlv_end, data, len);
	assert_int_equal(verify_buf(g, glen, &key, 0, &meta, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "bad_trailer");
	g_free(g);
	g_free(data);
	g_free(path);
}

/* A payload of data islands between holes, written sparse: verification
 * skips the holes (SEEK_DATA) and still gets the CRC of every byte, so it
 * passes, and a flipped byte on an island still fails it. */
static void test_sparse_payload(void **state)
{
	static const uint64_t islands[] = { 0, 5u << 20, (40u << 20) + 4093, (64u << 20) - 7 };
	const uint64_t payload_len = 64u << 20;
	char *path = vector_path("valid/2b5b02a7d60b48cda8bfb2a5e1f83f29d24d7adcce1f8dfe74c9752239e8e69f.kvc");
	char *dir = make_temp_dir(), *file = g_strdup_printf("%s/sparse.kvc", dir);
	uint8_t *payload = calloc(payload_len, 1), *prefix, flip;
	size_t len, prefix_len;
	uint8_t *data = read_whole(path, &len);
	struct kvc_meta meta, vmeta;
	struct kvc_err err;
	struct kvc_key key;
	int fd;

	(void)state;
	assert_non_null(payload);
	for (size_t i = 0; i < G_N_ELEMENTS(islands); i++)
		memset(payload + islands[i], (int)(0x31 + i), 7);
	assert_int_equal(parse_buf(data, len, &meta, &err), 0);
	assert_int_equal(kvc_build_prefix(&meta, payload_len, kvc_crc32c(0, payload, payload_len),
					  &prefix, &prefix_len, &err), 0);
	assert_int_equal(kvc_meta_key(&meta, &key), 0);
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, prefix, prefix_len, 0), (ssize_t)prefix_len);
	for (size_t i = 0; i < G_N_ELEMENTS(islands); i++)
		assert_int_equal(pwrite(fd, payload + islands[i], 7, (off_t)(prefix_len + islands[i])), 7);
	assert_int_equal(ftruncate(fd, (off_t)(prefix_len + payload_len)), 0);
	if (kvc_verify_fd(fd, 0, &key, &vmeta, &err) != 0)
		fail_msg("sparse slab refused: %s", err.detail);
	kvc_meta_clear(&vmeta);
	flip = 0x31 ^ 0x80;
	assert_int_equal(pwrite(fd, &flip, 1, (off_t)(prefix_len + islands[2] + 3)), 1);
	assert_int_equal(kvc_verify_fd(fd, 0, &key, &vmeta, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "crc_mismatch");
	close(fd);
	kvc_meta_clear(&meta);
	free(prefix);
	free(payload);
	g_free(data);
	g_free(path);
	g_free(file);
	rm_rf(dir);
	g_free(dir);
}

#define LARGE_VECTOR "valid/2b5b02a7d60b48cda8bfb2a5e1f83f29d24d7adcce1f8dfe74c9752239e8e69f.kvc"

/* A temp file holding data (unlinked at once: only the fd names it). */
static int temp_file_with(const uint8_t *data, size_t len)
{
	char path[] = "/tmp/kvc-seal-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_true(pwrite(fd, data, len, 0) == (ssize_t)len);
	return fd;
}

static int verify_file(int fd, const struct kvc_key *key, struct kvc_err *err)
{
	struct kvc_meta meta;

	if (kvc_verify_fd(fd, 0, key, &meta, err) < 0)
		return -1;
	kvc_meta_clear(&meta);
	return 0;
}

/* A slab written without its CRC (here: zeroed), sealed, verifies and is
 * byte for byte the reference's file; the payload spans two CRC chunks. */
static void test_seal_fills_crc(void **state)
{
	char *path = vector_path(LARGE_VECTOR);
	size_t len;
	uint8_t *data = read_whole(path, &len), *back = g_malloc(len);
	struct kvc_key key;
	struct kvc_err err;
	int fd;

	(void)state;
	assert_true(kvc_key_from_slab_name(strrchr(path, '/') + 1, &key));
	memset(data + KVC_OFF_PAYLOAD_CRC32C, 0, 4);
	fd = temp_file_with(data, len);
	assert_int_equal(verify_file(fd, &key, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "crc_mismatch");
	assert_int_equal(kvc_seal_fd(fd, &err), 0);
	assert_int_equal(verify_file(fd, &key, &err), 0);
	g_free(data);
	data = read_whole(path, &len);
	assert_true(pread(fd, back, len, 0) == (ssize_t)len);
	assert_memory_equal(back, data, len);
	/* Sealing a sealed file changes nothing. */
	assert_int_equal(kvc_seal_fd(fd, &err), 0);
	assert_true(pread(fd, back, len, 0) == (ssize_t)len);
	assert_memory_equal(back, data, len);
	close(fd);
	g_free(back);
	g_free(data);
	g_free(path);
}

/* Where the token_ids TLV's value starts, walking the records. */
static size_t token_ids_offset(const uint8_t *data, size_t tlv_section)
{
	size_t pos = tlv_section + 4, end = pos + (data[tlv_section] | data[tlv_section + 1] << 8 |
						   data[tlv_section + 2] << 16 |
						   (size_t)data[tlv_section + 3] << 24);

	while (pos < end) {
		size_t vlen = data[pos + 1] | data[pos + 2] << 8 | data[pos + 3] << 16 |
			      (size_t)data[pos + 4] << 24;
		if (data[pos] == 0x09)
			return pos + 5;
		pos += 5 + vlen;
	}
	fail_msg("no token_ids TLV");
	return 0;
}

/* Sealing vouches for the CRC only: a file whose content derives to
 * another key still fails verification, and one whose lengths disagree is
 * not sealed at all. What was corrupted before the seal is not caught. */
static void test_seal_checks_nothing_else(void **state)
{
	char *path = vector_path(LARGE_VECTOR);
	size_t len, tokens_at;
	uint8_t *data = read_whole(path, &len);
	struct kvc_meta meta;
	struct kvc_key key;
	struct kvc_err err;
	int fd;

	(void)state;
	assert_true(kvc_key_from_slab_name(strrchr(path, '/') + 1, &key));
	assert_int_equal(parse_buf(data, len, &meta, &err), 0);
	assert_true(meta.n_tokens > 0);
	tokens_at = token_ids_offset(data, meta.prompt_offset + meta.prompt_length);
	kvc_meta_clear(&meta);

	/* Another token id and no CRC: sealed, the key no longer matches. */
	data[tokens_at] ^= 1;
	memset(data + KVC_OFF_PAYLOAD_CRC32C, 0, 4);
	fd = temp_file_with(data, len);
	assert_int_equal(kvc_seal_fd(fd, &err), 0);
	assert_int_equal(verify_file(fd, &key, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "key_mismatch");
	close(fd);
	data[tokens_at] ^= 1;

	/* payload_byte_count disagreeing with payload_length: refused. */
	data[40] ^= 1;
	fd = temp_file_with(data, len);
	assert_int_equal(kvc_seal_fd(fd, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "payload_length_mismatch");
	assert_int_equal(verify_file(fd, &key, &err), -1);
	close(fd);
	data[40] ^= 1;

	/* A payload byte changed before sealing: the seal makes it "valid".
	 * This is the limit docs/format.md states. */
	data[len - 1] ^= 0x40;
	fd = temp_file_with(data, len);
	assert_int_equal(kvc_seal_fd(fd, &err), 0);
	assert_int_equal(verify_file(fd, &key, &err), 0);
	close(fd);
	g_free(data);
	g_free(path);
}

/* A truncated file, a short one and a pipe are refused; nothing written. */
static void test_seal_refuses_truncated(void **state)
{
	char *path = vector_path(LARGE_VECTOR);
	size_t len;
	uint8_t *data = read_whole(path, &len), crc[4];
	struct kvc_err err;
	int fd, pipe_fds[2];

	(void)state;
	memset(data + KVC_OFF_PAYLOAD_CRC32C, 0xee, 4);
	fd = temp_file_with(data, len - 7);
	assert_int_equal(kvc_seal_fd(fd, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "truncated");
	assert_non_null(strstr(err.detail, "file size"));
	assert_true(pread(fd, crc, 4, KVC_OFF_PAYLOAD_CRC32C) == 4);
	assert_memory_equal(crc, "\xee\xee\xee\xee", 4);
	close(fd);
	fd = temp_file_with(data, 60);
	assert_int_equal(kvc_seal_fd(fd, &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "bad_trailer");
	close(fd);
	assert_int_equal(pipe(pipe_fds), 0);
	assert_int_equal(kvc_seal_fd(pipe_fds[0], &err), -1);
	assert_string_equal(kvc_tag_name(err.tag), "invalid_argument");
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	g_free(data);
	g_free(path);
}

static void test_build_rejects_bad_enums(void **state)
{
	struct kvc_meta m = { 0 };
	uint8_t *out = NULL;
	size_t len;
	struct kvc_err err;

	(void)state;
	m.save_reason = 6;
	assert_int_equal(kvc_build_prefix(&m, 0, 0, &out, &len, &err), -1);
	assert_int_equal(err.tag, KVC_E_INVALID_ARGUMENT);
	m.save_reason = 0;
	m.quant_byte = 30;
	assert_int_equal(kvc_build_prefix(&m, 0, 0, &out, &len, &err), -1);
	m.quant_byte = 29;
	m.fingerprint_mode = 3;
	assert_int_equal(kvc_build_prefix(&m, 0, 0, &out, &len, &err), -1);
	assert_null(out);
}

static void test_key_names_and_quants(void **state)
{
	struct kvc_key key;
	char name[KVC_SLAB_NAME_LEN + 1];
	const char *hex = "b00295b008861d051f3e2d7f33174b18c6f4a83c96ebb6c5b106e1d80608d81e";

	(void)state;
	assert_true(kvc_key_from_hex(hex, 64, &key));
	kvc_key_slab_name(&key, name);
	assert_int_equal(strncmp(name, hex, 64), 0);
	assert_string_equal(name + 64, ".kvc");
	assert_true(kvc_key_from_slab_name(name, NULL));
	assert_false(kvc_key_from_slab_name("B00295b008861d051f3e2d7f33174b18c6f4a83c96ebb6c5b106e1d80608d81e.kvc", NULL));
	assert_false(kvc_key_from_slab_name("b00295b0.kvc", NULL));
	assert_false(kvc_key_from_slab_name("g00295b008861d051f3e2d7f33174b18c6f4a83c96ebb6c5b106e1d80608d81e.kvc", NULL));
	assert_false(kvc_key_from_slab_name("b00295b008861d051f3e2d7f33174b18c6f4a83c96ebb6c5b106e1d80608d81e.kvcx", NULL));
	assert_int_equal(kvc_quant_byte("f32"), 0);
	assert_int_equal(kvc_quant_byte("q4_k_m"), 7);
	assert_int_equal(kvc_quant_byte("bf16"), 29);
	assert_int_equal(kvc_quant_byte("mxfp4"), -1);
	for (int b = 0; b < 30; b++)
		assert_int_equal(kvc_quant_byte(kvc_quant_name((uint8_t)b)), b);
	assert_null(kvc_quant_name(30));
	assert_null(kvc_quant_name(255));
}

/* One-pass prefix keys equal keys computed from scratch for each prefix. */
static void test_prefix_keys(void **state)
{
	struct kvc_key_input in = { 0 };
	uint32_t tokens[1000];
	size_t lens[1100];
	struct kvc_key keys[1100];

	(void)state;
	for (int i = 0; i < 1000; i++)
		tokens[i] = (uint32_t)(i * 2654435761u);
	memset(in.fingerprint, 0xab, 32);
	memset(in.ctx_params_hash, 0xcd, 32);
	in.quant_byte = 7;
	in.tokens = tokens;
	static const size_t strides[] = { 1, 7, 256, 1000, 2000 };
	for (size_t s = 0; s < sizeof(strides) / sizeof(strides[0]); s++) {
		in.n_tokens = 1000;
		size_t expect = kvc_prefix_key_count(1000, strides[s], 3);
		ssize_t filled = kvc_prefix_keys(&in, strides[s], 3, lens, keys);
		assert_true(filled >= 0);
		size_t n = (size_t)filled;
		assert_int_equal(n, expect);
		assert_true(n > 0);
		assert_int_equal(lens[n - 1], 1000);
		for (size_t i = 0; i < n; i++) {
			struct kvc_key direct;
			struct kvc_key_input sub = in;
			assert_true(lens[i] >= 3);
			assert_true(lens[i] % strides[s] == 0 || lens[i] == 1000);
			sub.n_tokens = lens[i];
			assert_int_equal(kvc_key_compute(&sub, &direct), 0);
			assert_true(kvc_key_equal(&direct, &keys[i]));
		}
	}
	in.n_tokens = 0;
	assert_int_equal(kvc_prefix_keys(&in, 4, 0, lens, keys), 1);
	assert_int_equal(lens[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_build_round_trip),
		cmocka_unit_test(test_hostile_mutations),
		cmocka_unit_test(test_payload_flip_detected),
		cmocka_unit_test(test_payload_gap),
		cmocka_unit_test(test_sparse_payload),
		cmocka_unit_test(test_seal_fills_crc),
		cmocka_unit_test(test_seal_checks_nothing_else),
		cmocka_unit_test(test_seal_refuses_truncated),
		cmocka_unit_test(test_build_rejects_bad_enums),
		cmocka_unit_test(test_key_names_and_quants),
		cmocka_unit_test(test_prefix_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
