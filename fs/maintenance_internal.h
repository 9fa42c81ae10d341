/* SPDX-License-Identifier: MIT */
#ifndef KVCFS_MAINTENANCE_INTERNAL_H
#define KVCFS_MAINTENANCE_INTERNAL_H

/* An open of .kvcfs/rescan waiting for the worker's next rescan. */
struct rescan_waiter {
	fuse_req_t req;
	struct handle *h;
	struct fuse_file_info fi;
};

/* A slab a publish kept after a look at its head: verify it soon. */
struct verify_request {
	struct kdir *dir;          /* referenced */
	struct kvc_key key;
};

#endif
