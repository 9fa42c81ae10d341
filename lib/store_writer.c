/* SPDX-License-Identifier: MIT */
/*
 * Who wrote a temp, and whether that writer still lives: the start-up
 * sweep of a shared backing root must never remove a temp that a live
 * writer (in another pid namespace, container or host) is still filling.
 *
 * Each store names its temps with a writer id: the host id, then the
 * kernel's boot id and a random instance number (so two kvcfs of one pod,
 * each pid 1 in its own pid namespace, never share a name or mistake each
 * other's pids), and holds an OFD write lock on each temp while it is
 * open. The lock is the proof of life: it goes with the writer's last
 * descriptor of the temp, crash included, and every process on the same
 * kernel sees it, whatever its namespace. Filesystems that share locks
 * between hosts (GlusterFS, NFSv4, CephFS) show it to other hosts too.
 * Where neither holds, the temp's age against the sweep's grace decides.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

/* The kernel's boot id, as 8 hex digits ("00000000" when unknown). */
static void boot_id8(char out[9])
{
	char buf[64] = "";
	size_t n = 0;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	if (f != NULL) {
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	for (const char *p = buf; *p != '\0' && n < 8; p++)
		if (g_ascii_isxdigit(*p))
			out[n++] = g_ascii_tolower(*p);
	while (n < 8)
		out[n++] = '0';
	out[8] = '\0';
}

void store_writer_id(const char *host, char out[STORE_WRITER_ID_SIZE])
{
	char boot[9];

	boot_id8(boot);
	snprintf(out, STORE_WRITER_ID_SIZE, "%.*s-%s%08x", STORE_WRITER_HOST_MAX, host, boot,
		 g_random_int());
}

/* "<host>-<8 hex boot id><8 hex instance>": the boot id, or false for an
 * older writer's id (the host id alone). */
static bool writer_boot(const char *writer, char boot[9])
{
	size_t len = strlen(writer);

	if (len < 18 || writer[len - 17] != '-')
		return false;
	for (size_t i = len - 16; i < len; i++)
		if (!g_ascii_isxdigit(writer[i]) || g_ascii_isupper(writer[i]))
			return false;
	memcpy(boot, writer + len - 16, 8);
	boot[8] = '\0';
	return true;
}

bool store_same_kernel(const struct kvc_store *store, const char *writer)
{
	char theirs[9], ours[9];

	/* Our own writer id holds this kernel's boot id, read once. */
	return writer_boot(writer, theirs) && writer_boot(store->writer_id, ours) &&
	       strcmp(theirs, ours) == 0 && strcmp(ours, "00000000") != 0;
}

bool store_is_new_writer_id(const char *writer)
{
	char boot[9];

	return writer_boot(writer, boot);
}

static struct flock whole_file(short type)
{
	struct flock lk;

	memset(&lk, 0, sizeof(lk));
	lk.l_type = type;
	lk.l_whence = SEEK_SET; /* l_start 0, l_len 0: all of it */
	return lk;
}

void store_hold_alive(int fd)
{
	struct flock lk = whole_file(F_WRLCK);

	/* Best effort: a filesystem without locks leaves the age to decide. */
	(void)fcntl(fd, F_OFD_SETLK, &lk);
}

enum store_liveness store_writer_alive(struct kvc_store *store, const char *name)
{
	struct flock lk = whole_file(F_WRLCK);
	int fd = store_openat(store, name, O_RDONLY);
	int rc;

	if (fd < 0)
		return STORE_WRITER_UNKNOWN;
	rc = fcntl(fd, F_OFD_GETLK, &lk);
	close(fd);
	if (rc < 0)
		return STORE_WRITER_UNKNOWN; /* no locks here */
	return lk.l_type != F_UNLCK ? STORE_WRITER_ALIVE : STORE_WRITER_NO_LOCK;
}
