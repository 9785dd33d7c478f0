/*
 * qlist - read-only views of queue.db for outpostctl (qlist.h).
 *
 *   qlist_list     one entry per message with its recipients, like mailq,
 *                  filtered by sender, recipient, state and age
 *   qlist_show     one message: envelope, recipients, the stored header
 *                  section, every delivery attempt (events)
 *   qlist_summary  pending recipients by domain and age, like qshape
 *
 * Each opens its own read-only connection with a busy timeout: the daemon
 * runs WAL, so these reads never block it. The queue may hold a million
 * messages, so list streams one joined row at a time (ordered by rowid,
 * no sort) and summary lets SQLite aggregate (GROUP BY); only the top
 * domains are kept here. SQL text is built from constant fragments only;
 * every value from the user goes in as a bound parameter.
 *
 * Addresses, replies and headers came from the network: every string is
 * passed through log_escn (printable ASCII kept, the rest as \xNN) before
 * it is printed, and JSON strings are then quoted with util_json_str.
 * A queue.db that does not exist, or lacks the tables, is an empty queue.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "qlist.h"
#include "store.h"
#include "util.h"

#define QLIST_BUSY_MS 5000
/* Bytes of a stored message read to find its header section. */
#define QLIST_HDR_MAX (64 * 1024)
/* Source bytes escaped per step; log_escn writes at most 4 per byte. */
#define QLIST_ESC_CHUNK 256
/* Rows of the summary before the rest is added up as "other". */
#define QLIST_TOP_DOMAINS 20
/* Age columns of the summary (minutes, qshape's): a recipient falls in
 * the first column whose bound its message's age is below; the last
 * column is everything older than the last bound. */
#define QLIST_NBUCKET 10
static const int qlist_bucket_min[QLIST_NBUCKET - 1] = {
	5, 10, 20, 40, 80, 160, 320, 640, 1280
};

#define QLIST_PENDING "('queued', 'deferred')"

/* qlist_esc - write n bytes of untrusted text escaped (log_escn) */
static void
qlist_esc(FILE *out, const char *s, size_t n)
{
	char buf[QLIST_ESC_CHUNK * 4 + 1];

	for (size_t off = 0; off < n; off += QLIST_ESC_CHUNK) {
		size_t k = n - off < QLIST_ESC_CHUNK ? n - off : QLIST_ESC_CHUNK;
		fputs(log_escn(s + off, k, buf, sizeof(buf)), out);
	}
}

/* qlist_text - untrusted NUL-terminated text, escaped; NULL as "" */
static void
qlist_text(FILE *out, const char *s)
{
	if (s != NULL)
		qlist_esc(out, s, strlen(s));
}

/* qlist_jsonn - n bytes as a JSON string, escaped first (log_escn) so
 * that the output is ASCII whatever the bytes were */
static void
qlist_jsonn(FILE *out, const char *s, size_t n)
{
	char esc[QLIST_ESC_CHUNK * 4 + 1], js[sizeof(esc) * 2 + 3];

	fputc('"', out);
	for (size_t off = 0; off < n; off += QLIST_ESC_CHUNK) {
		size_t k = n - off < QLIST_ESC_CHUNK ? n - off : QLIST_ESC_CHUNK;
		size_t len;

		util_json_str(log_escn(s + off, k, esc, sizeof(esc)), js, sizeof(js));
		len = strlen(js);
		fwrite(js + 1, 1, len - 2, out);        /* without its quotes */
	}
	fputc('"', out);
}

/* qlist_json - a JSON string, or null for NULL */
static void
qlist_json(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		qlist_jsonn(out, s, strlen(s));
}

/* qlist_col - column i as a C string or NULL */
static const char *
qlist_col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* qlist_age - a duration as "42s", "12m", "3h", "5d" */
static const char *
qlist_age(long secs, char *buf, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%lds", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%ldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%ldh", secs / 3600);
	else
		snprintf(buf, len, "%ldd", secs / 86400);
	return buf;
}

/* qlist_flags - STORE_FLAG_* bits as "held,bulk", or "-" */
static const char *
qlist_flags(int flags, char *buf, size_t len)
{
	static const struct {
		int bit;
		const char *name;
	} names[] = {
		{ STORE_FLAG_HELD, "held" }, { STORE_FLAG_BULK, "bulk" },
		{ STORE_FLAG_FORWARDED, "forwarded" }, { STORE_FLAG_DSN, "dsn" },
	};

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (flags & names[i].bit) {
			if (buf[0] != '\0')
				util_strlcat(buf, ",", len);
			util_strlcat(buf, names[i].name, len);
		}
	}
	if (buf[0] == '\0')
		util_strlcpy(buf, "-", len);
	return buf;
}

/* qlist_time - local date and time of t */
static const char *
qlist_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
	return buf;
}

/* qlist_has_column - 1 if table has column, 0 if not (or no such table),
 * -1 on error; table is one of ours, never user text */
static int
qlist_has_column(sqlite3 *db, const char *table, const char *column)
{
	char sql[128];
	sqlite3_stmt *st;
	int rc, found = 0;

	snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = qlist_col(st, 1);
		if (name != NULL && strcmp(name, column) == 0)
			found = 1;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? found : -1;
}

/* qlist_open - read-only connection to dbpath: 0, 1 when there is no
 * queue to read (no file, or no queue tables yet), -1 with err */
static int
qlist_open(const char *dbpath, sqlite3 **dbp, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int a, b;

	*dbp = NULL;
	if (access(dbpath, F_OK) < 0) {
		if (errno == ENOENT)
			return 1;
		util_seterr(err, errlen, "%s: %s", dbpath, strerror(errno));
		return -1;
	}
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		util_seterr(err, errlen, "%s: %s", dbpath, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, QLIST_BUSY_MS);
	/* An empty file or one from before the queue existed: nothing queued.
	 * The columns read here are all from the first schema version. */
	a = qlist_has_column(db, "messages", "queue_id");
	b = qlist_has_column(db, "recipients", "status");
	if (a < 0 || b < 0) {
		util_seterr(err, errlen, "%s: %s", dbpath, sqlite3_errmsg(db));
		sqlite3_close(db);
		return -1;
	}
	if (!a || !b) {
		sqlite3_close(db);
		return 1;
	}
	*dbp = db;
	return 0;
}

/* qlist_sqlerr - err from the connection's last error */
static int
qlist_sqlerr(sqlite3 *db, const char *dbpath, char *err, size_t errlen)
{
	util_seterr(err, errlen, "%s: %s", dbpath, sqlite3_errmsg(db));
	return -1;
}

/* qlist_bind_text - bind s to the named parameter if the SQL has it */
static void
qlist_bind_text(sqlite3_stmt *st, const char *name, const char *s)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (i > 0)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

/* qlist_rcpt_state - "deferred (3 attempts, next in 4m)" */
static const char *
qlist_rcpt_state(const char *status, int attempts, time_t next, time_t now,
    int held, char *buf, size_t len)
{
	char when[32];
	int pending = strcmp(status, "queued") == 0 || strcmp(status, "deferred") == 0;

	if (!pending || attempts > 0 || held) {
		int n = snprintf(buf, len, "%s (%d attempt%s", status, attempts,
		    attempts == 1 ? "" : "s");
		if (n < 0 || (size_t)n >= len)
			return buf;
		if (pending && held)
			snprintf(buf + n, len - (size_t)n, ", held)");
		else if (pending && next > now)
			snprintf(buf + n, len - (size_t)n, ", next in %s)",
			    qlist_age((long)(next - now), when, sizeof(when)));
		else if (pending)
			snprintf(buf + n, len - (size_t)n, ", due now)");
		else
			snprintf(buf + n, len - (size_t)n, ")");
	} else {
		snprintf(buf, len, "%s", status);
	}
	return buf;
}

/* ---- list ---- */

/* Columns of the list query, in order. */
enum {
	L_MID, L_QID, L_SENDER, L_RECEIVED, L_SIZE, L_FLAGS,
	L_ADDR, L_STATUS, L_ATTEMPTS, L_NEXT, L_REPLY
};

/* qlist_list_sql - the list query for f: constant fragments only */
static void
qlist_list_sql(const struct qlist_filter *f, char *sql, size_t len)
{
	const char *st = f->status;

	util_strlcpy(sql, "SELECT m.id, m.queue_id, m.sender, m.received_at, m.size,"
	    " m.flags, r.address, r.status, r.attempts, r.next_attempt_at, r.last_reply"
	    " FROM messages m LEFT JOIN recipients r ON r.message_id = m.id WHERE ", len);
	if (st == NULL || strcmp(st, "held") == 0)
		util_strlcat(sql, "EXISTS (SELECT 1 FROM recipients p WHERE p.message_id = m.id"
		    " AND p.status IN " QLIST_PENDING ")", len);
	else
		util_strlcat(sql, "EXISTS (SELECT 1 FROM recipients p WHERE p.message_id = m.id"
		    " AND p.status = :status)", len);
	if (st != NULL && strcmp(st, "held") == 0)
		util_strlcat(sql, " AND (m.flags & :held) != 0", len);
	if (f->from != NULL)
		util_strlcat(sql, " AND instr(lower(m.sender), lower(:from)) > 0", len);
	if (f->to != NULL)
		util_strlcat(sql, " AND EXISTS (SELECT 1 FROM recipients t WHERE"
		    " t.message_id = m.id AND instr(lower(t.address), lower(:to)) > 0)", len);
	if (f->older > 0)
		util_strlcat(sql, " AND m.received_at <= :cutoff", len);
	/* rowid order: arrival order, read straight off the tables, no sort */
	util_strlcat(sql, " ORDER BY m.id, r.id", len);
}

/* qlist_list_msg - open one message entry */
static void
qlist_list_msg(FILE *out, sqlite3_stmt *st, int json, int first, time_t now)
{
	const char *sender = qlist_col(st, L_SENDER);
	time_t received = (time_t)sqlite3_column_int64(st, L_RECEIVED);
	int flags = sqlite3_column_int(st, L_FLAGS);
	char age[32], fl[64];

	if (json) {
		fprintf(out, "%s{\"id\":", first ? "\n" : ",\n");
		qlist_json(out, qlist_col(st, L_QID));
		fprintf(out, ",\"received_at\":%lld,\"age\":%lld,\"size\":%lld,\"sender\":",
		    (long long)received, (long long)(now - received),
		    (long long)sqlite3_column_int64(st, L_SIZE));
		qlist_json(out, sender ? sender : "");
		fprintf(out, ",\"held\":%s,\"flags\":%d,\"recipients\":[",
		    (flags & STORE_FLAG_HELD) ? "true" : "false", flags);
		return;
	}
	if (first)
		fprintf(out, "%-13s %5s %10s  %s\n", "QUEUEID", "AGE", "SIZE", "SENDER");
	fputs(first ? "" : "\n", out);
	qlist_text(out, qlist_col(st, L_QID));
	fprintf(out, "%c %5s %10lld  ", (flags & STORE_FLAG_HELD) ? '!' : ' ',
	    qlist_age((long)(now - received), age, sizeof(age)),
	    (long long)sqlite3_column_int64(st, L_SIZE));
	if (sender == NULL || sender[0] == '\0')
		fputs("<>", out);
	else
		qlist_text(out, sender);
	if (flags & ~STORE_FLAG_HELD)
		fprintf(out, "  [%s]", qlist_flags(flags & ~STORE_FLAG_HELD, fl, sizeof(fl)));
	fputc('\n', out);
}

/* qlist_list_rcpt - one recipient line of the current message */
static void
qlist_list_rcpt(FILE *out, sqlite3_stmt *st, int json, int first, time_t now)
{
	const char *status = qlist_col(st, L_STATUS), *reply = qlist_col(st, L_REPLY);
	int attempts = sqlite3_column_int(st, L_ATTEMPTS);
	time_t next = (time_t)sqlite3_column_int64(st, L_NEXT);
	int held = (sqlite3_column_int(st, L_FLAGS) & STORE_FLAG_HELD) != 0;
	char state[96];

	if (status == NULL)
		status = "";
	if (json) {
		fputs(first ? "{\"address\":" : ",{\"address\":", out);
		qlist_json(out, qlist_col(st, L_ADDR));
		fputs(",\"status\":", out);
		qlist_json(out, status);
		fprintf(out, ",\"attempts\":%d,\"next_attempt\":%lld,\"last_reply\":",
		    attempts, (long long)next);
		qlist_json(out, reply && reply[0] ? reply : NULL);
		fputc('}', out);
		return;
	}
	fputs("  ", out);
	qlist_text(out, qlist_col(st, L_ADDR));
	fprintf(out, "  %s", qlist_rcpt_state(status, attempts, next, now, held, state,
	    sizeof(state)));
	if (reply != NULL && reply[0] != '\0') {
		fputs("  ", out);
		qlist_text(out, reply);
	}
	fputc('\n', out);
}

/* qlist_list - see qlist.h */
int
qlist_list(const char *dbpath, const struct qlist_filter *f, FILE *out, char *err,
    size_t errlen)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[1024];
	time_t now = util_now();
	int64_t cur = 0;
	long long nmsg = 0, nrcpt = 0;
	int rc, json = f->json, in_msg = 0;

	if ((rc = qlist_open(dbpath, &db, err, errlen)) < 0)
		return -1;
	if (rc == 0) {
		qlist_list_sql(f, sql, sizeof(sql));
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
			qlist_sqlerr(db, dbpath, err, errlen);
			sqlite3_close(db);
			return -1;
		}
		qlist_bind_text(st, ":status", f->status);
		qlist_bind_text(st, ":from", f->from);
		qlist_bind_text(st, ":to", f->to);
		if ((rc = sqlite3_bind_parameter_index(st, ":held")) > 0)
			sqlite3_bind_int(st, rc, STORE_FLAG_HELD);
		if ((rc = sqlite3_bind_parameter_index(st, ":cutoff")) > 0)
			sqlite3_bind_int64(st, rc, (sqlite3_int64)now - f->older);
		if (json)
			fputc('[', out);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t mid = sqlite3_column_int64(st, L_MID);
			int has_rcpt = sqlite3_column_type(st, L_ADDR) != SQLITE_NULL;

			if (!in_msg || mid != cur) {
				if (in_msg && json)
					fputs("]}", out);
				qlist_list_msg(out, st, json, nmsg == 0, now);
				cur = mid;
				in_msg = 1;
				nmsg++;
				if (has_rcpt)
					qlist_list_rcpt(out, st, json, 1, now);
			} else if (has_rcpt) {
				qlist_list_rcpt(out, st, json, 0, now);
			}
			nrcpt += has_rcpt;
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			qlist_sqlerr(db, dbpath, err, errlen);
			sqlite3_close(db);
			if (json)
				fputs(in_msg ? "]}]\n" : "]\n", out);
			return -1;
		}
		sqlite3_close(db);
	} else if (json) {
		fputc('[', out);
	}
	if (json)
		fputs(in_msg ? "]}\n]\n" : "]\n", out);
	else
		fprintf(out, "%s%lld message%s, %lld recipient%s\n", nmsg ? "\n" : "",
		    nmsg, nmsg == 1 ? "" : "s", nrcpt, nrcpt == 1 ? "" : "s");
	if (ferror(out)) {
		util_seterr(err, errlen, "write error");
		return -1;
	}
	return 0;
}

/* ---- show ---- */

enum {
	S_ID, S_QID, S_SENDER, S_AUTH, S_CLIENT, S_HELO, S_RECEIVED, S_SIZE,
	S_FLAGS, S_GONE, S_DONE
};

/* qlist_headers - the header section of message rowid (up to the empty
 * line, at most QLIST_HDR_MAX bytes read through incremental blob I/O
 * so a large body is never loaded); malloc'd, length in *len, *cut set
 * when the section went on beyond what was read. NULL on error. */
static char *
qlist_headers(sqlite3 *db, int64_t rowid, size_t *len, int *cut)
{
	sqlite3_blob *blob;
	char *buf;
	size_t n, i;

	*cut = 0;
	if (sqlite3_blob_open(db, "main", "messages", "data", rowid, 0, &blob) != SQLITE_OK)
		return NULL;
	n = (size_t)sqlite3_blob_bytes(blob);
	if (n > QLIST_HDR_MAX)
		n = QLIST_HDR_MAX;
	buf = xmalloc(n + 1);
	if (sqlite3_blob_read(blob, buf, (int)n, 0) != SQLITE_OK) {
		sqlite3_blob_close(blob);
		free(buf);
		return NULL;
	}
	sqlite3_blob_close(blob);
	buf[n] = '\0';
	/* RFC 5322 2.1: the header section ends at the first empty line */
	if (n > 0 && (buf[0] == '\n' || (buf[0] == '\r' && n > 1 && buf[1] == '\n'))) {
		*len = 0;
		return buf;
	}
	for (i = 0; i < n; i++) {
		if (buf[i] == '\n' && i + 1 < n &&
		    (buf[i + 1] == '\n' || (buf[i + 1] == '\r' && i + 2 < n && buf[i + 2] == '\n'))) {
			*len = i + 1;
			return buf;
		}
	}
	*cut = n == QLIST_HDR_MAX;
	*len = n;
	return buf;
}

/* qlist_show_headers - each header line, escaped: indented text lines or
 * a JSON array of strings */
static void
qlist_show_headers(FILE *out, const char *h, size_t len, int json)
{
	size_t i = 0;
	int first = 1;

	while (i < len) {
		const char *nl = memchr(h + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - h) : len, k = end - i;

		if (k > 0 && h[i + k - 1] == '\r')
			k--;
		if (json) {
			fputs(first ? "" : ",", out);
			qlist_jsonn(out, h + i, k);
		} else {
			size_t ws = 0;

			/* a folded line (RFC 5322 2.2.3) shown indented, not as \x09 */
			while (ws < k && (h[i + ws] == ' ' || h[i + ws] == '\t'))
				ws++;
			fputs(ws ? "      " : "  ", out);
			qlist_esc(out, h + i + ws, k - ws);
			fputc('\n', out);
		}
		first = 0;
		i = end + 1;
	}
}

/* qlist_show_rcpts - the message's recipients */
static int
qlist_show_rcpts(sqlite3 *db, int64_t mid, int held, int json, FILE *out, time_t now)
{
	sqlite3_stmt *st;
	int rc, first = 1;

	if (sqlite3_prepare_v2(db, "SELECT address, status, attempts, next_attempt_at,"
	    " last_reply, upstream FROM recipients WHERE message_id = ?1 ORDER BY id",
	    -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, mid);
	fputs(json ? ",\"recipients\":[" : "recipients:\n", out);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *status = qlist_col(st, 1), *reply = qlist_col(st, 4);
		int attempts = sqlite3_column_int(st, 2);
		time_t next = (time_t)sqlite3_column_int64(st, 3);
		char state[96];

		if (status == NULL)
			status = "";
		if (json) {
			fputs(first ? "{\"address\":" : ",{\"address\":", out);
			qlist_json(out, qlist_col(st, 0));
			fputs(",\"status\":", out);
			qlist_json(out, status);
			fprintf(out, ",\"attempts\":%d,\"next_attempt\":%lld,\"upstream\":",
			    attempts, (long long)next);
			qlist_json(out, qlist_col(st, 5));
			fputs(",\"last_reply\":", out);
			qlist_json(out, reply && reply[0] ? reply : NULL);
			fputc('}', out);
		} else {
			fputs("  ", out);
			qlist_text(out, qlist_col(st, 0));
			fprintf(out, "  %s", qlist_rcpt_state(status, attempts, next, now, held,
			    state, sizeof(state)));
			if (reply != NULL && reply[0] != '\0') {
				fputs("  ", out);
				qlist_text(out, reply);
			}
			fputc('\n', out);
		}
		first = 0;
	}
	sqlite3_finalize(st);
	if (json)
		fputc(']', out);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* qlist_show_events - every delivery attempt, oldest first */
static int
qlist_show_events(sqlite3 *db, int64_t mid, int json, FILE *out)
{
	sqlite3_stmt *st;
	int rc, first = 1;

	fputs(json ? ",\"attempts\":[" : "attempts:\n", out);
	if ((rc = qlist_has_column(db, "events", "reply")) <= 0) {
		fputs(json ? "]" : "  (none recorded)\n", out);
		return rc;
	}
	if (sqlite3_prepare_v2(db, "SELECT e.at, r.address, e.upstream, e.relay, e.status,"
	    " e.reply FROM events e LEFT JOIN recipients r ON r.id = e.recipient_id"
	    " WHERE e.message_id = ?1 ORDER BY e.at, e.id", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, mid);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		time_t at = (time_t)sqlite3_column_int64(st, 0);
		char tbuf[64];

		if (json) {
			fprintf(out, "%s{\"at\":%lld,\"recipient\":", first ? "" : ",",
			    (long long)at);
			qlist_json(out, qlist_col(st, 1));
			fputs(",\"upstream\":", out);
			qlist_json(out, qlist_col(st, 2));
			fputs(",\"relay\":", out);
			qlist_json(out, qlist_col(st, 3));
			fputs(",\"status\":", out);
			qlist_json(out, qlist_col(st, 4));
			fputs(",\"reply\":", out);
			qlist_json(out, qlist_col(st, 5));
			fputc('}', out);
		} else {
			fprintf(out, "  %s  ", qlist_time(at, tbuf, sizeof(tbuf)));
			qlist_text(out, qlist_col(st, 1));
			fputs("  upstream=", out);
			qlist_text(out, qlist_col(st, 2) ? qlist_col(st, 2) : "-");
			fputs(" relay=", out);
			qlist_text(out, qlist_col(st, 3) ? qlist_col(st, 3) : "-");
			fputs("  ", out);
			qlist_text(out, qlist_col(st, 4));
			if (qlist_col(st, 5) != NULL && qlist_col(st, 5)[0] != '\0') {
				fputs("  ", out);
				qlist_text(out, qlist_col(st, 5));
			}
			fputc('\n', out);
		}
		first = 0;
	}
	sqlite3_finalize(st);
	if (json)
		fputc(']', out);
	else if (first)
		fputs("  (none yet)\n", out);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* qlist_show_envelope - the message row */
static void
qlist_show_envelope(FILE *out, sqlite3_stmt *st, int json, time_t now)
{
	time_t received = (time_t)sqlite3_column_int64(st, S_RECEIVED);
	int flags = sqlite3_column_int(st, S_FLAGS);
	const char *sender = qlist_col(st, S_SENDER);
	char tbuf[64], age[32], fl[64];

	if (sender == NULL)
		sender = "";
	if (json) {
		fputs("{\"id\":", out);
		qlist_json(out, qlist_col(st, S_QID));
		fputs(",\"sender\":", out);
		qlist_json(out, sender);
		fputs(",\"auth_user\":", out);
		qlist_json(out, qlist_col(st, S_AUTH));
		fputs(",\"client\":", out);
		qlist_json(out, qlist_col(st, S_CLIENT));
		fputs(",\"helo\":", out);
		qlist_json(out, qlist_col(st, S_HELO));
		fprintf(out, ",\"received_at\":%lld,\"age\":%lld,\"size\":%lld,\"flags\":%d,"
		    "\"held\":%s,\"done_at\":", (long long)received, (long long)(now - received),
		    (long long)sqlite3_column_int64(st, S_SIZE), flags,
		    (flags & STORE_FLAG_HELD) ? "true" : "false");
		if (sqlite3_column_type(st, S_DONE) == SQLITE_NULL)
			fputs("null", out);
		else
			fprintf(out, "%lld", (long long)sqlite3_column_int64(st, S_DONE));
		return;
	}
	fputs("id:        ", out);
	qlist_text(out, qlist_col(st, S_QID));
	fputs("\nsender:    ", out);
	qlist_text(out, sender[0] ? sender : "<>");
	fputs("\nauth user: ", out);
	qlist_text(out, qlist_col(st, S_AUTH) ? qlist_col(st, S_AUTH) : "-");
	fputs("\nclient:    ", out);
	qlist_text(out, qlist_col(st, S_CLIENT) ? qlist_col(st, S_CLIENT) : "-");
	if (qlist_col(st, S_HELO) != NULL) {
		fputs(" (helo ", out);
		qlist_text(out, qlist_col(st, S_HELO));
		fputc(')', out);
	}
	fprintf(out, "\nreceived:  %s (%s ago)\nsize:      %lld\nflags:     %s\n",
	    qlist_time(received, tbuf, sizeof(tbuf)),
	    qlist_age((long)(now - received), age, sizeof(age)),
	    (long long)sqlite3_column_int64(st, S_SIZE), qlist_flags(flags, fl, sizeof(fl)));
	if (sqlite3_column_type(st, S_DONE) != SQLITE_NULL)
		fprintf(out, "done:      %s\n", qlist_time((time_t)sqlite3_column_int64(st, S_DONE),
		    tbuf, sizeof(tbuf)));
}

/* qlist_show_message - everything about the message of row st */
static int
qlist_show_message(sqlite3 *db, sqlite3_stmt *st, int json, FILE *out, time_t now)
{
	int64_t mid = sqlite3_column_int64(st, S_ID);
	int held = (sqlite3_column_int(st, S_FLAGS) & STORE_FLAG_HELD) != 0;
	int gone = sqlite3_column_int(st, S_GONE), cut = 0;
	char *h = NULL;
	size_t hlen = 0;

	qlist_show_envelope(out, st, json, now);
	if (qlist_show_rcpts(db, mid, held, json, out, now) < 0)
		return -1;
	if (!gone && (h = qlist_headers(db, mid, &hlen, &cut)) == NULL)
		return -1;
	if (json) {
		fputs(",\"body\":", out);
		fputs(gone ? "\"gone\"" : "\"stored\"", out);
		fputs(",\"headers\":", out);
		if (gone) {
			fputs("null", out);
		} else {
			fputc('[', out);
			qlist_show_headers(out, h, hlen, 1);
			fputc(']', out);
		}
		fprintf(out, ",\"headers_truncated\":%s", cut ? "true" : "false");
	} else if (gone) {
		fputs("headers:\n  (the message itself is gone: delivery finished for every"
		    " recipient)\n", out);
	} else {
		fputs("headers:\n", out);
		qlist_show_headers(out, h, hlen, 0);
		if (cut)
			fprintf(out, "  (header section longer than %d bytes: cut here)\n",
			    QLIST_HDR_MAX);
	}
	free(h);
	if (qlist_show_events(db, mid, json, out) < 0)
		return -1;
	if (json)
		fputs("}\n", out);
	return 0;
}

/* qlist_show - see qlist.h */
int
qlist_show(const char *dbpath, const char *queue_id, int json, FILE *out, char *err,
    size_t errlen)
{
	char qid[QUEUE_ID_LEN + 1];
	sqlite3 *db;
	sqlite3_stmt *st;
	int rc;

	if (!util_queue_id_valid(queue_id))
		return 1;
	util_strlcpy(qid, queue_id, sizeof(qid));
	for (char *p = qid; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	if ((rc = qlist_open(dbpath, &db, err, errlen)) != 0)
		return rc;
	/* Ids are random: should one ever repeat, the newest message wins. */
	if (sqlite3_prepare_v2(db, "SELECT id, queue_id, sender, auth_user, client, helo,"
	    " received_at, size, flags, data IS NULL, done_at FROM messages"
	    " WHERE queue_id = ?1 ORDER BY id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK) {
		qlist_sqlerr(db, dbpath, err, errlen);
		sqlite3_close(db);
		return -1;
	}
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = qlist_show_message(db, st, json, out, util_now());
	else if (rc == SQLITE_DONE)
		rc = 1;
	else
		rc = -1;
	if (rc < 0)
		qlist_sqlerr(db, dbpath, err, errlen);
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (rc == 0 && ferror(out)) {
		util_seterr(err, errlen, "write error");
		return -1;
	}
	return rc;
}

/* ---- summary ---- */

struct qlist_row {
	char domain[ADDR_MAX + 1];          /* as stored: escaped when printed */
	long long total;
	long long age[QLIST_NBUCKET];
};

/* qlist_summary_sql - per domain of pending recipients: the count, then
 * one sum per age column (:now bound). The domain is what follows the
 * last '@' (rtrim strips the characters other than '@' off the end).
 * indexed: walk the pending recipients in message order and take
 * received_at from the partial index of the unfinished messages (both
 * made by store.c) instead of the messages rows, which hold the bodies,
 * in next-attempt order: with 10^6 messages that is seconds instead of
 * half a minute. A pending recipient's message is never done (done_at
 * is set when the last recipient becomes final), so the condition
 * changes no count; a queue.db without the indexes takes the plain
 * query. */
static void
qlist_summary_sql(char *sql, size_t len, int indexed)
{
	char part[128];
	int lo = 0;

	util_strlcpy(sql, "SELECT d, count(*)", len);
	for (int i = 0; i < QLIST_NBUCKET; i++) {
		int hi = i < QLIST_NBUCKET - 1 ? qlist_bucket_min[i] * 60 : 0;

		if (i == 0)
			snprintf(part, sizeof(part), ", sum(a < %d)", hi);
		else if (i < QLIST_NBUCKET - 1)
			snprintf(part, sizeof(part), ", sum(a >= %d AND a < %d)", lo, hi);
		else
			snprintf(part, sizeof(part), ", sum(a >= %d)", lo);
		util_strlcat(sql, part, len);
		lo = hi;
	}
	util_strlcat(sql, " FROM (SELECT lower(CASE WHEN instr(r.address, '@') = 0 THEN ''"
	    " ELSE substr(r.address, length(rtrim(r.address, replace(r.address, '@', ''))) + 1)"
	    " END) AS d, :now - m.received_at AS a"
	    " FROM recipients r", len);
	util_strlcat(sql, indexed ? " INDEXED BY recipients_pending" : "", len);
	util_strlcat(sql, " JOIN messages m", len);
	util_strlcat(sql, indexed ? " INDEXED BY messages_pending" : "", len);
	util_strlcat(sql, " ON m.id = r.message_id"
	    " WHERE r.status IN " QLIST_PENDING, len);
	util_strlcat(sql, indexed ? " AND m.done_at IS NULL" : "", len);
	util_strlcat(sql, ")"
	    " GROUP BY d ORDER BY count(*) DESC, d", len);
}

/* qlist_summary_row - one row of the table */
static void
qlist_summary_row(FILE *out, const char *name, const struct qlist_row *r, int json,
    int first)
{
	char esc[ADDR_MAX * 4 + 1];

	if (json) {
		fprintf(out, "%s{\"domain\":", first ? "" : ",\n");
		qlist_json(out, name);
		fprintf(out, ",\"total\":%lld,\"ages\":[", r->total);
		for (int i = 0; i < QLIST_NBUCKET; i++)
			fprintf(out, "%s%lld", i ? "," : "", r->age[i]);
		fputs("]}", out);
		return;
	}
	fprintf(out, "%32s %6lld", log_esc(name, esc, sizeof(esc)), r->total);
	for (int i = 0; i < QLIST_NBUCKET; i++)
		fprintf(out, " %5lld", r->age[i]);
	fputc('\n', out);
}

/* qlist_summary_print - the whole table: TOTAL, the top domains, other */
static void
qlist_summary_print(FILE *out, const struct qlist_row *top, size_t ntop,
    const struct qlist_row *total, const struct qlist_row *other, long long nother,
    int json)
{
	if (json) {
		fputs("{\"age_columns_minutes\":[", out);
		for (int i = 0; i < QLIST_NBUCKET - 1; i++)
			fprintf(out, "%s%d", i ? "," : "", qlist_bucket_min[i]);
		fputs(",null],\n\"rows\":[\n", out);
	} else {
		fprintf(out, "%32s %6s", "", "T");
		for (int i = 0; i < QLIST_NBUCKET - 1; i++)
			fprintf(out, " %5d", qlist_bucket_min[i]);
		fprintf(out, " %4d+\n", qlist_bucket_min[QLIST_NBUCKET - 2]);
	}
	qlist_summary_row(out, "TOTAL", total, json, 1);
	for (size_t i = 0; i < ntop; i++)
		qlist_summary_row(out, top[i].domain[0] ? top[i].domain : "(no domain)", &top[i],
		    json, 0);
	if (nother > 0)
		qlist_summary_row(out, "other", other, json, 0);
	if (json)
		fprintf(out, "\n],\n\"other_domains\":%lld}\n", nother);
}

/* qlist_summary - see qlist.h */
int
qlist_summary(const char *dbpath, int json, FILE *out, char *err, size_t errlen)
{
	struct qlist_row *top, total, other;
	size_t ntop = 0;
	long long nother = 0;
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[1024];
	int rc;

	memset(&total, 0, sizeof(total));
	memset(&other, 0, sizeof(other));
	top = xcalloc(QLIST_TOP_DOMAINS, sizeof(*top));
	if ((rc = qlist_open(dbpath, &db, err, errlen)) < 0) {
		free(top);
		return -1;
	}
	if (rc == 0) {
		qlist_summary_sql(sql, sizeof(sql), 1);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			qlist_summary_sql(sql, sizeof(sql), 0);
		else
			sqlite3_finalize(st);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
			qlist_sqlerr(db, dbpath, err, errlen);
			sqlite3_close(db);
			free(top);
			return -1;
		}
		sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":now"), util_now());
		/* Rows come biggest first: the first ones are the top domains. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct qlist_row *r = ntop < QLIST_TOP_DOMAINS ? &top[ntop++] : &other;
			const char *d = qlist_col(st, 0);

			if (r == &other)
				nother++;
			else
				util_strlcpy(r->domain, d ? d : "", sizeof(r->domain));
			r->total += sqlite3_column_int64(st, 1);
			total.total += sqlite3_column_int64(st, 1);
			for (int i = 0; i < QLIST_NBUCKET; i++) {
				r->age[i] += sqlite3_column_int64(st, 2 + i);
				total.age[i] += sqlite3_column_int64(st, 2 + i);
			}
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			qlist_sqlerr(db, dbpath, err, errlen);
			sqlite3_close(db);
			free(top);
			return -1;
		}
		sqlite3_close(db);
	}
	qlist_summary_print(out, top, ntop, &total, &other, nother, json);
	free(top);
	if (ferror(out)) {
		util_seterr(err, errlen, "write error");
		return -1;
	}
	return 0;
}
