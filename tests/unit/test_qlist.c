/*
 * test_qlist - the read-only queue views against a real queue.db: the
 * schema comes from store_open, the rows from plain SQL inserts (every
 * state a message can be in, hostile sender/recipient/reply/header bytes),
 * then qlist_* write into a memory stream that is checked.
 *
 * Covers: list (text and JSON; every filter; LIKE wildcards taken
 * literally; held marked), show (envelope, headers up to the empty line,
 * attempts, a finished message whose body is gone, unknown and malformed
 * ids), summary (domains, age columns, top 20 + other), escaping of
 * control characters and quotes (also past one escaping step), a missing
 * queue.db, an empty file, a file that is not a database, and a
 * queue.db without the events table.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "qlist.h"
#include "store.h"
#include "util.h"
#include "tap.h"

static char dir[200];
static char dbpath[256];
static sqlite3 *db;
static time_t now;

/* exec - run SQL with ?1..?n bound from a NULL-terminated list of
 * strings (the inserts carry hostile bytes: never in the SQL text) */
static int64_t
exec(const char *sql, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	const char *s;
	int i = 1, rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		printf("# %s: %s\n", sql, sqlite3_errmsg(db));
		return -1;
	}
	va_start(ap, sql);
	while ((s = va_arg(ap, const char *)) != NULL)
		sqlite3_bind_text(st, i++, s, -1, SQLITE_TRANSIENT);
	va_end(ap);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		printf("# %s: %s\n", sql, sqlite3_errmsg(db));
		return -1;
	}
	return sqlite3_last_insert_rowid(db);
}

static char *
num(long long v)
{
	static char buf[8][32];
	static int k;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof(buf[k]), "%lld", v);
	return buf[k];
}

static int64_t
msg(const char *qid, const char *sender, long age, int flags, const char *data)
{
	return exec("INSERT INTO messages(queue_id, sender, auth_user, client, helo,"
	    " received_at, size, flags, data, done_at) VALUES (?1, ?2, 'alice',"
	    " '192.0.2.7', 'client.test', ?3, ?4, ?5, CAST(?6 AS BLOB),"
	    " CASE WHEN ?6 IS NULL THEN ?3 + 60 END)", qid, sender, num(now - age),
	    num(data ? (long long)strlen(data) : 1234), num(flags), data, NULL);
}

static int64_t
rcpt(int64_t mid, const char *addr, const char *status, int attempts, long next_in,
    const char *reply)
{
	return exec("INSERT INTO recipients(message_id, address, status, attempts,"
	    " next_attempt_at, last_reply, upstream) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'main')",
	    num(mid), addr, status, num(attempts), num(now + next_in), reply, NULL);
}

static void
event(int64_t mid, int64_t rid, long ago, const char *status, const char *reply)
{
	exec("INSERT INTO events(message_id, recipient_id, at, upstream, relay, status,"
	    " reply) VALUES (?1, ?2, ?3, 'main', 'mx.example.net[192.0.2.25]:25', ?4, ?5)",
	    num(mid), num(rid), num(now - ago), status, reply, NULL);
}

/* Each view into a malloc'd string; *rc its return value. */
static char *
list(const char *from, const char *to, const char *status, long older, int json, int *rc)
{
	struct qlist_filter f = { from, to, status, older, json };
	char *buf = NULL, err[256] = "";
	size_t len;
	FILE *out = open_memstream(&buf, &len);

	*rc = qlist_list(dbpath, &f, out, err, sizeof(err));
	fclose(out);
	if (*rc < 0)
		printf("# list: %s\n", err);
	return buf;
}

static char *
show(const char *id, int json, int *rc)
{
	char *buf = NULL, err[256] = "";
	size_t len;
	FILE *out = open_memstream(&buf, &len);

	*rc = qlist_show(dbpath, id, json, out, err, sizeof(err));
	fclose(out);
	if (*rc < 0)
		printf("# show: %s\n", err);
	return buf;
}

static char *
summary(int json, int *rc)
{
	char *buf = NULL, err[256] = "";
	size_t len;
	FILE *out = open_memstream(&buf, &len);

	*rc = qlist_summary(dbpath, json, out, err, sizeof(err));
	fclose(out);
	if (*rc < 0)
		printf("# summary: %s\n", err);
	return buf;
}

/* clean - no byte of the output is a control character but '\n' */
static int
clean(const char *s)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\n') || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int
count(const char *s, const char *what)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
		n++;
	return n;
}

#define has(s, what, ...) do { const char *s_ = (s), *w_ = (what); \
	if (!ok(s_ && strstr(s_, w_), __VA_ARGS__)) printf("#   no \"%s\" in:\n%s\n", w_, s_ ? s_ : "(null)"); } while (0)
#define hasnt(s, what, ...) do { const char *s_ = (s), *w_ = (what); \
	if (!ok(s_ && !strstr(s_, w_), __VA_ARGS__)) printf("#   \"%s\" in:\n%s\n", w_, s_ ? s_ : "(null)"); } while (0)

static void
test_missing(void)
{
	char *o;
	int rc;

	o = list(NULL, NULL, NULL, 0, 0, &rc);
	is_int(rc, 0, "missing queue.db: list succeeds");
	is_str(o, "0 messages, 0 recipients\n", "missing queue.db: empty list");
	free(o);
	o = list(NULL, NULL, NULL, 0, 1, &rc);
	is_str(o, "[]\n", "missing queue.db: empty JSON array");
	free(o);
	o = show("A00000000001", 0, &rc);
	is_int(rc, 1, "missing queue.db: show finds nothing");
	free(o);
	o = summary(1, &rc);
	is_int(rc, 0, "missing queue.db: summary succeeds");
	has(o, "{\"domain\":\"TOTAL\",\"total\":0,", "missing queue.db: summary total 0");
	free(o);

	/* an empty file: SQLite sees a database without tables */
	fclose(fopen(dbpath, "w"));
	o = list(NULL, NULL, NULL, 0, 0, &rc);
	is_int(rc, 0, "empty file: list succeeds");
	is_str(o, "0 messages, 0 recipients\n", "empty file: empty list");
	free(o);
	o = summary(0, &rc);
	is_int(rc, 0, "empty file: summary succeeds");
	free(o);
	unlink(dbpath);
}

static void
fill(void)
{
	struct store *s;
	char err[256];
	int64_t m1, m2, m3, m4, r;

	s = store_open(dbpath, 0, err, sizeof(err));
	ok(s != NULL, "store_open creates the schema: %s", s ? "" : err);
	store_close(s);
	ok(sqlite3_open(dbpath, &db) == SQLITE_OK, "raw handle");

	/* 1: two pending recipients, an hour old, three attempts recorded */
	m1 = msg("A00000000001", "Alice@Example.com", 3600, 0,
	    "Subject: hello\r\nFrom: <alice@example.com>\r\nX-Folded: a\r\n\tb\r\n"
	    "\r\nbody text\r\n");
	/* next in 4m30s: still shown as "4m" if the test runs slowly */
	r = rcpt(m1, "bob@example.net", "deferred", 3, 270, "451 4.3.0 try again later");
	rcpt(m1, "carol@Example.ORG", "queued", 0, 0, NULL);
	event(m1, r, 3000, "deferred", "451 4.3.0 first");
	event(m1, r, 2000, "deferred", "451 4.3.0 second");
	event(m1, r, 60, "deferred", "451 4.3.0 try again later");
	/* 2: a held bounce (<>), a minute old */
	m2 = msg("A00000000002", "", 60, STORE_FLAG_HELD | STORE_FLAG_DSN,
	    "From: MAILER-DAEMON\r\n\r\n");
	rcpt(m2, "dave@example.net", "deferred", 1, 600, "421 4.7.0 slow down");
	/* 3: hostile bytes everywhere, two days old */
	m3 = msg("A00000000003", "ev\"il\x1b[31m@x.test", 2 * 86400, 0,
	    "Subject: \x1b]0;pwned\x07 \"q\"\r\nX-Bin: \x01\x7f\xff\r\n\r\nbody");
	r = rcpt(m3, "x\r\nFAKE@evil.test", "deferred", 2, -5,
	    "451 \"quoted\" \x01 \\ back\r\nFAKE 250 ok");
	event(m3, r, 100, "deferred", "451 \"quoted\"\x1b[2J");
	/* 4: finished: one sent, one bounced, body dropped */
	m4 = msg("A00000000004", "alice@example.com", 7200, 0, NULL);
	r = rcpt(m4, "erin@example.net", "sent", 1, 0, "250 2.0.0 ok");
	event(m4, r, 7000, "sent", "250 2.0.0 ok");
	r = rcpt(m4, "gone@example.net", "bounced", 1, 0, "550 5.1.1 no such user");
	event(m4, r, 7000, "bounced", "550 5.1.1 no such user");
}

static void
test_list(void)
{
	char *o;
	int rc;

	o = list(NULL, NULL, NULL, 0, 0, &rc);
	is_int(rc, 0, "list");
	has(o, "QUEUEID", "list: header line");
	has(o, "A00000000001 ", "list: message 1");
	has(o, "A00000000002!", "list: the held message is marked");
	has(o, "A00000000003 ", "list: message 3");
	hasnt(o, "A00000000004", "list: a finished message is not listed");
	has(o, "Alice@Example.com\n", "list: sender");
	has(o, " 1h ", "list: age");
	has(o, "  <>  [dsn]\n", "list: null sender and flags");
	has(o, "  bob@example.net  deferred (3 attempts, next in 4m)  451 4.3.0 try again later\n",
	    "list: deferred recipient with attempts, next try and reply");
	has(o, "  carol@Example.ORG  queued\n", "list: queued recipient");
	has(o, "  dave@example.net  deferred (1 attempt, held)  421 4.7.0 slow down\n",
	    "list: recipient of a held message");
	has(o, "deferred (2 attempts, due now)", "list: overdue recipient");
	has(o, "\n3 messages, 4 recipients\n", "list: summary line");
	ok(clean(o), "list: no control characters in the text output");
	has(o, "ev\"il\\x1b[31m@x.test", "list: hostile sender escaped");
	has(o, "x\\x0d\\x0aFAKE@evil.test", "list: hostile recipient escaped");
	has(o, "451 \"quoted\" \\x01 \\x5c back\\x0d\\x0aFAKE 250 ok", "list: hostile reply escaped");
	free(o);

	o = list("ALICE@", NULL, NULL, 0, 0, &rc);
	ok(strstr(o, "A00000000001") && !strstr(o, "A00000000002") && !strstr(o, "A00000000003"),
	    "list --from: case-insensitive substring");
	free(o);
	o = list(NULL, "example.org", NULL, 0, 0, &rc);
	ok(strstr(o, "A00000000001") && !strstr(o, "A00000000002"),
	    "list --to: case-insensitive substring");
	has(o, "1 message, 2 recipients", "list --to: the whole message is shown");
	free(o);
	o = list("%", NULL, NULL, 0, 0, &rc);
	has(o, "0 messages", "list --from %%: no LIKE wildcard");
	free(o);
	o = list(NULL, "_", NULL, 0, 0, &rc);
	has(o, "0 messages", "list --to _: no LIKE wildcard");
	free(o);
	o = list(NULL, NULL, "queued", 0, 0, &rc);
	ok(strstr(o, "A00000000001") && count(o, "A0000000000") == 1, "list --status queued");
	free(o);
	o = list(NULL, NULL, "deferred", 0, 0, &rc);
	has(o, "3 messages", "list --status deferred");
	free(o);
	o = list(NULL, NULL, "held", 0, 0, &rc);
	ok(strstr(o, "A00000000002") && count(o, "A0000000000") == 1, "list --status held");
	free(o);
	o = list(NULL, NULL, "bounced", 0, 0, &rc);
	ok(strstr(o, "A00000000004") && count(o, "A0000000000") == 1, "list --status bounced");
	has(o, "  gone@example.net  bounced (1 attempt)  550 5.1.1 no such user\n",
	    "list --status bounced: the bounced recipient and its reply");
	has(o, "  erin@example.net  sent (1 attempt)", "list --status bounced: the others too");
	free(o);
	o = list(NULL, NULL, NULL, 1800, 0, &rc);
	ok(strstr(o, "A00000000001") && strstr(o, "A00000000003") && !strstr(o, "A00000000002"),
	    "list --older 30m");
	free(o);
	o = list("alice", "bob", "deferred", 1800, 0, &rc);
	ok(strstr(o, "A00000000001") && count(o, "A0000000000") == 1, "list: filters combined");
	free(o);

	o = list(NULL, NULL, NULL, 0, 1, &rc);
	is_int(rc, 0, "list --json");
	ok(o[0] == '[' && strcmp(o + strlen(o) - 2, "]\n") == 0, "list --json: an array");
	ok(clean(o), "list --json: no control characters");
	has(o, "{\"id\":\"A00000000001\",\"received_at\":", "list --json: id, received_at");
	has(o, "\"age\":360", "list --json: age (3600 and a few seconds)");
	has(o, "\"sender\":\"Alice@Example.com\",\"held\":false,\"flags\":0,\"recipients\":"
	    "[{\"address\":\"bob@example.net\",\"status\":\"deferred\",\"attempts\":3,"
	    "\"next_attempt\":", "list --json: message and first recipient");
	has(o, "\"last_reply\":\"451 4.3.0 try again later\"}", "list --json: last reply");
	has(o, "\"address\":\"carol@Example.ORG\",\"status\":\"queued\",\"attempts\":0,",
	    "list --json: second recipient");
	has(o, "\"last_reply\":null}]}", "list --json: no reply is null");
	has(o, "\"sender\":\"\",\"held\":true,\"flags\":9,", "list --json: held, flags");
	has(o, "\"sender\":\"ev\\\"il\\\\x1b[31m@x.test\"", "list --json: hostile sender escaped");
	has(o, "\"last_reply\":\"451 \\\"quoted\\\" \\\\x01 \\\\x5c back\\\\x0d\\\\x0aFAKE 250 ok\"",
	    "list --json: hostile reply escaped");
	is_int(count(o, "{\"id\""), 3, "list --json: three messages");
	free(o);
	o = list("nobody", NULL, NULL, 0, 1, &rc);
	is_str(o, "[]\n", "list --json: nothing matches");
	free(o);
}

static void
test_show(void)
{
	char *o;
	int rc;

	o = show("A00000000001", 0, &rc);
	is_int(rc, 0, "show");
	has(o, "id:        A00000000001\n", "show: id");
	has(o, "sender:    Alice@Example.com\n", "show: sender");
	has(o, "auth user: alice\n", "show: auth user");
	has(o, "client:    192.0.2.7 (helo client.test)\n", "show: client");
	has(o, "size:      ", "show: size");
	has(o, "flags:     -\n", "show: flags");
	has(o, "recipients:\n  bob@example.net  deferred (3 attempts, next in 4m)", "show: recipients");
	has(o, "headers:\n  Subject: hello\n  From: <alice@example.com>\n  X-Folded: a\n      b\n"
	    "attempts:\n",
	    "show: the header section, up to the empty line");
	hasnt(o, "body text", "show: not the body");
	is_int(count(o, "  bob@example.net  upstream=main relay=mx.example.net[192.0.2.25]:25"
	    "  deferred  451 4.3.0"), 3, "show: every attempt");
	ok(strstr(o, "first") < strstr(o, "second"), "show: attempts oldest first");
	free(o);

	o = show("a00000000002", 0, &rc);
	is_int(rc, 0, "show: lower-case id");
	has(o, "sender:    <>\n", "show: null sender");
	has(o, "flags:     held,dsn\n", "show: flags named");
	has(o, "attempts:\n  (none yet)\n", "show: no attempts");
	free(o);

	o = show("A00000000003", 0, &rc);
	ok(clean(o), "show: hostile message: no control characters");
	has(o, "  Subject: \\x1b]0;pwned\\x07 \"q\"\n", "show: hostile header escaped");
	has(o, "  X-Bin: \\x01\\x7f\\xff\n", "show: 8-bit header escaped");
	free(o);

	o = show("A00000000004", 0, &rc);
	has(o, "the message itself is gone", "show: finished message: body gone");
	has(o, "done:      ", "show: finished message: done time");
	has(o, "  gone@example.net  bounced (1 attempt)  550 5.1.1", "show: bounced recipient");
	has(o, "  bounced  550 5.1.1 no such user\n", "show: the bounce attempt");
	free(o);

	o = show("A00000000001", 1, &rc);
	is_int(rc, 0, "show --json");
	ok(clean(o), "show --json: no control characters");
	has(o, "{\"id\":\"A00000000001\",\"sender\":\"Alice@Example.com\",\"auth_user\":\"alice\","
	    "\"client\":\"192.0.2.7\",\"helo\":\"client.test\",\"received_at\":",
	    "show --json: envelope");
	has(o, "\"flags\":0,\"held\":false,\"done_at\":null,\"recipients\":[{\"address\":"
	    "\"bob@example.net\",\"status\":\"deferred\",\"attempts\":3,", "show --json: recipients");
	has(o, "\"body\":\"stored\",\"headers\":[\"Subject: hello\",\"From: <alice@example.com>\","
	    "\"X-Folded: a\",\"\\\\x09b\"],"
	    "\"headers_truncated\":false,\"attempts\":[{\"at\":", "show --json: headers");
	has(o, "\"recipient\":\"bob@example.net\",\"upstream\":\"main\",\"relay\":"
	    "\"mx.example.net[192.0.2.25]:25\",\"status\":\"deferred\",\"reply\":\"451 4.3.0 first\"}",
	    "show --json: attempts");
	ok(strcmp(o + strlen(o) - 3, "]}\n") == 0, "show --json: one object");
	free(o);
	o = show("A00000000003", 1, &rc);
	ok(clean(o), "show --json: hostile: no control characters");
	has(o, "\"Subject: \\\\x1b]0;pwned\\\\x07 \\\"q\\\"\"", "show --json: hostile header");
	free(o);
	o = show("A00000000004", 1, &rc);
	has(o, "\"body\":\"gone\",\"headers\":null", "show --json: body gone");
	free(o);

	o = show("A00000000009", 0, &rc);
	is_int(rc, 1, "show: unknown id");
	is_str(o, "", "show: unknown id prints nothing");
	free(o);
	o = show("A' OR 1=1 --", 0, &rc);
	is_int(rc, 1, "show: malformed id");
	free(o);
}

static void
test_summary(void)
{
	char *o;
	int rc;
	int64_t m;
	char addr[64];

	o = summary(0, &rc);
	is_int(rc, 0, "summary");
	has(o, "      T     5    10    20    40    80   160   320   640  1280 1280+\n",
	    "summary: age columns");
	has(o, "                           TOTAL      4     1     0     0     0     2     0     0"
	    "     0     0     1\n", "summary: total row");
	has(o, "                     example.net      2     1     0     0     0     1     0",
	    "summary: domains lower-cased, biggest first");
	has(o, "                     example.org      1     0", "summary: second domain");
	has(o, "                       evil.test      1     0     0     0     0     0     0     0"
	    "     0     0     1\n", "summary: domain after the last @, oldest column");
	ok(strstr(o, "example.net") < strstr(o, "example.org"), "summary: ordered by count");
	hasnt(o, "other", "summary: no other row below 20 domains");
	ok(clean(o), "summary: no control characters");
	free(o);

	o = summary(1, &rc);
	has(o, "{\"age_columns_minutes\":[5,10,20,40,80,160,320,640,1280,null],",
	    "summary --json: columns");
	has(o, "{\"domain\":\"TOTAL\",\"total\":4,\"ages\":[1,0,0,0,2,0,0,0,0,1]}",
	    "summary --json: total");
	has(o, "{\"domain\":\"example.net\",\"total\":2,\"ages\":[1,0,0,0,1,0,0,0,0,0]}",
	    "summary --json: a domain");
	has(o, "\"other_domains\":0}", "summary --json: no other domains");
	free(o);

	/* 25 more domains: the top 20 are named, the rest is "other" */
	m = msg("A00000000005", "bulk@example.com", 30 * 60, STORE_FLAG_BULK, "X: y\r\n\r\n");
	for (int i = 0; i < 25; i++) {
		snprintf(addr, sizeof(addr), "u%d@d%02d.test", i, i);
		rcpt(m, addr, "queued", 0, 0, NULL);
	}
	o = summary(0, &rc);
	has(o, "TOTAL     29", "summary: total with many domains");
	is_int(count(o, "\n"), 1 + 1 + 20 + 1, "summary: header, total, 20 domains, other");
	has(o, "                           other      8", "summary: the rest added up");
	free(o);
	o = summary(1, &rc);
	has(o, "\"other_domains\":8}", "summary --json: other domains counted");
	has(o, "{\"domain\":\"other\",\"total\":8,\"ages\":[", "summary --json: other row");
	free(o);
}

/* Text longer than one escaping step comes out whole, in both forms. */
static void
test_long_text(void)
{
	char reply[1001], *o;
	int rc;

	memset(reply, '\x01', sizeof(reply) - 1);
	reply[0] = '4';
	reply[sizeof(reply) - 1] = '\0';
	rcpt(msg("A00000000006", "long@example.com", 5, 0, "A: b\r\n\r\n"), "l@long.test",
	    "deferred", 1, 60, reply);
	o = list("long@", NULL, NULL, 0, 0, &rc);
	is_int(count(o, "\\x01"), 999, "long reply: every byte escaped in text");
	free(o);
	o = list("long@", NULL, NULL, 0, 1, &rc);
	is_int(count(o, "\\\\x01"), 999, "long reply: every byte escaped in JSON");
	ok(clean(o), "long reply: JSON clean");
	free(o);
}

/* Not a database: an error, not an empty queue. */
static void
test_junk(void)
{
	FILE *f = fopen(dbpath, "w");
	char *o;
	int rc;

	fputs("this is not an SQLite database, not even close; padding padding padding"
	    " padding padding padding padding padding padding padding\n", f);
	fclose(f);
	o = list(NULL, NULL, NULL, 0, 0, &rc);
	is_int(rc, -1, "junk file: list fails");
	free(o);
	o = summary(0, &rc);
	is_int(rc, -1, "junk file: summary fails");
	free(o);
	o = show("A00000000001", 0, &rc);
	is_int(rc, -1, "junk file: show fails");
	free(o);
	unlink(dbpath);
}

/* An older or partial queue.db: no events table at all. */
static void
test_old_schema(void)
{
	char *o;
	int rc;

	sqlite3_close(db);
	unlink(dbpath);
	ok(sqlite3_open(dbpath, &db) == SQLITE_OK, "old schema: raw handle");
	exec("CREATE TABLE messages(id INTEGER PRIMARY KEY, queue_id TEXT, sender TEXT,"
	    " auth_user TEXT, client TEXT, helo TEXT, received_at INTEGER, size INTEGER,"
	    " flags INTEGER, data BLOB, done_at INTEGER)", NULL);
	exec("CREATE TABLE recipients(id INTEGER PRIMARY KEY, message_id INTEGER,"
	    " address TEXT, status TEXT, attempts INTEGER, next_attempt_at INTEGER,"
	    " last_reply TEXT, upstream TEXT)", NULL);
	rcpt(msg("B00000000001", "a@b.test", 10, 0, "S: x\r\n\r\n"), "c@d.test", "queued", 0, 0,
	    NULL);
	o = list(NULL, NULL, NULL, 0, 0, &rc);
	ok(rc == 0 && strstr(o, "B00000000001"), "old schema: list");
	free(o);
	o = show("B00000000001", 0, &rc);
	ok(rc == 0 && strstr(o, "attempts:\n  (none recorded)\n"), "old schema: show without events");
	free(o);
	o = summary(0, &rc);
	ok(rc == 0 && strstr(o, "d.test      1"), "old schema: summary");
	free(o);
}

int
main(void)
{
	if (tap_tmpdir(dir, sizeof(dir), "test_qlist") == NULL)
		return 99;
	snprintf(dbpath, sizeof(dbpath), "%s/queue.db", dir);
	now = util_now();
	test_missing();
	fill();
	test_list();
	test_show();
	test_summary();
	test_long_text();
	test_old_schema();
	sqlite3_close(db);
	db = NULL;
	test_junk();
	sqlite3_close(db);
	unlink(dbpath);
	{
		char p[300];
		snprintf(p, sizeof(p), "%s-wal", dbpath);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", dbpath);
		unlink(p);
	}
	rmdir(dir);
	return done();
}
