/* SPDX-License-Identifier: MIT */
/*
 * Where the daemon's messages go: stderr while it runs in the foreground
 * (-f, -d), syslog (facility daemon, ident "kvcfs") once it has detached,
 * as daemons do. libfuse's own messages take the same way (its log
 * function is ours). Lines a user can cause (a refused publish, a corrupt
 * slab dropped) are rate-limited: a hostile loop cannot flood the log;
 * what was left out is counted in the next line that passes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

#include "kvcfs.h"

/* At most LOG_BURST user-caused lines per LOG_WINDOW seconds. */
#define LOG_BURST 20
#define LOG_WINDOW 10

static struct {
	bool to_syslog;         /* set before serving (log_detached), then read */
	pthread_mutex_t lock;   /* a leaf: guards the rate limit below */
	time_t window_start;
	unsigned in_window;
	unsigned suppressed;
} logstate = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int syslog_priority(enum fuse_log_level level)
{
	switch (level) {
	case FUSE_LOG_EMERG: return LOG_EMERG;
	case FUSE_LOG_ALERT: return LOG_ALERT;
	case FUSE_LOG_CRIT: return LOG_CRIT;
	case FUSE_LOG_ERR: return LOG_ERR;
	case FUSE_LOG_WARNING: return LOG_WARNING;
	case FUSE_LOG_NOTICE: return LOG_NOTICE;
	case FUSE_LOG_INFO: return LOG_INFO;
	default: return LOG_DEBUG;
	}
}

static void write_line(enum fuse_log_level level, const char *fmt, va_list ap)
{
	if (logstate.to_syslog)
		vsyslog(syslog_priority(level), fmt, ap);
	else
		vfprintf(stderr, fmt, ap);
}

static void log_func(enum fuse_log_level level, const char *fmt, va_list ap)
{
	write_line(level, fmt, ap);
}

void log_init(void)
{
	fuse_set_log_func(log_func);
}

void log_detached(bool detached)
{
	if (!detached)
		return;
	openlog("kvcfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	logstate.to_syslog = true;
}

/* May one more user-caused line go out now? *dropped: how many did not
 * since the last one that went. */
static bool within_rate(unsigned *dropped)
{
	time_t now = time(NULL);
	bool ok;

	pthread_mutex_lock(&logstate.lock);
	if (now - logstate.window_start >= LOG_WINDOW) {
		logstate.window_start = now;
		logstate.in_window = 0;
	}
	ok = logstate.in_window < LOG_BURST;
	*dropped = 0;
	if (ok) {
		logstate.in_window++;
		*dropped = logstate.suppressed;
		logstate.suppressed = 0;
	} else {
		logstate.suppressed++;
	}
	pthread_mutex_unlock(&logstate.lock);
	return ok;
}

void log_limited(const char *fmt, ...)
{
	unsigned dropped;
	va_list ap;

	if (!within_rate(&dropped))
		return;
	if (dropped > 0)
		fuse_log(FUSE_LOG_WARNING, "kvcfs: %u more such lines were left out (rate limit)\n",
			 dropped);
	va_start(ap, fmt);
	write_line(FUSE_LOG_WARNING, fmt, ap);
	va_end(ap);
}
