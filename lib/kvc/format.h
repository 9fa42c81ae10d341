/* SPDX-License-Identifier: MIT */
#ifndef KVC_FORMAT_H
#define KVC_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <kvc/error.h>
#include <kvc/key.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KVC_HEADER_SIZE 48
#define KVC_TRAILER_SIZE 24
#define KVC_FIXED_SIZE (KVC_HEADER_SIZE + KVC_TRAILER_SIZE)
#define KVC_VERSION 1
#define KVC_OFF_HIT_COUNT 12
#define KVC_OFF_LAST_USED 32
#define KVC_OFF_PAYLOAD_CRC32C 64

/* The fields of the fixed header and trailer (the file's first
 * KVC_FIXED_SIZE bytes), decoded without any check: the parser checks
 * them; code that reads or patches a header without parsing the rest
 * (hit counts, identities) takes them from here. */
struct kvc_fixed {
	uint8_t version, quant_bits, save_reason;
	uint32_t cached_token_count, hit_count, context_size;
	uint64_t creation_time, last_used_time, payload_byte_count;
	uint64_t payload_offset, payload_length;
	uint32_t payload_crc32c;
};
/* Does h (at least 4 bytes) start like a version 1 slab? */
bool kvc_fixed_is_v1(const uint8_t *h);
/* h: at least KVC_FIXED_SIZE bytes. */
void kvc_fixed_decode(const uint8_t *h, struct kvc_fixed *out);
/* The two fields a hit changes, as stored at KVC_OFF_HIT_COUNT and
 * KVC_OFF_LAST_USED. */
void kvc_fixed_encode_use(uint8_t hit_count[4], uint8_t last_used[8], uint32_t hits,
			  uint64_t used);

/*
 * Upper bounds on what a parser allocates for the variable sections. Both
 * are far beyond any real slab (the TLV cap holds 64 M token ids) and keep
 * a hostile length field from costing more than this much memory even when
 * the file is that large.
 */
#define KVC_MAX_TLV_SECTION (256u << 20)
#define KVC_MAX_PROMPT (64u << 20)
/* The most token ids a slab may carry: the token_ids TLV and the required
 * TLVs around it must fit in KVC_MAX_TLV_SECTION. A token file for the kvc
 * tool is refused above KVC_MAX_TOKENS * 4 bytes. */
#define KVC_MAX_TOKENS (KVC_MAX_TLV_SECTION / 4 - 64)

/*
 * The most bytes a file may hold between the end of its TLV section and
 * payload_offset. The reference writer leaves none, its parser takes any;
 * we take up to one 4 KiB page (room to align the payload) and refuse more
 * (bad_trailer). No CRC covers these bytes.
 */
#define KVC_MAX_PAYLOAD_GAP 4096u

enum kvc_save_reason {
	KVC_SAVE_UNKNOWN = 0,
	KVC_SAVE_COLD,
	KVC_SAVE_CONTINUED,
	KVC_SAVE_EVICT,
	KVC_SAVE_SHUTDOWN,
	KVC_SAVE_FINISH,
};

enum kvc_fingerprint_mode {
	KVC_FP_SAFE = 0,
	KVC_FP_GGUF_CHUNKED = 1,
	KVC_FP_FAST_UNSAFE = 2,
};

/* A byte string from a TLV or the prompt; may contain NUL bytes. The
 * buffer is always NUL-terminated one past len for convenience. */
struct kvc_blob {
	bool present;
	uint32_t len;
	char *data;
};

/*
 * Everything a KVC v1 file says about itself. Produced by the parsers (which
 * own the pointers; free with kvc_meta_clear) and consumed by the builder
 * (which only reads it).
 */
struct kvc_meta {
	/* header */
	uint8_t version;
	uint8_t quant_bits;
	uint8_t save_reason;
	uint32_t cached_token_count;
	uint32_t hit_count;
	uint32_t context_size;
	uint64_t creation_time;
	uint64_t last_used_time;
	uint64_t payload_byte_count;
	/* trailer */
	uint64_t payload_offset;
	uint64_t payload_length;
	uint32_t payload_crc32c;
	/* prompt section: where it is; the text only when asked for */
	uint64_t prompt_offset;
	uint32_t prompt_length;
	struct kvc_blob prompt;
	/* TLVs */
	uint8_t fingerprint[32];
	uint8_t fingerprint_mode;
	uint8_t quant_byte;
	uint8_t ctx_params_hash[32];
	uint32_t *tokens;
	uint32_t n_tokens;
	struct kvc_blob hostname;
	struct kvc_blob writer_version;
	struct kvc_blob save_reason_detail;
	/* whole file */
	uint64_t file_size;
	/* the key the content derives to; set by the parsers */
	bool has_key;
	struct kvc_key key;
};

void kvc_meta_clear(struct kvc_meta *meta);
/* The key the metadata's own content derives to (meta->key once parsed:
 * then it cannot fail). 0, or -1 with errno ENOMEM (kvc_key_compute). */
int kvc_meta_key(const struct kvc_meta *meta, struct kvc_key *out)
	__attribute__((warn_unused_result));

const char *kvc_save_reason_name(uint8_t v);       /* NULL if unknown */
int kvc_save_reason_from_name(const char *name);   /* -1 if unknown */
const char *kvc_fingerprint_mode_name(uint8_t v);  /* NULL if unknown */
int kvc_fingerprint_mode_from_name(const char *name);

/*
 * Build the bytes that precede the payload (header, trailer, prompt, TLVs)
 * as the reference writer does: required TLVs in tag order, then hostname,
 * writer version and save_reason_detail when present and non-empty. The
 * cached_token_count and payload fields of meta are ignored: they are taken
 * from n_tokens and the arguments. *out is malloc'd.
 */
int kvc_build_prefix(const struct kvc_meta *meta, uint64_t payload_length,
		     uint32_t payload_crc32c, uint8_t **out, size_t *out_len,
		     struct kvc_err *err);

/*
 * Random-access byte source for the parsers: read exactly len bytes at off
 * or fail. Lets one parser serve both files (pread) and buffers (fuzzing,
 * tests, the mount's staging checks).
 */
struct kvc_source {
	int (*read_at)(void *ctx, void *buf, size_t len, uint64_t off,
		       struct kvc_err *err);
	/* Optional: the bytes in place when they are in memory, else NULL. */
	const void *(*view_at)(void *ctx, size_t len, uint64_t off);
	void *ctx;
	uint64_t size;
	/* Optional: where the next bytes that may be non-zero are, at or after
	 * off: [*start, *end). Everything in [off, *start) reads as zeros (a
	 * hole of a sparse file), so a CRC need not read it. 0, or -1 when it
	 * cannot tell (then everything is data). */
	int (*data_at)(void *ctx, uint64_t off, uint64_t *start, uint64_t *end);
};

void kvc_source_from_fd(struct kvc_source *src, int *fd_ctx, uint64_t size);

/*
 * An fd source that reads the file's first KVC_HEAD_BYTES once and serves
 * reads inside them from memory: parsing a slab's metadata then costs one
 * read(2) instead of five. head must outlive src.
 */
#define KVC_HEAD_BYTES 4096
struct kvc_fd_head {
	int fd;
	size_t have;               /* bytes of buf filled; (size_t)-1: not yet */
	uint8_t buf[KVC_HEAD_BYTES];
};
void kvc_source_from_fd_head(struct kvc_source *src, struct kvc_fd_head *head,
			     int fd, uint64_t size);
void kvc_source_from_buf(struct kvc_source *src, const void **buf_ctx, size_t size);

enum kvc_parse_flags {
	KVC_PARSE_PROMPT = 1 << 0, /* also read the prompt text */
	/* Indexing: skip copying the token ids and the informational TLVs
	 * (tokens stays NULL; n_tokens and the key are still filled). */
	KVC_PARSE_LIGHT = 1 << 1,
};

/*
 * Parse and check everything but the payload bytes: header, trailer,
 * prompt section, TLVs, lengths against the file size, required TLVs.
 * Reads only the prefix.
 */
int kvc_parse_meta(const struct kvc_source *src, unsigned flags,
		   struct kvc_meta *meta, struct kvc_err *err);

/* Called with each run of payload bytes during verification. */
typedef void (*kvc_payload_observer)(void *ctx, const void *data, size_t len);

/*
 * Full check: kvc_parse_meta, then the payload streamed through CRC-32C in
 * bounded memory, then (if expected_key is non-NULL) the key replay.
 */
int kvc_verify(const struct kvc_source *src, unsigned flags,
	       const struct kvc_key *expected_key, struct kvc_meta *meta,
	       kvc_payload_observer observer, void *observer_ctx,
	       struct kvc_err *err);

/* kvc_verify on an open file (size from fstat). */
int kvc_verify_fd(int fd, unsigned flags, const struct kvc_key *expected_key,
		  struct kvc_meta *meta, struct kvc_err *err);

/*
 * Seal a slab whose writer did not compute its CRC: parse the metadata
 * (kvc_parse_meta, so the prefix must be well formed and the payload must
 * end exactly at the end of the file), compute the CRC-32C of the payload
 * from fd in bounded memory, and pwrite it into the trailer's
 * payload_crc32c field. Nothing else is changed or vouched for: the key and
 * everything else are still checked by kvc_verify later. fd must be a
 * regular file open for reading and writing. Not durable by itself: the
 * caller fdatasyncs when it needs to.
 */
int kvc_seal_fd(int fd, struct kvc_err *err);

#ifdef __cplusplus
}
#endif
#endif
