/* SPDX-License-Identifier: MIT */
/* Removing temps that no writer will ever finish. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"

static bool all_digits(const char *s, size_t n)
{
	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* "<label>.<host>.<pid>.<n><suffix>", read from the right: the label may
 * hold dots, the host id never does (it is sanitised). */
/* The labels kvcfs and libkvc give their temps: "stage", or the slab name
 * "<64 hex>.kvc" being saved. */
static bool our_label(const char *name, size_t len)
{
	struct kvc_key key;

	return (len == 5 && memcmp(name, "stage", 5) == 0) ||
	       (len == KVC_SLAB_NAME_LEN && memcmp(name + KVC_KEY_HEX_LEN, ".kvc", 4) == 0 &&
		kvc_key_from_hex(name, KVC_KEY_HEX_LEN, &key));
}

static bool name_parse(const char *name, const char *suffix, bool labels_checked,
		       char host[65], long *pid)
{
	size_t len = strlen(name), slen = strlen(suffix);
	const char *end, *dot[3];

	if (len < slen || strcmp(name + len - slen, suffix) != 0)
		return false;
	end = name + len - slen;
	for (int i = 0; i < 3; i++) {
		const char *p = end;
		while (p > name && p[-1] != '.')
			p--;
		if (p == name)
			return false;
		dot[i] = p - 1;
		end = dot[i];
	}
	/* dot[0] precedes n, dot[1] precedes pid, dot[2] precedes host. */
	if (dot[2] == name)
		return false; /* no label */
	/* The old ".tmp" form is also other programs' (the format's reference
	 * server writes "<key>.kvc.<pid>.<n>.tmp"): only our own labels. */
	if (labels_checked && !our_label(name, (size_t)(dot[2] - name)))
		return false;
	if (!all_digits(dot[0] + 1, (size_t)(name + len - slen - dot[0] - 1)) ||
	    !all_digits(dot[1] + 1, (size_t)(dot[0] - dot[1] - 1)))
		return false;
	size_t host_len = (size_t)(dot[1] - dot[2] - 1);
	if (host_len == 0 || host_len > 64)
		return false;
	memcpy(host, dot[2] + 1, host_len);
	host[host_len] = '\0';
	*pid = strtol(dot[1] + 1, NULL, 10);
	return true;
}

bool kvc_tmp_name_parse(const char *name, char host[65], long *pid)
{
	return name_parse(name, STORE_TMP_SUFFIX, false, host, pid) ||
	       name_parse(name, STORE_OLD_TMP_SUFFIX, true, host, pid);
}

static bool process_gone(long pid)
{
	if (pid <= 0)
		return true;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static bool older_than(const struct timespec *t, const struct timespec *ref)
{
	return t->tv_sec < ref->tv_sec ||
	       (t->tv_sec == ref->tv_sec && t->tv_nsec < ref->tv_nsec);
}

/*
 * May the temp (or aside directory) name, made by writer (process pid),
 * go? Never while its writer's lock on it is seen (store_writer.c). On
 * the kernel that made it, no lock means no writer. An older kvcfs's temp
 * (its writer id is the bare host id, and it held no lock) is judged by
 * its pid when that host id is ours. Anything else only after the grace
 * period, since it may still be mid-write somewhere we cannot see.
 */
static bool is_stale(struct kvc_store *store, const char *name, bool aside, const char *writer,
		     long pid, const struct stat *st, uint64_t grace_seconds, time_t now)
{
	enum store_liveness live;

	if (strcmp(writer, store->writer_id) == 0)
		return false; /* this store's own */
	live = aside ? STORE_WRITER_UNKNOWN : store_writer_alive(store, name);
	if (live == STORE_WRITER_ALIVE)
		return false;
	if (store_is_new_writer_id(writer)) {
		if (live == STORE_WRITER_NO_LOCK && store_same_kernel(store, writer))
			return true;
	} else if (strcmp(writer, store->host_id) == 0) {
		if (pid == (long)getpid())
			/* Same pid as ours: a previous process (pid reuse, a
			 * container restart) left it if it predates us. */
			return older_than(&st->st_mtim, &store->opened_at);
		if (process_gone(pid))
			return true;
	}
	/* Idle since its last write, or since its writer last marked it
	 * alive (kvc_tmp_mark_alive sets the atime). */
	time_t last = st->st_atim.tv_sec > st->st_mtim.tv_sec ? st->st_atim.tv_sec
							       : st->st_mtim.tv_sec;
	return now > last && (uint64_t)(now - last) > grace_seconds;
}

int kvc_store_sweep(struct kvc_store *store, uint64_t grace_seconds,
		    struct kvc_sweep_stats *stats, struct kvc_err *err)
{
	struct kvc_sweep_stats local;
	time_t now = time(NULL);
	struct kvc_store_dir *dir;
	const char *name;

	if (stats == NULL)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	if (store_refuse_read_only(store, "sweep", err) < 0)
		return -1;
	if (kvc_store_dir_open(store, &dir, err) < 0)
		return -1;
	while ((name = kvc_store_dir_next(dir, NULL)) != NULL) {
		char host[65];
		struct stat st;
		long pid;
		bool aside = false;

		if (!kvc_tmp_name_parse(name, host, &pid) &&
		    !(aside = name_parse(name, STORE_ASIDE_SUFFIX, false, host, &pid)))
			continue;
		if (fstatat(store->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !(aside ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
			continue;
		/* An aside directory holds what was under a slab name: it
		 * goes once its owner has emptied it, never with its contents. */
		if (is_stale(store, name, aside, host, pid, &st, grace_seconds, now) &&
		    (aside ? store_remove_empty_dir(store, name)
			   : unlinkat(store->dirfd, name, 0)) == 0)
			stats->removed++;
		else if (aside)
			stats->set_aside++;
		else
			stats->kept++;
	}
	kvc_store_dir_close(dir);
	return 0;
}
