/*
 * log - stderr or syslog, one line per event. See log.h.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static enum log_dest log_dest = LOG_DEST_STDERR;
static int log_verbose;

void
log_init(enum log_dest dest, int debug, const char *ident)
{
	log_dest = dest;
	log_verbose = debug;
	if (dest == LOG_DEST_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

int
log_debug_enabled(void)
{
	return log_verbose;
}

static void
log_vwrite(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char line[2048];
	int n;

	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (suffix)
		util_strlcat(line, suffix, sizeof(line));
	if (log_dest == LOG_DEST_SYSLOG) {
		syslog(pri, "%s", line);
		return;
	}
	/* One fputs per line: stdio locks the stream, so lines from worker
	 * threads never interleave. */
	{
		char out[2200];
		const char *lvl = pri == LOG_ERR ? "error: " : pri == LOG_WARNING ?
		    "warning: " : pri == LOG_DEBUG ? "debug: " : "";
		snprintf(out, sizeof(out), "outpostd: %s%s\n", lvl, line);
		fputs(out, stderr);
	}
}

#define LOG_FN(name, pri, cond)                         \
	void name(const char *fmt, ...)                 \
	{                                               \
		va_list ap;                             \
		if (!(cond))                            \
			return;                         \
		va_start(ap, fmt);                      \
		log_vwrite(pri, fmt, ap, NULL);         \
		va_end(ap);                             \
	}

LOG_FN(log_debug, LOG_DEBUG, log_verbose)
LOG_FN(log_info, LOG_INFO, 1)
LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_err, LOG_ERR, 1)

void
fatal(const char *fmt, ...)
{
	va_list ap;
	char suffix[256];

	snprintf(suffix, sizeof(suffix), ": %s", strerror(errno));
	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, suffix);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

const char *
log_escn(const char *s, size_t n, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (len == 0)
		return buf;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= len)
				break;
			buf[o++] = (char)c;
		} else {
			if (o + 4 >= len)
				break;
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

const char *
log_esc(const char *s, char *buf, size_t len)
{
	return log_escn(s ? s : "", s ? strlen(s) : 0, buf, len);
}
