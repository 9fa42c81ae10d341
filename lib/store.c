/* SPDX-License-Identifier: MIT */
/* Opening a store and the small helpers its operations share. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "store_internal.h"

/* Temp names embed the host id between dots, so it may hold no dot and
 * nothing a shell or another filesystem would trip on. */
static void sanitise_host_id(const char *in, char out[65])
{
	size_t n = 0;

	for (; in[n] != '\0' && n < 64; n++) {
		char c = in[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-';
		out[n] = ok ? c : '-';
	}
	out[n] = '\0';
	if (n == 0)
		strcpy(out, "unknown");
}

/* Filesystems where another client's fresh file can look short for a
 * moment: network filesystems, and FUSE ones (GlusterFS, CephFS-fuse). */
static int default_recheck_delay(int dirfd)
{
	struct statfs sfs;

	if (fstatfs(dirfd, &sfs) < 0)
		return 0;
	switch ((unsigned long)sfs.f_type) {
	case 0x65735546: /* FUSE */
	case 0x6969:     /* NFS */
	case 0xFF534D42: /* CIFS */
	case 0xFE534D42: /* SMB2 */
	case 0x00C36400: /* Ceph */
	case 0x0BD00BD0: /* Lustre */
		return 2000;
	default:
		return 0;
	}
}

int kvc_store_open(const struct kvc_store_config *cfg, struct kvc_store **out,
		   struct kvc_err *err)
{
	struct kvc_store *store;
	char hostname[256];
	const char *host = cfg->host_id;
	struct stat st;
	int fd;

	if (cfg->root == NULL || cfg->root[0] == '\0')
		return kvc_err_set(err, KVC_E_INVALID_ARGUMENT, "no backing root given");
	fd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kvc_err_sys(err, errno, "backing root %s", cfg->root);
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return kvc_err_sys(err, e, "backing root %s", cfg->root);
	}
	if (!cfg->read_only && faccessat(fd, ".", W_OK, AT_EACCESS) < 0) {
		int e = errno;
		close(fd);
		return kvc_err_sys(err, e, "backing root %s is not writable", cfg->root);
	}
	store = calloc(1, sizeof(*store));
	if (store == NULL) {
		close(fd);
		return kvc_err_set(err, KVC_E_NO_MEMORY, "store");
	}
	store->root = strdup(cfg->root);
	if (store->root == NULL) {
		close(fd);
		free(store);
		return kvc_err_set(err, KVC_E_NO_MEMORY, "store");
	}
	if (host == NULL) {
		if (gethostname(hostname, sizeof(hostname)) < 0)
			strcpy(hostname, "unknown");
		hostname[sizeof(hostname) - 1] = '\0';
		host = hostname;
	}
	sanitise_host_id(host, store->host_id);
	store_writer_id(store->host_id, store->writer_id);
	store->dirfd = fd;
	store->read_only = cfg->read_only;
	store->adopt_after_header_check = cfg->adopt_after_header_check;
	store->recheck_delay_ms = cfg->recheck_delay_ms >= 0 ? cfg->recheck_delay_ms
							      : default_recheck_delay(fd);
	/* The coarse clock is the one filesystems stamp mtimes with; a finer one
	 * could run ahead of a temp created just after us. */
	clock_gettime(CLOCK_REALTIME_COARSE, &store->opened_at);
	atomic_init(&store->tmp_counter, 0);
	store_dir_sync_init(&store->dir_sync);
	store_dropper_init(store);
	*out = store;
	return 0;
}

int kvc_store_open_sub(const struct kvc_store *parent, int dirfd, const char *path,
		       struct kvc_store **out, struct kvc_err *err)
{
	struct kvc_store *store = calloc(1, sizeof(*store));

	if (store == NULL || (store->root = strdup(path)) == NULL) {
		free(store);
		return kvc_err_set(err, KVC_E_NO_MEMORY, "store");
	}
	memcpy(store->host_id, parent->host_id, sizeof(store->host_id));
	/* Its own instance number: its temps are its own, whatever the
	 * parent's sweep sees. */
	store_writer_id(store->host_id, store->writer_id);
	store->dirfd = dirfd;
	store->read_only = parent->read_only;
	store->adopt_after_header_check = parent->adopt_after_header_check;
	store->recheck_delay_ms = parent->recheck_delay_ms;
	store->opened_at = parent->opened_at;
	atomic_init(&store->tmp_counter, 0);
	store_dir_sync_init(&store->dir_sync);
	store_dropper_init(store);
	*out = store;
	return 0;
}

void kvc_store_close(struct kvc_store *store)
{
	if (store == NULL)
		return;
	store_dropper_stop(store); /* before the directory it works in goes */
	store_dir_sync_destroy(&store->dir_sync);
	close(store->dirfd);
	free(store->root);
	free(store);
}

bool kvc_store_name_taken(const struct kvc_store *store, const char *name)
{
	return faccessat(store->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int kvc_store_dirfd(const struct kvc_store *store)
{
	return store->dirfd;
}

const char *kvc_store_host_id(const struct kvc_store *store)
{
	return store->host_id;
}

const char *kvc_store_root(const struct kvc_store *store)
{
	return store->root;
}

int kvc_store_recheck_delay_ms(const struct kvc_store *store)
{
	return store->recheck_delay_ms;
}
