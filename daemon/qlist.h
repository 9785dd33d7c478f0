/*
 * qlist - read-only views of the queue for outpostctl: `queue list`
 * (like mailq, searchable), `queue show ID` (envelope, headers, every
 * delivery attempt) and `queue summary` (pending recipients by domain and
 * age, like qshape). Reads queue.db with its own read-only SQLite
 * connection (WAL: never blocks the daemon); bound parameters only.
 */
#ifndef OUTPOST_QLIST_H
#define OUTPOST_QLIST_H

#include <stdio.h>

struct qlist_filter {
	const char *from;           /* envelope sender contains this (case-insensitive), or NULL */
	const char *to;             /* some recipient contains this, or NULL */
	const char *status;         /* "queued", "deferred", "held", "bounced", or NULL:
	                             * every message with pending recipients */
	long older;                 /* seconds: received at least this long ago; 0 = any */
	int json;
};

/* Each returns 0, 1 when `show` found no such message, or -1 with err. */
int qlist_list(const char *dbpath, const struct qlist_filter *f, FILE *out,
    char *err, size_t errlen);
int qlist_show(const char *dbpath, const char *queue_id, int json, FILE *out,
    char *err, size_t errlen);
int qlist_summary(const char *dbpath, int json, FILE *out, char *err, size_t errlen);

#endif
