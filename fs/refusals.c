/* SPDX-License-Identifier: MIT */
/*
 * Why a publish was refused, wherever its user looks. A program sees only
 * an errno (EBADMSG at close or rename, ENOSPC, EBUSY); user.kvcfs.error
 * explains it only while a staging file is left to ask. So every refusal
 * is also kept here, the most recent REFUSALS_KEPT of them, and
 * .kvcfs/refusals shows each reader the ones its own uid made (root and
 * the daemon's user see all), one line each:
 *
 *   <unix time> uid=<uid> name=<name> key=<hex> errno=<name> <reason>
 *
 * with the name percent-encoded and the reason in printable ASCII, so that
 * no user's name can end a line or fake a field; the uid is the one that
 * asked for the publish (the renamer, the linker, the closer). Each is
 * also logged (log.c: stderr in the foreground, syslog daemonized,
 * rate-limited).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvcfs.h"

#define REFUSALS_KEPT 256

struct refusal {
	time_t when;
	uid_t uid;
	char *name;
	char key[KVC_KEY_HEX_LEN + 1];
	int err;
	char *reason;
};

struct kvcfs_refusals {
	pthread_mutex_t lock;           /* a leaf: guards all below */
	struct refusal ring[REFUSALS_KEPT];
	unsigned next;                  /* where the next one goes */
	unsigned count;                 /* how many are kept (<= REFUSALS_KEPT) */
};

void refusals_init(struct kvcfs *fs)
{
	fs->refusals = g_new0(struct kvcfs_refusals, 1);
	pthread_mutex_init(&fs->refusals->lock, NULL);
}

void refusals_destroy(struct kvcfs *fs)
{
	struct kvcfs_refusals *r = fs->refusals;

	if (r == NULL)
		return;
	for (unsigned i = 0; i < REFUSALS_KEPT; i++) {
		g_free(r->ring[i].name);
		g_free(r->ring[i].reason);
	}
	pthread_mutex_destroy(&r->lock);
	g_free(r);
	fs->refusals = NULL;
}

/* A reason, written by kvcfs but quoting what users gave: one line of
 * ASCII, whatever it holds (no control bytes, nor the UTF-8 of U+0085,
 * U+2028 or U+2029 that some readers take for line breaks). */
static char *one_line(const char *text)
{
	char *s = g_strdup(text != NULL ? text : "");

	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return s;
}

/* A name, given by a user: one field, unambiguous, percent-encoded: every
 * byte that is not printable ASCII, and space, '%' and '=', as %XX (so a
 * name can neither end its line nor its field, nor fake another). */
static char *one_field(const char *name)
{
	GString *out = g_string_new(NULL);

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '%' || *p == '=')
			g_string_append_printf(out, "%%%02X", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	return g_string_free(out, FALSE);
}

void refusals_record(struct kvcfs *fs, uid_t uid, const char *name, const struct kvc_key *key,
		     int err, const char *reason)
{
	struct kvcfs_refusals *r = fs->refusals;
	struct refusal *slot;
	char hex[KVC_KEY_HEX_LEN + 1] = "-";
	char *safe_name, *safe_reason = one_line(reason);
	const char *errname = strerrorname_np(err);

	if (key != NULL)
		kvc_key_to_hex(key, hex);
	safe_name = name != NULL ? one_field(name) : g_strdup_printf("%s.kvc", hex);
	log_limited("kvcfs: publish of %s refused (uid %u, key %s): %s: %s\n", safe_name,
		    (unsigned)uid, hex, errname != NULL ? errname : "?", safe_reason);
	pthread_mutex_lock(&r->lock);
	slot = &r->ring[r->next];
	g_free(slot->name);
	g_free(slot->reason);
	slot->when = time(NULL);
	slot->uid = uid;
	slot->name = safe_name;
	memcpy(slot->key, hex, sizeof(hex));
	slot->err = err;
	slot->reason = safe_reason;
	r->next = (r->next + 1) % REFUSALS_KEPT;
	if (r->count < REFUSALS_KEPT)
		r->count++;
	pthread_mutex_unlock(&r->lock);
}

char *refusals_render(struct kvcfs *fs, uid_t reader, size_t *len)
{
	struct kvcfs_refusals *r = fs->refusals;
	bool sees_all = reader == 0 || reader == geteuid();
	GString *s = g_string_new(NULL);

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->count; i++) {
		/* Oldest first. */
		const struct refusal *f =
			&r->ring[(r->next + REFUSALS_KEPT - r->count + i) % REFUSALS_KEPT];
		const char *errname = strerrorname_np(f->err);

		if (!sees_all && f->uid != reader)
			continue;
		g_string_append_printf(s, "%lld uid=%u name=%s key=%s errno=%s %s\n",
				       (long long)f->when, (unsigned)f->uid, f->name, f->key,
				       errname != NULL ? errname : "?", f->reason);
	}
	pthread_mutex_unlock(&r->lock);
	*len = s->len;
	return g_string_free(s, FALSE);
}
