/* SPDX-License-Identifier: MIT */
#ifndef KVC_CRC32C_H
#define KVC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * CRC-32C (Castagnoli). kvc_crc32c(0, "123456789", 9) == 0xE3069283.
 * Incremental: pass the previous result as crc to continue a stream.
 * The implementation is ISA-L's crc32_iscsi() when libkvc was built with
 * ISA-L (libisal), else a portable slicing-by-8.
 */
uint32_t kvc_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable path, always available; for tests and benchmarks. */
uint32_t kvc_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* The ISA-L path, or NULL when libkvc was built without ISA-L. */
typedef uint32_t (*kvc_crc32c_fn)(uint32_t crc, const void *data, size_t len);
kvc_crc32c_fn kvc_crc32c_isal(void);

/* The CRC of A || B from crc(A), crc(B) and the length of B. */
uint32_t kvc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* The CRC of A followed by len zero bytes, from crc(A): O(log len), so a
 * hole of a sparse file costs no reading. */
uint32_t kvc_crc32c_zeros(uint32_t crc_a, uint64_t len);

/* "isa-l" or "portable": what kvc_crc32c() uses. */
const char *kvc_crc32c_impl_name(void);

#ifdef __cplusplus
}
#endif
#endif
