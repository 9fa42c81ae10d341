/* SPDX-License-Identifier: MIT */
/*
 * Counting hits, and keeping them apart from verification.
 *
 * Every successful open of a slab adds one to the hit count in its header
 * (offset 12), and eviction orders slabs by it. The count is a
 * read-modify-write of the file, so two opens of one key at once would each
 * read n and write n + 1: a lock per key makes the opens of this mount
 * count exactly. Mounts on other hosts that share the root are not
 * serialised with ours: their counts can still overlap (docs/guide.md).
 *
 * The same lock, shared, is held while a slab of the key is verified: a
 * verification compares the file's ctime before and after it reads, and a
 * hit write of this mount in between would look like someone rewriting the
 * file. Writers are preferred, so a stream of verifications cannot starve
 * a hit.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

struct key_lock {
	struct kvc_key key;
	pthread_rwlock_t lock;
	unsigned refs;             /* guarded by fs->key_locks_lock */
};

void hits_init(struct kvcfs *fs)
{
	pthread_mutex_init(&fs->key_locks_lock, NULL);
	fs->key_locks = g_hash_table_new(index_key_hash, index_key_equal);
}

void hits_destroy(struct kvcfs *fs)
{
	g_hash_table_destroy(fs->key_locks);
	pthread_mutex_destroy(&fs->key_locks_lock);
}

static struct key_lock *key_lock_get(struct kvcfs *fs, const struct kvc_key *key)
{
	struct key_lock *kl;

	pthread_mutex_lock(&fs->key_locks_lock);
	kl = g_hash_table_lookup(fs->key_locks, key);
	if (kl == NULL) {
		pthread_rwlockattr_t attr;

		kl = g_new0(struct key_lock, 1);
		kl->key = *key;
		pthread_rwlockattr_init(&attr);
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&kl->lock, &attr);
		pthread_rwlockattr_destroy(&attr);
		g_hash_table_insert(fs->key_locks, &kl->key, kl);
	}
	kl->refs++;
	pthread_mutex_unlock(&fs->key_locks_lock);
	return kl;
}

static void key_lock_put(struct kvcfs *fs, struct key_lock *kl)
{
	pthread_mutex_lock(&fs->key_locks_lock);
	if (--kl->refs == 0) {
		g_hash_table_remove(fs->key_locks, &kl->key);
		pthread_rwlock_destroy(&kl->lock);
		g_free(kl);
	}
	pthread_mutex_unlock(&fs->key_locks_lock);
}

struct key_lock *hits_hold_off(struct kvcfs *fs, const struct kvc_key *key)
{
	struct key_lock *kl = key_lock_get(fs, key);

	pthread_rwlock_rdlock(&kl->lock);
	return kl;
}

void hits_resume(struct kvcfs *fs, struct key_lock *kl)
{
	pthread_rwlock_unlock(&kl->lock);
	key_lock_put(fs, kl);
}

int hits_count_one(struct kvcfs *fs, struct kvc_store *store, const struct kvc_key *key,
		   int fd, uint64_t now, uint32_t *count)
{
	struct key_lock *kl = key_lock_get(fs, key);
	uint8_t head[KVC_FIXED_SIZE];
	struct kvc_fixed f;
	uint32_t hits;
	struct kvc_err err;
	int rc = 0;

	pthread_rwlock_wrlock(&kl->lock);
	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head)) {
		rc = -EIO;
		goto out;
	}
	kvc_fixed_decode(head, &f);
	hits = f.hit_count;
	if (hits < UINT32_MAX)
		hits++;
	if (kvc_store_touch(store, key, hits, now, &err) < 0)
		rc = -kvc_err_to_errno(&err);
	else
		*count = hits;
out:
	pthread_rwlock_unlock(&kl->lock);
	key_lock_put(fs, kl);
	return rc;
}

/* Does [off, off + size) lie within one of the header's two mutable
 * fields? Every other byte of a published slab is immutable. */
static bool mutable_field(off_t off, size_t size)
{
	uint64_t end = (uint64_t)off + size;

	return size > 0 &&
	       (((uint64_t)off >= KVC_OFF_HIT_COUNT && end <= KVC_OFF_HIT_COUNT + 4) ||
		((uint64_t)off >= KVC_OFF_LAST_USED && end <= KVC_OFF_LAST_USED + 8));
}

/*
 * The format's reference server counts a hit by opening the slab O_RDWR
 * and writing the two fields itself. The write is merged into the fields
 * as they are and persisted like one of our own hits: under the key's
 * lock, through the store (which patches only a v1 header). If this mount
 * had verified the file just before, it stays verified: only these fields
 * changed, and open readers of it must not read the payload again.
 */
ssize_t hits_write_header(struct kvcfs *fs, struct handle *h, const void *buf, size_t size,
			  off_t off)
{
	const struct kvc_key *key = &h->key;
	struct kdir *dir = h->node->dir;
	struct kvcfs_index *index = h->tier_index != NULL ? h->tier_index : &dir->index;
	int fd = h->fd;
	struct key_lock *kl;
	uint8_t head[KVC_FIXED_SIZE];
	struct kvc_fixed f;
	struct stat before, after;
	struct kvc_err err;
	bool was_verified;
	ssize_t rc = (ssize_t)size;

	if (off < 0 || !mutable_field(off, size))
		return -EPERM;
	if (fs->opts.read_only)
		return -EROFS;
	kl = key_lock_get(fs, key);
	pthread_rwlock_wrlock(&kl->lock);
	if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) || fstat(fd, &before) < 0) {
		rc = -EIO;
		goto out;
	}
	was_verified = index_is_verified(index, key, &before);
	memcpy(head + off, buf, size);
	kvc_fixed_decode(head, &f);
	/* The backing root's slab is the truth; a local copy that h reads
	 * gets the same fields, so the program reads back what it wrote. */
	if (kvc_store_touch(dir->store, key, f.hit_count, f.last_used_time, &err) < 0 ||
	    (index != &dir->index &&
	     kvc_store_touch(local_tier_store_of(fs, dir), key, f.hit_count, f.last_used_time,
			     &err) < 0)) {
		rc = -kvc_err_to_errno(&err);
		goto out;
	}
	if (was_verified && fstat(fd, &after) == 0 && after.st_size == before.st_size)
		index_set_verified(index, key, &after);
out:
	pthread_rwlock_unlock(&kl->lock);
	key_lock_put(fs, kl);
	return rc;
}
