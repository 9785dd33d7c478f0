/*
 * store - the durable queue in SQLite. See store.h.
 *
 * API: store_open / store_load_queue / store_integrity_check run
 * synchronously on the caller's thread before store_start; afterwards the
 * connection belongs to the store thread alone, and store_commit,
 * store_load_data and store_record only queue work items for it.
 *
 * The store thread sleeps on a condition variable. When it wakes it takes
 * every item waiting at that moment: all writes (commits and delivery
 * records) go into one BEGIN IMMEDIATE ... COMMIT, so a single WAL fsync
 * (synchronous=FULL) serves every session waiting at its final dot. If
 * that transaction fails, each item is retried in a transaction of its
 * own, so one bad message cannot fail its neighbours. Body reads run after
 * the writes, because the sessions waiting for their 250 matter more than
 * a delivery that starts a millisecond later. Every callback is posted to
 * the loop through loopq, after the transaction that decided it.
 *
 * Trust: all values come from the daemon itself but hold client text
 * (addresses, HELO); they reach SQL only as bound parameters and are never
 * logged here. After store_close the caller runs loopq_drain() so the
 * callbacks posted during shutdown are delivered.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "loopq.h"
#include "store_int.h"
#include "util.h"

#define STORE_SCHEMA_VERSION "1"
#define STORE_BUSY_MS 5000

#define STORE_IDX_RCPT_PENDING "recipients_pending"
#define STORE_IDX_MSG_PENDING "messages_pending"

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS meta("
    " key TEXT PRIMARY KEY,"
    " value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS messages("
    " id INTEGER PRIMARY KEY,"
    " queue_id TEXT NOT NULL,"
    " sender TEXT NOT NULL,"
    " auth_user TEXT,"
    " client TEXT,"
    " helo TEXT,"
    " received_at INTEGER NOT NULL,"
    " size INTEGER NOT NULL,"
    " flags INTEGER NOT NULL DEFAULT 0,"
    " body_8bit INTEGER NOT NULL DEFAULT 0,"
    " smtputf8 INTEGER NOT NULL DEFAULT 0,"
    " data BLOB,"
    " done_at INTEGER,"
    " ret INTEGER NOT NULL DEFAULT 0,"
    " envid TEXT);"
    "CREATE TABLE IF NOT EXISTS recipients("
    " id INTEGER PRIMARY KEY,"
    " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    " address TEXT NOT NULL,"
    " status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN"
    "  ('queued', 'deferred', 'sent', 'bounced', 'suppressed')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    " last_reply TEXT,"
    " upstream TEXT,"
    " notify INTEGER NOT NULL DEFAULT 0,"
    " orcpt TEXT,"
    " delay_notified INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS events("
    " id INTEGER PRIMARY KEY,"
    " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    " recipient_id INTEGER REFERENCES recipients(id) ON DELETE CASCADE,"
    " at INTEGER NOT NULL,"
    " upstream TEXT,"
    " relay TEXT,"
    " status TEXT NOT NULL,"
    " reply TEXT);"
    "CREATE TABLE IF NOT EXISTS counters("
    " upstream TEXT PRIMARY KEY,"
    " data BLOB NOT NULL,"
    " saved_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS suppressions("
    " address TEXT PRIMARY KEY,"
    " reason TEXT NOT NULL,"
    " reply TEXT,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS soft_failures("
    " address TEXT PRIMARY KEY,"
    " count INTEGER NOT NULL,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " reply TEXT);"
    "CREATE TABLE IF NOT EXISTS unsub_tokens("
    " token TEXT PRIMARY KEY,"
    " sender TEXT NOT NULL,"
    " rcpt TEXT NOT NULL,"
    " list TEXT NOT NULL,"
    " expires INTEGER NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS unsubscribes("
    " sender TEXT NOT NULL,"
    " rcpt TEXT NOT NULL,"
    " list TEXT NOT NULL,"
    " at INTEGER NOT NULL,"
    " PRIMARY KEY(sender, rcpt));"
    "CREATE INDEX IF NOT EXISTS recipients_due"
    " ON recipients(status, next_attempt_at);"
    "CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);"
    "CREATE INDEX IF NOT EXISTS events_message ON events(message_id);"
    "CREATE INDEX IF NOT EXISTS messages_queue_id ON messages(queue_id);"
    "INSERT OR IGNORE INTO meta(key, value)"
    " VALUES ('schema_version', '" STORE_SCHEMA_VERSION "');";

/* After store_migrate, since they name columns an older file lacks until
 * then. */
static const char store_schema_idx[] =
    /* The queue as the daemon loads it at start, without touching the
     * history or the bodies: pending recipients in message order, and
     * the envelope of the unfinished messages (a messages row holds its
     * body, one page or more each, so reading 10^6 of them costs 10^6
     * pages; these entries pack ~50 to a page). Both are partial, so
     * they stay as small as the queue, and new rows land at their end.
     * done_at is in the messages one although always NULL there: only
     * then does SQLite take it as covering for "done_at IS NULL". */
    "CREATE INDEX IF NOT EXISTS " STORE_IDX_RCPT_PENDING
    " ON recipients(message_id, id) WHERE status IN ('queued', 'deferred');"
    "CREATE INDEX IF NOT EXISTS " STORE_IDX_MSG_PENDING
    " ON messages(id, queue_id, sender, auth_user, received_at, size, flags,"
    " body_8bit, smtputf8, ret, envid, done_at) WHERE done_at IS NULL;";

static const char *const store_sql_text[SQL_COUNT] = {
	[SQL_BEGIN] = "BEGIN IMMEDIATE",
	[SQL_COMMIT] = "COMMIT",
	[SQL_ROLLBACK] = "ROLLBACK",
	[SQL_INS_MSG] = "INSERT INTO messages(queue_id, sender, auth_user,"
	    " client, helo, received_at, size, flags, body_8bit, smtputf8, data,"
	    " ret, envid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[SQL_INS_RCPT] = "INSERT INTO recipients(message_id, address, notify,"
	    " orcpt) VALUES (?, ?, ?, ?)",
	[SQL_UPD_RCPT] = "UPDATE recipients SET status = ?, attempts = ?,"
	    " next_attempt_at = ?, last_reply = ?, upstream = ?,"
	    " delay_notified = MAX(delay_notified, ?)"
	    " WHERE id = ? AND message_id = ?",
	[SQL_INS_EVENT] = "INSERT INTO events(message_id, recipient_id, at,"
	    " upstream, relay, status, reply) VALUES (?, ?, ?, ?, ?, ?, ?)",
	[SQL_SEL_DATA] = "SELECT data FROM messages WHERE id = ?",
	[SQL_MSG_DONE] = "UPDATE messages SET data = NULL, done_at = ?"
	    " WHERE id = ?",
	[SQL_PUT_COUNTERS] = "INSERT OR REPLACE INTO counters(upstream, data,"
	    " saved_at) VALUES (?, ?, ?)",
	[SQL_PUT_SUPPRESS] = STORE_SQL_SUPPRESS,
	[SQL_PUT_SOFT] = "INSERT OR REPLACE INTO soft_failures(address, count,"
	    " first_seen, last_seen, reply) VALUES (?, ?, ?, ?, ?)",
	[SQL_DEL_SOFT] = "DELETE FROM soft_failures WHERE address = ?",
};

/* Pending recipients with their message, in message order, read from
 * the two partial indexes (no sort, no body page: 10^6 messages load in
 * seconds, not a quarter of a minute). done_at is set together with
 * data = NULL (SQL_MSG_DONE), so "done_at IS NULL" is "still has its
 * body". INDEXED BY because the planner, without ANALYZE statistics,
 * prefers recipients_due and a sort; store_sql_queue_plain is for a file
 * without the indexes (opened read-only, never by this version). */
#define STORE_SQL_QUEUE(RIDX, MIDX) \
    "SELECT m.id, m.queue_id, m.sender, m.auth_user, m.received_at, m.size," \
    " m.flags, m.body_8bit, m.smtputf8," \
    " r.id, r.address, r.attempts, r.next_attempt_at," \
    " m.ret, m.envid, r.notify, r.orcpt, r.delay_notified" \
    " FROM recipients r " RIDX "JOIN messages m " MIDX "ON m.id = r.message_id" \
    " WHERE r.status IN ('queued', 'deferred')" \
    " AND m.done_at IS NULL" \
    " ORDER BY r.message_id, r.id"
static const char store_sql_queue[] = STORE_SQL_QUEUE(
    "INDEXED BY " STORE_IDX_RCPT_PENDING " ", "INDEXED BY " STORE_IDX_MSG_PENDING " ");
static const char store_sql_queue_plain[] = STORE_SQL_QUEUE("", "");

/* store_errclass - SQLite result code to a STORE_E* class */
static int
store_errclass(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return STORE_OK;
	case SQLITE_FULL:
		return STORE_EFULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_EBUSY;
	default:
		return STORE_EIO;
	}
}

/* store_create_file - create a missing database file with mode 0600 */
static int
store_create_file(const char *path, char *err, size_t errlen)
{
	char *dir, *slash;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* The directory entry must survive a power loss like the rows in
	 * it: sync the new file and its directory once. */
	if (fsync(fd) == -1) {
		snprintf(err, errlen, "%s: fsync: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd != -1) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
	return 0;
}

/* store_pragma - run a one-row query, copy its first column as text */
static int
store_pragma(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && (v = sqlite3_column_text(st, 0)) != NULL)
		util_strlcpy(out, (const char *)v, outlen);
	else
		out[0] = '\0';
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Columns added after schema version 1 first shipped (DSN support): a
 * queue.db made before them gets them with ALTER TABLE at open. The
 * version stays 1: an older outpost ignores the extra columns. */
static const struct {
	const char *table, *column, *decl;
} store_added[] = {
	{ "messages", "ret", "ret INTEGER NOT NULL DEFAULT 0" },
	{ "messages", "envid", "envid TEXT" },
	{ "recipients", "delay_notified", "delay_notified INTEGER NOT NULL DEFAULT 0" },
};

/* store_has_column - 1 if table has column (PRAGMA table_info), 0 if
 * not, -1 on error */
int
store_has_column(sqlite3 *db, const char *table, const char *column)
{
	char sql[128];
	sqlite3_stmt *st;
	int rc, found = 0;

	snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 1);
		if (name != NULL && strcmp((const char *)name, column) == 0)
			found = 1;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? found : -1;
}

/* store_migrate - add the columns an older queue.db lacks (inside the
 * schema transaction) */
static int
store_migrate(sqlite3 *db, char **msg)
{
	char sql[256];

	for (size_t i = 0; i < ARRAY_LEN(store_added); i++) {
		int has = store_has_column(db, store_added[i].table, store_added[i].column);

		if (has == -1)
			return -1;
		if (has)
			continue;
		snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s",
		    store_added[i].table, store_added[i].decl);
		if (sqlite3_exec(db, sql, NULL, NULL, msg) != SQLITE_OK)
			return -1;
		log_info("store: added column %s.%s", store_added[i].table,
		    store_added[i].column);
	}
	return 0;
}

/* store_setup - pragmas, their read-back check, schema and its version */
static int
store_setup(sqlite3 *db, int readonly, char *err, size_t errlen)
{
	static const char *const pragmas[] = {
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=FULL",
		"PRAGMA foreign_keys=ON",
	};
	char v[64], *msg = NULL;
	size_t i;

	sqlite3_busy_timeout(db, STORE_BUSY_MS);
	for (i = 0; i < ARRAY_LEN(pragmas); i++) {
		if (sqlite3_exec(db, pragmas[i], NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", pragmas[i],
			    msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			return -1;
		}
	}
	/* RELIABILITY Q2: a 250 promises the message survives a power loss;
	 * that holds only with WAL and synchronous=FULL, so check what SQLite
	 * actually applied rather than trusting the request. */
	if (store_pragma(db, "PRAGMA journal_mode", v, sizeof(v)) == -1 ||
	    strcasecmp(v, "wal") != 0) {
		snprintf(err, errlen, "journal_mode is '%s', not wal", v);
		return -1;
	}
	if (store_pragma(db, "PRAGMA synchronous", v, sizeof(v)) == -1 ||
	    strcmp(v, "2") != 0) {
		snprintf(err, errlen, "synchronous is '%s', not 2 (FULL)", v);
		return -1;
	}
	if (!readonly) {
		if (store_pragma(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
		    " ('messages', '" STORE_IDX_MSG_PENDING "')", v, sizeof(v)) == 0 &&
		    strcmp(v, "1") == 0)
			log_info("store: indexing the pending queue (once, after an upgrade:"
			    " about 10 s per million messages)");
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, store_schema, NULL, NULL, &msg) != SQLITE_OK ||
		    store_migrate(db, &msg) == -1 ||
		    sqlite3_exec(db, store_schema_idx, NULL, NULL, &msg) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
			snprintf(err, errlen, "schema: %s",
			    msg ? msg : sqlite3_errmsg(db));
			sqlite3_free(msg);
			if (!sqlite3_get_autocommit(db))
				sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	if (store_pragma(db, "SELECT value FROM meta WHERE key = 'schema_version'",
	    v, sizeof(v)) == -1) {
		snprintf(err, errlen, "no schema_version: not an outpost queue");
		return -1;
	}
	if (strcmp(v, STORE_SCHEMA_VERSION) != 0) {
		snprintf(err, errlen, "schema version %s, this outpost knows %s",
		    v, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

/* store_open - open or create the queue database and check its settings */
struct store *
store_open(const char *path, int readonly, char *err, size_t errlen)
{
	struct store *s;
	sqlite3 *db = NULL;
	char why[512];
	int flags;

	if (!readonly && store_create_file(path, err, errlen) == -1)
		return NULL;
	flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	if (store_setup(db, readonly, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", path, why);
		sqlite3_close(db);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->db = db;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	return s;
}

/* store_item_free - free an item and its copies (not delivered data) */
static void
store_item_free(struct store_item *it)
{
	size_t i;

	for (i = 0; i < it->nres; i++) {
		free((char *)it->res[i].status);
		free((char *)it->res[i].reply);
		free((char *)it->res[i].upstream);
		free((char *)it->res[i].relay);
	}
	free(it->res);
	free(it->name);
	free(it->blob);
	free(it->reason);
	free(it->reply);
	free(it);
}

/* store_deliver - on the loop: hand one result to its callback */
static void
store_deliver(void *arg)
{
	struct store_item *it = arg;

	if (it->op == STORE_OP_LOAD)
		it->data_cb(it->err, it->data, it->len, it->arg);
	else if (it->done)
		it->done(it->err, it->arg);
	store_item_free(it);
}

/* store_finish - post an item's callback to the loop (or just free it) */
static void
store_finish(struct store *s, struct store_item *it)
{
	if (it->op != STORE_OP_LOAD && it->done == NULL) {
		store_item_free(it);
		return;
	}
	loopq_post(s->q, store_deliver, it);
}

/* store_apply_commit - insert one message and its recipients */
int
store_apply_commit(struct store *s, struct store_msg *m)
{
	sqlite3_stmt *st = s->st[SQL_INS_MSG];
	sqlite3_stmt *rt = s->st[SQL_INS_RCPT];
	size_t i;

	sqlite3_reset(st);
	STORE_TRY(s, sqlite3_bind_text(st, 1, m->queue_id, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_text(st, 2, m->sender, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_text(st, 3, m->auth_user, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_text(st, 4, m->client, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_text(st, 5, m->helo, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_int64(st, 6, (sqlite3_int64)m->received_at), "bind");
	STORE_TRY(s, sqlite3_bind_int64(st, 7, (sqlite3_int64)m->len), "bind");
	STORE_TRY(s, sqlite3_bind_int(st, 8, m->flags), "bind");
	STORE_TRY(s, sqlite3_bind_int(st, 9, m->body_8bit), "bind");
	STORE_TRY(s, sqlite3_bind_int(st, 10, m->smtputf8), "bind");
	/* A NULL pointer would bind SQL NULL, which means "done": an empty
	 * body must still be an (empty) blob. */
	if (m->len == 0)
		STORE_TRY(s, sqlite3_bind_zeroblob(st, 11, 0), "bind data");
	else
		STORE_TRY(s, sqlite3_bind_blob64(st, 11, m->data,
		    (sqlite3_uint64)m->len, SQLITE_STATIC), "bind data");
	STORE_TRY(s, sqlite3_bind_int(st, 12, m->ret), "bind");
	STORE_TRY(s, sqlite3_bind_text(st, 13, m->envid, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_step(st), "insert message");
	sqlite3_reset(st);
	m->id = sqlite3_last_insert_rowid(s->db);

	for (i = 0; i < m->nrcpt; i++) {
		sqlite3_reset(rt);
		STORE_TRY(s, sqlite3_bind_int64(rt, 1, m->id), "bind");
		STORE_TRY(s, sqlite3_bind_text(rt, 2, m->rcpts[i], -1,
		    SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_int(rt, 3,
		    m->notify ? m->notify[i] : 0), "bind");
		STORE_TRY(s, sqlite3_bind_text(rt, 4,
		    m->orcpt ? m->orcpt[i] : NULL, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_step(rt), "insert recipient");
		sqlite3_reset(rt);
		if (m->rcpt_ids)
			m->rcpt_ids[i] = sqlite3_last_insert_rowid(s->db);
	}
	return SQLITE_OK;
}

/* store_apply_record - one delivery attempt's outcomes and history rows */
static int
store_apply_record(struct store *s, struct store_item *it)
{
	sqlite3_stmt *up = s->st[SQL_UPD_RCPT];
	sqlite3_stmt *ev = s->st[SQL_INS_EVENT];
	sqlite3_stmt *dn = s->st[SQL_MSG_DONE];
	const struct store_result *r;
	time_t now = util_now();
	size_t i;

	for (i = 0; i < it->nres; i++) {
		r = &it->res[i];
		sqlite3_reset(up);
		STORE_TRY(s, sqlite3_bind_text(up, 1, r->status, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_int(up, 2, r->attempts), "bind");
		STORE_TRY(s, sqlite3_bind_int64(up, 3, (sqlite3_int64)r->next_attempt), "bind");
		STORE_TRY(s, sqlite3_bind_text(up, 4, r->reply, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_text(up, 5, r->upstream, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_int(up, 6, r->delay_notified ? 1 : 0), "bind");
		STORE_TRY(s, sqlite3_bind_int64(up, 7, r->rcpt_id), "bind");
		STORE_TRY(s, sqlite3_bind_int64(up, 8, it->msg_id), "bind");
		STORE_TRY(s, sqlite3_step(up), "update recipient");
		sqlite3_reset(up);
		if (sqlite3_changes(s->db) == 0) {
			/* Deleted meanwhile (outpostctl queue delete): there
			 * is nothing left to record, which is no store error. */
			log_warn("store: message %" PRId64 " recipient %" PRId64
			    " no longer exists, outcome not recorded",
			    it->msg_id, r->rcpt_id);
			continue;
		}
		sqlite3_reset(ev);
		STORE_TRY(s, sqlite3_bind_int64(ev, 1, it->msg_id), "bind");
		STORE_TRY(s, sqlite3_bind_int64(ev, 2, r->rcpt_id), "bind");
		STORE_TRY(s, sqlite3_bind_int64(ev, 3, (sqlite3_int64)now), "bind");
		STORE_TRY(s, sqlite3_bind_text(ev, 4, r->upstream, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_text(ev, 5, r->relay, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_text(ev, 6, r->status, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_bind_text(ev, 7, r->reply, -1, SQLITE_STATIC), "bind");
		STORE_TRY(s, sqlite3_step(ev), "insert event");
		sqlite3_reset(ev);
	}
	if (it->msg_done) {
		sqlite3_reset(dn);
		STORE_TRY(s, sqlite3_bind_int64(dn, 1, (sqlite3_int64)now), "bind");
		STORE_TRY(s, sqlite3_bind_int64(dn, 2, it->msg_id), "bind");
		STORE_TRY(s, sqlite3_step(dn), "drop message data");
		sqlite3_reset(dn);
	}
	return SQLITE_OK;
}

/* store_apply_counters - replace one upstream's day counters */
static int
store_apply_counters(struct store *s, struct store_item *it)
{
	sqlite3_stmt *st = s->st[SQL_PUT_COUNTERS];

	sqlite3_reset(st);
	STORE_TRY(s, sqlite3_bind_text(st, 1, it->name, -1, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_blob64(st, 2, it->blob ? it->blob : "",
	    (sqlite3_uint64)it->bloblen, SQLITE_STATIC), "bind");
	STORE_TRY(s, sqlite3_bind_int64(st, 3, (sqlite3_int64)util_now()), "bind");
	STORE_TRY(s, sqlite3_step(st), "save counters");
	sqlite3_reset(st);
	return SQLITE_OK;
}

/* store_apply_admin - outpostctl queue hold/release (flags) or delete
 * (the message, its recipients and its history) */
static int
store_apply_admin(struct store *s, struct store_item *it)
{
	static const char *const del[] = {
		"DELETE FROM events WHERE message_id = ?",
		"DELETE FROM recipients WHERE message_id = ?",
		"DELETE FROM messages WHERE id = ?",
	};
	static const char upd[] = "UPDATE messages SET flags = (flags | ?) & ~? WHERE id = ?";
	sqlite3_stmt *st;
	size_t n = it->remove ? ARRAY_LEN(del) : 1;

	for (size_t i = 0; i < n; i++) {
		STORE_TRY(s, sqlite3_prepare_v2(s->db, it->remove ? del[i] : upd, -1, &st, NULL),
		    "prepare");
		if (it->remove) {
			sqlite3_bind_int64(st, 1, it->msg_id);
		} else {
			sqlite3_bind_int(st, 1, it->flags_set);
			sqlite3_bind_int(st, 2, it->flags_clear);
			sqlite3_bind_int64(st, 3, it->msg_id);
		}
		if (sqlite3_step(st) != SQLITE_DONE) {
			log_err("store: queue change: %s", sqlite3_errmsg(s->db));
			sqlite3_finalize(st);
			return SQLITE_ERROR;
		}
		sqlite3_finalize(st);
	}
	return SQLITE_OK;
}

/* store_txn - apply items in one transaction; *at_begin if BEGIN failed */
static int
store_txn(struct store *s, struct store_item **items, size_t n, int *at_begin)
{
	size_t i;
	int rc = SQLITE_OK;

	*at_begin = 0;
	sqlite3_reset(s->st[SQL_BEGIN]);
	rc = sqlite3_step(s->st[SQL_BEGIN]);
	sqlite3_reset(s->st[SQL_BEGIN]);
	if (rc != SQLITE_DONE) {
		log_err("store: begin: %s", sqlite3_errmsg(s->db));
		*at_begin = 1;
		return rc;
	}
	rc = SQLITE_OK;
	for (i = 0; i < n && rc == SQLITE_OK; i++) {
		if (items[i]->op == STORE_OP_COMMIT)
			rc = store_apply_commit(s, items[i]->msg);
		else if (items[i]->op == STORE_OP_COUNTERS)
			rc = store_apply_counters(s, items[i]);
		else if (items[i]->op == STORE_OP_EXEC)
			rc = items[i]->exec(s, s->db, items[i]->arg);
		else if (items[i]->op >= STORE_OP_SUPPRESS)
			rc = store_lists_apply(s, items[i]);
		else if (items[i]->op == STORE_OP_ADMIN)
			rc = store_apply_admin(s, items[i]);
		else
			rc = store_apply_record(s, items[i]);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s->st[SQL_COMMIT]);
		sqlite3_reset(s->st[SQL_COMMIT]);
		if (rc == SQLITE_DONE)
			return SQLITE_OK;
		log_err("store: commit: %s", sqlite3_errmsg(s->db));
	}
	/* Some errors (FULL, IOERR, BUSY) already rolled SQLite back. */
	sqlite3_reset(s->st[SQL_INS_MSG]);
	sqlite3_reset(s->st[SQL_INS_RCPT]);
	sqlite3_reset(s->st[SQL_UPD_RCPT]);
	sqlite3_reset(s->st[SQL_INS_EVENT]);
	sqlite3_reset(s->st[SQL_MSG_DONE]);
	sqlite3_reset(s->st[SQL_PUT_COUNTERS]);
	sqlite3_reset(s->st[SQL_PUT_SUPPRESS]);
	if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_step(s->st[SQL_ROLLBACK]);
		sqlite3_reset(s->st[SQL_ROLLBACK]);
	}
	return rc;
}

/* store_set_result - record an item's outcome, log a failed commit */
static void
store_set_result(struct store *s, struct store_item *it, int err)
{
	it->err = err;
	if (it->op != STORE_OP_COMMIT)
		return;
	if (err == STORE_OK) {
		pthread_mutex_lock(&s->lock);
		s->commits++;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	it->msg->id = 0;
	log_err("%s: store commit failed: %s", it->msg->queue_id,
	    err == STORE_EFULL ? "storage full" : err == STORE_EBUSY ?
	    "database locked" : "I/O or database error");
}

/* store_count_txn - one more write transaction made it to disk */
static void
store_count_txn(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	s->txns++;
	pthread_mutex_unlock(&s->lock);
}

/* store_write - group commit of items, retried one by one on failure */
static void
store_write(struct store *s, struct store_item **items, size_t n)
{
	size_t i, j;
	int rc, at_begin, err;

	if (n == 0)
		return;
	rc = store_txn(s, items, n, &at_begin);
	if (rc == SQLITE_OK) {
		store_count_txn(s);
		for (i = 0; i < n; i++)
			store_set_result(s, items[i], STORE_OK);
		return;
	}
	err = store_errclass(rc);
	if (n == 1 || at_begin) {
		/* Not one item's fault: the database refused to start. */
		for (i = 0; i < n; i++)
			store_set_result(s, items[i], err);
		return;
	}
	log_err("store: group commit of %zu items failed, retrying singly", n);
	for (i = 0; i < n; i++) {
		rc = store_txn(s, &items[i], 1, &at_begin);
		if (rc == SQLITE_OK)
			store_count_txn(s);
		store_set_result(s, items[i], store_errclass(rc));
		if (at_begin) {
			for (j = i + 1; j < n; j++)
				store_set_result(s, items[j], store_errclass(rc));
			return;
		}
	}
}

/* store_load - read one message body into a malloc'd copy */
static void
store_load(struct store *s, struct store_item *it)
{
	sqlite3_stmt *st = s->st[SQL_SEL_DATA];
	const void *p;
	int rc, n;

	sqlite3_reset(st);
	rc = sqlite3_bind_int64(st, 1, it->msg_id);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		p = sqlite3_column_blob(st, 0);
		n = sqlite3_column_bytes(st, 0);
		if (p == NULL && n > 0) {
			log_err("store: message %" PRId64 ": reading data: %s",
			    it->msg_id, sqlite3_errmsg(s->db));
			it->err = store_errclass(sqlite3_errcode(s->db));
			if (it->err == STORE_OK)
				it->err = STORE_EIO;
		} else {
			it->data = xmalloc((size_t)n + 1);
			if (n > 0)
				memcpy(it->data, p, (size_t)n);
			it->data[n] = '\0';
			it->len = (size_t)n;
		}
	} else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
		log_err("store: message %" PRId64 " has no data", it->msg_id);
		it->err = STORE_EIO;
	} else {
		log_err("store: message %" PRId64 ": reading data: %s",
		    it->msg_id, sqlite3_errmsg(s->db));
		it->err = store_errclass(rc);
	}
	sqlite3_reset(st);
}

/* store_batch - everything that was waiting: writes first, then reads */
static void
store_batch(struct store *s, struct store_item *list)
{
	struct store_item **w = NULL, **ld = NULL, **db, *it;
	size_t nw = 0, nld = 0, ndb = 0, n = 0, i;

	/* Sort the items before any callback is posted: from then on the
	 * loop may free them, next pointers included. */
	for (it = list; it; it = it->next)
		n++;
	w = xreallocarray(NULL, n, sizeof(*w));
	ld = xreallocarray(NULL, n, sizeof(*ld));
	db = xreallocarray(NULL, n, sizeof(*db));
	for (it = list; it; it = it->next) {
		if (it->op == STORE_OP_LOAD) {
			ld[nld++] = it;
			continue;
		}
		w[nw++] = it;
		if (!it->injected)
			db[ndb++] = it;
	}
	store_write(s, db, ndb);
	for (i = 0; i < nw; i++) {
		if (w[i]->injected)
			store_set_result(s, w[i], w[i]->err);
		store_finish(s, w[i]);
	}
	for (i = 0; i < nld; i++) {
		store_load(s, ld[i]);
		store_finish(s, ld[i]);
	}
	free(db);
	free(ld);
	free(w);
}

/* store_thread - take all waiting items, run them, until told to stop */
static void *
store_thread(void *arg)
{
	struct store *s = arg;
	struct store_item *list;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		list = s->head;
		s->head = s->tail = NULL;
		pthread_mutex_unlock(&s->lock);
		if (list == NULL)
			break;          /* stopping, and nothing left */
		store_batch(s, list);
	}
	return NULL;
}

/* store_finalize - drop the prepared statements */
static void
store_finalize(struct store *s)
{
	int i;

	for (i = 0; i < SQL_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
}

/* store_start - prepare the statements and start the store thread */
int
store_start(struct store *s, struct loopq *q)
{
	sigset_t all, old;
	int i, rc;

	for (i = 0; i < SQL_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, store_sql_text[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) != SQLITE_OK) {
			log_err("store: prepare: %s", sqlite3_errmsg(s->db));
			store_finalize(s);
			return -1;
		}
	}
	s->q = q;
	/* Signals belong to the loop thread (libevent's signal events). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, store_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_err("store: pthread_create: %s", strerror(rc));
		store_finalize(s);
		return -1;
	}
	s->running = 1;
	return 0;
}

/* store_close - let the thread finish its queue, then close everything */
void
store_close(struct store *s)
{
	struct store_item *it, *next;
	int rc;

	if (s == NULL)
		return;
	if (s->running) {
		pthread_mutex_lock(&s->lock);
		s->stopping = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->running = 0;
	}
	/* Work queued without a thread ever running cannot report back. */
	for (it = s->head; it; it = next) {
		next = it->next;
		log_warn("store: closed with unstarted work discarded");
		store_item_free(it);
	}
	store_finalize(s);
	if ((rc = sqlite3_close(s->db)) != SQLITE_OK)
		log_err("store: close: %s", sqlite3_errstr(rc));
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* store_enqueue - append an item for the store thread and wake it */
void
store_enqueue(struct store *s, struct store_item *it)
{
	pthread_mutex_lock(&s->lock);
	if ((it->op == STORE_OP_COMMIT || it->op == STORE_OP_EXEC) && s->fail_n > 0) {
		s->fail_n--;
		it->injected = 1;
		it->err = s->fail_err;
	}
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* store_commit - queue a message for the next group commit */
void
store_commit(struct store *s, struct store_msg *m, store_done_fn cb, void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	it->op = STORE_OP_COMMIT;
	it->msg = m;
	it->done = cb;
	it->arg = arg;
	store_enqueue(s, it);
}

/* store_exec - queue fn(arg) for the next group transaction */
void
store_exec(struct store *s, store_exec_fn fn, store_done_fn cb, void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	*it = (struct store_item){ .op = STORE_OP_EXEC, .exec = fn, .done = cb, .arg = arg };
	store_enqueue(s, it);
}

/* store_load_data - queue a body read for delivery */
void
store_load_data(struct store *s, int64_t msg_id, store_data_fn cb, void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	it->op = STORE_OP_LOAD;
	it->msg_id = msg_id;
	it->data_cb = cb;
	it->arg = arg;
	store_enqueue(s, it);
}

/* store_dup - strdup that keeps NULL */
char *
store_dup(const char *v)
{
	return v ? xstrdup(v) : NULL;
}

/* store_record - copy delivery outcomes now, write them later */
void
store_record(struct store *s, int64_t msg_id, const struct store_result *res,
    size_t n, int msg_done, store_done_fn cb, void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));
	size_t i;

	it->op = STORE_OP_RECORD;
	it->msg_id = msg_id;
	it->msg_done = msg_done;
	it->done = cb;
	it->arg = arg;
	if (n > 0) {
		it->res = xcalloc(n, sizeof(*it->res));
		it->nres = n;
		for (i = 0; i < n; i++) {
			it->res[i] = res[i];
			it->res[i].status = store_dup(res[i].status);
			it->res[i].reply = store_dup(res[i].reply);
			it->res[i].upstream = store_dup(res[i].upstream);
			it->res[i].relay = store_dup(res[i].relay);
		}
	}
	store_enqueue(s, it);
}

/* store_save_counters - copy the blob now, write it with the next batch */
void
store_save_counters(struct store *s, const char *upstream, const void *blob,
    size_t len, store_done_fn cb, void *arg)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	it->op = STORE_OP_COUNTERS;
	it->name = xstrdup(upstream);
	it->blob = xmalloc(len ? len : 1);
	if (len)
		memcpy(it->blob, blob, len);
	it->bloblen = len;
	it->done = cb;
	it->arg = arg;
	store_enqueue(s, it);
}

/* store_load_counters - one upstream's saved counters, synchronously */
int
store_load_counters(struct store *s, const char *upstream, void **blob, size_t *len)
{
	sqlite3_stmt *st;
	const void *p;
	int rc, n, r = -1;

	*blob = NULL;
	*len = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT data FROM counters WHERE upstream = ?",
	    -1, &st, NULL) != SQLITE_OK) {
		log_err("store: load counters: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	if (sqlite3_bind_text(st, 1, upstream, -1, SQLITE_STATIC) == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			r = 0;
		} else if (rc == SQLITE_ROW) {
			p = sqlite3_column_blob(st, 0);
			n = sqlite3_column_bytes(st, 0);
			if (p != NULL || n == 0) {
				*blob = xmalloc((size_t)n + 1);
				if (n > 0)
					memcpy(*blob, p, (size_t)n);
				((char *)*blob)[n] = '\0';
				*len = (size_t)n;
				r = 1;
			}
		}
	}
	if (r < 0)
		log_err("store: load counters: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return r;
}

/* store_admin - flag changes or removal of one message, next batch */
void
store_admin(struct store *s, int64_t msg_id, int flags_set, int flags_clear, int remove)
{
	struct store_item *it = xcalloc(1, sizeof(*it));

	it->op = STORE_OP_ADMIN;
	it->msg_id = msg_id;
	it->flags_set = flags_set;
	it->flags_clear = flags_clear;
	it->remove = remove;
	store_enqueue(s, it);
}

/* store_fail_next - fault injection: fail the next n commits with err */
void
store_fail_next(struct store *s, int n, int err)
{
	pthread_mutex_lock(&s->lock);
	s->fail_n = n;
	s->fail_err = err;
	pthread_mutex_unlock(&s->lock);
}

/* store_col_dup - copy a text column (NULL stays NULL) */
static char *
store_col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *v = sqlite3_column_text(st, col);

	return v ? xstrdup((const char *)v) : NULL;
}

/* store_qmsg_clear - free the strings of one loaded message */
static void
store_qmsg_clear(struct store_qmsg *m, struct store_qrcpt *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free((char *)r[i].addr);
		free((char *)r[i].orcpt);
	}
	free((char *)m->queue_id);
	free((char *)m->envid);
	free((char *)m->sender);
	free((char *)m->auth_user);
	memset(m, 0, sizeof(*m));
}

/* store_load_queue - one pass over the pending recipients, grouped */
int
store_load_queue(struct store *s, store_qmsg_fn cb, void *arg)
{
	struct store_qmsg m;
	struct store_qrcpt *r = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int64_t id;
	int rc;

	if (sqlite3_prepare_v2(s->db, store_sql_queue, -1, &st, NULL) != SQLITE_OK &&
	    sqlite3_prepare_v2(s->db, store_sql_queue_plain, -1, &st, NULL) != SQLITE_OK) {
		log_err("store: load queue: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	memset(&m, 0, sizeof(m));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (m.id != 0 && id != m.id) {
			m.rcpts = r;
			m.nrcpt = n;
			cb(&m, arg);
			store_qmsg_clear(&m, r, n);
			n = 0;
		}
		if (m.id == 0) {
			m.id = id;
			m.queue_id = store_col_dup(st, 1);
			m.sender = store_col_dup(st, 2);
			m.auth_user = store_col_dup(st, 3);
			m.received_at = (time_t)sqlite3_column_int64(st, 4);
			m.size = (size_t)sqlite3_column_int64(st, 5);
			m.flags = sqlite3_column_int(st, 6);
			m.body_8bit = sqlite3_column_int(st, 7);
			m.smtputf8 = sqlite3_column_int(st, 8);
			m.ret = sqlite3_column_int(st, 13);
			m.envid = store_col_dup(st, 14);
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			r = xreallocarray(r, cap, sizeof(*r));
		}
		r[n].id = sqlite3_column_int64(st, 9);
		r[n].addr = store_col_dup(st, 10);
		r[n].attempts = sqlite3_column_int(st, 11);
		r[n].next_attempt = (time_t)sqlite3_column_int64(st, 12);
		r[n].notify = sqlite3_column_int(st, 15);
		r[n].orcpt = store_col_dup(st, 16);
		r[n].delay_notified = sqlite3_column_int(st, 17);
		n++;
	}
	if (rc == SQLITE_DONE && m.id != 0) {
		m.rcpts = r;
		m.nrcpt = n;
		cb(&m, arg);
	}
	if (rc != SQLITE_DONE)
		log_err("store: load queue: %s", sqlite3_errmsg(s->db));
	store_qmsg_clear(&m, r, n);
	free(r);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* store_integrity_check - PRAGMA integrity_check, problems logged */
int
store_integrity_check(struct store *s)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc, rows = 0, good = 0;

	if (sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st,
	    NULL) != SQLITE_OK) {
		log_err("store: integrity_check: %s", sqlite3_errmsg(s->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = sqlite3_column_text(st, 0);
		if (rows++ == 0 && v && strcmp((const char *)v, "ok") == 0)
			good = 1;
		else
			log_err("store: integrity_check: %s",
			    v ? (const char *)v : "(null)");
	}
	if (rc != SQLITE_DONE)
		log_err("store: integrity_check: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE && good && rows == 1 ? 0 : -1;
}

/* store_stats - group-commit counters */
void
store_stats(struct store *s, uint64_t *txns, uint64_t *commits)
{
	pthread_mutex_lock(&s->lock);
	*txns = s->txns;
	*commits = s->commits;
	pthread_mutex_unlock(&s->lock);
}
