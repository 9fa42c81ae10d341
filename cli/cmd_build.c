/* SPDX-License-Identifier: MIT */
/* kvc build: frame a payload file as a KVC v1 slab and save it durably. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "input.h"

struct build_options {
	char *payload;
	char *save_reason;
	char *fingerprint_mode;
	char *prompt;
	char *hostname;
	char *writer_version;
	char *detail;
	char *output;
	gint64 quant_bits;
	gint64 context_size;
	gint64 created;
	gint64 last_used;
	gint64 hits;
};

static int crc_of_file(int fd, uint64_t *len, uint32_t *crc)
{
	static uint8_t buf[1 << 20];
	ssize_t n;

	*len = 0;
	*crc = 0;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		*crc = kvc_crc32c(*crc, buf, (size_t)n);
		*len += (uint64_t)n;
	}
	return lseek(fd, 0, SEEK_SET) < 0 ? -1 : 0;
}

static int range_u(const char *what, gint64 v, gint64 max)
{
	if (v < 0 || v > max) {
		fprintf(stderr, "kvc build: --%s must be 0..%lld\n", what, (long long)max);
		return -1;
	}
	return 0;
}

static void set_blob(struct kvc_blob *b, char *s)
{
	if (s == NULL)
		return;
	b->present = true;
	b->data = s;
	b->len = (uint32_t)strlen(s);
}

static int fill_meta(struct build_options *bo, struct kvc_meta *m)
{
	int sr = kvc_save_reason_from_name(bo->save_reason ? bo->save_reason : "cold");
	int fm = kvc_fingerprint_mode_from_name(bo->fingerprint_mode ? bo->fingerprint_mode : "safe");
	gint64 now = (gint64)time(NULL);

	if (sr < 0 || fm < 0) {
		const char *(*name_of)(uint8_t) = sr < 0 ? kvc_save_reason_name
							 : kvc_fingerprint_mode_name;

		fprintf(stderr, "kvc build: unknown %s '%s'; one of:",
			sr < 0 ? "--save-reason" : "--fingerprint-mode",
			sr < 0 ? bo->save_reason : bo->fingerprint_mode);
		for (int v = 0; v < 256; v++)
			if (name_of((uint8_t)v) != NULL)
				fprintf(stderr, " %s", name_of((uint8_t)v));
		fprintf(stderr, "\n");
		return -1;
	}
	if (range_u("quant-bits", bo->quant_bits, 255) < 0 ||
	    range_u("context-size", bo->context_size, UINT32_MAX) < 0 ||
	    range_u("hits", bo->hits, UINT32_MAX) < 0 ||
	    (bo->created != -1 && range_u("created", bo->created, G_MAXINT64)) ||
	    (bo->last_used != -1 && range_u("last-used", bo->last_used, G_MAXINT64)))
		return -1;
	m->save_reason = (uint8_t)sr;
	m->fingerprint_mode = (uint8_t)fm;
	m->quant_bits = (uint8_t)bo->quant_bits;
	m->context_size = (uint32_t)bo->context_size;
	m->hit_count = (uint32_t)bo->hits;
	m->creation_time = (uint64_t)(bo->created == -1 ? now : bo->created);
	m->last_used_time = bo->last_used == -1 ? m->creation_time : (uint64_t)bo->last_used;
	set_blob(&m->prompt, bo->prompt);
	set_blob(&m->save_reason_detail, bo->detail);
	set_blob(&m->writer_version, bo->writer_version);
	return 0;
}

/* A non-key output name: the same temp + verify + fdatasync, then an
 * atomic rename into place and a directory fsync. */
static int place_at_path(struct kvc_store *store, struct kvc_tmp *tmp,
			 const char *path, struct kvc_err *err)
{
	g_autofree char *base = g_path_get_basename(path);

	/* The same mode as a slab in a directory (kvc_store_publish). */
	if (fchmod(tmp->fd, 0644) < 0)
		return kvc_err_sys(err, errno, "chmod of %s", path);
	if (renameat(kvc_store_dirfd(store), tmp->name, kvc_store_dirfd(store), base) < 0)
		return kvc_err_sys(err, errno, "rename into %s", path);
	tmp->name[0] = '\0';
	if (fsync(kvc_store_dirfd(store)) < 0)
		return kvc_err_sys(err, errno, "fsync directory of %s", path);
	return 0;
}

/* The payload file, its length and CRC-32C. -1 after one line on stderr. */
static int open_payload(const char *path, int *fd, uint64_t *len, uint32_t *crc)
{
	struct kvc_err err;
	struct stat st;

	*fd = input_open_regular(path, &st, &err);
	if (*fd < 0) {
		fprintf(stderr, "kvc build: --payload: %s\n", err.detail);
		return -1;
	}
	if (crc_of_file(*fd, len, crc) < 0) {
		fprintf(stderr, "kvc build: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The metadata from the options, the key's inputs and the host. */
static int meta_from_options(struct build_options *bo, struct key_options *ko,
			     struct kvc_meta *m, uint32_t **tokens, char hostname[256])
{
	struct kvc_key_input in;

	if (key_options_resolve(ko, &in, tokens) < 0 || fill_meta(bo, m) < 0)
		return -1;
	memcpy(m->fingerprint, in.fingerprint, 32);
	memcpy(m->ctx_params_hash, in.ctx_params_hash, 32);
	m->quant_byte = in.quant_byte;
	m->tokens = *tokens;
	m->n_tokens = (uint32_t)in.n_tokens;
	if (bo->hostname == NULL && gethostname(hostname, 255) == 0)
		set_blob(&m->hostname, hostname);
	else
		set_blob(&m->hostname, bo->hostname);
	if (!m->writer_version.present)
		set_blob(&m->writer_version, (char *)"kvcfs " KVC_VERSION_STRING);
	return 0;
}

/*
 * Where -o puts the slab, one rule: an existing directory, or any path
 * ending in '/' (which must then exist), gets DIR/<key>.kvc; anything else
 * is the file to write, in a directory that must exist. *dir gets the
 * directory either way. -1 after one line on stderr.
 */
static int output_target(const char *out, bool *to_dir, char **dir)
{
	*to_dir = g_str_has_suffix(out, "/") || g_file_test(out, G_FILE_TEST_IS_DIR);
	*dir = *to_dir ? g_strdup(out) : g_path_get_dirname(out);
	if (!g_file_test(*dir, G_FILE_TEST_IS_DIR)) {
		fprintf(stderr, "kvc build: -o %s: %s is not a directory\n", out, *dir);
		return -1;
	}
	return 0;
}

static int build(struct build_options *bo, struct key_options *ko)
{
	g_autofree uint32_t *tokens = NULL;
	g_autofree uint8_t *prefix = NULL;
	g_autofree char *dir = NULL;
	struct kvc_store_config cfg = { 0 };
	struct kvc_store *store = NULL;
	struct kvc_tmp tmp = KVC_TMP_INIT;
	struct kvc_meta m = { 0 };
	struct kvc_key key;
	struct kvc_err err;
	enum kvc_publish_outcome outcome;
	char hostname[256] = "", name[KVC_SLAB_NAME_LEN + 1];
	const char *out = bo->output ? bo->output : ".";
	size_t prefix_len;
	uint64_t payload_len = 0;
	uint32_t crc = 0;
	bool to_dir;
	int payload_fd = -1, rc = CLI_USAGE;

	if (meta_from_options(bo, ko, &m, &tokens, hostname) < 0 ||
	    output_target(out, &to_dir, &dir) < 0 ||
	    (bo->payload != NULL && open_payload(bo->payload, &payload_fd, &payload_len, &crc) < 0))
		goto out;
	if (kvc_build_prefix(&m, payload_len, crc, &prefix, &prefix_len, &err) < 0) {
		fprintf(stderr, "kvc build: %s\n", err.detail);
		goto out;
	}
	if (kvc_meta_key(&m, &key) < 0) {
		perror("kvc build: SHA-256");
		goto out;
	}
	cfg.root = dir;
	if (kvc_store_open(&cfg, &store, &err) < 0 ||
	    kvc_store_write_tmp_fd(store, &key, prefix, prefix_len, payload_fd, &tmp, &err) < 0 ||
	    (to_dir ? kvc_store_publish(store, &tmp, &key, NULL, &outcome, &err)
		    : place_at_path(store, &tmp, out, &err)) < 0) {
		fprintf(stderr, "kvc build: %s: %s\n", kvc_tag_name(err.tag), err.detail);
		rc = CLI_NO;
		goto out;
	}
	kvc_key_slab_name(&key, name);
	if (to_dir) {
		g_autofree char *path = g_build_filename(dir, name, NULL);
		printf("%s%s\n", path, outcome == KVC_PUBLISH_ADOPTED ? " (already present)" : "");
	} else
		printf("%s\n", out);
	rc = CLI_OK;
out:
	if (store != NULL)
		kvc_store_abort_tmp(store, &tmp);
	kvc_store_close(store);
	if (payload_fd >= 0)
		close(payload_fd);
	return rc;
}

int cmd_build(int argc, char **argv)
{
	struct key_options ko = { 0 };
	struct build_options bo = { .quant_bits = 16, .created = -1, .last_used = -1 };
	GOptionEntry entries[] = {
		{ "payload", 0, 0, G_OPTION_ARG_FILENAME, &bo.payload, "payload bytes, a regular file (default: empty)", "FILE" },
		{ "save-reason", 0, 0, G_OPTION_ARG_STRING, &bo.save_reason, "unknown|cold|continued|evict|shutdown|finish (cold)", "NAME" },
		{ "quant-bits", 0, 0, G_OPTION_ARG_INT64, &bo.quant_bits, "header quant_bits (16)", "N" },
		{ "context-size", 0, 0, G_OPTION_ARG_INT64, &bo.context_size, "context size in tokens (0)", "N" },
		{ "prompt", 0, 0, G_OPTION_ARG_STRING, &bo.prompt, "prompt text (informational)", "TEXT" },
		{ "hostname", 0, 0, G_OPTION_ARG_STRING, &bo.hostname, "hostname TLV (default: this host; '' omits it)", "NAME" },
		{ "writer-version", 0, 0, G_OPTION_ARG_STRING, &bo.writer_version, "writer version TLV", "TEXT" },
		{ "fingerprint-mode", 0, 0, G_OPTION_ARG_STRING, &bo.fingerprint_mode, "safe|gguf_chunked|fast_unsafe (safe)", "NAME" },
		{ "created", 0, 0, G_OPTION_ARG_INT64, &bo.created, "creation_time, unix seconds (now)", "SECS" },
		{ "last-used", 0, 0, G_OPTION_ARG_INT64, &bo.last_used, "last_used_time (= created)", "SECS" },
		{ "hits", 0, 0, G_OPTION_ARG_INT64, &bo.hits, "hit_count (0)", "N" },
		{ "detail", 0, 0, G_OPTION_ARG_STRING, &bo.detail, "save_reason_detail TLV", "TEXT" },
		{ "output", 'o', 0, G_OPTION_ARG_FILENAME, &bo.output, "an existing directory or a path ending in / (gets DIR/<key>.kvc), else the file to write (default: .)", "PATH" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- write a KVC v1 slab");
	int rc = CLI_USAGE, parsed;

	g_option_context_set_summary(ctx,
		"Required: --fingerprint, --quant, --ctx, and one of --tokens or\n"
		"--tokens-file. The slab is written to a temp, synced, verified, then\n"
		"linked as DIR/<key>.kvc or renamed to the given file path.");
	key_options_add(ctx, &ko);
	g_option_context_add_main_entries(ctx, entries, NULL);
	parsed = cli_parse(ctx, &argc, &argv);
	if (parsed > 0) {
		rc = CLI_OK;
	} else if (parsed == 0) {
		if (argc > 1)
			fprintf(stderr, "kvc build: unexpected argument '%s'\n", argv[1]);
		else
			rc = build(&bo, &ko);
	}
	key_options_free(&ko);
	g_free(bo.payload);
	g_free(bo.save_reason);
	g_free(bo.fingerprint_mode);
	g_free(bo.prompt);
	g_free(bo.hostname);
	g_free(bo.writer_version);
	g_free(bo.detail);
	g_free(bo.output);
	return rc;
}
