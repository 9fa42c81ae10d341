/* SPDX-License-Identifier: MIT */
/* kvcfs: a FUSE filesystem of validated, durably published KV-cache slabs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvcfs.h"
#include "startup.h"

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct kvcfs *fs = userdata;

	/* open(O_TRUNC) arrives as open, then a truncate of that handle
	 * (stage_writers.c): with the truncate in the open instead, the kernel
	 * would zero its size of a slab's inode that others are reading. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* Writes must reach us before flush so close() can publish them. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
#ifdef FUSE_CAP_DIRECT_IO_ALLOW_MMAP
	/* A direct_io open (a program's O_RDWR of a slab, a staging writer
	 * on the daemon's path) may not be mapped shared: a store into such
	 * a mapping would sit in the page cache every reader gets. */
	conn->want &= ~FUSE_CAP_DIRECT_IO_ALLOW_MMAP;
#endif
	/* Slabs are megabytes to gigabytes: move them in 1 MiB requests
	 * (libfuse 3.14's buffers hold 256 pages) rather than 128 KiB. */
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	passthrough_init(fs, conn);
}

static const struct fuse_lowlevel_ops kvcfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.rename = op_rename,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.mknod = op_mknod,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.access = op_access,
};

/* mount(8) and df show "ROOT on MNT type fuse.kvcfs" rather than a bare
 * "kvcfs", unless the user chose other names. */
static void add_identity_options(struct fuse_args *args, const struct kvcfs_options *opts)
{
	GString *o = g_string_new("-osubtype=kvcfs,fsname=");

	for (const char *p = opts->backing_root; *p != '\0'; p++) {
		if (*p == ',' || *p == '\\')
			g_string_append_c(o, '\\'); /* fuse_opt's escape */
		g_string_append_c(o, *p);
	}
	if (!opts->has_fsname)
		fuse_opt_add_arg(args, o->str);
	g_string_free(o, TRUE);
}

static int serve(struct kvcfs *fs, struct fuse_session *se, struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *loop;
	int rc = 1;

	if (fuse_set_signal_handlers(se) != 0)
		return 1;
	if (fuse_session_mount(se, cmd->mountpoint) != 0)
		goto out_handlers;
	fuse_daemonize(cmd->foreground);
	/* Detached, stderr is /dev/null: from now on messages go to syslog. */
	log_detached(!cmd->foreground);
	if (notifier_start(&fs->notifier, se) != 0)
		goto out_unmount;
	if (maintenance_start(fs) != 0)
		goto out_notifier;
	if (cmd->singlethread) {
		rc = fuse_session_loop(se);
	} else {
		loop = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(loop, (unsigned)cmd->clone_fd);
		/* Set explicitly: the legacy config silently caps at 10. */
		fuse_loop_cfg_set_max_threads(loop, fs->opts.max_threads);
		rc = fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	/* A positive value is the signal (SIGTERM, SIGINT, SIGHUP) that asked
	 * the loop to end: a stop as asked for (systemctl stop), not a
	 * failure. Only -errno is one. */
	if (rc > 0)
		rc = 0;
	/* The mount is gone. An ordinary unmount can end the loop with
	 * ECONNABORTED instead of ENODEV: a read that took a request off the
	 * kernel's queue at the moment the unmount shut the connection gets
	 * it (fs/fuse/dev.c, fuse_dev_do_read). Not a failure of the daemon:
	 * it stops as after any unmount. (An abort through
	 * /sys/fs/fuse/connections reads as ENODEV here: libfuse does not ask
	 * for FUSE_ABORT_ERROR.) */
	if (rc == -ECONNABORTED) {
		fuse_log(FUSE_LOG_NOTICE, "kvcfs: the FUSE connection ended while a request was "
			 "being read (an unmount or an abort): stopping as after an unmount\n");
		rc = 0;
	}
	maintenance_stop(fs);
	handles_release_lost(fs);
out_notifier:
	notifier_stop(&fs->notifier);
out_unmount:
	fuse_session_unmount(se);
out_handlers:
	fuse_remove_signal_handlers(se);
	return rc ? 1 : 0;
}

/* --help, --version, or a usage error: 0 or 1 to exit with; -1 to go on. */
static int before_mounting(char **argv, const struct kvcfs *fs, const struct fuse_cmdline_opts *cmd)
{
	if (cmd->show_help) {
		options_help(argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return 0;
	}
	if (cmd->show_version) {
		printf("kvcfs %s\n", KVC_VERSION_STRING);
		fflush(stdout); /* libfuse's part is printed by a child process */
		fuse_lowlevel_version();
		return 0;
	}
	if (fs->opts.backing_root == NULL || cmd->mountpoint == NULL || fs->opts.positional > 2) {
		fprintf(stderr, "kvcfs: usage: %s [options] BACKING_ROOT MOUNTPOINT (see --help)\n",
			argv[0]);
		return 1;
	}
	if (mountpoint_in_use(cmd->mountpoint)) {
		fprintf(stderr, "kvcfs: mountpoint %s is already in use\n", cmd->mountpoint);
		return 1;
	}
	if (!root_and_mountpoint_apart(fs->opts.backing_root, cmd->mountpoint) ||
	    mountpoint_usable(cmd->mountpoint) < 0)
		return 1;
	if (!local_tier_placed_apart(fs->opts.local_dir, fs->opts.backing_root, cmd->mountpoint))
		return 1;
	return -1;
}

static int open_store(struct kvcfs *fs)
{
	struct kvc_store_config cfg = { 0 };
	struct kvc_err err;

	cfg.root = fs->opts.backing_root;
	cfg.host_id = fs->opts.host_id;
	cfg.read_only = fs->opts.read_only;
	cfg.recheck_delay_ms = fs->opts.recheck_delay_ms;
	/* A slab already there is kept after a look at its head; the worker
	 * verifies it then (maintenance_want_verify), and every open does. */
	cfg.adopt_after_header_check = true;
	if (kvc_store_open(&cfg, &fs->store, &err) < 0) {
		fprintf(stderr, "kvcfs: %s\n", err.detail);
		return -1;
	}
	return 0;
}

/* The store is open: build the mount's state, serve until unmounted, take
 * the state down. The exit status. */
static int run(struct kvcfs *fs, struct fuse_session *se, struct fuse_cmdline_opts *cmd)
{
	int rc = 1;

	fs->verbose = cmd->foreground || cmd->debug;
	access_init(fs);
	nodes_init(fs);
	dirs_init(fs);
	fs->free_stage = staging_free;
	hits_init(fs);
	refusals_init(fs);
	if (startup_scan(fs) == 0 && local_tier_start(fs) == 0) {
		staging_quota_init(fs);
		evict_if_needed(fs); /* a budget smaller than what is there */
		/* A lease break (stage_publish.c takes and drops write leases
		 * on temps) must not stop the daemon. */
		signal(SIGIO, SIG_IGN);
		rc = serve(fs, se, cmd);
	}
	staging_free_all(fs);
	nodes_destroy(fs);
	dirs_destroy(fs);
	if (fs->fd_users != NULL)
		staging_quota_destroy(fs);
	local_tier_stop(fs);
	hits_destroy(fs);
	refusals_destroy(fs);
	kvc_store_close(fs->store);
	return rc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = { 0 };
	struct kvcfs fs = { 0 };
	struct fuse_session *se = NULL;
	int rc = 1;

	log_init();
	if (options_parse(&args, &fs.opts) < 0 || fuse_parse_cmdline(&args, &cmd) != 0)
		goto out;
	rc = before_mounting(argv, &fs, &cmd);
	if (rc >= 0)
		goto out;
	rc = 1;
	make_backing_root_absolute(&fs.opts.backing_root);
	add_identity_options(&args, &fs.opts);
	/* The kernel checks modes against what stat shows (access.c), unless
	 * the user said -o no_default_permissions. */
	if (fs.opts.default_permissions)
		fuse_opt_add_arg(&args, "-odefault_permissions");
	/* Before any work on the backing root: this is where libfuse rejects
	 * options it does not know. */
	se = fuse_session_new(&args, &kvcfs_ops, sizeof(kvcfs_ops), &fs);
	if (se != NULL && open_store(&fs) == 0)
		rc = run(&fs, se, &cmd);
out:
	if (se != NULL)
		fuse_session_destroy(se);
	free(cmd.mountpoint);
	options_free(&fs.opts);
	fuse_opt_free_args(&args);
	return rc;
}
