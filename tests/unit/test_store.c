/*
 * test_store - the durable queue against a real SQLite file in a temporary
 * directory, with the real store thread and loopq on a libevent loop.
 *
 * Covers: group commit of many concurrent commits (fewer transactions than
 * messages), WAL/synchronous checks, byte-exact bodies (NUL, CR, LF),
 * delivery records and dropping done bodies, reloading only pending
 * recipients after a reopen, fault injection, a locked database, one bad
 * message inside a batch, hostile addresses kept verbatim, file mode and
 * integrity, and bulk mail's batch of copies with their token ledger rows
 * (all or nothing). A second raw SQLite handle looks at the file from
 * outside.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sqlite3.h>

#include "loopq.h"
#include "store.h"
#include "suppress.h"
#include "util.h"
#include "tap.h"

#define NMSG 200
#define NINJ 5

struct cmsg {
	struct store_msg m;
	const char *rcpts[3];
	int notify[3];
	int64_t rids[3];
	char data[128];
	int done, err;
};

struct res {
	int done, err;
	char *data;
	size_t len;
};

struct loaded {
	size_t msgs, rcpts;
	int ordered;
	int64_t last_id;
	int64_t want_id;            /* message B: one deferred recipient left */
	int b_seen, b_nrcpt, b_attempts;
	int64_t b_rcpt, b_next;
	int64_t done_id;            /* message A: every recipient final */
	int a_seen;
	int64_t evil_id;
	char evil_sender[128], evil_rcpt[128];
};

static struct event_base *base;
static int pending;
static sqlite3 *raw;
static const char *evil = "a'); DROP TABLE messages;--@x";

/* commit_cb - a store_commit finished */
static void
commit_cb(int err, void *arg)
{
	struct cmsg *c = arg;

	c->done = 1;
	c->err = err;
	pending--;
}

/* done_cb - a store_record finished */
static void
done_cb(int err, void *arg)
{
	struct res *r = arg;

	r->done = 1;
	r->err = err;
	pending--;
}

/* data_cb - a store_load_data finished */
static void
data_cb(int err, char *data, size_t len, void *arg)
{
	struct res *r = arg;

	r->done = 1;
	r->err = err;
	r->data = data;
	r->len = len;
	pending--;
}

/* tick - wake the loop now and then so run() can check its deadline */
static void
tick(evutil_socket_t fd, short what, void *arg)
{
}

/* run - run the loop until every outstanding callback arrived */
static int
run(void)
{
	int64_t deadline = util_mono_ms() + 60000;

	while (pending > 0 && util_mono_ms() < deadline)
		event_base_loop(base, EVLOOP_ONCE);
	return pending == 0;
}

/* fill - a message with 1..3 recipients and a body holding NUL and CRLF */
static void
fill(struct cmsg *c, int i)
{
	static const char *const addrs[3] = {
		"r0@example.net", "r1@example.org", "r2@example.com"
	};
	int k, n;

	memset(c, 0, sizeof(*c));
	util_queue_id(c->m.queue_id);
	c->m.sender = "sender@example.com";
	c->m.auth_user = i % 2 ? "alice" : NULL;
	c->m.client = "192.0.2.7";
	c->m.helo = "ws1.example.com";
	c->m.received_at = 1700000000 + i;
	c->m.flags = i % 4 == 0 ? STORE_FLAG_BULK : 0;
	n = snprintf(c->data, sizeof(c->data),
	    "Subject: %d\r\n\r\nline\r\n.\r\nbare\rcr\nlf", i);
	c->data[n] = '\0';          /* keep the NUL as a body byte */
	c->data[n + 1] = 'Z';
	c->m.data = c->data;
	c->m.len = (size_t)n + 2;
	for (k = 0; k < 1 + i % 3; k++) {
		c->rcpts[k] = addrs[k];
		c->notify[k] = k;
	}
	c->m.rcpts = c->rcpts;
	c->m.notify = c->notify;
	c->m.nrcpt = (size_t)(1 + i % 3);
	c->m.rcpt_ids = c->rids;
}

/* raw_int - one integer from the raw handle, with an int64 parameter */
static int64_t
raw_int(const char *sql, int64_t p)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(raw, sql, -1, &st, NULL) != SQLITE_OK)
		return -2;
	sqlite3_bind_int64(st, 1, p);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_type(st, 0) == SQLITE_NULL ? -1 :
		    sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* raw_text - one text value from the raw handle, with an int64 parameter */
static const char *
raw_text(const char *sql, int64_t p, char *buf, size_t len)
{
	sqlite3_stmt *st;
	const unsigned char *v;

	util_strlcpy(buf, "(none)", len);
	if (sqlite3_prepare_v2(raw, sql, -1, &st, NULL) != SQLITE_OK)
		return buf;
	sqlite3_bind_int64(st, 1, p);
	if (sqlite3_step(st) == SQLITE_ROW && (v = sqlite3_column_text(st, 0)))
		util_strlcpy(buf, (const char *)v, len);
	sqlite3_finalize(st);
	return buf;
}

/* What store_load_suppressions hands out. */
struct supp_seen {
	int n, bob, evil, expired;
	char bob_reply[128];
	int64_t bob_first, bob_expires;
};

/* supp_cb - collect the loaded suppressions */
static void
supp_cb(const struct store_suppression *e, void *arg)
{
	struct supp_seen *v = arg;

	v->n++;
	if (strcmp(e->address, "bob@example.com") == 0) {
		v->bob = 1;
		util_strlcpy(v->bob_reply, e->reply, sizeof(v->bob_reply));
		v->bob_first = e->first_seen;
		v->bob_expires = e->expires_at;
	}
	if (strcmp(e->address, "a'); drop table messages;--@x") == 0)
		v->evil = 1;
	if (strcmp(e->address, "old@example.org") == 0)
		v->expired = 1;
}

/* test_suppress_set - the in-memory set: case, expiry, refresh, bound */
static void
test_suppress_set(void)
{
	struct suppress *set = suppress_new(2);
	const struct suppress_entry *e;

	ok(suppress_find(set, "bob@example.com", 100) == NULL, "suppress: empty set");
	is_int(suppress_add(set, "Bob@Example.COM", "bad-mailbox", "550 5.1.1 no", 50, 0),
	    0, "suppress_add");
	e = suppress_find(set, "bob@EXAMPLE.com", 100);
	ok(e != NULL && strcmp(e->addr, "bob@example.com") == 0,
	    "suppress_find: case-insensitive, key lower-cased");
	ok(e && strcmp(e->reason, "bad-mailbox") == 0 && strcmp(e->reply, "550 5.1.1 no") == 0 &&
	    e->first_seen == 50, "suppress_find: reason, reply, first_seen");
	ok(suppress_find(set, "bobby@example.com", 100) == NULL, "suppress_find: whole address");
	is_int(suppress_add(set, "bob@example.com", "manual", "", 90, 200), 0,
	    "suppress_add: refresh");
	e = suppress_find(set, "bob@example.com", 100);
	ok(e && e->first_seen == 50 && e->expires_at == 200 && strcmp(e->reason, "manual") == 0,
	    "refresh keeps first_seen, takes expiry and reason");
	ok(suppress_find(set, "bob@example.com", 200) == NULL, "expired at expires_at");
	is_int(suppress_add(set, "c@example.com", "manual", NULL, 1, 0), 0, "second entry");
	is_int(suppress_add(set, "d@example.com", "manual", NULL, 1, 0), -1,
	    "beyond max: refused");
	is_int(suppress_count(set), 2, "suppress_count");
	suppress_free(set);

	set = suppress_new(100000);
	for (int i = 0; i < 5000; i++) {
		char a[64];

		snprintf(a, sizeof(a), "user%d@example.com", i);
		suppress_add(set, a, "bad-mailbox", "550", 1, 0);
	}
	ok(suppress_count(set) == 5000 && suppress_find(set, "USER4999@example.com", 2) &&
	    suppress_find(set, "user0@example.com", 2) && !suppress_find(set, "user5000@example.com", 2),
	    "5000 entries: the table grows and finds them all");
	is_int(suppress_remove(set, "User17@example.com"), 1, "suppress_remove: case-insensitive");
	is_int(suppress_remove(set, "user17@example.com"), 0, "suppress_remove: gone");
	ok(!suppress_find(set, "user17@example.com", 2) && suppress_count(set) == 4999,
	    "removed entry no longer found");
	suppress_free(set);

	/* soft failures: counted, a gap longer than the period restarts */
	set = suppress_new(10);
	e = suppress_soft_note(set, "Full@example.com", "452 4.2.2 full", 1000, 100);
	ok(e && e->count == 1 && e->first_seen == 1000 && e->last_seen == 1000,
	    "soft: first failure");
	e = suppress_soft_note(set, "full@example.com", "452 4.2.2 still full", 1090, 100);
	ok(e && e->count == 2 && e->first_seen == 1000 && e->last_seen == 1090 &&
	    strcmp(e->reply, "452 4.2.2 still full") == 0, "soft: second within the period");
	e = suppress_soft_note(set, "full@example.com", "452 4.2.2", 1190, 100);
	ok(e && e->count == 3 && e->first_seen == 1000, "soft: a gap of exactly the period continues");
	e = suppress_soft_note(set, "full@example.com", "452 4.2.2", 1291, 100);
	ok(e && e->count == 1 && e->first_seen == 1291, "soft: a longer gap starts a new run");
	suppress_free(set);
}

/* queue_cb - collect what store_load_queue hands out */
static void
queue_cb(const struct store_qmsg *m, void *arg)
{
	struct loaded *l = arg;
	size_t i;

	l->msgs++;
	l->rcpts += m->nrcpt;
	if (m->id <= l->last_id || m->nrcpt == 0)
		l->ordered = 0;
	for (i = 1; i < m->nrcpt; i++)
		if (m->rcpts[i].id <= m->rcpts[i - 1].id)
			l->ordered = 0;
	l->last_id = m->id;
	if (m->id == l->want_id) {
		l->b_seen = 1;
		l->b_nrcpt = (int)m->nrcpt;
		l->b_rcpt = m->rcpts[0].id;
		l->b_attempts = m->rcpts[0].attempts;
		l->b_next = m->rcpts[0].next_attempt;
	}
	if (m->id == l->done_id)
		l->a_seen = 1;
	if (m->id == l->evil_id) {
		util_strlcpy(l->evil_sender, m->sender, sizeof(l->evil_sender));
		util_strlcpy(l->evil_rcpt, m->rcpts[0].addr, sizeof(l->evil_rcpt));
	}
}

/* dsn_cb - keep what store_load_queue gives for the DSN fields */
struct dsn_loaded {
	int n, ret, notify, delay_notified;
	char envid[64], orcpt[64];
};

static void
dsn_cb(const struct store_qmsg *m, void *arg)
{
	struct dsn_loaded *d = arg;

	d->n++;
	d->ret = m->ret;
	util_strlcpy(d->envid, m->envid ? m->envid : "(null)", sizeof(d->envid));
	d->notify = m->rcpts[0].notify;
	util_strlcpy(d->orcpt, m->rcpts[0].orcpt ? m->rcpts[0].orcpt : "(null)",
	    sizeof(d->orcpt));
	d->delay_notified = m->rcpts[0].delay_notified;
}

/* has_column - PRAGMA table_info on a separate handle */
static int
has_column(const char *path, const char *table, const char *column)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[128];
	int found = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -1;
	snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			if (strcmp((const char *)sqlite3_column_text(st, 1), column) == 0)
				found = 1;
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return found;
}

/* index_covers - 1 if the query plan of sql on the file at path reads
 * through index idx (EXPLAIN QUERY PLAN mentions it), 0 if not, -1 on
 * error */
static int
index_covers(const char *path, const char *sql, const char *idx)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char q[1024];
	int found = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -1;
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		if (strstr((const char *)sqlite3_column_text(st, 3), idx) != NULL)
			found = 1;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return found;
}

/* test_dsn_fields - ret/envid/notify/orcpt/delay_notified round trip,
 * and a queue.db from before those columns gets them at open */
static void
test_dsn_fields(const char *dir, struct loopq *q)
{
	static const char old_schema[] =
	    "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	    "INSERT INTO meta VALUES ('schema_version', '1');"
	    "CREATE TABLE messages(id INTEGER PRIMARY KEY, queue_id TEXT NOT NULL,"
	    " sender TEXT NOT NULL, auth_user TEXT, client TEXT, helo TEXT,"
	    " received_at INTEGER NOT NULL, size INTEGER NOT NULL,"
	    " flags INTEGER NOT NULL DEFAULT 0, body_8bit INTEGER NOT NULL DEFAULT 0,"
	    " smtputf8 INTEGER NOT NULL DEFAULT 0, data BLOB, done_at INTEGER);"
	    "CREATE TABLE recipients(id INTEGER PRIMARY KEY,"
	    " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	    " address TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'queued',"
	    " attempts INTEGER NOT NULL DEFAULT 0,"
	    " next_attempt_at INTEGER NOT NULL DEFAULT 0, last_reply TEXT,"
	    " upstream TEXT, notify INTEGER NOT NULL DEFAULT 0, orcpt TEXT);"
	    "INSERT INTO messages(queue_id, sender, received_at, size, data)"
	    " VALUES ('OLD000000001', 'old@example.com', 1700000000, 1, x'41');"
	    "INSERT INTO recipients(message_id, address, notify, orcpt)"
	    " VALUES (1, 'r@example.net', 4, 'rfc822;r@example.net');";
	static struct cmsg c;
	static const char *orcpts[1] = { "rfc822;orig@example.net" };
	char path[160], side[200], err[512];
	struct dsn_loaded d;
	struct store_result r[1];
	struct res r1, r2;
	struct store *s;
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/old.db", dir);
	ok(sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_exec(db, old_schema, NULL, NULL, NULL) == SQLITE_OK,
	    "a version 1 queue.db without the DSN columns");
	sqlite3_close(db);
	is_int(has_column(path, "messages", "ret"), 0, "old file: no messages.ret");
	s = store_open(path, 0, err, sizeof(err));
	ok(s != NULL, "old file opens (%s)", s ? "ok" : err);
	if (s == NULL)
		return;
	is_int(has_column(path, "messages", "ret"), 1, "migration adds messages.ret");
	is_int(has_column(path, "messages", "envid"), 1, "migration adds messages.envid");
	is_int(has_column(path, "recipients", "delay_notified"), 1,
	    "migration adds recipients.delay_notified");
	/* The start-up load reads these partial indexes, not the rows with
	 * the bodies (issue 8: 10^6 deferred messages); an older file gets
	 * them at open. Their WHERE must stay what store_load_queue asks. */
	is_int(index_covers(path, "SELECT m.queue_id, m.envid FROM recipients r"
	    " INDEXED BY recipients_pending JOIN messages m INDEXED BY messages_pending"
	    " ON m.id = r.message_id WHERE r.status IN ('queued', 'deferred')"
	    " AND m.done_at IS NULL ORDER BY r.message_id, r.id", "COVERING INDEX messages_pending"),
	    1, "old file gets the pending-queue indexes, the messages one covering");
	memset(&d, 0, sizeof(d));
	is_int(store_load_queue(s, dsn_cb, &d), 0, "old file: queue loads");
	ok(d.n == 1 && d.ret == 0 && strcmp(d.envid, "(null)") == 0 && d.notify == 4 &&
	    strcmp(d.orcpt, "rfc822;r@example.net") == 0 && d.delay_notified == 0,
	    "old row: ret 0, no envid, its notify and orcpt, not delay-notified");
	store_close(s);
	s = store_open(path, 0, err, sizeof(err));
	ok(s != NULL, "migrated file opens again (%s)", s ? "ok" : err);
	if (s == NULL)
		return;

	/* new fields round trip */
	store_start(s, q);
	fill(&c, 1);
	c.m.nrcpt = 1;
	c.notify[0] = 0x8 | 0x4;
	c.m.orcpt = orcpts;
	c.m.ret = 2;
	c.m.envid = "env+id 1";
	pending++;
	store_commit(s, &c.m, commit_cb, &c);
	ok(run() && c.err == STORE_OK, "commit with ret, envid, notify, orcpt");
	r[0] = (struct store_result){ c.rids[0], "deferred", 1, 1700000100,
	    "451 later", "main", "r", 1 };
	memset(&r1, 0, sizeof(r1));
	pending++;
	store_record(s, c.m.id, r, 1, 0, done_cb, &r1);
	r[0].delay_notified = 0;
	r[0].attempts = 2;
	memset(&r2, 0, sizeof(r2));
	pending++;
	store_record(s, c.m.id, r, 1, 0, done_cb, &r2);
	ok(run() && r1.err == STORE_OK && r2.err == STORE_OK, "records with delay_notified");
	store_close(s);
	loopq_drain(q);
	s = store_open(path, 0, err, sizeof(err));
	ok(s != NULL, "reopen (%s)", s ? "ok" : err);
	if (s == NULL)
		return;
	memset(&d, 0, sizeof(d));
	is_int(store_load_queue(s, dsn_cb, &d), 0, "queue loads");
	is_int(d.n, 2, "both messages pending");
	is_int(d.ret, 2, "ret kept (HDRS)");
	is_str(d.envid, "env+id 1", "envid kept");
	is_int(d.notify, 0xc, "notify kept");
	is_str(d.orcpt, "rfc822;orig@example.net", "orcpt kept");
	is_int(d.delay_notified, 1, "delay_notified set, and a later 0 does not clear it");
	store_close(s);
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* count - one count(*) from the file at path, on a connection of its own */
static int64_t
count(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* test_batch - bulk mail's copies and token ledger rows: all or nothing */
static void
test_batch(const char *dir, struct loopq *q)
{
	static struct cmsg c[6];
	struct store_msg *m[3];
	struct store_unsub_token rows[3];
	struct res r1, r2, r3;
	char path[160], side[200], err[512];
	struct store *s;
	int i;

	snprintf(path, sizeof(path), "%s/batch.db", dir);
	if ((s = store_open(path, 0, err, sizeof(err))) == NULL || store_start(s, q) < 0) {
		ok(0, "batch.db opens: %s", err);
		return;
	}
	memset(rows, 0, sizeof(rows));
	for (i = 0; i < 3; i++) {
		fill(&c[i], i);
		c[i].m.nrcpt = 1;
		m[i] = &c[i].m;
		snprintf(rows[i].token, sizeof(rows[i].token), "tok%d", i);
		rows[i].sender = "news@example.com";
		rows[i].rcpt = c[i].rcpts[0];
		rows[i].list = "example.com";
		rows[i].expires = 1900000000;
	}
	memset(&r1, 0, sizeof(r1));
	pending++;
	store_commit_batch(s, m, 3, rows, 3, done_cb, &r1);
	ok(run() && r1.err == STORE_OK, "a batch of 3 copies and 3 ledger rows commits");
	ok(c[0].m.id > 0 && c[2].m.id > c[0].m.id && c[1].rids[0] > 0, "ids filled in");
	is_int(count(path, "SELECT count(*) FROM messages"), 3, "3 messages");
	is_int(count(path, "SELECT count(*) FROM unsub_tokens WHERE sender = 'news@example.com'"
	    " AND list = 'example.com' AND expires = 1900000000 AND created > 0"), 3,
	    "3 ledger rows with their fields");
	/* The third copy cannot be written (a recipient without address):
	 * nothing of the batch may stay, neither copies nor ledger rows. */
	for (i = 0; i < 3; i++) {
		fill(&c[3 + i], 10 + i);
		c[3 + i].m.nrcpt = 1;
		m[i] = &c[3 + i].m;
		snprintf(rows[i].token, sizeof(rows[i].token), "new%d", i);
	}
	c[5].rcpts[0] = NULL;
	memset(&r2, 0, sizeof(r2));
	pending++;
	store_commit_batch(s, m, 3, rows, 3, done_cb, &r2);
	ok(run() && r2.err != STORE_OK, "a batch with one bad copy fails (%d)", r2.err);
	is_int(c[3].m.id, 0, "... its good copies report no id");
	is_int(count(path, "SELECT count(*) FROM messages"), 3, "... and none of them is queued");
	is_int(count(path, "SELECT count(*) FROM recipients"), 3, "... nor their recipients");
	is_int(count(path, "SELECT count(*) FROM unsub_tokens WHERE token LIKE 'new%'"), 0,
	    "... nor their ledger rows");
	/* The ledger alone, rows copied at the call */
	snprintf(rows[0].token, sizeof(rows[0].token), "solo");
	memset(&r3, 0, sizeof(r3));
	pending++;
	store_unsub_tokens_add(s, rows, 1, done_cb, &r3);
	memset(rows, 0, sizeof(rows));
	ok(run() && r3.err == STORE_OK, "store_unsub_tokens_add");
	is_int(count(path, "SELECT count(*) FROM unsub_tokens WHERE token = 'solo' AND"
	    " rcpt = 'r0@example.net'"), 1, "its row, from the copies it made");
	store_close(s);
	loopq_drain(q);
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

int
main(void)
{
	static struct cmsg msgs[NMSG], inj[NINJ], bat[6], busy, evil_msg, empty;
	char dir[100], path[128], rb[128], junk[128];
	char err[512], buf[256];
	struct store *s, *ro;
	struct loopq *q;
	struct event *timer;
	struct timeval tv = { 0, 50000 };
	struct stat sb;
	struct res r1, r2, r3, ld, ld0, lde, ldd;
	struct store_result out[3];
	struct loaded l;
	uint64_t txns, commits, t0, c0;
	size_t exp_msgs = 0, exp_rcpts = 0;
	int i, good, ids_ok, rids_ok, errs;
	int64_t a_id, b_id;
	FILE *fp;

	if (tap_tmpdir(dir, sizeof(dir), "test_store") == NULL)
		return 99;
	snprintf(path, sizeof(path), "%s/queue.db", dir);
	snprintf(rb, sizeof(rb), "%s/rollback.db", dir);
	snprintf(junk, sizeof(junk), "%s/junk.db", dir);
	evthread_use_pthreads();
	base = event_base_new();
	q = loopq_new(base);
	timer = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(timer, &tv);

	/* open, settings, file mode */
	s = store_open(path, 0, err, sizeof(err));
	ok(s != NULL, "store_open creates the database (%s)", s ? "ok" : err);
	if (s == NULL)
		return done();
	memset(&sb, 0, sizeof(sb));
	(void)stat(path, &sb);
	is_int(sb.st_mode & 0777, 0600, "queue.db has mode 0600");
	ok(sqlite3_open_v2(path, &raw, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK,
	    "second raw handle opens");
	sqlite3_busy_timeout(raw, 5000);
	is_str(raw_text("PRAGMA journal_mode", 0, buf, sizeof(buf)), "wal",
	    "journal_mode is wal as seen from another connection");
	is_int(raw_int("SELECT value FROM meta WHERE key = 'schema_version'", 0),
	    1, "schema_version 1");
	ok(store_start(s, q) == 0, "store_start");

	/* 200 commits queued back to back: group commit */
	for (i = 0; i < NMSG; i++) {
		fill(&msgs[i], i);
		pending++;
		store_commit(s, &msgs[i].m, commit_cb, &msgs[i]);
	}
	ok(run(), "all %d commit callbacks arrived", NMSG);
	errs = ids_ok = rids_ok = 0;
	for (i = 0; i < NMSG; i++) {
		size_t k;

		errs += msgs[i].err != 0;
		ids_ok += msgs[i].m.id > 0 &&
		    (i == 0 || msgs[i].m.id != msgs[i - 1].m.id);
		for (k = 0, good = 1; k < msgs[i].m.nrcpt; k++)
			good &= msgs[i].rids[k] > 0;
		rids_ok += good;
		exp_msgs++;
		exp_rcpts += msgs[i].m.nrcpt;
	}
	is_int(errs, 0, "no commit failed");
	is_int(ids_ok, NMSG, "every message got its id");
	is_int(rids_ok, NMSG, "every recipient got its id");
	store_stats(s, &txns, &commits);
	is_int((long long)commits, NMSG, "commit counter");
	ok(txns < commits, "batched: %llu transactions for %llu commits",
	    (unsigned long long)txns, (unsigned long long)commits);
	printf("# group commit: %llu txns for %llu commits\n",
	    (unsigned long long)txns, (unsigned long long)commits);
	is_int(raw_int("SELECT count(*) FROM messages", 0), NMSG,
	    "rows visible to another connection");
	is_int(raw_int("SELECT notify FROM recipients WHERE id = ?",
	    msgs[2].rids[2]), 2, "notify stored per recipient");
	snprintf(buf, sizeof(buf), "%s-wal", path);
	memset(&sb, 0, sizeof(sb));
	(void)stat(buf, &sb);
	is_int(sb.st_mode & 0777, 0600, "queue.db-wal has mode 0600 too");

	/* body round trip, byte-exact */
	memset(&ld, 0, sizeof(ld));
	memset(&lde, 0, sizeof(lde));
	pending += 2;
	store_load_data(s, msgs[7].m.id, data_cb, &ld);
	store_load_data(s, 999999, data_cb, &lde);
	ok(run(), "load callbacks arrived");
	is_int(ld.err, STORE_OK, "load_data ok");
	ok(ld.len == msgs[7].m.len && ld.data &&
	    memcmp(ld.data, msgs[7].data, ld.len) == 0,
	    "body byte-exact with NUL, CR, LF (%zu bytes)", ld.len);
	is_int(lde.err, STORE_EIO, "load_data of an unknown id: STORE_EIO");
	ok(lde.data == NULL, "no data for an unknown id");
	free(ld.data);

	/* an empty body is an empty blob, not NULL */
	fill(&empty, 1);
	empty.m.len = 0;
	pending++;
	store_commit(s, &empty.m, commit_cb, &empty);
	ok(run() && empty.err == 0, "empty body commits");
	memset(&ld0, 0, sizeof(ld0));
	pending++;
	store_load_data(s, empty.m.id, data_cb, &ld0);
	ok(run() && ld0.err == STORE_OK && ld0.len == 0 && ld0.data,
	    "empty body loads back as 0 bytes");
	free(ld0.data);
	exp_msgs++;
	exp_rcpts += empty.m.nrcpt;

	/* delivery records: A finishes (2 rcpts), B keeps one deferred */
	a_id = msgs[1].m.id;            /* i = 1: 2 recipients */
	b_id = msgs[2].m.id;            /* i = 2: 3 recipients */
	memset(out, 0, sizeof(out));
	out[0] = (struct store_result){ msgs[1].rids[0], "sent", 1, 0,
	    "250 2.0.0 OK", "main", "smtp.example[192.0.2.1]:587", 0 };
	out[1] = (struct store_result){ msgs[1].rids[1], "deferred", 1,
	    1700000300, "451 4.3.0 later", "main", "smtp.example[192.0.2.1]:587", 0 };
	store_record(s, a_id, out, 2, 0, NULL, NULL);   /* no callback */
	memset(out, 0, sizeof(out));    /* the store copied everything */
	out[0] = (struct store_result){ msgs[1].rids[1], "bounced", 2, 0,
	    "550 5.1.1 no such user", "main", "smtp.example[192.0.2.1]:587", 0 };
	memset(&r1, 0, sizeof(r1));
	pending++;
	store_record(s, a_id, out, 1, 1, done_cb, &r1);
	ok(run(), "record callback arrived");
	is_int(r1.err, STORE_OK, "store_record ok");
	is_str(raw_text("SELECT status FROM recipients WHERE id = ?",
	    msgs[1].rids[0], buf, sizeof(buf)), "sent", "first rcpt sent");
	is_str(raw_text("SELECT status FROM recipients WHERE id = ?",
	    msgs[1].rids[1], buf, sizeof(buf)), "bounced", "second rcpt bounced");
	is_str(raw_text("SELECT last_reply FROM recipients WHERE id = ?",
	    msgs[1].rids[1], buf, sizeof(buf)), "550 5.1.1 no such user",
	    "last_reply stored");
	is_int(raw_int("SELECT attempts FROM recipients WHERE id = ?",
	    msgs[1].rids[1]), 2, "attempts stored");
	is_int(raw_int("SELECT count(*) FROM events WHERE message_id = ?", a_id),
	    3, "one events row per outcome");
	is_int(raw_int("SELECT data IS NULL FROM messages WHERE id = ?", a_id),
	    1, "done drops the body");
	ok(raw_int("SELECT done_at FROM messages WHERE id = ?", a_id) > 0,
	    "done_at set");
	memset(&ldd, 0, sizeof(ldd));
	pending++;
	store_load_data(s, a_id, data_cb, &ldd);
	ok(run() && ldd.err == STORE_EIO && ldd.data == NULL,
	    "load_data after done: STORE_EIO");
	exp_msgs--;
	exp_rcpts -= 2;

	memset(out, 0, sizeof(out));
	out[0] = (struct store_result){ msgs[2].rids[0], "sent", 1, 0,
	    "250 ok", "main", "r", 0 };
	out[1] = (struct store_result){ msgs[2].rids[1], "bounced", 1, 0,
	    "550 no", "main", "r", 0 };
	out[2] = (struct store_result){ msgs[2].rids[2], "deferred", 3,
	    1700009999, "421 4.7.0 slow down", "main", "r", 0 };
	memset(&r2, 0, sizeof(r2));
	pending++;
	store_record(s, b_id, out, 3, 0, done_cb, &r2);
	ok(run() && r2.err == STORE_OK, "partial record ok");
	is_int(raw_int("SELECT data IS NOT NULL FROM messages WHERE id = ?",
	    b_id), 1, "not done: body kept");
	exp_rcpts -= 2;

	/* a status outside the schema's set fails, and only that record */
	out[0] = (struct store_result){ msgs[3].rids[0], "lost", 1, 0,
	    "?", "main", "r", 0 };
	memset(&r3, 0, sizeof(r3));
	pending++;
	store_record(s, msgs[3].m.id, out, 1, 0, done_cb, &r3);
	ok(run() && r3.err == STORE_EIO, "invalid status: STORE_EIO");
	is_str(raw_text("SELECT status FROM recipients WHERE id = ?",
	    msgs[3].rids[0], buf, sizeof(buf)), "queued",
	    "recipient unchanged after a failed record");

	/* fault injection: exactly n fail, the next one succeeds */
	store_fail_next(s, 3, STORE_EFULL);
	for (i = 0; i < NINJ; i++) {
		fill(&inj[i], i);
		pending++;
		store_commit(s, &inj[i].m, commit_cb, &inj[i]);
	}
	ok(run(), "injected commits answered");
	for (i = 0, errs = 0; i < 3; i++)
		errs += inj[i].err == STORE_EFULL && inj[i].m.id == 0;
	is_int(errs, 3, "the next 3 commits got STORE_EFULL");
	ok(inj[3].err == STORE_OK && inj[4].err == STORE_OK && inj[3].m.id > 0,
	    "the commits after them succeed");
	{
		sqlite3_stmt *st;
		int n = -1;

		if (sqlite3_prepare_v2(raw, "SELECT count(*) FROM messages"
		    " WHERE queue_id IN (?, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
			for (i = 0; i < 3; i++)
				sqlite3_bind_text(st, i + 1, inj[i].m.queue_id,
				    -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				n = sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
		}
		is_int(n, 0, "failed commits left nothing in the database");
	}
	for (i = 3; i < NINJ; i++) {
		exp_msgs++;
		exp_rcpts += inj[i].m.nrcpt;
	}

	/* locked database: busy_timeout, then STORE_EBUSY */
	ok(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK,
	    "raw handle takes the write lock");
	fill(&busy, 9);
	pending++;
	store_commit(s, &busy.m, commit_cb, &busy);
	ok(run(), "commit under a held lock answers (after busy_timeout)");
	is_int(busy.err, STORE_EBUSY, "locked database: STORE_EBUSY");

	/* a lock released in time; then one bad message inside a batch */
	fill(&bat[0], 0);
	pending++;
	store_commit(s, &bat[0].m, commit_cb, &bat[0]);
	usleep(100000);                 /* the thread now waits on the lock */
	for (i = 1; i < 6; i++) {
		fill(&bat[i], i);
		if (i == 3)
			bat[i].m.sender = NULL; /* NOT NULL constraint */
		pending++;
		store_commit(s, &bat[i].m, commit_cb, &bat[i]);
	}
	usleep(50000);
	sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL);
	store_stats(s, &t0, &c0);
	ok(run(), "batch answered");
	is_int(bat[0].err, STORE_OK, "commit waiting on a released lock succeeds");
	is_int(bat[3].err, STORE_EIO, "the bad message fails: STORE_EIO");
	for (i = 1, good = 0; i < 6; i++)
		good += i != 3 && bat[i].err == STORE_OK && bat[i].m.id > 0;
	is_int(good, 4, "its neighbours in the batch still commit");
	for (i = 0; i < 6; i++) {
		if (i == 3)
			continue;
		exp_msgs++;
		exp_rcpts += bat[i].m.nrcpt;
	}

	/* hostile-looking addresses are only data */
	fill(&evil_msg, 0);
	evil_msg.m.sender = evil;
	evil_msg.rcpts[0] = evil;
	pending++;
	store_commit(s, &evil_msg.m, commit_cb, &evil_msg);
	ok(run() && evil_msg.err == STORE_OK, "injection-looking address commits");
	is_str(raw_text("SELECT address FROM recipients WHERE id = ?",
	    evil_msg.rids[0], buf, sizeof(buf)), evil, "address stored verbatim");
	is_str(raw_text("SELECT sender FROM messages WHERE id = ?",
	    evil_msg.m.id, buf, sizeof(buf)), evil, "sender stored verbatim");
	ok(raw_int("SELECT count(*) FROM messages", 0) > NMSG,
	    "messages table still there");
	exp_msgs++;
	exp_rcpts += evil_msg.m.nrcpt;

	store_stats(s, &txns, &commits);
	printf("# totals: %llu txns for %llu commits\n",
	    (unsigned long long)txns, (unsigned long long)commits);

	/* day counters: replaced per upstream, binary-safe, names bound */
	{
		static struct res c1, c2, c3;
		static const char bin[] = "slot\0 1 2\n\xff";

		pending += 3;
		store_save_counters(s, "main", "first", 5, done_cb, &c1);
		store_save_counters(s, "main", "second version", 14, done_cb, &c2);
		store_save_counters(s, evil, bin, sizeof(bin), done_cb, &c3);
		ok(run() && c1.err == STORE_OK && c2.err == STORE_OK && c3.err == STORE_OK,
		    "store_save_counters: three saves done");
		is_int(raw_int("SELECT count(*) FROM counters", 0), 2,
		    "counters: one row per upstream");
		ok(raw_int("SELECT count(*) FROM messages", 0) > NMSG,
		    "counters: hostile upstream name harmless");
		store_save_counters(s, "empty", NULL, 0, NULL, NULL);
	}

	/* suppressions: upsert through the thread, lower-cased, bound */
	{
		static struct res b1, b2;

		store_suppress_add(s, "Bob@Example.COM", "bad-mailbox",
		    "550 5.1.1 user unknown", 0);
		store_suppress_add(s, evil, "bad-mailbox", "550 5.1.1 x", 0);
		store_suppress_add(s, "old@example.org", "manual", NULL, 1);
		pending++;
		store_save_counters(s, "barrier", "x", 1, done_cb, &b1);
		ok(run() && b1.err == STORE_OK, "store_suppress_add: written");
		is_int(raw_int("SELECT count(*) FROM suppressions", 0), 3,
		    "suppressions: three rows");
		is_int(raw_int("SELECT count(*) FROM suppressions WHERE address ="
		    " 'bob@example.com' AND first_seen = last_seen", 0), 1,
		    "suppressions: address lower-cased, first_seen = last_seen");
		ok(raw_int("SELECT count(*) FROM messages", 0) > NMSG,
		    "suppressions: hostile address harmless");
		sqlite3_exec(raw, "UPDATE suppressions SET first_seen = 1000,"
		    " last_seen = 1000 WHERE address = 'bob@example.com'", NULL, NULL, NULL);
		store_suppress_add(s, "BOB@example.com", "bad-mailbox",
		    "550 5.1.1 still unknown", 4000000000);
		pending++;
		store_save_counters(s, "barrier", "y", 1, done_cb, &b2);
		ok(run() && b2.err == STORE_OK, "store_suppress_add: upsert written");
		is_int(raw_int("SELECT count(*) FROM suppressions WHERE address ="
		    " 'bob@example.com' AND first_seen = 1000 AND last_seen > 1000"
		    " AND expires_at = 4000000000 AND reply = '550 5.1.1 still unknown'", 0), 1,
		    "upsert keeps first_seen, updates last_seen, reply, expires_at");
	}

	/* close with work still queued: it is finished, callbacks posted */
	memset(&r3, 0, sizeof(r3));
	out[0] = (struct store_result){ msgs[4].rids[0], "deferred", 1,
	    1700000500, "450 try later", "main", "r", 0 };
	pending++;
	store_record(s, msgs[4].m.id, out, 1, 0, done_cb, &r3);
	store_close(s);
	loopq_drain(q);
	ok(r3.done && r3.err == STORE_OK, "store_close finishes queued work");
	is_int(raw_int("SELECT attempts FROM recipients WHERE id = ?",
	    msgs[4].rids[0]), 1, "and it reached the disk");

	/* reopen: integrity, then only pending recipients come back */
	s = store_open(path, 0, err, sizeof(err));
	ok(s != NULL, "reopen (%s)", s ? "ok" : err);
	if (s == NULL)
		return done();
	is_int(store_integrity_check(s), 0, "integrity_check ok");
	{
		static const char bin[] = "slot\0 1 2\n\xff";
		void *blob = (void *)1;
		size_t blen = 99;

		is_int(store_load_counters(s, "main", &blob, &blen), 1,
		    "store_load_counters: found after a reopen");
		ok(blen == 14 && blob && memcmp(blob, "second version", 14) == 0 &&
		    ((char *)blob)[14] == '\0', "store_load_counters: the last save, NUL-terminated");
		free(blob);
		is_int(store_load_counters(s, evil, &blob, &blen), 1,
		    "store_load_counters: hostile name");
		ok(blen == sizeof(bin) && blob && memcmp(blob, bin, blen) == 0,
		    "store_load_counters: binary blob intact");
		free(blob);
		is_int(store_load_counters(s, "empty", &blob, &blen), 1,
		    "store_load_counters: empty blob saved");
		ok(blen == 0 && blob != NULL, "store_load_counters: empty blob loads empty");
		free(blob);
		is_int(store_load_counters(s, "nobody", &blob, &blen), 0,
		    "store_load_counters: 0 for an upstream never saved");
		ok(blob == NULL && blen == 0, "store_load_counters: nothing returned");
	}
	{
		struct supp_seen v;

		memset(&v, 0, sizeof(v));
		is_int(store_load_suppressions(s, supp_cb, &v), 0, "store_load_suppressions");
		ok(v.n == 2 && v.bob && v.evil && !v.expired,
		    "loaded: two unexpired, the expired one skipped");
		ok(v.bob_first == 1000 && v.bob_expires == 4000000000 &&
		    strcmp(v.bob_reply, "550 5.1.1 still unknown") == 0,
		    "loaded: first_seen, expiry, reply");
		is_int(store_suppress_remove(s, "BOB@Example.com"), 1,
		    "store_suppress_remove: removed (any case)");
		is_int(store_suppress_remove(s, "bob@example.com"), 0,
		    "store_suppress_remove: 0 when absent");
		is_int(store_suppress_put(s, "Carol@Example.com", "manual", "", 0), 0,
		    "store_suppress_put");
		memset(&v, 0, sizeof(v));
		store_load_suppressions(s, supp_cb, &v);
		ok(v.n == 2 && !v.bob, "after remove and put: two rows, bob gone");
	}
	memset(&l, 0, sizeof(l));
	l.ordered = 1;
	l.want_id = b_id;
	l.done_id = a_id;
	l.evil_id = evil_msg.m.id;
	is_int(store_load_queue(s, queue_cb, &l), 0, "store_load_queue");
	is_int((long long)l.msgs, (long long)exp_msgs, "pending messages");
	is_int((long long)l.rcpts, (long long)exp_rcpts, "pending recipients");
	ok(l.ordered, "messages and recipients in id order");
	ok(!l.a_seen, "a done message is not loaded");
	ok(l.b_seen && l.b_nrcpt == 1 && l.b_rcpt == msgs[2].rids[2],
	    "only the deferred recipient of a partly sent message");
	is_int(l.b_attempts, 3, "its attempts");
	is_int(l.b_next, 1700009999, "its next attempt");
	is_str(l.evil_sender, evil, "hostile sender loads back verbatim");
	is_str(l.evil_rcpt, evil, "hostile recipient loads back verbatim");
	store_close(s);

	/* readonly open for outpostctl */
	ro = store_open(path, 1, err, sizeof(err));
	ok(ro != NULL, "readonly open (%s)", ro ? "ok" : err);
	if (ro) {
		memset(&l, 0, sizeof(l));
		l.ordered = 1;
		ok(store_load_queue(ro, queue_cb, &l) == 0 && l.msgs == exp_msgs,
		    "readonly handle lists the queue");
		store_close(ro);
	}

	/* a rollback-journal database fails the journal_mode check */
	{
		sqlite3 *db;

		sqlite3_open(rb, &db);
		sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	ro = store_open(rb, 1, err, sizeof(err));
	ok(ro == NULL && strstr(err, "journal_mode") != NULL,
	    "non-WAL database refused: %s", err);
	store_close(ro);
	fp = fopen(junk, "w");
	if (fp) {
		fputs("this is not a database, just some text\n", fp);
		fclose(fp);
	}
	ok(store_open(junk, 0, err, sizeof(err)) == NULL,
	    "garbage file refused: %s", err);

	test_dsn_fields(dir, q);
	test_batch(dir, q);
	test_suppress_set();

	sqlite3_close(raw);
	loopq_drain(q);
	loopq_free(q);
	event_free(timer);
	event_base_free(base);
	libevent_global_shutdown();
	snprintf(buf, sizeof(buf), "%s-wal", path);
	unlink(buf);
	snprintf(buf, sizeof(buf), "%s-shm", path);
	unlink(buf);
	unlink(path);
	unlink(rb);
	unlink(junk);
	if (rmdir(dir) == -1)
		printf("# rmdir %s: %s\n", dir, strerror(errno));
	return done();
}
