/*
 * log - one line per event, Postfix-like, to stderr (foreground, systemd)
 * or syslog (mail facility). Callers prefix lines with the queue id or the
 * session id themselves: log_info("%s: from=<%s>, size=%zu", qid, ...).
 *
 * Client-supplied text must go through log_esc() first; passwords and keys
 * are never passed here. Safe to call from any thread.
 */
#ifndef OUTPOST_LOG_H
#define OUTPOST_LOG_H

#include <stddef.h>
#include "util.h"

enum log_dest { LOG_DEST_STDERR, LOG_DEST_SYSLOG };

void log_init(enum log_dest dest, int debug, const char *ident);
int log_debug_enabled(void);

void log_debug(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_err(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* fatal appends strerror(errno); fatalx does not. Both exit(1). */
void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;
void fatalx(const char *fmt, ...) PRINTF_LIKE(1, 2) NORETURN;

/* Escape untrusted text for a log line: printable ASCII kept, everything
 * else as \xNN, result truncated to fit buf. Returns buf. */
const char *log_esc(const char *s, char *buf, size_t len);
/* Same for a byte range that may hold NULs. */
const char *log_escn(const char *s, size_t n, char *buf, size_t len);

#endif
