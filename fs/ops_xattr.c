/* SPDX-License-Identifier: MIT */
/* Extended attributes: every header and TLV field as user.kvc.*,
 * user.kvcfs.error on a staging file whose publish was refused, and
 * user.kvcfs.seal, a writer's request to have the payload's CRC filled in
 * at publish (docs/format.md, "Sealed slabs"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvcfs.h"

#define ERROR_XATTR "user.kvcfs.error"
#define SEAL_XATTR "user.kvcfs.seal"

/* The attribute list, in the order listxattr shows it. */
/* The format's field names, as `kvc inspect` and the golden vectors'
 * manifest spell them; numbers as `kvc inspect` prints them. */
static const char *const slab_xattrs[] = {
	"user.kvc.key", "user.kvc.version", "user.kvc.token_count", "user.kvc.cached_token_count",
	"user.kvc.hit_count", "user.kvc.save_reason", "user.kvc.quant_type", "user.kvc.quant_byte",
	"user.kvc.quant_bits", "user.kvc.context_size", "user.kvc.fingerprint",
	"user.kvc.fingerprint_mode", "user.kvc.ctx_params_hash", "user.kvc.creation_time",
	"user.kvc.last_used_time", "user.kvc.payload_offset", "user.kvc.payload_length",
	"user.kvc.payload_crc32c", "user.kvc.hostname", "user.kvc.writer_version",
	"user.kvc.save_reason_detail",
};

static int read_meta(struct kdir *dir, const struct kvc_key *key, struct kvc_meta *meta)
{
	struct kvc_source src;
	struct kvc_err err;
	struct stat st;
	int fd, rc;

	/* Through the store: it never blocks on a FIFO under the name and
	 * reads only a regular file. */
	if (kvc_store_open_slab(dir->store, key, &fd, &st, &err) < 0)
		return -kvc_err_to_errno(&err);
	kvc_source_from_fd(&src, &fd, (uint64_t)st.st_size);
	rc = kvc_parse_meta(&src, 0, meta, &err);
	close(fd);
	return rc < 0 ? -kvc_err_to_errno(&err) : 0;
}

/* The value of one attribute as text; NULL if the field is absent. */
static GString *slab_xattr_value(const struct kvc_meta *m, const struct kvc_key *key,
				 const char *name)
{
	GString *v = g_string_new(NULL);
	char hex[65];
	const char *field = name + strlen("user.kvc.");

	if (strcmp(field, "key") == 0) {
		kvc_key_to_hex(key, hex);
		g_string_append(v, hex);
	} else if (strcmp(field, "version") == 0) {
		g_string_append_printf(v, "%u", m->version);
	} else if (strcmp(field, "token_count") == 0) {
		g_string_append_printf(v, "%" PRIu32, m->n_tokens);
	} else if (strcmp(field, "cached_token_count") == 0) {
		g_string_append_printf(v, "%" PRIu32, m->cached_token_count);
	} else if (strcmp(field, "hit_count") == 0) {
		g_string_append_printf(v, "%" PRIu32, m->hit_count);
	} else if (strcmp(field, "save_reason") == 0) {
		g_string_append(v, kvc_save_reason_name(m->save_reason));
	} else if (strcmp(field, "quant_type") == 0) {
		g_string_append(v, kvc_quant_name(m->quant_byte));
	} else if (strcmp(field, "quant_byte") == 0) {
		g_string_append_printf(v, "%u", m->quant_byte);
	} else if (strcmp(field, "quant_bits") == 0) {
		g_string_append_printf(v, "%u", m->quant_bits);
	} else if (strcmp(field, "context_size") == 0) {
		g_string_append_printf(v, "%" PRIu32, m->context_size);
	} else if (strcmp(field, "fingerprint") == 0) {
		kvc_hex_encode(m->fingerprint, 32, hex);
		g_string_append(v, hex);
	} else if (strcmp(field, "fingerprint_mode") == 0) {
		g_string_append(v, kvc_fingerprint_mode_name(m->fingerprint_mode));
	} else if (strcmp(field, "ctx_params_hash") == 0) {
		kvc_hex_encode(m->ctx_params_hash, 32, hex);
		g_string_append(v, hex);
	} else if (strcmp(field, "creation_time") == 0) {
		g_string_append_printf(v, "%" PRIu64, m->creation_time);
	} else if (strcmp(field, "last_used_time") == 0) {
		g_string_append_printf(v, "%" PRIu64, m->last_used_time);
	} else if (strcmp(field, "payload_offset") == 0) {
		g_string_append_printf(v, "%" PRIu64, m->payload_offset);
	} else if (strcmp(field, "payload_length") == 0) {
		g_string_append_printf(v, "%" PRIu64, m->payload_length);
	} else if (strcmp(field, "payload_crc32c") == 0) {
		g_string_append_printf(v, "0x%08" PRIx32, m->payload_crc32c);
	} else if (strcmp(field, "hostname") == 0 && m->hostname.present) {
		g_string_append_len(v, m->hostname.data, m->hostname.len);
	} else if (strcmp(field, "writer_version") == 0 && m->writer_version.present) {
		g_string_append_len(v, m->writer_version.data, m->writer_version.len);
	} else if (strcmp(field, "save_reason_detail") == 0 && m->save_reason_detail.present) {
		g_string_append_len(v, m->save_reason_detail.data, m->save_reason_detail.len);
	} else {
		g_string_free(v, TRUE);
		return NULL;
	}
	return v;
}

static void reply_value(fuse_req_t req, const char *data, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node_view nv;
	struct node *node = node_held(fs, ino, &nv);
	struct kvc_meta meta;
	GString *v;
	int rc;

	if (node == NULL || (rc = access_may_xattr(fs, req, ino, false)) < 0) {
		fuse_reply_err(req, node == NULL ? ENOENT : -rc);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		/* No security labels, no ACLs: say the namespace is not supported
		 * (not merely empty), and ls, cp and others stop asking for every
		 * file, which on a FUSE mount is a round trip each. */
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (nv.kind == NODE_STAGING) {
		char *copy = NULL;
		pthread_rwlock_rdlock(&nv.stage->lock);
		if (strcmp(name, ERROR_XATTR) == 0 && nv.stage->error != NULL)
			copy = g_strdup(nv.stage->error);
		else if (strcmp(name, SEAL_XATTR) == 0 && nv.stage->seal)
			copy = g_strdup("1");
		pthread_rwlock_unlock(&nv.stage->lock);
		if (copy == NULL)
			fuse_reply_err(req, ENODATA);
		else
			reply_value(req, copy, strlen(copy), size);
		g_free(copy);
		return;
	}
	if ((nv.kind != NODE_SLAB && nv.kind != NODE_PAYLOAD) ||
	    strncmp(name, "user.kvc.", 9) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = read_meta(nv.dir, &nv.key, &meta);
	if (rc < 0) {
		fuse_reply_err(req, rc == -EBADMSG ? EIO : -rc);
		return;
	}
	v = slab_xattr_value(&meta, &nv.key, name);
	if (v == NULL)
		fuse_reply_err(req, ENODATA);
	else
		reply_value(req, v->str, v->len, size);
	if (v != NULL)
		g_string_free(v, TRUE);
	kvc_meta_clear(&meta);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct kvcfs *fs = kvcfs_of(req);
	struct node_view nv;
	struct node *node = node_held(fs, ino, &nv);
	GString *list = g_string_new(NULL);
	struct kvc_meta meta;

	if (node == NULL) {
		g_string_free(list, TRUE);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (nv.kind == NODE_STAGING) {
		pthread_rwlock_rdlock(&nv.stage->lock);
		if (nv.stage->error != NULL)
			g_string_append_len(list, ERROR_XATTR, sizeof(ERROR_XATTR));
		if (nv.stage->seal)
			g_string_append_len(list, SEAL_XATTR, sizeof(SEAL_XATTR));
		pthread_rwlock_unlock(&nv.stage->lock);
	} else if ((nv.kind == NODE_SLAB || nv.kind == NODE_PAYLOAD) &&
		   read_meta(nv.dir, &nv.key, &meta) == 0) {
		for (size_t i = 0; i < G_N_ELEMENTS(slab_xattrs); i++) {
			GString *v = slab_xattr_value(&meta, &nv.key, slab_xattrs[i]);
			if (v == NULL)
				continue; /* optional TLV not present */
			g_string_free(v, TRUE);
			g_string_append_len(list, slab_xattrs[i], (gssize)strlen(slab_xattrs[i]) + 1);
		}
		kvc_meta_clear(&meta);
	}
	reply_value(req, list->str, list->len, size);
	g_string_free(list, TRUE);
}

/* user.kvcfs.seal on a file not yet published: on (set, any value) or
 * off (removed). Elsewhere: EPERM; other names: 1 (not ours). */
static int seal_xattr(struct kvcfs *fs, fuse_ino_t ino, const char *name, bool on, int flags)
{
	struct node_view nv;

	if (strcmp(name, SEAL_XATTR) != 0)
		return 1;
	if (node_held(fs, ino, &nv) == NULL)
		return -ENOENT;
	if (fs->opts.read_only)
		return -EROFS;
	if (nv.kind != NODE_STAGING)
		return -EPERM; /* a published slab is sealed already, or refused */
	return staging_request_seal(nv.stage, on, flags);
}

/* Slab attributes are the slab's content, not settable metadata: whoever
 * may write the file (its mode and owner decide, as for user.* anywhere)
 * learns that setting one is not supported; anyone else is refused. The
 * one attribute that may be set is the seal request of a staging file. */
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags)
{
	int rc = access_may_xattr(kvcfs_of(req), req, ino, true);

	(void)value;
	(void)size;
	if (rc == 0)
		rc = seal_xattr(kvcfs_of(req), ino, name, true, flags);
	fuse_reply_err(req, rc == 1 ? ENOTSUP : -rc);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int rc = access_may_xattr(kvcfs_of(req), req, ino, true);

	if (rc == 0)
		rc = seal_xattr(kvcfs_of(req), ino, name, false, 0);
	fuse_reply_err(req, rc == 1 ? ENOTSUP : -rc);
}
