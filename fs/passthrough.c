/* SPDX-License-Identifier: MIT */
/*
 * FUSE passthrough: the kernel reads and writes a file of the backing root
 * directly, without a round trip through this daemon per request.
 *
 * Where it is used, and why that keeps the guarantees:
 *   - reads of a published slab, after its open verified it (open_slab.c):
 *     the open replies only after verification, with the very descriptor
 *     that was verified, and no handle of the mount can write a slab;
 *   - reads and writes of a named staging file, into its writer-unique
 *     temp: the daemon no longer sees the bytes, so publish reads the temp
 *     back for its CRC, and a rename while a writer still has the file open
 *     publishes a copy (stage_publish.c), so that writer's later bytes never land
 *     in a published slab.
 * Everything else (payload/<key>, whose offsets are not the file's; files
 * created as <key>.kvc, whose close publishes while a dup of the descriptor
 * may still write; writers over a slab; metrics) keeps the daemon's path.
 *
 * The kernel wants one backing file per inode, and every open of an inode
 * either passthrough or not: a node holds one backing id, registered by its
 * first passthrough open and kept until the node goes or its file changes. An open whose file is not the node's
 * backing file (a slab replaced while an old handle reads the old one)
 * gets direct_io instead, and so does every other open of a slab or
 * staging inode while passthrough is on (a file created as <key>.kvc, a
 * writer over a slab, a failed registration). The kernel refuses any open
 * of the daemon's path, direct_io included, while a passthrough open of the
 * inode exists, and the reverse: a writer over a slab that is open in
 * passthrough gets ETXTBSY, and a reader of an inode with daemon-path opens
 * gets direct_io (passthrough_open_mode).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

#if FUSE_MAKE_VERSION(FUSE_MAJOR_VERSION, FUSE_MINOR_VERSION) >= FUSE_MAKE_VERSION(3, 16)
#define HAVE_PASSTHROUGH 1
#else
#define HAVE_PASSTHROUGH 0
#endif

/* Registering a backing file needs CAP_SYS_ADMIN (in the initial user
 * namespace); asking without it only fills the log. */
static bool has_cap_sys_admin(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	unsigned long long eff = 0;

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> 21) & 1; /* CAP_SYS_ADMIN */
}

void passthrough_init(struct kvcfs *fs, struct fuse_conn_info *conn)
{
	const char *why = NULL;

	fs->passthrough = false;
	if (!fs->opts.passthrough)
		why = "-o passthrough=off";
	else if (!HAVE_PASSTHROUGH)
		why = "libfuse is older than 3.16";
	else if (!has_cap_sys_admin())
		why = "it needs CAP_SYS_ADMIN";
#if HAVE_PASSTHROUGH
	else if (!(conn->capable & FUSE_CAP_PASSTHROUGH))
		why = "the kernel has no FUSE passthrough";
	if (why == NULL) {
		conn->want |= FUSE_CAP_PASSTHROUGH;
		fs->passthrough = true;
	}
#else
	(void)conn;
#endif
	fs->passthrough_why = why;
	if (why == NULL)
		fprintf(stderr, "kvcfs: passthrough on: verified slabs and staging files are "
				"read and written by the kernel directly\n");
	else
		fprintf(stderr, "kvcfs: passthrough off (%s): every read and write goes through "
				"the daemon\n", why);
}

static void close_backing(fuse_req_t req, int id)
{
#if HAVE_PASSTHROUGH
	fuse_passthrough_close(req, id);
#else
	(void)req;
	(void)id;
#endif
}

/* Backing ids whose last handle went without a request to close them with
 * (an open whose reply failed, a forgotten node): taken under fs->lock,
 * closed after it (an ioctl is not done under a leaf lock). */
static GArray *take_orphans(struct kvcfs *fs)
{
	GArray *ids;

	if (fs->orphan_backing_ids->len == 0)
		return NULL;
	ids = fs->orphan_backing_ids;
	fs->orphan_backing_ids = g_array_new(FALSE, FALSE, sizeof(int));
	return ids;
}

static void close_orphans(fuse_req_t req, GArray *ids)
{
	if (ids == NULL)
		return;
	for (guint i = 0; i < ids->len; i++)
		if (req != NULL)
			close_backing(req, g_array_index(ids, int, i));
	g_array_free(ids, TRUE);
}

/* Every passthrough handle of the node has been closed (FLUSH seen). */
static bool only_releases_missing(const struct node *node)
{
	return node->backing_refs > 0 && node->backing_closing == node->backing_refs;
}

/*
 * Register fd as node's backing file, replacing an older one (queued on
 * *orphans to be closed after the lock). The one ioctl made under
 * fs->lock: registering must be atomic with the decision, and it does no
 * I/O. fs->lock held.
 */
static bool register_backing(fuse_req_t req, struct node *node, int fd, const struct stat *st,
			     GArray **orphans)
{
#if HAVE_PASSTHROUGH
	int id;

	if (node->backing_id > 0) { /* an older file of the key */
		if (*orphans == NULL)
			*orphans = g_array_new(FALSE, FALSE, sizeof(int));
		g_array_append_val(*orphans, node->backing_id);
	}
	node->backing_id = 0;
	id = fuse_passthrough_open(req, fd);
	if (id <= 0)
		return false;
	node->backing_id = id;
	node->backing_writable = (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDONLY;
	node->backing_dev = st->st_dev;
	node->backing_ino = st->st_ino;
	return true;
#else
	(void)req;
	(void)node;
	(void)fd;
	(void)st;
	(void)orphans;
	return false;
#endif
}

/* May an open of node go passthrough to fd (state st)? *stale: no, because
 * the node's passthrough opens read another file. fs->lock held. */
static bool may_pass_through(struct kvcfs *fs, fuse_req_t req, struct node *node, int fd,
			     const struct stat *st, bool *stale, GArray **orphans)
{
	*stale = false;
	if (fd < 0 || node->direct_opens > 0)
		return false;
	if (node->backing_id > 0 && node->backing_dev == st->st_dev &&
	    node->backing_ino == st->st_ino)
		return true;
	if (node->backing_refs > 0) {
		/* Open in passthrough to another file (the key's slab was
		 * replaced while it was open): that file is not what this open
		 * verified, and the kernel takes no other kind of open beside
		 * it. The key gets a new node, and ESTALE makes the kernel look
		 * the name up again and open that one. */
		node_leave_key(fs, node);
		*stale = true;
		return false;
	}
	return register_backing(req, node, fd, st, orphans);
}

/*
 * Decides, under fs->lock so that two racing opens cannot disagree, how an
 * open of node is served. fd >= 0: the open may go passthrough to fd; it
 * does unless daemon-path opens of the node exist (then direct_io). fd < 0:
 * the daemon's path (direct_io), which the kernel refuses beside
 * passthrough opens of the node: -ETXTBSY then, and also for an open whose
 * file is not the one the node's passthrough opens read (a slab replaced
 * while open): only the very descriptor that was verified is ever passed
 * through.
 */
int passthrough_open_mode(struct kvcfs *fs, fuse_req_t req, struct node *node, int fd,
			  struct handle *h, struct fuse_file_info *fi)
{
	struct stat st;
	bool ok, stale;
	GArray *orphans;
	int rc = 0;

	if (!fs->passthrough)
		return 0;
	if (fd >= 0 && (fi->direct_io || fstat(fd, &st) < 0))
		fd = -1;
	fs_lock(fs);
	orphans = take_orphans(fs);
	ok = may_pass_through(fs, req, node, fd, &st, &stale, &orphans);
	if (ok) {
		node->backing_refs++;
		h->passthrough = true;
#if HAVE_PASSTHROUGH
		fi->backing_id = node->backing_id;
#endif
		fi->keep_cache = 0;
	} else if (node->backing_refs > 0 && (stale || !only_releases_missing(node))) {
		rc = stale ? -ESTALE : -ETXTBSY;
	} else {
		/* No passthrough open, or only closed ones whose RELEASE is
		 * on its way: the kernel dropped its backing file at their
		 * close, so it takes this open (and refuses it itself, with
		 * EIO, for one that a dup keeps open). No waiting. */
		node->direct_opens++;
		h->direct_counted = true;
		fi->direct_io = 1;
	}
	fs_unlock(fs);
	close_orphans(req, orphans);
	if (fd >= 0)
		atomic_fetch_add(ok ? &fs->metrics.passthrough_opens
				    : &fs->metrics.passthrough_fallbacks, 1);
	return rc;
}

/*
 * The node keeps a read-only backing id after its last passthrough handle
 * goes, until the node goes or its file changes: the kernel may still hold
 * the old file's backing for a moment after RELEASE, and an open that
 * brought a new id for the same inode then would fail with EIO. A writable
 * one (a staging temp) is closed with its last handle.
 */
void passthrough_detach(struct kvcfs *fs, fuse_req_t req, struct handle *h)
{
	int writable_id = 0;
	GArray *orphans = NULL;

	if (!h->passthrough && !h->direct_counted)
		return;
	fs_lock(fs);
	if (req != NULL)
		orphans = take_orphans(fs);
	if (h->passthrough && --h->node->backing_refs == 0 && h->node->backing_writable &&
	    req != NULL) {
		/* A staging temp: the kernel's reference would keep a writable
		 * file open (and its filesystem from going read-only). */
		writable_id = h->node->backing_id;
		h->node->backing_id = 0;
	}
	if (h->direct_counted)
		h->node->direct_opens--;
	if (h->closing)
		h->node->backing_closing--;
	fs_unlock(fs);
	close_orphans(req, orphans);
	if (writable_id > 0)
		close_backing(req, writable_id);
	h->passthrough = false;
	h->direct_counted = false;
	h->closing = false;
}

void passthrough_closed(struct kvcfs *fs, struct handle *h)
{
	if (!h->passthrough || h->closing)
		return;
	fs_lock(fs);
	h->closing = true;
	h->node->backing_closing++;
	fs_unlock(fs);
}
