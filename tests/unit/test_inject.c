/*
 * test_inject - inject and alert with everything real around them: the
 * SQLite store in a temporary directory, a configuration read by
 * conf_load with a Maildir default upstream and an RSA DKIM key made by
 * dkim_key_generate for the server's hostname, the signer pool and the
 * scheduler. The loop runs under a deadline in every wait; log lines are
 * caught by pointing stderr at a file.
 *
 * Covers: a DSN queued from <> with its flags, DKIM-signed (d= the From:
 * domain) in front of outpost's Received:, delivered to the Maildir, the
 * log line and the done callback's queue id; an unknown From: domain
 * queued unsigned with a warning; no From: refused; injection while
 * stopping; alerts: one mail at once then one digest "4 more" per window,
 * a second cause mailed on its own, quiet causes forgotten, the cause cap,
 * pending digests logged at alert_free.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <sqlite3.h>

#include "alert.h"
#include "bounce.h"
#include "conf.h"
#include "dkim_key.h"
#include "dns.h"
#include "inject.h"
#include "log.h"
#include "loopq.h"
#include "scheduler.h"
#include "server.h"
#include "signer.h"
#include "store.h"
#include "util.h"
#include "tap.h"

#define HOST "mx.inject.example"
#define FILE_MAX (1024 * 1024)

struct result {
	int done;
	int err;
	char qid[QUEUE_ID_LEN + 1];
};

static struct event_base *base;
static struct server srv;
static char tmpdir[PATH_MAX - 128];
static char dbpath[PATH_MAX];
static char maildir_new[PATH_MAX];
static char logpath[PATH_MAX];
static int saved_stderr = -1;

/* ---- the loop under a deadline ---------------------------------------- */

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* run_until - run the loop until pred(arg) holds or ms have passed */
static int
run_until(int (*pred)(void *), void *arg, int ms)
{
	int64_t end = util_mono_ms() + ms;
	struct event *wake = event_new(base, -1, EV_PERSIST, wake_cb, NULL);
	struct timeval tv = { 0, 20 * 1000 };
	int ok = 0;

	evtimer_add(wake, &tv);
	for (;;) {
		if (pred && pred(arg)) {
			ok = 1;
			break;
		}
		if (util_mono_ms() >= end)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(wake);
	return ok;
}

static void
run_for(int ms)
{
	run_until(NULL, NULL, ms);
}

/* ---- log capture -------------------------------------------------------- */

/* log_capture - stderr into a fresh file until log_release */
static void
log_capture(const char *name)
{
	int fd;

	snprintf(logpath, sizeof(logpath), "%s/%s.log", tmpdir, name);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		fatal("open %s", logpath);
	fflush(stderr);
	if (saved_stderr < 0)
		saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
}

static void
log_release(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
}

/* slurp - a whole file, NUL-terminated, or NULL */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL)
		return NULL;
	buf = xmalloc(FILE_MAX + 1);
	n = fread(buf, 1, FILE_MAX, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* count_in - occurrences of s in text */
static int
count_in(const char *text, const char *s)
{
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, s)) != NULL; p += strlen(s))
		n++;
	return n;
}

/* log_count - occurrences of s in the captured log */
static int
log_count(const char *s)
{
	char *t = slurp(logpath);
	int n = t ? count_in(t, s) : 0;

	free(t);
	return n;
}

/* ---- the Maildir ------------------------------------------------------- */

/* mails_with - delivered files containing s (all if s is NULL); the path
 * of the last one found into path */
static int
mails_with(const char *s, char *path, size_t pathlen)
{
	DIR *d = opendir(maildir_new);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char p[PATH_MAX + 300];
		char *t;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", maildir_new, de->d_name);
		t = slurp(p);
		if (t && (s == NULL || strstr(t, s))) {
			n++;
			if (path)
				util_strlcpy(path, p, pathlen);
		}
		free(t);
	}
	closedir(d);
	return n;
}

struct mailwait {
	const char *s;
	int n;
};

static int
mails_reach(void *arg)
{
	const struct mailwait *w = arg;

	return mails_with(w->s, NULL, 0) >= w->n;
}

/* ---- the database ------------------------------------------------------ */

/* db_text - first column of the first row (static buffer), "(none)" */
static const char * PRINTF_LIKE(1, 2)
db_text(const char *fmt, ...)
{
	static char buf[512];
	char sql[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	util_strlcpy(buf, "(none)", sizeof(buf));
	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		fatalx("sqlite3_open_v2 %s", dbpath);
	sqlite3_busy_timeout(db, 2000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fatalx("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		util_strlcpy(buf, t ? (const char *)t : "(null)", sizeof(buf));
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return buf;
}

/* qid_sent - the message's recipient is recorded as sent */
static int
qid_sent(void *arg)
{
	return strcmp(db_text("SELECT status FROM recipients r JOIN messages m ON "
	    "r.message_id = m.id WHERE m.queue_id = '%s'", (const char *)arg), "sent") == 0;
}

/* ---- injecting ---------------------------------------------------------- */

static void
inject_done_cb(int err, const char *qid, void *arg)
{
	struct result *r = arg;

	r->done = 1;
	r->err = err;
	util_strlcpy(r->qid, qid, sizeof(r->qid));
}

static int
result_done(void *arg)
{
	return ((struct result *)arg)->done;
}

/* inject_text - queue a copy of text from sender to rcpt, wait for done */
static void
inject_text(const char *sender, const char *rcpt, const char *text, int flags,
    struct result *r)
{
	const char *rcpts[1] = { rcpt };

	memset(r, 0, sizeof(*r));
	inject_message(&srv, sender, rcpts, 1, xstrdup(text), strlen(text), flags,
	    inject_done_cb, r);
	if (!run_until(result_done, r, 10000))
		r->err = -1;
}

/* headers_are_signature - everything before `end` is DKIM-Signature
 * fields (with their continuation lines) */
static int
headers_are_signature(const char *msg, const char *end)
{
	const char *p = msg;

	if (strncmp(p, "DKIM-Signature:", 15) != 0)
		return 0;
	while (p < end) {
		if (strncmp(p, "DKIM-Signature:", 15) != 0 && *p != ' ' && *p != '\t')
			return 0;
		p = strstr(p, "\r\n");
		if (p == NULL)
			return 0;
		p += 2;
	}
	return p == end + 2;
}

/* ---- the cases ------------------------------------------------------------ */

/* test_dsn - a DSN from <>: signed, Received:, stored, delivered, logged */
static void
test_dsn(void)
{
	struct bounce_rcpt br = {
		.final_rcpt = "bob@dest.example", .status = "5.1.1",
		.diagnostic = "550 5.1.1 no such user", .remote_mta = "mx.dest.example",
	};
	const char *orig = "From: <alice@client.example>\r\nSubject: hi\r\n\r\nhello\r\n";
	struct bounce_params p = {
		.hostname = HOST, .sender = "alice@client.example", .orig = orig,
		.orig_len = strlen(orig), .queue_id = "0123456789AB", .kind = BOUNCE_FAILED,
		.rcpts = &br, .nrcpts = 1, .now = util_now(),
	};
	const char *rcpts[1] = { "alice@client.example" };
	struct result r;
	struct mailwait w = { NULL, 1 };
	char *out, err[BOUNCE_ERR_MAX], path[PATH_MAX + 300], want[256], *m, *rcvd;
	size_t outlen;

	if (bounce_build(&p, &out, &outlen, err, sizeof(err)) != 0)
		fatalx("bounce_build: %s", err);
	log_capture("dsn");
	memset(&r, 0, sizeof(r));
	inject_message(&srv, "", rcpts, 1, out, outlen, STORE_FLAG_DSN, inject_done_cb, &r);
	ok(!r.done, "dsn: done is not called inside inject_message");
	is_int(inject_inflight(), 1, "dsn: one injection in flight");
	ok(run_until(result_done, &r, 10000), "dsn: done called");
	is_int(r.err, STORE_OK, "dsn: committed");
	is_int(strlen(r.qid), QUEUE_ID_LEN, "dsn: queue id given to done");
	is_int(inject_inflight(), 0, "dsn: nothing in flight after done");
	is_str(db_text("SELECT sender FROM messages WHERE queue_id = '%s'", r.qid), "",
	    "dsn: stored with the null sender");
	is_str(db_text("SELECT flags FROM messages WHERE queue_id = '%s'", r.qid), "8",
	    "dsn: stored with STORE_FLAG_DSN");
	is_str(db_text("SELECT address FROM recipients r JOIN messages m ON "
	    "r.message_id = m.id WHERE m.queue_id = '%s'", r.qid), "alice@client.example",
	    "dsn: the recipient row");
	ok(run_until(mails_reach, &w, 10000), "dsn: delivered to the Maildir");
	ok(run_until(qid_sent, r.qid, 5000), "dsn: recipient recorded as sent");
	log_release();

	is_int(mails_with(NULL, path, sizeof(path)), 1, "dsn: exactly one file");
	m = slurp(path);
	ok(m && strncmp(m, "DKIM-Signature:", 15) == 0, "dsn: file starts with DKIM-Signature");
	ok(m && strstr(m, "d=" HOST ";") != NULL, "dsn: signed with d= the From: domain");
	snprintf(want, sizeof(want), "\r\nReceived: by %s (outpost) id %s; ", HOST, r.qid);
	rcvd = m ? strstr(m, want) : NULL;
	ok(rcvd != NULL, "dsn: Received: by HOST (outpost) id QID");
	ok(rcvd && headers_are_signature(m, rcvd), "dsn: only the signature before Received:");
	ok(m && strstr(m, "Content-Type: multipart/report") != NULL, "dsn: the DSN body follows");
	free(m);

	snprintf(want, sizeof(want), "%s: from=<>, size=%zu, nrcpt=1, origin=dsn", r.qid,
	    (size_t)atol(db_text("SELECT size FROM messages WHERE queue_id = '%s'", r.qid)));
	is_int(log_count(want), 1, "dsn: log line with from=<>, size, nrcpt, origin=dsn");
	snprintf(want, sizeof(want), "%s: dkim d=%s s=s1 a=rsa-sha256", r.qid, HOST);
	is_int(log_count(want), 1, "dsn: dkim log line");
}

/* test_unsigned - no key for the From: domain: queued unsigned, warned */
static void
test_unsigned(void)
{
	struct result r;
	struct mailwait w = { "Subject: unsigned case", 1 };
	char path[PATH_MAX + 300], want[128], *m;

	log_capture("unsigned");
	inject_text("", "carol@dest.example", "From: <x@nokey.example>\r\nSubject: unsigned "
	    "case\r\nDate: Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\nbody\r\n", STORE_FLAG_DSN, &r);
	is_int(r.err, STORE_OK, "unsigned: committed");
	ok(run_until(mails_reach, &w, 10000), "unsigned: delivered");
	log_release();
	mails_with(w.s, path, sizeof(path));
	m = slurp(path);
	snprintf(want, sizeof(want), "Received: by %s (outpost) id %s; ", HOST, r.qid);
	ok(m && strncmp(m, want, strlen(want)) == 0, "unsigned: file starts with Received:");
	ok(m && strstr(m, "DKIM-Signature") == NULL, "unsigned: no signature");
	free(m);
	snprintf(want, sizeof(want), "%s: no DKIM key for nokey.example", r.qid);
	is_int(log_count(want), 1, "unsigned: warning logged");
}

/* test_refused - no From:, no recipients: refused, nothing stored */
static void
test_refused(void)
{
	struct result r;
	const char *none[1] = { NULL };

	inject_text("", "carol@dest.example", "Subject: no from\r\n\r\nbody\r\n",
	    STORE_FLAG_DSN, &r);
	is_int(r.err, INJECT_EMSG, "refused: no From: gives INJECT_EMSG");
	is_str(db_text("SELECT count(*) FROM messages WHERE queue_id = '%s'", r.qid), "0",
	    "refused: nothing stored");
	memset(&r, 0, sizeof(r));
	inject_message(&srv, "", none, 0, xstrdup("From: <a@" HOST ">\r\n\r\nx\r\n"), 22, 0,
	    inject_done_cb, &r);
	ok(!r.done && run_until(result_done, &r, 5000) && r.err == INJECT_EMSG,
	    "refused: no recipients gives INJECT_EMSG on a later turn");
	is_int(inject_inflight(), 0, "refused: nothing in flight");
}

/* test_stopping - while stopping the message is still committed */
static void
test_stopping(void)
{
	struct result r;

	srv.stopping = 1;
	inject_text("", "dave@dest.example", "From: <MAILER-DAEMON@" HOST ">\r\nSubject: "
	    "while stopping\r\n\r\nbody\r\n", STORE_FLAG_DSN, &r);
	srv.stopping = 0;
	is_int(r.err, STORE_OK, "stopping: committed anyway");
	is_str(db_text("SELECT count(*) FROM messages WHERE queue_id = '%s'", r.qid), "1",
	    "stopping: the row is there");
}

static int
tracked_zero(void *arg)
{
	return alert_tracked(arg) == 0;
}

/* test_alert_digest - one mail at once, one digest per window */
static void
test_alert_digest(void)
{
	struct alert *a = alert_new(&srv, 2, 0);
	struct mailwait first = { "auth failed at main", 1 };
	struct mailwait digest = { "4 more", 1 };
	struct mailwait other = { "policy failure at example.com", 1 };
	char path[PATH_MAX + 300], *m;

	log_capture("alert");
	for (int i = 0; i < 5; i++)
		alert_raise(a, "upstream-auth:main", "535 auth failed at main",
		    "upstream main answered 535 5.7.8", "check password_file");
	is_int(log_count("ALERT upstream-auth:main: 535 auth failed at main"), 5,
	    "alert: one log line per raise");
	ok(run_until(mails_reach, &first, 10000), "alert: first raise mailed");
	run_for(200);
	is_int(mails_with(first.s, NULL, 0), 1, "alert: later raises not mailed at once");
	alert_raise(a, "policy:example.com", "policy failure at example.com", NULL, NULL);
	ok(run_until(mails_reach, &other, 10000), "alert: second cause mailed on its own");
	is_int(alert_tracked(a), 2, "alert: two causes tracked");
	ok(run_until(mails_reach, &digest, 10000), "alert: digest after the window");
	is_int(mails_with(first.s, NULL, 0), 2, "alert: first mail plus one digest");
	is_int(mails_with("cause upstream-auth:main happened 4 more times since ", path,
	    sizeof(path)), 1, "alert: digest says 4 more times since HH:MM");
	m = slurp(path);
	ok(m && strstr(m, "; last: 535 auth") != NULL, "alert: digest names the last");
	ok(m && strstr(m, "\r\nFrom: \"outpost\" <MAILER-DAEMON@" HOST ">\r\n") != NULL,
	    "alert: From: outpost <MAILER-DAEMON@hostname>");
	ok(m && strstr(m, "\r\nTo: <pm@dest.example>\r\n") != NULL, "alert: to [server] postmaster");
	ok(m && strncmp(m, "DKIM-Signature:", 15) == 0 && strstr(m, "d=" HOST ";"),
	    "alert: DKIM-signed");
	free(m);
	is_int(mails_with(other.s, NULL, 0), 1, "alert: second cause: no digest (raised once)");
	ok(run_until(tracked_zero, a, 8000), "alert: quiet windows forget their causes");
	is_int(mails_with(first.s, NULL, 0), 2, "alert: nothing more mailed");
	is_str(db_text("SELECT count(*) FROM messages WHERE sender = '' AND flags = 0"), "3",
	    "alert: three alerts stored from <> without the DSN flag");
	is_int(log_count("origin=alert"), 3, "alert: logged with origin=alert");
	alert_free(a);
	log_release();
}

/* test_alert_cap - at most max_causes tracked, oldest dropped; pending
 * digests logged at alert_free */
static void
test_alert_cap(void)
{
	struct alert *a = alert_new(&srv, 600, 3);
	struct mailwait w = { "cap case", 5 };
	char cause[32], summary[64];

	log_capture("cap");
	for (int i = 1; i <= 4; i++) {
		snprintf(cause, sizeof(cause), "cap-%d", i);
		snprintf(summary, sizeof(summary), "cap case %d", i);
		alert_raise(a, cause, summary, "details", NULL);
	}
	is_int(alert_tracked(a), 3, "cap: three causes tracked");
	is_int(log_count("forgetting cap-1"), 1, "cap: the oldest dropped with a log line");
	alert_raise(a, "cap-1", "cap case 1", "again", NULL);
	alert_raise(a, "cap-4", "cap case 4", "again", NULL);
	alert_raise(a, "cap-4", "cap case 4", "again", NULL);
	ok(run_until(mails_reach, &w, 10000), "cap: five mails (cap-1 mailed again)");
	run_for(200);
	is_int(mails_with(w.s, NULL, 0), 5, "cap: repeated cap-4 not mailed");
	is_int(alert_tracked(a), 3, "cap: still three tracked");
	alert_free(a);
	log_release();
	is_int(log_count("ALERT cap-4: 2 more since "), 1, "cap: pending digest logged at free");
}

/* ---- the environment ------------------------------------------------------ */

static void
env_open(void)
{
	char keypath[PATH_MAX], confpath[PATH_MAX], err[512];
	FILE *f;

	snprintf(keypath, sizeof(keypath), "%s/dkim.pem", tmpdir);
	if (dkim_key_generate(DKIM_KEY_RSA, 2048, keypath, err, sizeof(err)) != 0)
		fatalx("dkim_key_generate: %s", err);
	snprintf(confpath, sizeof(confpath), "%s/outpost.conf", tmpdir);
	snprintf(maildir_new, sizeof(maildir_new), "%s/local/new", tmpdir);
	if ((f = fopen(confpath, "w")) == NULL)
		fatal("%s", confpath);
	fprintf(f,
	    "[server]\n"
	    "hostname = " HOST "\n"
	    "state_dir = %s\n"
	    "postmaster = pm@dest.example\n"
	    "default_upstream = local\n"
	    "signer_threads = 2\n"
	    "[listen smtp]\n"
	    "address = 127.0.0.1:2525\n"
	    "tls = none\n"
	    "[upstream local]\n"
	    "address = maildir:%s/local\n"
	    "[domain " HOST "]\n"
	    "dkim_key = s1:%s\n"
	    "[queue]\n"
	    "retry = 1s\n"
	    "scan_interval = 1s\n", tmpdir, tmpdir, keypath);
	fclose(f);
	if (conf_load(confpath, stderr, &srv.conf) != 0)
		fatalx("conf_load failed");
	if ((srv.dkim = server_dkim_load(srv.conf, stderr)) == NULL)
		fatalx("server_dkim_load failed");
	snprintf(dbpath, sizeof(dbpath), "%s/queue.db", tmpdir);
	if ((srv.store = store_open(dbpath, 0, err, sizeof(err))) == NULL)
		fatalx("store_open: %s", err);
	if (store_start(srv.store, srv.loopq) != 0)
		fatalx("store_start");
	if ((srv.sched = scheduler_new(&srv, err, sizeof(err))) == NULL)
		fatalx("scheduler_new: %s", err);
}

static int
sched_idle(void *arg)
{
	return scheduler_inflight(srv.sched) == 0;
}

static void
env_close(void)
{
	scheduler_stop(srv.sched);
	if (!run_until(sched_idle, NULL, 5000))
		fatalx("deliveries still in flight after 5s");
	scheduler_free(srv.sched);
	signer_free(srv.signer);
	store_close(srv.store);
	loopq_drain(srv.loopq);
	server_dkim_install(&srv, NULL);
	conf_free(srv.conf);
}

int
main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} cases[] = {
		{ "dsn", test_dsn },
		{ "unsigned", test_unsigned },
		{ "refused", test_refused },
		{ "stopping", test_stopping },
		{ "alert_digest", test_alert_digest },
		{ "alert_cap", test_alert_cap },
	};
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	log_init(LOG_DEST_STDERR, getenv("TEST_DEBUG") != NULL, "test_inject");
	if (evthread_use_pthreads() != 0)
		fatalx("libevent without pthreads");
	base = event_base_new();
	if (tap_tmpdir(tmpdir, sizeof(tmpdir), "test_inject") == NULL)
		return 99;
	umask(022);
	srv.base = base;
	srv.started = util_now();
	srv.loopq = loopq_new(base);
	srv.signer = signer_new(srv.loopq, 2);
	srv.dns = dns_new(base, "", err, sizeof(err));
	if (srv.dns == NULL)
		fatalx("dns_new: %s", err);
	env_open();

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int64_t t0 = util_mono_ms();
		cases[i].fn();
		printf("# %s: %lld ms\n", cases[i].name, (long long)(util_mono_ms() - t0));
	}

	env_close();
	dns_free(srv.dns);
	loopq_free(srv.loopq);
	event_base_free(base);
	{
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (getenv("TEST_KEEP") == NULL && system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	return done();
}
