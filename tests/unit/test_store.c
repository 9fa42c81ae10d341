/* SPDX-License-Identifier: MIT */
/*
 * The store's publish pipeline and maintenance. System calls are replaced
 * with the linker's --wrap so every failure branch can be driven: the test
 * says "the Nth fdatasync fails with EIO" and checks what is left on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>

#include <kvc/kvc.h>

#include "test_util.h"

enum sys { SYS_OPENAT, SYS_WRITE, SYS_FDATASYNC, SYS_LINKAT, SYS_UNLINKAT,
	   SYS_FSYNC, SYS_RENAMEAT, SYS_COUNT };

static struct {
	int countdown; /* the countdown-th call from now fails; 0 = never */
	int err;
} inject[SYS_COUNT];
static int short_writes; /* write at most this many bytes per call */

static bool should_fail(enum sys s)
{
	if (inject[s].countdown > 0 && --inject[s].countdown == 0) {
		errno = inject[s].err;
		return true;
	}
	return false;
}

int __real_openat64(int dirfd, const char *path, int flags, ...);
int __wrap_openat64(int dirfd, const char *path, int flags, ...);
ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __real_pwrite64(int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off);
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __real_linkat(int a, const char *b, int c, const char *d, int e);
int __wrap_linkat(int a, const char *b, int c, const char *d, int e);
int __real_unlinkat(int a, const char *b, int c);
int __wrap_unlinkat(int a, const char *b, int c);
int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_renameat(int a, const char *b, int c, const char *d);
int __wrap_renameat(int a, const char *b, int c, const char *d);

int __wrap_openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (should_fail(SYS_OPENAT))
		return -1;
	return __real_openat64(dirfd, path, flags, mode);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
	if (should_fail(SYS_WRITE))
		return -1;
	if (short_writes > 0 && n > (size_t)short_writes)
		n = (size_t)short_writes;
	return __real_write(fd, buf, n);
}

/* The store writes its temps with pwrite (kvc_pwrite_full): the same
 * failures and short writes as write. */
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	if (should_fail(SYS_WRITE))
		return -1;
	if (short_writes > 0 && n > (size_t)short_writes)
		n = (size_t)short_writes;
	return __real_pwrite64(fd, buf, n, off);
}

int __wrap_fdatasync(int fd)
{
	return should_fail(SYS_FDATASYNC) ? -1 : __real_fdatasync(fd);
}

int __wrap_linkat(int a, const char *b, int c, const char *d, int e)
{
	return should_fail(SYS_LINKAT) ? -1 : __real_linkat(a, b, c, d, e);
}

int __wrap_unlinkat(int a, const char *b, int c)
{
	return should_fail(SYS_UNLINKAT) ? -1 : __real_unlinkat(a, b, c);
}

/* Runs once at the next fsync, before it: a race planted at that moment.
 * Atomic: other tests fsync from many threads at once. */
typedef void (*fsync_hook)(void);
static _Atomic(fsync_hook) before_next_fsync;

static atomic_int fsync_calls;

int __wrap_fsync(int fd)
{
	fsync_hook hook = atomic_exchange(&before_next_fsync, NULL);

	atomic_fetch_add(&fsync_calls, 1);
	if (hook != NULL)
		hook();
	return should_fail(SYS_FSYNC) ? -1 : __real_fsync(fd);
}

int __wrap_renameat(int a, const char *b, int c, const char *d)
{
	return should_fail(SYS_RENAMEAT) ? -1 : __real_renameat(a, b, c, d);
}

static void reset_injection(void)
{
	memset(inject, 0, sizeof(inject));
	short_writes = 0;
}

/* A slab in memory: a prefix and a payload, and its key. */
struct slab {
	uint8_t *prefix;
	size_t prefix_len;
	uint8_t *payload;
	size_t payload_len;
	struct kvc_key key;
};

static void make_slab(struct slab *s, uint32_t first_token, size_t payload_len,
		      uint32_t hits)
{
	uint32_t tokens[16];
	struct kvc_meta m = { 0 };
	struct kvc_err err;

	for (int i = 0; i < 16; i++)
		tokens[i] = first_token + (uint32_t)i;
	memset(m.fingerprint, 0x11, 32);
	memset(m.ctx_params_hash, 0x22, 32);
	m.quant_byte = 1;
	m.quant_bits = 16;
	m.save_reason = KVC_SAVE_COLD;
	m.hit_count = hits;
	m.creation_time = 1767225600;
	m.last_used_time = 1767225600;
	m.tokens = tokens;
	m.n_tokens = 16;
	s->payload_len = payload_len;
	s->payload = malloc(payload_len + 1);
	for (size_t i = 0; i < payload_len; i++)
		s->payload[i] = (uint8_t)(i * 31 + first_token);
	assert_int_equal(kvc_build_prefix(&m, payload_len,
					  kvc_crc32c(0, s->payload, payload_len),
					  &s->prefix, &s->prefix_len, &err), 0);
	assert_int_equal(kvc_meta_key(&m, &s->key), 0);
}

static void free_slab(struct slab *s)
{
	free(s->prefix);
	free(s->payload);
}

static int save(struct kvc_store *store, const struct slab *s,
		enum kvc_publish_outcome *outcome, struct kvc_err *err)
{
	struct iovec iov[2] = { { s->prefix, s->prefix_len }, { s->payload, s->payload_len } };
	struct kvc_tmp tmp = KVC_TMP_INIT;

	if (kvc_store_write_tmp_bufs(store, &s->key, iov, 2, &tmp, err) < 0)
		return -1;
	if (kvc_store_publish(store, &tmp, &s->key, NULL, outcome, err) < 0) {
		kvc_store_abort_tmp(store, &tmp);
		return -1;
	}
	return 0;
}

struct fixture {
	char *dir;
	struct kvc_store *store;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct kvc_store_config cfg = { 0 };
	struct kvc_err err;

	reset_injection();
	f->dir = make_temp_dir();
	cfg.root = f->dir;
	cfg.host_id = "testhost";
	if (kvc_store_open(&cfg, &f->store, &err) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	reset_injection();
	kvc_store_close(f->store);
	rm_rf(f->dir);
	g_free(f->dir);
	free(f);
	return 0;
}

static void assert_loads(struct kvc_store *store, const struct slab *s)
{
	struct kvc_meta meta;
	struct kvc_err err;
	uint8_t *buf = malloc(s->payload_len + 1);
	int fd;

	if (kvc_store_load(store, &s->key, &fd, &meta, &err) < 0)
		fail_msg("load: %s: %s", kvc_tag_name(err.tag), err.detail);
	assert_true(pread(fd, buf, s->payload_len, (off_t)meta.payload_offset) ==
		    (ssize_t)s->payload_len);
	assert_memory_equal(buf, s->payload, s->payload_len);
	close(fd);
	kvc_meta_clear(&meta);
	free(buf);
}

static void test_save_and_load(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;

	make_slab(&s, 100, 300000, 0);
	assert_int_equal(save(f->store, &s, &outcome, &err), 0);
	assert_int_equal(outcome, KVC_PUBLISH_NEW);
	assert_int_equal(count_entries(f->dir), 1);
	assert_loads(f->store, &s);
	free_slab(&s);
}

static void test_bad_content_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	struct kvc_key other;

	make_slab(&s, 100, 1000, 0);
	s.payload[10] ^= 1;
	assert_int_equal(save(f->store, &s, NULL, &err), -1);
	assert_int_equal(err.tag, KVC_E_CRC_MISMATCH);
	s.payload[10] ^= 1;
	other = s.key;
	s.key.bytes[0] ^= 1;
	assert_int_equal(save(f->store, &s, NULL, &err), -1);
	assert_int_equal(err.tag, KVC_E_KEY_MISMATCH);
	s.key = other;
	assert_int_equal(count_entries(f->dir), 0);
	free_slab(&s);
}

/* Each failure: a clear error, and afterwards neither a slab nor a temp. */
static void test_failure_branches(void **state)
{
	static const struct {
		enum sys sys;
		int nth, err;
		enum kvc_tag tag;
	} cases[] = {
		{ SYS_OPENAT, 1, EIO, KVC_E_IO },
		{ SYS_OPENAT, 1, EEXIST, KVC_E_IO },  /* a temp name collision */
		{ SYS_OPENAT, 1, ENOSPC, KVC_E_NO_SPACE },
		{ SYS_WRITE, 1, ENOSPC, KVC_E_NO_SPACE },
		{ SYS_WRITE, 2, EIO, KVC_E_IO },
		{ SYS_FDATASYNC, 1, EIO, KVC_E_IO },
		{ SYS_LINKAT, 1, EIO, KVC_E_IO },
		{ SYS_LINKAT, 1, ENOSPC, KVC_E_NO_SPACE },
		{ SYS_FSYNC, 1, EIO, KVC_E_IO },
	};
	struct fixture *f = *state;
	struct slab s;

	make_slab(&s, 7, 5000, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kvc_err err = { 0 };
		reset_injection();
		inject[cases[i].sys].countdown = cases[i].nth;
		inject[cases[i].sys].err = cases[i].err;
		if (save(f->store, &s, NULL, &err) != -1)
			fail_msg("case %zu: save succeeded", i);
		assert_int_equal(err.tag, cases[i].tag);
		assert_int_equal(err.sys_errno, cases[i].err);
		assert_non_null(strstr(err.detail, strerror(cases[i].err)));
		reset_injection();
		if (count_entries(f->dir) != 0)
			fail_msg("case %zu left %d files", i, count_entries(f->dir));
	}
	/* After all that, the same save works. */
	assert_int_equal(save(f->store, &s, NULL, &(struct kvc_err){ 0 }), 0);
	assert_loads(f->store, &s);
	free_slab(&s);
}

/* Interrupted and partial system calls are retried, not reported. */
static void test_eintr_and_short_writes(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;

	make_slab(&s, 9, 100000, 0);
	short_writes = 4093;
	inject[SYS_FDATASYNC].countdown = 1;
	inject[SYS_FDATASYNC].err = EINTR;
	inject[SYS_FSYNC].countdown = 1;
	inject[SYS_FSYNC].err = EINTR;
	assert_int_equal(save(f->store, &s, NULL, &err), 0);
	reset_injection();
	assert_int_equal(count_entries(f->dir), 1);
	assert_loads(f->store, &s);
	free_slab(&s);
}

/* The temp that will not go away does not fail a publish that happened. */
static void test_unlink_of_temp_fails(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;

	make_slab(&s, 10, 100, 0);
	inject[SYS_UNLINKAT].countdown = 1;
	inject[SYS_UNLINKAT].err = EIO;
	assert_int_equal(save(f->store, &s, NULL, &err), 0);
	reset_injection();
	assert_loads(f->store, &s);
	assert_int_equal(count_entries(f->dir), 2);
	free_slab(&s);
}

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char *path = g_build_filename(dir, name, NULL);
	assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
	g_free(path);
}

/* link(2) says EEXIST but the name is empty by the time we look (another
 * writer's slab was deleted meanwhile): ours takes the name. */
static void test_eexist_then_vanished(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;

	make_slab(&s, 12, 3000, 0);
	inject[SYS_LINKAT].countdown = 1;
	inject[SYS_LINKAT].err = EEXIST;
	assert_int_equal(save(f->store, &s, &outcome, &err), 0);
	reset_injection();
	assert_int_equal(outcome, KVC_PUBLISH_REPLACED);
	assert_int_equal(count_entries(f->dir), 1);
	assert_loads(f->store, &s);
	free_slab(&s);
}

/* The replace after EEXIST fails: an error, the invalid file untouched
 * (it is not ours to judge twice), no temp left. */
static void test_replace_fails(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	char name[KVC_SLAB_NAME_LEN + 1];

	make_slab(&s, 13, 3000, 0);
	kvc_key_slab_name(&s.key, name);
	write_file(f->dir, name, "KVC junk", 8);
	inject[SYS_RENAMEAT].countdown = 1;
	inject[SYS_RENAMEAT].err = EIO;
	assert_int_equal(save(f->store, &s, NULL, &err), -1);
	reset_injection();
	assert_int_equal(err.sys_errno, EIO);
	assert_int_equal(count_entries(f->dir), 1);
	free_slab(&s);
}

static void test_eexist_valid_is_adopted(void **state)
{
	struct fixture *f = *state;
	struct slab first, second;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;
	struct kvc_meta meta;
	int fd;

	make_slab(&first, 50, 2000, 1);
	make_slab(&second, 50, 2000, 99); /* same key, other header bytes */
	assert_true(kvc_key_equal(&first.key, &second.key));
	assert_int_equal(save(f->store, &first, &outcome, &err), 0);
	assert_int_equal(save(f->store, &second, &outcome, &err), 0);
	assert_int_equal(outcome, KVC_PUBLISH_ADOPTED);
	assert_int_equal(count_entries(f->dir), 1);
	assert_int_equal(kvc_store_load(f->store, &first.key, &fd, &meta, &err), 0);
	assert_int_equal(meta.hit_count, 1); /* the first writer's slab */
	close(fd);
	kvc_meta_clear(&meta);
	free_slab(&first);
	free_slab(&second);
}

/* A second valid slab of a key that has one: kept as the first (adopted)
 * without syncing, linking or fsyncing anything (the fdatasync would fail
 * here), and its temp is gone. */
static void test_adopt_needs_no_sync(void **state)
{
	struct fixture *f = *state;
	struct slab first, second;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;
	struct kvc_tmp tmp;

	make_slab(&first, 51, 2000, 1);
	make_slab(&second, 51, 2000, 99);
	assert_int_equal(save(f->store, &first, &outcome, &err), 0);
	assert_int_equal(kvc_tmp_create(f->store, "stage", &tmp, &err), 0);
	assert_int_equal(kvc_pwrite_full(tmp.fd, second.prefix, second.prefix_len, 0), 0);
	assert_int_equal(kvc_pwrite_full(tmp.fd, second.payload, second.payload_len,
					 second.prefix_len), 0);
	reset_injection();
	inject[SYS_FDATASYNC].countdown = 1;
	inject[SYS_FDATASYNC].err = EIO;
	inject[SYS_FSYNC].countdown = 1;
	inject[SYS_FSYNC].err = EIO;
	assert_int_equal(kvc_store_publish(f->store, &tmp, &second.key, NULL, &outcome, &err), 0);
	reset_injection();
	assert_int_equal(outcome, KVC_PUBLISH_ADOPTED);
	assert_int_equal(count_entries(f->dir), 1);
	assert_true(tmp.fd < 0);
	free_slab(&first);
	free_slab(&second);
}

static void write_slab_file(const char *dir, const char *name, const struct slab *s)
{
	size_t len = s->prefix_len + s->payload_len;
	uint8_t *buf = malloc(len);

	memcpy(buf, s->prefix, s->prefix_len);
	memcpy(buf + s->prefix_len, s->payload, s->payload_len);
	write_file(dir, name, buf, len);
	free(buf);
}

static void test_eexist_corrupt_is_replaced(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;
	char name[KVC_SLAB_NAME_LEN + 1];

	make_slab(&s, 60, 4000, 0);
	kvc_key_slab_name(&s.key, name);
	write_file(f->dir, name, "KVC garbage", 11);
	assert_int_equal(save(f->store, &s, &outcome, &err), 0);
	assert_int_equal(outcome, KVC_PUBLISH_REPLACED);
	assert_int_equal(count_entries(f->dir), 1);
	assert_loads(f->store, &s);
	free_slab(&s);
}

static void test_load_removes_corrupt_keeps_newer(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	struct kvc_meta meta;
	char name[KVC_SLAB_NAME_LEN + 1];
	int fd;

	make_slab(&s, 70, 4000, 0);
	kvc_key_slab_name(&s.key, name);
	s.payload[100] ^= 0x40;
	write_slab_file(f->dir, name, &s);
	assert_int_equal(kvc_store_load(f->store, &s.key, &fd, &meta, &err), -1);
	assert_int_equal(err.tag, KVC_E_CRC_MISMATCH);
	assert_int_equal(count_entries(f->dir), 0);

	s.payload[100] ^= 0x40;
	s.prefix[3] = 2; /* a newer format version: not ours to judge */
	write_slab_file(f->dir, name, &s);
	assert_int_equal(kvc_store_load(f->store, &s.key, &fd, &meta, &err), -1);
	assert_int_equal(err.tag, KVC_E_UNSUPPORTED_VERSION);
	assert_int_equal(count_entries(f->dir), 1);

	assert_int_equal(kvc_store_load(f->store, &(struct kvc_key){ { 0 } }, &fd, &meta, &err), -1);
	assert_int_equal(err.tag, KVC_E_NOT_FOUND);
	free_slab(&s);
}

static void test_delete_and_touch(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	struct kvc_meta meta;
	int fd;

	make_slab(&s, 80, 1000, 0);
	assert_int_equal(save(f->store, &s, NULL, &err), 0);
	assert_int_equal(kvc_store_touch(f->store, &s.key, 42, 1800000000ull, &err), 0);
	assert_int_equal(kvc_store_load(f->store, &s.key, &fd, &meta, &err), 0);
	assert_int_equal(meta.hit_count, 42);
	assert_true(meta.last_used_time == 1800000000ull);
	assert_true(meta.creation_time == 1767225600ull);
	close(fd);
	kvc_meta_clear(&meta);
	assert_int_equal(kvc_store_delete(f->store, &s.key, &err), 0);
	assert_int_equal(count_entries(f->dir), 0);
	assert_int_equal(kvc_store_delete(f->store, &s.key, &err), 0);
	assert_int_equal(kvc_store_touch(f->store, &s.key, 1, 1, &err), -1);
	free_slab(&s);
}

struct scan_seen {
	int count;
	struct kvc_key keys[16];
};

static void on_slab(void *ctx, const struct kvc_key *key, const struct kvc_meta *meta)
{
	struct scan_seen *seen = ctx;

	assert_true(meta->file_size > 0);
	seen->keys[seen->count++] = *key;
}

static bool seen_key(const struct scan_seen *seen, const struct kvc_key *key)
{
	for (int i = 0; i < seen->count; i++)
		if (kvc_key_equal(&seen->keys[i], key))
			return true;
	return false;
}

static void test_scan(void **state)
{
	struct fixture *f = *state;
	struct slab a, b, misnamed, wrongkey, corrupt, newer;
	struct scan_seen seen = { 0 };
	struct kvc_scan_stats st;
	struct kvc_err err;
	char name[KVC_SLAB_NAME_LEN + 1], path_name[KVC_SLAB_NAME_LEN + 1];

	make_slab(&a, 1, 100, 0);
	make_slab(&b, 2, 100, 0);
	make_slab(&misnamed, 3, 100, 0);
	make_slab(&wrongkey, 4, 100, 0);
	make_slab(&corrupt, 5, 100, 0);
	make_slab(&newer, 6, 100, 0);
	assert_int_equal(save(f->store, &a, NULL, &err), 0);
	assert_int_equal(save(f->store, &b, NULL, &err), 0);
	write_slab_file(f->dir, "copied-by-hand.kvc", &misnamed);
	kvc_key_slab_name(&a.key, name);
	memcpy(path_name, name, sizeof(name));
	path_name[0] = path_name[0] == '0' ? '1' : '0';
	write_slab_file(f->dir, path_name, &wrongkey);
	kvc_key_slab_name(&corrupt.key, name);
	write_file(f->dir, name, corrupt.prefix, 60);
	newer.prefix[3] = 2;
	kvc_key_slab_name(&newer.key, name);
	write_slab_file(f->dir, name, &newer);
	write_file(f->dir, "x.kvc.testhost.1.0.tmp", "partial", 7);
	write_file(f->dir, "notes.txt", "hello", 5);

	assert_int_equal(kvc_store_scan(f->store, on_slab, &seen, &st, &err), 0);
	assert_int_equal(st.slabs, 4);
	assert_int_equal(seen.count, 4);
	assert_int_equal(st.republished, 2);
	assert_int_equal(st.removed_corrupt, 1);
	assert_int_equal(st.skipped_newer, 1);
	assert_true(seen_key(&seen, &a.key) && seen_key(&seen, &b.key) &&
		    seen_key(&seen, &misnamed.key) && seen_key(&seen, &wrongkey.key));
	assert_loads(f->store, &misnamed);
	assert_loads(f->store, &wrongkey);
	/* a, b, misnamed, wrongkey, newer, the temp, notes.txt */
	assert_int_equal(count_entries(f->dir), 7);
	free_slab(&a);
	free_slab(&b);
	free_slab(&misnamed);
	free_slab(&wrongkey);
	free_slab(&corrupt);
	free_slab(&newer);
}

static char *path_in(const char *dir, const char *name)
{
	return g_build_filename(dir, name, NULL);
}

static void make_dir_in(const char *dir, const char *name)
{
	char *path = path_in(dir, name);

	assert_int_equal(mkdir(path, 0755), 0);
	g_free(path);
}

enum odd_kind { ODD_SYMLINK, ODD_FIFO, ODD_SOCKET, ODD_DIR, ODD_COUNT };

/* Put something that is not a regular file under name. The directory holds
 * a file, a subdirectory and a symlink to a file outside, which must
 * survive its removal. */
static void plant(const char *dir, const char *name, enum odd_kind kind, const char *outside)
{
	char *path = path_in(dir, name);

	switch (kind) {
	case ODD_SYMLINK:
		assert_int_equal(symlink(outside, path), 0);
		break;
	case ODD_FIFO:
		assert_int_equal(mkfifo(path, 0644), 0);
		break;
	case ODD_SOCKET: {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_true(strlen(path) < sizeof(sa.sun_path));
		strcpy(sa.sun_path, path);
		assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
		close(s);
		break;
	}
	case ODD_DIR: {
		char *sub = g_build_filename(path, "sub", NULL);
		char *link = g_build_filename(path, "sub", "to-outside", NULL);
		assert_int_equal(g_mkdir_with_parents(sub, 0755), 0);
		write_file(path, "file", "x", 1);
		assert_int_equal(symlink(outside, link), 0);
		g_free(link);
		g_free(sub);
		break;
	}
	default:
		fail();
	}
	g_free(path);
}

/* The planted directory's file, in every directory set aside: its
 * contents were never removed. */
static int kept_aside_files(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	int n = 0;

	while ((name = g_dir_read_name(d)) != NULL) {
		char *file = g_build_filename(dir, name, "file", NULL);

		if (g_str_has_suffix(name, ".kvcgone") && g_file_test(file, G_FILE_TEST_EXISTS))
			n++;
		g_free(file);
	}
	g_dir_close(d);
	return n;
}

static int entries_with_suffix(const char *dir, const char *suffix)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	int n = 0;

	while ((name = g_dir_read_name(d)) != NULL)
		n += g_str_has_suffix(name, suffix);
	g_dir_close(d);
	return n;
}

static void set_age(const char *dir, const char *name, time_t age)
{
	char *path = g_build_filename(dir, name, NULL);
	struct timespec ts[2];

	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	g_free(path);
}

static bool exists(const char *dir, const char *name)
{
	char *path = g_build_filename(dir, name, NULL);
	bool r = g_file_test(path, G_FILE_TEST_EXISTS);
	g_free(path);
	return r;
}

static void test_sweep(void **state)
{
	struct fixture *f = *state;
	struct kvc_sweep_stats st;
	struct kvc_err err;
	char dead[128], live[128], mine_old[128], mine_new[128], aside[128], aside_empty[128];
	pid_t child = fork();

	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0); /* child's pid is now (almost surely) free */
	snprintf(dead, sizeof(dead), "k.kvc.testhost.%d.0.kvcpart", (int)child);
	snprintf(live, sizeof(live), "00000000000000000000000000000000000000000000000000000000000000ab.kvc.testhost.%d.0.tmp", (int)getppid());
	snprintf(mine_old, sizeof(mine_old), "stage.testhost.%d.5.tmp", (int)getpid());
	snprintf(mine_new, sizeof(mine_new), "stage.testhost.%d.6.kvcpart", (int)getpid());
	write_file(f->dir, dead, "x", 1);
	write_file(f->dir, live, "x", 1);
	write_file(f->dir, mine_old, "x", 1);
	set_age(f->dir, mine_old, 60);
	write_file(f->dir, mine_new, "x", 1);
	write_file(f->dir, "00000000000000000000000000000000000000000000000000000000000000ab.kvc.otherhost.1.0.tmp", "x", 1);
	write_file(f->dir, "00000000000000000000000000000000000000000000000000000000000000ab.kvc.otherhost.1.1.tmp", "x", 1);
	set_age(f->dir, "00000000000000000000000000000000000000000000000000000000000000ab.kvc.otherhost.1.1.tmp", 7200);
	write_file(f->dir, "keep.me.tmp", "x", 1);
	/* Shaped like an old temp, but with a label no kvcfs writer uses
	 * (another program's, e.g. the format's reference server): kept. */
	write_file(f->dir, "model.run.2024.12.tmp", "x", 1);
	set_age(f->dir, "model.run.2024.12.tmp", 7200);
	/* A directory a dead process moved off a slab name and did not finish
	 * removing. */
	snprintf(aside, sizeof(aside), "k.kvc.testhost.%d.1.kvcgone", (int)child);
	plant(f->dir, aside, ODD_DIR, "/nonexistent");
	snprintf(aside_empty, sizeof(aside_empty), "k.kvc.testhost.%d.2.kvcgone", (int)child);
	make_dir_in(f->dir, aside_empty);

	assert_int_equal(kvc_store_sweep(f->store, 3600, &st, &err), 0);
	/* A directory set aside is the owner's until it is empty. */
	assert_true(exists(f->dir, aside));
	assert_false(exists(f->dir, aside_empty));
	assert_int_equal(st.set_aside, 1);
	assert_false(exists(f->dir, dead));
	assert_true(exists(f->dir, live));
	assert_false(exists(f->dir, mine_old));
	assert_true(exists(f->dir, mine_new));
	assert_true(exists(f->dir, "00000000000000000000000000000000000000000000000000000000000000ab.kvc.otherhost.1.0.tmp"));
	assert_false(exists(f->dir, "00000000000000000000000000000000000000000000000000000000000000ab.kvc.otherhost.1.1.tmp"));
	assert_true(exists(f->dir, "keep.me.tmp"));
	assert_true(exists(f->dir, "model.run.2024.12.tmp"));
	assert_int_equal(st.removed, 4);
	assert_int_equal(st.kept, 3);
}

static struct kvc_store *open_with_delay(const char *dir, int delay_ms);

/* The first 8 hex digits of this kernel's boot id. */
static void boot8(char out[9])
{
	FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "r");
	size_t n = 0;
	int c;

	assert_non_null(fp);
	while (n < 8 && (c = fgetc(fp)) != EOF)
		if (g_ascii_isxdigit(c))
			out[n++] = (char)c;
	fclose(fp);
	out[8] = '\0';
}

/*
 * A temp's writer lives while it holds the temp's lock, whatever its pid
 * namespace or its age: a second store on the same root (another kvcfs,
 * in another container of the pod) keeps it. With no lock, a temp of this
 * kernel's boot has no writer, however fresh; one of another boot (another
 * host, where the lock may not show) waits out the grace period.
 */
static void test_sweep_trusts_locks_not_names(void **state)
{
	struct fixture *f = *state;
	struct kvc_sweep_stats st;
	struct kvc_store *other;
	struct kvc_tmp live = KVC_TMP_INIT;
	struct kvc_err err;
	struct kvc_tmp idle_alive = KVC_TMP_INIT;
	char boot[9], crashed[160], far_fresh[160], far_old[160], far_alive[160];

	boot8(boot);
	assert_int_equal(kvc_tmp_create(f->store, "stage", &live, &err), 0);
	set_age(f->dir, live.name, 7 * 86400);
	snprintf(crashed, sizeof(crashed), "stage.podhost-%s00c0ffee.1.0.kvcpart", boot);
	write_file(f->dir, crashed, "x", 1);
	snprintf(far_fresh, sizeof(far_fresh), "stage.podhost-%s00c0ffee.1.1.kvcpart",
		 strcmp(boot, "ffffffff") != 0 ? "ffffffff" : "eeeeeeee");
	write_file(f->dir, far_fresh, "x", 1);
	snprintf(far_old, sizeof(far_old), "stage.podhost-%s00c0ffee.1.2.kvcpart",
		 strcmp(boot, "ffffffff") != 0 ? "ffffffff" : "eeeeeeee");
	write_file(f->dir, far_old, "x", 1);
	set_age(f->dir, far_old, 7200);
	/* Unwritten for two hours, but its writer marked it alive just now:
	 * kept, wherever its writer is. */
	snprintf(far_alive, sizeof(far_alive), "stage.podhost-%s00c0ffee.1.3.kvcpart",
		 strcmp(boot, "ffffffff") != 0 ? "ffffffff" : "eeeeeeee");
	write_file(f->dir, far_alive, "x", 1);
	set_age(f->dir, far_alive, 7200);
	{
		char *path = g_build_filename(f->dir, far_alive, NULL);
		idle_alive.fd = open(path, O_RDONLY);
		g_free(path);
		assert_true(idle_alive.fd >= 0);
		assert_int_equal(kvc_tmp_mark_alive(&idle_alive), 0);
		close(idle_alive.fd);
	}

	other = open_with_delay(f->dir, 0); /* the same host id: "testhost" */
	assert_int_equal(kvc_store_sweep(other, 3600, &st, &err), 0);
	assert_true(exists(f->dir, live.name));
	assert_false(exists(f->dir, crashed));
	assert_true(exists(f->dir, far_fresh));
	assert_false(exists(f->dir, far_old));
	assert_true(exists(f->dir, far_alive));
	assert_int_equal(st.removed, 2);
	assert_int_equal(st.kept, 3);
	/* Its writer gone (the descriptor closed), the next sweep takes it. */
	close(live.fd);
	live.fd = -1;
	assert_int_equal(kvc_store_sweep(other, 3600, &st, &err), 0);
	assert_false(exists(f->dir, live.name));
	kvc_store_close(other);
	{
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", f->dir, far_fresh);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s", f->dir, far_alive);
		unlink(path);
	}
}

static void test_tmp_name_parse(void **state)
{
	char host[65];
	long pid;

	(void)state;
	assert_true(kvc_tmp_name_parse("00000000000000000000000000000000000000000000000000000000000000ab.kvc.node-1.123.0.tmp", host, &pid));
	assert_string_equal(host, "node-1");
	assert_int_equal(pid, 123);
	assert_true(kvc_tmp_name_parse("stage.h.1.99.tmp", host, &pid));
	/* The old form only with our labels: not another program's temps. */
	assert_false(kvc_tmp_name_parse("ab.kvc.node-1.123.0.tmp", host, &pid));
	assert_false(kvc_tmp_name_parse("model.run.2024.12.tmp", host, &pid));
	assert_false(kvc_tmp_name_parse("h.1.99.tmp", host, &pid));
	assert_false(kvc_tmp_name_parse(".h.1.99.tmp", host, &pid));
	assert_false(kvc_tmp_name_parse("x.h.1a.99.tmp", host, &pid));
	assert_false(kvc_tmp_name_parse("x.h.1.99.tmp2", host, &pid));
	assert_false(kvc_tmp_name_parse("x..1.99.tmp", host, &pid));
	assert_false(kvc_tmp_name_parse("x.h.1..tmp", host, &pid));
	assert_false(kvc_tmp_name_parse(".tmp", host, &pid));
	/* Today's form */
	assert_true(kvc_tmp_name_parse("ab.kvc.node-1.123.0.kvcpart", host, &pid));
	assert_string_equal(host, "node-1");
	assert_int_equal(pid, 123);
	assert_false(kvc_tmp_name_parse("h.1.99.kvcpart", host, &pid));
	assert_false(kvc_tmp_name_parse("x.h.1.99.kvcpart.tmp2", host, &pid));
	assert_false(kvc_tmp_name_parse("x.h.1.99.kvcgone", host, &pid));
}

/* A temp's name ends in neither .tmp (other programs sweep those) nor
 * .kvc, and is recognised as a temp. */
static void test_tmp_names(void **state)
{
	struct fixture *f = *state;
	struct kvc_tmp tmp;
	struct kvc_err err;
	char host[65];
	long pid;

	assert_int_equal(kvc_tmp_create(f->store, "stage", &tmp, &err), 0);
	assert_false(g_str_has_suffix(tmp.name, ".tmp"));
	assert_false(g_str_has_suffix(tmp.name, ".kvc"));
	assert_true(kvc_tmp_name_parse(tmp.name, host, &pid));
	/* The writer id: host id, boot id, instance. */
	assert_int_equal(strlen(host), strlen("testhost-") + 16);
	assert_true(g_str_has_prefix(host, "testhost-"));
	assert_int_equal(pid, (long)getpid());
	kvc_store_abort_tmp(f->store, &tmp);
	assert_int_equal(count_entries(f->dir), 0);
}

static void test_read_only_store_refuses(void **state)
{
	struct fixture *f = *state;
	struct kvc_store_config cfg = { .root = f->dir, .read_only = true };
	struct kvc_store *ro;
	struct kvc_tmp tmp;
	struct kvc_err err;
	struct slab s;

	make_slab(&s, 1, 10, 0);
	assert_int_equal(kvc_store_open(&cfg, &ro, &err), 0);
	assert_int_equal(kvc_tmp_create(ro, "x", &tmp, &err), -1);
	assert_int_equal(err.sys_errno, EROFS);
	assert_int_equal(kvc_store_delete(ro, &s.key, &err), -1);
	assert_int_equal(kvc_store_sweep(ro, 0, NULL, &err), -1);
	kvc_store_close(ro);
	cfg.root = "/nonexistent/kvc";
	assert_int_equal(kvc_store_open(&cfg, &ro, &err), -1);
	assert_int_equal(err.tag, KVC_E_NOT_FOUND);
	free_slab(&s);
}

/* Nothing under a slab's name may block the store: each of these would
 * wait for a writer forever on a FIFO opened O_RDONLY. SIGALRM ends the
 * test if one does. */
static void test_fifo_never_blocks(void **state)
{
	struct fixture *f = *state;
	char name[KVC_SLAB_NAME_LEN + 1];
	struct kvc_slab_info info;
	struct kvc_scan_stats st;
	struct kvc_meta meta;
	struct kvc_err err;
	struct stat sb;
	struct slab s;
	char *path;
	int fd;

	make_slab(&s, 90, 1000, 0);
	kvc_key_slab_name(&s.key, name);
	path = path_in(f->dir, name);
	assert_int_equal(mkfifo(path, 0644), 0);
	alarm(20);
	kvc_store_stat(f->store, &s.key, &info, &err);
	assert_int_equal(kvc_store_load(f->store, &s.key, &fd, &meta, &err), -1);
	assert_int_equal(kvc_store_open_slab(f->store, &s.key, &fd, &sb, &err), -1);
	assert_int_equal(kvc_store_touch(f->store, &s.key, 1, 1, &err), -1);
	assert_int_equal(kvc_store_scan(f->store, NULL, NULL, &st, &err), 0);
	assert_int_equal(st.slabs, 0);
	alarm(0);
	g_free(path);
	free_slab(&s);
}

/* A non-regular entry under a key name: stat shows an empty file, load
 * fails at once, and a publish or a delete replaces it. */
static void test_not_regular_under_key_name(void **state)
{
	struct fixture *f = *state;
	char name[KVC_SLAB_NAME_LEN + 1];
	char *outdir = make_temp_dir();
	char *outside = path_in(outdir, "precious");

	write_file(outdir, "precious", "keep me", 7);
	for (int kind = 0; kind < ODD_COUNT; kind++) {
		enum kvc_publish_outcome outcome;
		struct kvc_slab_info info;
		struct kvc_meta meta;
		struct kvc_err err;
		struct slab s;
		int fd;

		make_slab(&s, 200 + (uint32_t)kind, 3000, 0);
		kvc_key_slab_name(&s.key, name);
		plant(f->dir, name, kind, outside);
		alarm(20);
		if (kvc_store_stat(f->store, &s.key, &info, &err) < 0)
			fail_msg("kind %d: stat: %s", kind, err.detail);
		assert_true(info.not_regular);
		assert_false(info.header_ok);
		assert_int_equal(info.st.st_size, 0);
		assert_int_equal(kvc_store_load(f->store, &s.key, &fd, &meta, &err), -1);
		assert_int_equal(kvc_err_to_errno(&err), EIO);

		if (save(f->store, &s, &outcome, &err) < 0)
			fail_msg("kind %d: publish over it: %s", kind, err.detail);
		assert_int_equal(outcome, KVC_PUBLISH_REPLACED);
		assert_loads(f->store, &s);
		assert_int_equal(kvc_store_stat(f->store, &s.key, &info, &err), 0);
		assert_false(info.not_regular);

		assert_int_equal(kvc_store_delete(f->store, &s.key, &err), 0);
		plant(f->dir, name, kind, outside);
		if (kvc_store_delete(f->store, &s.key, &err) < 0)
			fail_msg("kind %d: delete: %s", kind, err.detail);
		alarm(0);
		assert_false(exists(f->dir, name));
		/* A directory that held something is set aside whole, twice
		 * (the publish over it, then the delete); nothing else is. */
		assert_int_equal(entries_with_suffix(f->dir, ".kvcgone"), kind == ODD_DIR ? 2 : 0);
		assert_int_equal(count_entries(f->dir), kind == ODD_DIR ? 2 : 0);
		assert_true(exists(outdir, "precious"));
		if (kind == ODD_DIR)
			assert_int_equal(kept_aside_files(f->dir), 2);
		free_slab(&s);
	}
	rm_rf(outdir);
	g_free(outside);
	g_free(outdir);
}

/* Scan counts non-regular "*.kvc" entries and removes the kinds that hold
 * no data, under key names only. */
static void test_scan_not_regular(void **state)
{
	struct fixture *f = *state;
	char name[KVC_SLAB_NAME_LEN + 1];
	struct scan_seen seen = { 0 };
	struct kvc_scan_stats st;
	struct kvc_err err;
	struct slab s[ODD_COUNT], good;

	make_slab(&good, 300, 1000, 0);
	assert_int_equal(save(f->store, &good, NULL, &err), 0);
	for (int kind = 0; kind < ODD_COUNT; kind++) {
		make_slab(&s[kind], 310 + (uint32_t)kind, 100, 0);
		kvc_key_slab_name(&s[kind].key, name);
		plant(f->dir, name, kind, "/nonexistent");
	}
	char *mine = path_in(f->dir, "mine.kvc");
	struct stat sb;

	assert_int_equal(symlink("/nonexistent", mine), 0);
	alarm(20);
	assert_int_equal(kvc_store_scan(f->store, on_slab, &seen, &st, &err), 0);
	alarm(0);
	assert_int_equal(st.slabs, 1);
	assert_int_equal(seen.count, 1);
	assert_int_equal(st.not_regular, ODD_COUNT + 1);
	assert_int_equal(st.removed_not_regular, 3); /* symlink, FIFO, socket */
	/* good, the directory, and mine.kvc (not a key name: not ours) */
	assert_int_equal(count_entries(f->dir), 3);
	kvc_key_slab_name(&s[ODD_DIR].key, name);
	assert_true(exists(f->dir, name));
	assert_int_equal(lstat(mine, &sb), 0);
	assert_int_equal(kvc_store_delete(f->store, &s[ODD_DIR].key, &err), 0);
	assert_int_equal(entries_with_suffix(f->dir, ".kvcgone"), 1); /* kept whole */
	/* An empty directory under a key name is simply removed. */
	make_dir_in(f->dir, name);
	assert_int_equal(kvc_store_delete(f->store, &s[ODD_DIR].key, &err), 0);
	assert_false(exists(f->dir, name));
	assert_int_equal(entries_with_suffix(f->dir, ".kvcgone"), 1);
	g_free(mine);
	for (int kind = 0; kind < ODD_COUNT; kind++)
		free_slab(&s[kind]);
	free_slab(&good);
}

/* Phase 1 only: a verified temp ready to publish. */
static void stage(struct kvc_store *store, const struct slab *s, struct kvc_tmp *tmp)
{
	struct iovec iov[2] = { { s->prefix, s->prefix_len }, { s->payload, s->payload_len } };
	struct kvc_err err;

	*tmp = (struct kvc_tmp)KVC_TMP_INIT;
	assert_int_equal(kvc_store_write_tmp_bufs(store, &s->key, iov, 2, tmp, &err), 0);
}

/* A failed publish published nothing and hands the temp back, whichever
 * step after the link failed; a retry then publishes. */
static void test_failure_after_link_takes_back(void **state)
{
	static const struct {
		enum sys sys;
		bool junk_there; /* an invalid file under the name: REPLACED path */
	} cases[] = {
		{ SYS_FSYNC, false },  /* directory fsync after link */
		{ SYS_FSYNC, true },   /* directory fsync after rename over junk */
		{ SYS_OPENAT, false }, /* the re-check cannot open the name */
		{ SYS_OPENAT, true },
	};
	struct fixture *f = *state;
	char name[KVC_SLAB_NAME_LEN + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum kvc_publish_outcome outcome = KVC_PUBLISH_NEW;
		struct kvc_tmp tmp;
		struct kvc_err err;
		struct slab s;

		make_slab(&s, 400 + (uint32_t)i, 3000, 0);
		kvc_key_slab_name(&s.key, name);
		if (cases[i].junk_there)
			write_file(f->dir, name, "KVC junk", 8);
		stage(f->store, &s, &tmp);
		reset_injection();
		/* The re-check's open is the publish's first openat (the junk
		 * is opened twice first in the replace case: by the check for a
		 * slab to adopt, then by the resolution of link's EEXIST). */
		inject[cases[i].sys].countdown = cases[i].sys == SYS_OPENAT && cases[i].junk_there
							 ? 3 : 1;
		inject[cases[i].sys].err = EIO;
		assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome, &err), -1);
		reset_injection();
		if (outcome != KVC_PUBLISH_FAILED)
			fail_msg("case %zu: outcome %d", i, outcome);
		assert_int_equal(err.sys_errno, EIO);
		if (exists(f->dir, name))
			fail_msg("case %zu: something is under the name after a failure", i);
		assert_true(tmp.fd >= 0 && exists(f->dir, tmp.name));
		assert_int_equal(count_entries(f->dir), 1); /* the temp, nothing else */
		assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome, &err), 0);
		assert_int_equal(outcome, KVC_PUBLISH_NEW);
		assert_loads(f->store, &s);
		assert_int_equal(kvc_store_delete(f->store, &s.key, &err), 0);
		assert_int_equal(count_entries(f->dir), 0);
		free_slab(&s);
	}
}

/* The undo itself fails: the caller is told the name holds its bytes. */
static void test_take_back_fails_is_uncertain(void **state)
{
	struct fixture *f = *state;
	enum kvc_publish_outcome outcome = KVC_PUBLISH_NEW;
	struct kvc_tmp tmp;
	struct kvc_err err;
	struct slab s;

	make_slab(&s, 420, 3000, 0);
	stage(f->store, &s, &tmp);
	inject[SYS_FSYNC].countdown = 1;
	inject[SYS_FSYNC].err = EIO;
	inject[SYS_UNLINKAT].countdown = 1;
	inject[SYS_UNLINKAT].err = EIO;
	assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome, &err), -1);
	reset_injection();
	assert_int_equal(outcome, KVC_PUBLISH_UNCERTAIN);
	assert_loads(f->store, &s);
	kvc_store_abort_tmp(f->store, &tmp);
	assert_int_equal(count_entries(f->dir), 1);
	free_slab(&s);
}

/* A misnamed slab keeps its only durable name until the new one is
 * durable. */
static void test_republish_keeps_original_when_fsync_fails(void **state)
{
	struct fixture *f = *state;
	char name[KVC_SLAB_NAME_LEN + 1];
	struct kvc_scan_stats st;
	struct kvc_err err;
	struct slab s;

	make_slab(&s, 430, 3000, 0);
	kvc_key_slab_name(&s.key, name);
	write_slab_file(f->dir, "copied-by-hand.kvc", &s);
	inject[SYS_FSYNC].countdown = 1;
	inject[SYS_FSYNC].err = EIO;
	assert_int_equal(kvc_store_scan(f->store, NULL, NULL, &st, &err), 0);
	reset_injection();
	assert_int_equal(st.republished, 0);
	assert_true(exists(f->dir, "copied-by-hand.kvc"));
	assert_false(exists(f->dir, name));
	assert_int_equal(kvc_store_scan(f->store, NULL, NULL, &st, &err), 0);
	assert_int_equal(st.republished, 1);
	assert_false(exists(f->dir, "copied-by-hand.kvc"));
	assert_loads(f->store, &s);
	free_slab(&s);
}

/* A slab of key B misnamed under key A's name is republished as B; a
 * publish that replaced the misnamed file with a valid A meanwhile (made
 * to happen at the scan's directory fsync) is not removed with it. */
static struct fixture *race_fixture;
static struct slab race_slab;

/* Another writer puts race_slab under its name, from inside the store's
 * directory fsync: by plain file calls, as a writer elsewhere would (a
 * save of this store would wait for that very fsync). */
static void replace_with_race_slab(void)
{
	char name[KVC_SLAB_NAME_LEN + 1], from[4096], to[4096];

	kvc_key_slab_name(&race_slab.key, name);
	write_slab_file(race_fixture->dir, "race.incoming", &race_slab);
	snprintf(from, sizeof(from), "%s/race.incoming", race_fixture->dir);
	snprintf(to, sizeof(to), "%s/%s", race_fixture->dir, name);
	assert_int_equal(rename(from, to), 0);
}

static void test_republish_spares_what_took_the_name(void **state)
{
	struct fixture *f = *state;
	char name_a[KVC_SLAB_NAME_LEN + 1], name_b[KVC_SLAB_NAME_LEN + 1];
	struct kvc_scan_stats st;
	struct kvc_err err;
	struct slab b;

	make_slab(&race_slab, 440, 3000, 0);
	make_slab(&b, 441, 3000, 0);
	kvc_key_slab_name(&race_slab.key, name_a);
	kvc_key_slab_name(&b.key, name_b);
	write_slab_file(f->dir, name_a, &b); /* B's bytes under A's name */
	race_fixture = f;
	atomic_store(&before_next_fsync, replace_with_race_slab);
	assert_int_equal(kvc_store_scan(f->store, NULL, NULL, &st, &err), 0);
	atomic_store(&before_next_fsync, NULL);
	assert_int_equal(st.republished, 1);
	assert_true(exists(f->dir, name_b));
	assert_loads(f->store, &race_slab); /* A's own slab kept its name */
	assert_loads(f->store, &b);
	free_slab(&race_slab);
	free_slab(&b);
}

/* The publish behind link(2) in the mount: a valid slab already there is
 * EEXIST and the temp stays the caller's; an invalid one is replaced. */
static void test_no_adopt_keeps_temp(void **state)
{
	struct fixture *f = *state;
	struct slab first, second, third;
	struct kvc_tmp tmp;
	struct kvc_err err;
	enum kvc_publish_outcome outcome = KVC_PUBLISH_NEW;
	char name[KVC_SLAB_NAME_LEN + 1];

	make_slab(&first, 70, 3000, 1);
	make_slab(&second, 70, 3000, 5);
	assert_int_equal(save(f->store, &first, &outcome, &err), 0);
	stage(f->store, &second, &tmp);
	assert_int_equal(kvc_store_publish_no_adopt(f->store, &tmp, &second.key, NULL, &outcome,
						    &err), -1);
	assert_int_equal(err.tag, KVC_E_EXISTS);
	assert_int_equal(kvc_err_to_errno(&err), EEXIST);
	assert_int_equal(outcome, KVC_PUBLISH_FAILED);
	assert_true(tmp.fd >= 0 && exists(f->dir, tmp.name));
	/* The caller may still adopt. */
	assert_int_equal(kvc_store_publish(f->store, &tmp, &second.key, NULL, &outcome, &err), 0);
	assert_int_equal(outcome, KVC_PUBLISH_ADOPTED);
	assert_int_equal(count_entries(f->dir), 1);

	make_slab(&third, 80, 3000, 0);
	kvc_key_slab_name(&third.key, name);
	write_file(f->dir, name, "KVC garbage", 11);
	stage(f->store, &third, &tmp);
	assert_int_equal(kvc_store_publish_no_adopt(f->store, &tmp, &third.key, NULL, &outcome,
						    &err), 0);
	assert_int_equal(outcome, KVC_PUBLISH_REPLACED);
	assert_loads(f->store, &third);
	free_slab(&first);
	free_slab(&second);
	free_slab(&third);
}

/* rename(2) with RENAME_NOREPLACE: whatever is under the name, a valid
 * slab or junk, makes it EEXIST and changes nothing; a free name is taken. */
static void test_exclusive_takes_only_a_free_name(void **state)
{
	struct fixture *f = *state;
	struct slab first, second, junk;
	struct kvc_tmp tmp;
	struct kvc_err err;
	enum kvc_publish_outcome outcome = KVC_PUBLISH_NEW;
	char name[KVC_SLAB_NAME_LEN + 1];

	make_slab(&first, 90, 3000, 1);
	make_slab(&second, 90, 3000, 5);
	stage(f->store, &first, &tmp);
	assert_int_equal(kvc_store_publish_exclusive(f->store, &tmp, &first.key, NULL, &outcome,
						     &err), 0);
	assert_int_equal(outcome, KVC_PUBLISH_NEW);
	stage(f->store, &second, &tmp);
	assert_int_equal(kvc_store_publish_exclusive(f->store, &tmp, &second.key, NULL, &outcome,
						     &err), -1);
	assert_int_equal(kvc_err_to_errno(&err), EEXIST);
	assert_true(tmp.fd >= 0 && exists(f->dir, tmp.name));
	kvc_store_abort_tmp(f->store, &tmp);
	make_slab(&junk, 91, 3000, 0);
	kvc_key_slab_name(&junk.key, name);
	write_file(f->dir, name, "KVC garbage", 11);
	stage(f->store, &junk, &tmp);
	assert_int_equal(kvc_store_publish_exclusive(f->store, &tmp, &junk.key, NULL, &outcome,
						     &err), -1);
	assert_int_equal(kvc_err_to_errno(&err), EEXIST);
	kvc_store_abort_tmp(f->store, &tmp);
	assert_int_equal(count_entries(f->dir), 2); /* first's slab and the junk */
	free_slab(&first);
	free_slab(&second);
	free_slab(&junk);
}

/* A temp written by its caller with payload_crc32c 0, tracked or not, in
 * one write or several: sealing fills in the CRC and the publish accepts
 * it; unsealed it is crc_mismatch. */
static void test_tmp_seal(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;

	make_slab(&s, 90, 5000, 0);
	memset(s.prefix + KVC_OFF_PAYLOAD_CRC32C, 0, 4);
	for (int way = 0; way < 3; way++) {
		struct kvc_tmp tmp = KVC_TMP_INIT;
		size_t len = s.prefix_len + s.payload_len;
		uint8_t *whole = malloc(len);

		memcpy(whole, s.prefix, s.prefix_len);
		memcpy(whole + s.prefix_len, s.payload, s.payload_len);
		assert_int_equal(kvc_tmp_create(f->store, "sealtest", &tmp, &err), 0);
		if (way > 0)
			kvc_tmp_track(&tmp);
		if (way == 2) { /* prefix and payload apart */
			assert_true(pwrite(tmp.fd, s.prefix, s.prefix_len, 0) ==
				    (ssize_t)s.prefix_len);
			kvc_tmp_note_write(&tmp, 0, s.prefix, s.prefix_len);
			assert_true(pwrite(tmp.fd, s.payload, s.payload_len,
					   (off_t)s.prefix_len) == (ssize_t)s.payload_len);
			kvc_tmp_note_write(&tmp, s.prefix_len, s.payload, s.payload_len);
		} else {
			assert_true(pwrite(tmp.fd, whole, len, 0) == (ssize_t)len);
			kvc_tmp_note_write(&tmp, 0, whole, len);
		}
		if (way == 0) {
			assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome,
							   &err), -1);
			assert_int_equal(err.tag, KVC_E_CRC_MISMATCH);
		}
		assert_int_equal(kvc_tmp_seal(&tmp, &err), 0);
		assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome, &err), 0);
		assert_loads(f->store, &s);
		assert_int_equal(kvc_store_delete(f->store, &s.key, &err), 0);
		free(whole);
	}
	free_slab(&s);
}

/*
 * Writes the tracker never saw (the kernel's, for a passthrough writer)
 * change a payload byte after tracked writes covered the whole file: once
 * told, the temp is read back, so publish refuses it and seal writes the
 * CRC of the bytes really there. A truncate to 0 does not restore trust.
 */
static void test_distrusted_writes_are_read_back(void **state)
{
	struct fixture *f = *state;
	struct slab s;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;
	size_t len;
	uint8_t *whole, flipped;

	make_slab(&s, 91, 5000, 0);
	len = s.prefix_len + s.payload_len;
	whole = malloc(len);
	memcpy(whole, s.prefix, s.prefix_len);
	memcpy(whole + s.prefix_len, s.payload, s.payload_len);
	for (int sealed = 0; sealed < 2; sealed++) {
		struct kvc_tmp tmp = KVC_TMP_INIT;

		assert_int_equal(kvc_tmp_create(f->store, "distrust", &tmp, &err), 0);
		kvc_tmp_track(&tmp);
		kvc_tmp_distrust_writes(&tmp);
		assert_int_equal(ftruncate(tmp.fd, 0), 0);
		kvc_tmp_note_truncate(&tmp, 0);
		/* Apart: a payload written on its own is what the CRC of its
		 * write vouches for without a read. */
		assert_true(pwrite(tmp.fd, s.prefix, s.prefix_len, 0) == (ssize_t)s.prefix_len);
		kvc_tmp_note_write(&tmp, 0, s.prefix, s.prefix_len);
		assert_true(pwrite(tmp.fd, s.payload, s.payload_len, (off_t)s.prefix_len) ==
			    (ssize_t)s.payload_len);
		kvc_tmp_note_write(&tmp, s.prefix_len, s.payload, s.payload_len);
		flipped = (uint8_t)(whole[len - 1] ^ 0x5a); /* the unseen write */
		assert_true(pwrite(tmp.fd, &flipped, 1, (off_t)(len - 1)) == 1);
		if (sealed)
			assert_int_equal(kvc_tmp_seal(&tmp, &err), 0);
		if (!sealed) {
			assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome,
							   &err), -1);
			assert_int_equal(err.tag, KVC_E_CRC_MISMATCH);
			kvc_store_abort_tmp(f->store, &tmp);
			continue;
		}
		assert_int_equal(kvc_store_publish(f->store, &tmp, &s.key, NULL, &outcome, &err), 0);
		s.payload[s.payload_len - 1] = flipped;
		assert_loads(f->store, &s);
		assert_int_equal(kvc_store_delete(f->store, &s.key, &err), 0);
	}
	free(whole);
	free_slab(&s);
}

static int thread_count(void)
{
	return count_entries("/proc/self/task");
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct kvc_store *open_with_delay(const char *dir, int delay_ms)
{
	struct kvc_store_config cfg = { .root = dir, .host_id = "testhost",
					.recheck_delay_ms = delay_ms };
	struct kvc_store *store;
	struct kvc_err err;

	assert_int_equal(kvc_store_open(&cfg, &store, &err), 0);
	return store;
}

/* An invalid file is removed after the delay, by the store's worker. */
static void test_drop_after_delay(void **state)
{
	struct fixture *f = *state;
	struct kvc_store *store = open_with_delay(f->dir, 100);
	char name[KVC_SLAB_NAME_LEN + 1];
	struct kvc_meta meta;
	struct kvc_err err;
	struct slab s;
	double until;
	int fd;

	make_slab(&s, 500, 4000, 0);
	kvc_key_slab_name(&s.key, name);
	s.payload[7] ^= 1;
	write_slab_file(f->dir, name, &s);
	assert_int_equal(kvc_store_load(store, &s.key, &fd, &meta, &err), -1);
	assert_int_equal(err.tag, KVC_E_CRC_MISMATCH);
	assert_true(exists(f->dir, name)); /* not before the delay */
	until = now_s() + 5;
	while (exists(f->dir, name) && now_s() < until)
		usleep(10000);
	assert_false(exists(f->dir, name));
	assert_true(kvc_store_drops_skipped(store) == 0);
	kvc_store_close(store);
	free_slab(&s);
}

/* Many invalid files: one worker thread, a bounded queue (the rest are
 * skipped and counted), and closing the store with removals pending
 * neither waits for them nor leaves anything running against the freed
 * store (ASan would see it touch the store after the delay). */
static void test_many_drops_bounded_and_close(void **state)
{
	enum { FILES = 300 };
	struct fixture *f = *state;
	struct kvc_store *store = open_with_delay(f->dir, 300);
	char name[KVC_SLAB_NAME_LEN + 1];
	struct kvc_scan_stats st;
	struct kvc_err err;
	int before = thread_count();
	double started;

	for (uint32_t i = 0; i < FILES; i++) {
		struct slab s;
		make_slab(&s, 1000 + i * 20, 10, 0);
		kvc_key_slab_name(&s.key, name);
		write_file(f->dir, name, s.prefix, 60); /* cut short: invalid */
		free_slab(&s);
	}
	assert_int_equal(kvc_store_scan(store, NULL, NULL, &st, &err), 0);
	assert_int_equal(st.removed_corrupt, FILES);
	assert_true(thread_count() <= before + 1);
	assert_true(kvc_store_drops_skipped(store) == FILES - 256);
	assert_int_equal(count_entries(f->dir), FILES); /* none before the delay */
	started = now_s();
	kvc_store_close(store);
	assert_true(now_s() - started < 0.25);
	assert_int_equal(thread_count(), before);
	usleep(500000); /* past the delay: nothing may wake up now */
	assert_int_equal(count_entries(f->dir), FILES);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* For the teardown, which removes plain files only. */
static void rm_tree_in(const char *dir, const char *name)
{
	char *path = path_in(dir, name);

	assert_int_equal(nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	g_free(path);
}

/* The one listing loop: every name once, without "." and "..". */
static void test_store_dir(void **state)
{
	struct fixture *f = *state;
	struct kvc_store_dir *dir;
	struct kvc_err err;
	unsigned char type;
	const char *name;
	int seen = 0, regular = 0;

	write_file(f->dir, "a.kvc", "x", 1);
	write_file(f->dir, "b", "x", 1);
	plant(f->dir, "c.kvc", ODD_DIR, "/nonexistent");
	assert_int_equal(kvc_store_dir_open(f->store, &dir, &err), 0);
	while ((name = kvc_store_dir_next(dir, &type)) != NULL) {
		assert_true(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
		seen++;
		regular += type == DT_REG;
	}
	kvc_store_dir_close(dir);
	assert_int_equal(seen, 3);
	assert_true(regular == 2 || regular == 0); /* 0: the filesystem does not say */
	rm_tree_in(f->dir, "c.kvc");
}

struct racer {
	struct kvc_store *store;
	struct slab slab;
	enum kvc_publish_outcome outcome;
	int rc;
	pthread_barrier_t *barrier;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct kvc_err err;

	pthread_barrier_wait(r->barrier);
	r->rc = save(r->store, &r->slab, &r->outcome, &err);
	return NULL;
}

static void slow_fsync(void)
{
	usleep(200 * 1000); /* the others link and wait meanwhile */
}

/*
 * Publishes in flight share directory fsyncs: while the first one's fsync
 * is slow, seven more link and wait, and one more fsync (begun after all
 * of their links) covers them all, not seven. Every publish returns only
 * after an fsync that began after its link: so never fewer than two.
 */
static void test_publishes_share_directory_fsyncs(void **state)
{
	enum { N = 8 };
	struct fixture *f = *state;
	struct racer r[N];
	pthread_t th[N];
	pthread_barrier_t barrier;
	int calls;

	pthread_barrier_init(&barrier, NULL, N);
	for (int i = 0; i < N; i++) {
		r[i].store = f->store;
		r[i].barrier = &barrier;
		make_slab(&r[i].slab, 3000 + (uint32_t)i, 4096, 0);
	}
	atomic_store(&fsync_calls, 0);
	atomic_store(&before_next_fsync, slow_fsync);
	for (int i = 0; i < N; i++)
		pthread_create(&th[i], NULL, race, &r[i]);
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].rc, 0);
		assert_loads(f->store, &r[i].slab);
	}
	calls = atomic_load(&fsync_calls);
	assert_true(calls >= 2);
	assert_true(calls <= 4);
	for (int i = 0; i < N; i++)
		free_slab(&r[i].slab);
	pthread_barrier_destroy(&barrier);
}

/* Many writers, one key: all succeed, exactly one slab, no temps left. */
static void test_concurrent_same_key(void **state)
{
	enum { N = 8, ROUNDS = 20 };
	struct fixture *f = *state;
	struct racer r[N];
	pthread_t th[N];
	pthread_barrier_t barrier;

	for (int round = 0; round < ROUNDS; round++) {
		int fresh = 0;
		pthread_barrier_init(&barrier, NULL, N);
		for (int i = 0; i < N; i++) {
			r[i].store = f->store;
			r[i].barrier = &barrier;
			make_slab(&r[i].slab, 1000 + (uint32_t)round, 200000, (uint32_t)i);
			pthread_create(&th[i], NULL, race, &r[i]);
		}
		for (int i = 0; i < N; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(r[i].rc, 0);
			fresh += r[i].outcome != KVC_PUBLISH_ADOPTED;
		}
		assert_int_equal(fresh, 1);
		assert_int_equal(count_entries(f->dir), round + 1);
		assert_loads(f->store, &r[0].slab);
		for (int i = 0; i < N; i++)
			free_slab(&r[i].slab);
		pthread_barrier_destroy(&barrier);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_save_and_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_content_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_branches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eintr_and_short_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unlink_of_temp_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eexist_then_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eexist_valid_is_adopted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopt_needs_no_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exclusive_takes_only_a_free_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_adopt_keeps_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmp_seal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_distrusted_writes_are_read_back, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_eexist_corrupt_is_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_removes_corrupt_keeps_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_touch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep_trusts_locks_not_names, setup, teardown),
		cmocka_unit_test(test_tmp_name_parse),
		cmocka_unit_test_setup_teardown(test_tmp_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_store_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_same_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publishes_share_directory_fsyncs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_never_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_regular_under_key_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_not_regular, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_after_link_takes_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_back_fails_is_uncertain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_republish_spares_what_took_the_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_republish_keeps_original_when_fsync_fails,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_after_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_drops_bounded_and_close, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
