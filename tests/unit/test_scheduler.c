/*
 * test_scheduler - the scheduler with everything real around it: the
 * SQLite store in a temporary directory, a configuration written to a file
 * and read by conf_load, Maildir upstreams on the signer pool, an SMTP
 * upstream at a closed port and one at an in-process fake SMTP server.
 *
 * Messages enter as smtp_session.c enters them (store_commit, then
 * scheduler_add with the committed ids), or are loaded from the store by
 * scheduler_load after a reopen. The loop runs under a deadline in every
 * wait, and a second, read-only SQLite handle looks at what the scheduler
 * recorded.
 *
 * Covers: Maildir delivery (sent, data dropped); a refused connection
 * deferred by [queue] retry and retried when due; 550 at RCPT bounced
 * without a retry; a 4xx past max_lifetime bounced; routing by [domain]
 * and default_upstream; scheduler_load picking up only pending recipients;
 * heap order over 1,000 messages with shuffled next attempts; throttling:
 * a daily_limit holds the extra message (queued, no attempt) also after a
 * restart, through the counters table; a 5xx sending quota is deferred to
 * the end of the suspension, not bounced. Queue tools on a big heap:
 * taking messages out of the middle keeps the heap order and every
 * message's index, and a flush of 200,000 messages is O(n), not O(n^2).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sqlite3.h>

#include "conf.h"
#include "dns.h"
#include "log.h"
#include "loopq.h"
#include "scheduler.h"
#include "scheduler_int.h"
#include "server.h"
#include "signer.h"
#include "store.h"
#include "util.h"
#include "tap.h"

#define TM_RCPT 2           /* recipients per test message, at most */
#define FAKE_LOG 64         /* RCPT addresses the fake server remembers */
#define HEAP_N 1000         /* messages in the heap order case */
#define BIG_N 200000        /* messages in the queue tools case */

/* ---- the fake SMTP upstream ---------------------------------------- */

/* RCPT to bounce...@ gets 550, to defer...@ 451 (unless accept_all),
 * anything else 250. No PIPELINING, so one command per reply. */
struct fake {
	struct evconnlistener *lev;
	int port;
	int accept_all;
	int nconns, nmail, ndata;
	char rcpts[FAKE_LOG][ADDR_MAX];
	int nrcpt;
	struct fake_conn *conns;
};

struct fake_conn {
	struct fake *f;
	struct bufferevent *bev;
	int in_data;
	int closing;
	struct fake_conn *next;
};

/* An open environment: state dir, configuration, store, scheduler. */
struct env {
	char dir[PATH_MAX];
	char db[PATH_MAX + 16];
	struct conf *conf;
	long loaded;                /* scheduler_load's answer, or -2 */
};

/* A message to commit, alive until its commit callback. */
struct tmsg {
	struct store_msg sm;
	const char *rcpts[TM_RCPT];
	int64_t rids[TM_RCPT];
	char data[160];
	int add;                    /* scheduler_add once committed */
	int done, err;
};

static struct event_base *base;
static struct server srv;
static struct fake fake;
static char tmpdir[PATH_MAX - 64];
static int refused_port;
static int ncases;
static int commits_pending;
static struct env *cur;

/* fake_conn_free - drop one fake-server connection */
static void
fake_conn_free(struct fake_conn *fc)
{
	struct fake_conn **pp;

	for (pp = &fc->f->conns; *pp && *pp != fc; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = fc->next;
	bufferevent_free(fc->bev);
	free(fc);
}

/* fake_reply - one reply line */
static void
fake_reply(struct fake_conn *fc, const char *r)
{
	bufferevent_write(fc->bev, r, strlen(r));
}

/* fake_rcpt - the reply for RCPT TO:<addr> */
static const char *
fake_rcpt(struct fake *f, const char *line)
{
	const char *a = strchr(line, '<');

	a = a ? a + 1 : "";
	if (f->nrcpt < FAKE_LOG) {
		util_strlcpy(f->rcpts[f->nrcpt], a, sizeof(f->rcpts[0]));
		f->rcpts[f->nrcpt][strcspn(f->rcpts[f->nrcpt], ">")] = '\0';
	}
	f->nrcpt++;
	if (strncmp(a, "bounce", 6) == 0)
		return "550 5.1.1 no such user here\r\n";
	if (strncmp(a, "quota", 5) == 0 && !f->accept_all)
		return "550 5.4.5 Daily user sending quota exceeded\r\n";
	if (strncmp(a, "defer", 5) == 0 && !f->accept_all)
		return "451 4.2.1 mailbox busy, try later\r\n";
	return "250 2.1.5 ok\r\n";
}

/* fake_command - one command line, CRLF included */
static void
fake_command(struct fake_conn *fc, const char *line)
{
	struct fake *f = fc->f;

	if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
		fake_reply(fc, "250 fake.test.example\r\n");
	} else if (strncasecmp(line, "MAIL", 4) == 0) {
		f->nmail++;
		fake_reply(fc, "250 2.1.0 ok\r\n");
	} else if (strncasecmp(line, "RCPT", 4) == 0) {
		fake_reply(fc, fake_rcpt(f, line));
	} else if (strncasecmp(line, "DATA", 4) == 0) {
		fc->in_data = 1;
		fake_reply(fc, "354 go ahead\r\n");
	} else if (strncasecmp(line, "RSET", 4) == 0) {
		fake_reply(fc, "250 2.0.0 ok\r\n");
	} else if (strncasecmp(line, "QUIT", 4) == 0) {
		fake_reply(fc, "221 2.0.0 bye\r\n");
		fc->closing = 1;
	} else {
		fake_reply(fc, "500 5.5.1 what\r\n");
	}
}

/* fake_read_cb - commands, or body lines up to the dot */
static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake_conn *fc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[1024];

	for (;;) {
		size_t eol;
		struct evbuffer_ptr p;
		size_t len;

		if (fc->closing) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		}
		p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
		if (p.pos < 0)
			return;
		len = (size_t)p.pos + eol;
		if (len >= sizeof(line)) {
			evbuffer_drain(in, len);
			continue;
		}
		evbuffer_remove(in, line, len);
		line[len] = '\0';
		if (fc->in_data) {
			if (strcmp(line, ".\r\n") == 0) {
				fc->in_data = 0;
				fc->f->ndata++;
				fake_reply(fc, "250 2.0.0 queued\r\n");
			}
			continue;
		}
		fake_command(fc, line);
	}
}

/* fake_write_cb - after QUIT's reply went out, close */
static void
fake_write_cb(struct bufferevent *bev, void *arg)
{
	struct fake_conn *fc = arg;

	if (fc->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		fake_conn_free(fc);
}

/* fake_event_cb - the client went away */
static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fake_conn_free(arg);
}

/* fake_accept_cb - greet a new client */
static void
fake_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct fake *f = arg;
	struct fake_conn *fc = xcalloc(1, sizeof(*fc));

	fc->f = f;
	fc->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(fc->bev, fake_read_cb, fake_write_cb, fake_event_cb, fc);
	bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
	fc->next = f->conns;
	f->conns = fc;
	f->nconns++;
	fake_reply(fc, "220 fake.test.example ESMTP\r\n");
}

/* fake_start - listen on 127.0.0.1, any port */
static void
fake_start(struct fake *f)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lev = evconnlistener_new_bind(base, fake_accept_cb, f,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin,
	    sizeof(sin));
	if (f->lev == NULL)
		fatal("fake server: listen");
	getsockname(evconnlistener_get_fd(f->lev), (struct sockaddr *)&sin, &slen);
	f->port = ntohs(sin.sin_port);
}

/* fake_reset - forget what was seen */
static void
fake_reset(struct fake *f)
{
	f->accept_all = 0;
	f->nconns = f->nmail = f->ndata = f->nrcpt = 0;
}

/* fake_saw - how many RCPT TO this address came in */
static int
fake_saw(const struct fake *f, const char *addr)
{
	int n = 0;

	for (int i = 0; i < f->nrcpt && i < FAKE_LOG; i++)
		if (strcmp(f->rcpts[i], addr) == 0)
			n++;
	return n;
}

/* closed_port - a 127.0.0.1 port nobody listens on */
static int
closed_port(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) != 0)
		fatal("closed_port");
	close(fd);
	return ntohs(sin.sin_port);
}

/* ---- running the loop under a deadline ------------------------------ */

/* wake_cb - only makes EVLOOP_ONCE return, so predicates are polled */
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

/* run_for - just run the loop for ms */
static void
run_for(int ms)
{
	run_until(NULL, NULL, ms);
}

/* ---- looking at the database from outside --------------------------- */

/* db_ro - a fresh read-only handle on the current queue.db */
static sqlite3 *
db_ro(void)
{
	sqlite3 *db;

	if (sqlite3_open_v2(cur->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		fatalx("sqlite3_open_v2 %s: %s", cur->db, sqlite3_errmsg(db));
	sqlite3_busy_timeout(db, 2000);
	return db;
}

/* db_vquery - first column of the first row as integer and text */
static int
db_vquery(long long *iv, char *tv, size_t tlen, const char *fmt, va_list ap)
{
	char sql[512];
	sqlite3 *db = db_ro();
	sqlite3_stmt *st;
	int rc = -1;

	vsnprintf(sql, sizeof(sql), fmt, ap);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fatalx("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (iv)
			*iv = sqlite3_column_int64(st, 0);
		if (tv)
			util_strlcpy(tv, t ? (const char *)t : "(null)", tlen);
		rc = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* db_int - an integer, or -1 when there is no row */
static long long PRINTF_LIKE(1, 2)
db_int(const char *fmt, ...)
{
	long long v = -1;
	va_list ap;

	va_start(ap, fmt);
	if (db_vquery(&v, NULL, 0, fmt, ap) != 0)
		v = -1;
	va_end(ap);
	return v;
}

/* db_text - a text value (static buffer), "(none)" when there is no row */
static const char * PRINTF_LIKE(1, 2)
db_text(const char *fmt, ...)
{
	static char buf[512];
	va_list ap;

	va_start(ap, fmt);
	if (db_vquery(NULL, buf, sizeof(buf), fmt, ap) != 0)
		util_strlcpy(buf, "(none)", sizeof(buf));
	va_end(ap);
	return buf;
}

/* rcpt_status - a recipient's status (static buffer) */
static const char *
rcpt_status(int64_t rid)
{
	return db_text("SELECT status FROM recipients WHERE id = %lld", (long long)rid);
}

/* rcpt_attempts - a recipient's attempts */
static long long
rcpt_attempts(int64_t rid)
{
	return db_int("SELECT attempts FROM recipients WHERE id = %lld", (long long)rid);
}

/* rcpt_events - events rows for a recipient */
static long long
rcpt_events(int64_t rid)
{
	return db_int("SELECT count(*) FROM events WHERE recipient_id = %lld", (long long)rid);
}

/* msg_dropped - data gone and done_at set: every recipient final */
static long long
msg_dropped(int64_t mid)
{
	return db_int("SELECT data IS NULL AND done_at IS NOT NULL FROM messages "
	    "WHERE id = %lld", (long long)mid);
}

/* A recipient to wait for: status and, unless -1, attempts. */
struct want {
	int64_t rid;
	const char *status;
	int attempts;
};

/* want_met - every want (up to rid 0) holds in the database */
static int
want_met(void *arg)
{
	const struct want *w = arg;

	for (; w->rid; w++) {
		if (strcmp(rcpt_status(w->rid), w->status) != 0)
			return 0;
		if (w->attempts >= 0 && rcpt_attempts(w->rid) != w->attempts)
			return 0;
	}
	return 1;
}

/* idle_sched - nothing in flight at the scheduler */
static int
idle_sched(void *arg)
{
	return scheduler_inflight(srv.sched) == 0;
}

/* files_in - regular files in dir (0 if it does not exist) */
static int
files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ---- environments ----------------------------------------------------- */

/* write_conf - the configuration every case uses; local_maxc for the
 * default Maildir upstream (1 makes deliveries strictly serial) */
static void
write_conf(const struct env *e, const char *path, int local_maxc)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		fatal("%s", path);
	fprintf(f,
	    "[server]\n"
	    "hostname = sched.test.example\n"
	    "state_dir = %s\n"
	    "default_upstream = local\n"
	    "signer_threads = 2\n"
	    "[listen smtp]\n"
	    "address = 127.0.0.1:2525\n"
	    "tls = none\n"
	    "[upstream local]\n"
	    "address = maildir:%s/local\n"
	    "max_connections = %d\n"
	    "[upstream other]\n"
	    "address = maildir:%s/other\n"
	    "[upstream fake]\n"
	    "address = 127.0.0.1:%d\n"
	    "tls = none\n"
	    "connect_timeout = 2\n"
	    "command_timeout = 2\n"
	    "[upstream refused]\n"
	    "address = 127.0.0.1:%d\n"
	    "tls = none\n"
	    "connect_timeout = 2\n"
	    "[upstream limited]\n"
	    "address = maildir:%s/limited\n"
	    "daily_limit = 2\n"
	    "[domain limited.example]\n"
	    "upstream = limited\n"
	    "[domain routed.example]\n"
	    "upstream = other\n"
	    "[domain fake.example]\n"
	    "upstream = fake\n"
	    "[domain refused.example]\n"
	    "upstream = refused\n"
	    "[domain empty.example]\n"
	    "upstream =\n"
	    "[queue]\n"
	    "retry = 1s\n"
	    "max_lifetime = 1m\n"
	    "scan_interval = 1s\n",
	    e->dir, e->dir, local_maxc, e->dir, fake.port, refused_port, e->dir);
	fclose(f);
}

/* env_open - a configuration, the store and the scheduler; with load,
 * the queue is read by scheduler_load before the store thread starts
 * (as main.c does), else the store starts first */
static int
env_open(struct env *e, const char *dir, int load, int local_maxc)
{
	char path[PATH_MAX + 16], err[512];

	memset(e, 0, sizeof(*e));
	e->loaded = -2;
	util_strlcpy(e->dir, dir, sizeof(e->dir));
	if (mkdir(e->dir, 0700) != 0 && errno != EEXIST)
		fatal("mkdir %s", e->dir);
	snprintf(path, sizeof(path), "%s/outpost.conf", e->dir);
	write_conf(e, path, local_maxc);
	if (conf_load(path, stderr, &e->conf) != 0)
		return -1;
	snprintf(e->db, sizeof(e->db), "%s/queue.db", e->dir);
	srv.conf = e->conf;
	srv.store = store_open(e->db, 0, err, sizeof(err));
	if (srv.store == NULL)
		fatalx("store_open: %s", err);
	if (!load && store_start(srv.store, srv.loopq) != 0)
		fatalx("store_start");
	srv.sched = scheduler_new(&srv, err, sizeof(err));
	if (srv.sched == NULL)
		fatalx("scheduler_new: %s", err);
	if (load) {
		e->loaded = scheduler_load(srv.sched);
		if (store_start(srv.store, srv.loopq) != 0)
			fatalx("store_start");
	}
	cur = e;
	return 0;
}

/* env_close - stop, let deliveries in flight finish, free everything */
static void
env_close(struct env *e)
{
	scheduler_stop(srv.sched);
	if (!run_until(idle_sched, NULL, 5000))
		fatalx("deliveries still in flight after 5s");
	scheduler_free(srv.sched);
	store_close(srv.store);
	loopq_drain(srv.loopq);
	conf_free(e->conf);
	srv.sched = NULL;
	srv.store = NULL;
	srv.conf = NULL;
}

/* case_dir - a fresh directory for the next case */
static const char *
case_dir(const char *name)
{
	static char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/%02d-%s", tmpdir, ++ncases, name);
	return dir;
}

/* ---- committing messages like smtp_session.c ---------------------- */

/* tmsg_committed - on the loop: the message is on disk; hand it to the
 * scheduler as session_commit_done does */
static void
tmsg_committed(int err, void *arg)
{
	struct tmsg *t = arg;

	t->done = 1;
	t->err = err;
	commits_pending--;
	if (err == STORE_OK && t->add) {
		struct store_qrcpt qr[TM_RCPT];
		struct store_qmsg qm = {
			.id = t->sm.id, .queue_id = t->sm.queue_id, .sender = t->sm.sender,
			.auth_user = t->sm.auth_user, .received_at = t->sm.received_at,
			.size = t->sm.len, .flags = 0, .body_8bit = t->sm.body_8bit,
			.smtputf8 = t->sm.smtputf8, .rcpts = qr, .nrcpt = t->sm.nrcpt,
		};
		memset(qr, 0, sizeof(qr));
		for (size_t i = 0; i < t->sm.nrcpt; i++) {
			qr[i].id = t->rids[i];
			qr[i].addr = t->rcpts[i];
			qr[i].attempts = 0;
			qr[i].next_attempt = t->sm.received_at;
		}
		scheduler_add(srv.sched, &qm);
	}
}

/* tmsg_init - one message from sender to one or two recipients */
static void
tmsg_init(struct tmsg *t, const char *sender, const char *r1, const char *r2,
    time_t received_at, int add)
{
	memset(t, 0, sizeof(*t));
	util_queue_id(t->sm.queue_id);
	snprintf(t->data, sizeof(t->data), "From: <%s>\r\nSubject: %s\r\n\r\n"
	    "Body of %s.\r\n.leading dot\r\n", sender, t->sm.queue_id, t->sm.queue_id);
	t->rcpts[0] = r1;
	t->rcpts[1] = r2;
	t->sm.sender = sender;
	t->sm.client = "127.0.0.1";
	t->sm.helo = "client.test.example";
	t->sm.received_at = received_at;
	t->sm.data = t->data;
	t->sm.len = strlen(t->data);
	t->sm.rcpts = t->rcpts;
	t->sm.nrcpt = r2 ? 2 : 1;
	t->sm.rcpt_ids = t->rids;
	t->add = add;
}

/* pending_zero - every commit answered */
static int
pending_zero(void *arg)
{
	return commits_pending == 0;
}

/* commit_all - store_commit each, run until all are on disk */
static int
commit_all(struct tmsg *t, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++) {
		commits_pending++;
		store_commit(srv.store, &t[i].sm, tmsg_committed, &t[i]);
	}
	if (!run_until(pending_zero, NULL, 5000))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (t[i].err != STORE_OK)
			bad++;
	return bad ? -1 : 0;
}

/* ---- the cases --------------------------------------------------------- */

/* test_maildir - default upstream: sent, data dropped, the exact bytes */
static void
test_maildir(void)
{
	struct env e;
	struct tmsg t;
	char path[PATH_MAX + 32], buf[512];
	struct want w[3];
	int nf;

	if (env_open(&e, case_dir("maildir"), 0, 4) != 0) {
		ok(0, "maildir: configuration loads");
		return;
	}
	tmsg_init(&t, "alice@plain.example", "u1@dest.example", "u2@dest.example",
	    util_now(), 1);
	ok(commit_all(&t, 1) == 0, "maildir: message committed");
	is_int(scheduler_pending(srv.sched), 1, "maildir: one message pending");
	w[0] = (struct want){ t.rids[0], "sent", 1 };
	w[1] = (struct want){ t.rids[1], "sent", 1 };
	w[2] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 5000), "maildir: both recipients sent after one attempt");
	is_str(rcpt_status(t.rids[0]), "sent", "maildir: first recipient 'sent'");
	is_int(rcpt_attempts(t.rids[1]), 1, "maildir: attempts counts the delivery");
	ok(run_until(idle_sched, NULL, 2000) && scheduler_pending(srv.sched) == 0,
	    "maildir: nothing left in the scheduler");
	is_int(msg_dropped(t.sm.id), 1, "maildir: data dropped, done_at set");
	is_int(db_int("SELECT count(*) FROM events WHERE message_id = %lld AND status = 'sent'",
	    (long long)t.sm.id), 2, "maildir: one 'sent' event per recipient");
	snprintf(path, sizeof(path), "maildir:%s/local", e.dir);
	is_str(db_text("SELECT relay FROM events WHERE recipient_id = %lld",
	    (long long)t.rids[0]), path, "maildir: relay is maildir:DIR");
	is_str(db_text("SELECT upstream FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]), "local", "maildir: upstream 'local' recorded");
	ok(strncmp(db_text("SELECT last_reply FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]), "250 2.0.0 Ok: delivered to maildir", 34) == 0,
	    "maildir: last_reply is the 250");
	snprintf(path, sizeof(path), "%s/local/new", e.dir);
	nf = files_in(path);
	is_int(nf, 1, "maildir: one file for two recipients");
	if (nf == 1) {
		DIR *d = opendir(path);
		struct dirent *de;
		size_t n = 0;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char fp[PATH_MAX + 300];
			FILE *f;
			snprintf(fp, sizeof(fp), "%s/%s", path, de->d_name);
			if ((f = fopen(fp, "r")) != NULL) {
				n = fread(buf, 1, sizeof(buf) - 1, f);
				fclose(f);
			}
		}
		closedir(d);
		buf[n] = '\0';
		is_str(buf, t.data, "maildir: the file holds exactly the message");
	}
	env_close(&e);
}

/* test_refused - connect refused: deferred, retried after [queue] retry */
static void
test_refused(void)
{
	struct env e;
	struct tmsg t;
	struct want w[2];
	char want_reply[128];
	long long next1, t2;
	time_t t0, t1;

	if (env_open(&e, case_dir("refused"), 0, 4) != 0) {
		ok(0, "refused: configuration loads");
		return;
	}
	t0 = util_now();
	tmsg_init(&t, "bob@refused.example", "r@dest.example", NULL, t0, 1);
	ok(commit_all(&t, 1) == 0, "refused: message committed");
	w[0] = (struct want){ t.rids[0], "deferred", 1 };
	w[1] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "refused: deferred after the first attempt");
	t1 = util_now();
	is_int(rcpt_attempts(t.rids[0]), 1, "refused: attempts 1");
	next1 = db_int("SELECT next_attempt_at FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]);
	ok(next1 >= (long long)t0 + 1 && next1 <= (long long)t1 + 1,
	    "refused: next_attempt_at is now + 1s (%lld in [%lld, %lld])", next1,
	    (long long)t0 + 1, (long long)t1 + 1);
	snprintf(want_reply, sizeof(want_reply), "451 4.4.1 connect to 127.0.0.1[127.0.0.1]:%d",
	    refused_port);
	ok(strncmp(db_text("SELECT last_reply FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]), want_reply, strlen(want_reply)) == 0,
	    "refused: last_reply says why (%s)", db_text("SELECT last_reply FROM "
	    "recipients WHERE id = %lld", (long long)t.rids[0]));
	is_str(db_text("SELECT upstream FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]), "refused", "refused: routed by [domain refused.example]");
	is_int(msg_dropped(t.sm.id), 0, "refused: data kept while deferred");
	is_int(scheduler_pending(srv.sched), 1, "refused: still pending in the scheduler");

	w[0].attempts = 2;
	ok(run_until(want_met, w, 4000), "refused: retried, attempts 2");
	t2 = (long long)util_now();
	ok(t2 >= next1, "refused: not retried before it was due (%lld >= %lld)", t2, next1);
	is_int(rcpt_events(t.rids[0]), 2, "refused: two 'deferred' events");
	is_int(db_int("SELECT count(*) FROM events WHERE recipient_id = %lld AND "
	    "status = 'deferred'", (long long)t.rids[0]), 2, "refused: both deferred");
	env_close(&e);
}

/* test_bounce - 550 at RCPT: bounced after one attempt, never retried */
static void
test_bounce(void)
{
	struct env e;
	struct tmsg t;
	struct want w[2];

	fake_reset(&fake);
	if (env_open(&e, case_dir("bounce"), 0, 4) != 0) {
		ok(0, "bounce: configuration loads");
		return;
	}
	tmsg_init(&t, "carol@fake.example", "bounce1@dest.example", NULL, util_now(), 1);
	ok(commit_all(&t, 1) == 0, "bounce: message committed");
	w[0] = (struct want){ t.rids[0], "bounced", -1 };
	w[1] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "bounce: 550 at RCPT gives 'bounced'");
	is_int(rcpt_attempts(t.rids[0]), 1, "bounce: after one attempt");
	ok(strncmp(db_text("SELECT last_reply FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]), "550 5.1.1", 9) == 0, "bounce: last_reply is the 550");
	/* longer than [queue] retry: nothing may try again */
	run_for(1500);
	is_int(fake_saw(&fake, "bounce1@dest.example"), 1, "bounce: RCPT sent once only");
	is_int(fake.ndata, 0, "bounce: no DATA without an accepted recipient");
	is_int(rcpt_events(t.rids[0]), 1, "bounce: one event");
	is_int(msg_dropped(t.sm.id), 1, "bounce: data dropped");
	is_int(scheduler_pending(srv.sched), 0, "bounce: nothing pending");
	env_close(&e);
}

/* pending_is - the scheduler holds *arg messages (an injected DSN is
 * signed and committed asynchronously, so it is waited for) */
static int
pending_is(void *arg)
{
	return scheduler_pending(srv.sched) == *(const size_t *)arg;
}

/* test_lifetime - a 4xx for a message older than max_lifetime bounces */
static void
test_lifetime(void)
{
	struct env e;
	struct tmsg t[2];
	struct want w[3];

	fake_reset(&fake);
	if (env_open(&e, case_dir("lifetime"), 0, 4) != 0) {
		ok(0, "lifetime: configuration loads");
		return;
	}
	/* max_lifetime = 1m: one an hour old, one fresh, both get 451 */
	tmsg_init(&t[0], "dave@fake.example", "defer-old@dest.example", NULL,
	    util_now() - 3600, 1);
	tmsg_init(&t[1], "dave@fake.example", "defer-new@dest.example", NULL,
	    util_now(), 1);
	ok(commit_all(t, 2) == 0, "lifetime: messages committed");
	w[0] = (struct want){ t[0].rids[0], "bounced", 1 };
	w[1] = (struct want){ t[1].rids[0], "deferred", 1 };
	w[2] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "lifetime: old one bounced, fresh one deferred");
	ok(strncmp(db_text("SELECT last_reply FROM recipients WHERE id = %lld",
	    (long long)t[0].rids[0]), "451 4.2.1", 9) == 0,
	    "lifetime: the bounce keeps the server's 451");
	is_str(db_text("SELECT status FROM events WHERE recipient_id = %lld",
	    (long long)t[0].rids[0]), "bounced", "lifetime: event 'bounced'");
	is_int(msg_dropped(t[0].sm.id), 1, "lifetime: expired message's data dropped");
	is_int(msg_dropped(t[1].sm.id), 0, "lifetime: fresh message's data kept");
	/* the expired one's DSN (4.4.7) to dave is queued like any message */
	ok(run_until(pending_is, &(size_t){ 2 }, 4000),
	    "lifetime: the fresh one and the DSN pending");
	is_str(db_text("SELECT r.address || ' ' || m.sender FROM recipients r JOIN messages m"
	    " ON m.id = r.message_id WHERE m.flags = %d", STORE_FLAG_DSN),
	    "dave@fake.example ", "lifetime: a DSN from <> to the sender");
	env_close(&e);
}

/* test_routing - [domain] upstream, default_upstream, empty upstream list */
static void
test_routing(void)
{
	struct env e;
	struct tmsg t[3];
	struct want w[4];
	char dir[PATH_MAX + 16];

	if (env_open(&e, case_dir("routing"), 0, 4) != 0) {
		ok(0, "routing: configuration loads");
		return;
	}
	tmsg_init(&t[0], "erin@routed.example", "x@dest.example", NULL, util_now(), 1);
	tmsg_init(&t[1], "frank@plain.example", "y@dest.example", NULL, util_now(), 1);
	tmsg_init(&t[2], "gina@EMPTY.example", "z@dest.example", NULL, util_now(), 1);
	ok(commit_all(t, 3) == 0, "routing: messages committed");
	for (int i = 0; i < 3; i++)
		w[i] = (struct want){ t[i].rids[0], "sent", -1 };
	w[3] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "routing: all three sent");
	is_str(db_text("SELECT upstream FROM events WHERE recipient_id = %lld",
	    (long long)t[0].rids[0]), "other", "routing: [domain routed.example] -> other");
	is_str(db_text("SELECT upstream FROM events WHERE recipient_id = %lld",
	    (long long)t[1].rids[0]), "local", "routing: no [domain] -> default_upstream");
	is_str(db_text("SELECT upstream FROM events WHERE recipient_id = %lld",
	    (long long)t[2].rids[0]), "local",
	    "routing: [domain] without upstream (case ignored) -> default_upstream");
	snprintf(dir, sizeof(dir), "%s/other/new", e.dir);
	is_int(files_in(dir), 1, "routing: one file in other/new");
	snprintf(dir, sizeof(dir), "%s/local/new", e.dir);
	is_int(files_in(dir), 2, "routing: two files in local/new");
	env_close(&e);
}

/* test_reload - after a reopen, scheduler_load takes only what is pending */
static void
test_reload(void)
{
	struct env e;
	struct tmsg t[3];
	struct want w[4];
	const char *dir = case_dir("reload");

	fake_reset(&fake);
	if (env_open(&e, dir, 0, 4) != 0) {
		ok(0, "reload: configuration loads");
		return;
	}
	/* A: one recipient sent, one deferred. B: committed but never given
	 * to the scheduler (a crash right after the 250). C: all sent. */
	tmsg_init(&t[0], "hank@fake.example", "ok-a@dest.example", "defer-a@dest.example",
	    util_now(), 1);
	tmsg_init(&t[1], "hank@fake.example", "ok-b@dest.example", NULL, util_now(), 0);
	tmsg_init(&t[2], "hank@fake.example", "ok-c@dest.example", NULL, util_now(), 1);
	ok(commit_all(t, 3) == 0, "reload: messages committed");
	w[0] = (struct want){ t[0].rids[0], "sent", 1 };
	w[1] = (struct want){ t[0].rids[1], "deferred", 1 };
	w[2] = (struct want){ t[2].rids[0], "sent", 1 };
	w[3] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "reload: first run: sent, deferred, sent");
	is_str(rcpt_status(t[1].rids[0]), "queued", "reload: B still 'queued'");
	env_close(&e);

	fake_reset(&fake);
	fake.accept_all = 1;
	if (env_open(&e, dir, 1, 4) != 0) {
		ok(0, "reload: configuration loads again");
		return;
	}
	is_int(e.loaded, 2, "reload: scheduler_load finds two messages (A, B)");
	is_int(scheduler_pending(srv.sched), 2, "reload: two pending");
	w[0] = (struct want){ t[0].rids[1], "sent", 2 };
	w[1] = (struct want){ t[1].rids[0], "sent", 1 };
	w[2] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 5000), "reload: the pending recipients delivered");
	is_int(fake_saw(&fake, "defer-a@dest.example"), 1, "reload: A's deferred one sent");
	is_int(fake_saw(&fake, "ok-b@dest.example"), 1, "reload: B sent");
	is_int(fake_saw(&fake, "ok-a@dest.example"), 0, "reload: A's sent one not again");
	is_int(fake_saw(&fake, "ok-c@dest.example"), 0, "reload: C not again");
	is_int(fake.ndata, 2, "reload: two transactions");
	is_int(rcpt_events(t[0].rids[0]), 1, "reload: one event for A's first recipient");
	is_int(msg_dropped(t[0].sm.id), 1, "reload: A's data dropped now");
	is_int(msg_dropped(t[1].sm.id), 1, "reload: B's data dropped");
	ok(run_until(idle_sched, NULL, 2000) && scheduler_pending(srv.sched) == 0,
	    "reload: nothing pending");
	env_close(&e);
}

/* all_sent - every recipient of the heap case is final */
static int
all_sent(void *arg)
{
	return db_int("SELECT count(*) FROM recipients WHERE status = 'sent'") == HEAP_N;
}

/* test_heap - 1,000 messages with shuffled next attempts, loaded from the
 * store, go out in next-attempt order (one at a time: max_connections 1) */
static void
test_heap(void)
{
	struct env e;
	struct tmsg *t = xcalloc(HEAP_N, sizeof(*t));
	int *rank = xcalloc(HEAP_N, sizeof(*rank));
	int64_t *order = xcalloc(HEAP_N, sizeof(*order));
	const char *dir = case_dir("heap");
	time_t now = util_now();
	char rcpt[HEAP_N][32];
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = 0, wrong = 0, ordered_ids = 1, delivered;
	int64_t t_start;

	if (env_open(&e, dir, 0, 1) != 0) {
		ok(0, "heap: configuration loads");
		goto out;
	}
	for (int i = 0; i < HEAP_N; i++) {
		snprintf(rcpt[i], sizeof(rcpt[i]), "h%d@dest.example", i);
		tmsg_init(&t[i], "heap@plain.example", rcpt[i], NULL, now, 0);
		rank[i] = i;
	}
	ok(commit_all(t, HEAP_N) == 0, "heap: %d messages committed", HEAP_N);
	env_close(&e);

	/* Shuffle (fixed seed): message i becomes due at now - 5000 + rank[i],
	 * so store order (by id) and due order disagree everywhere. */
	srand(12345);
	for (int i = HEAP_N - 1; i > 0; i--) {
		int j = rand() % (i + 1), x = rank[i];
		rank[i] = rank[j];
		rank[j] = x;
	}
	if (sqlite3_open(e.db, &db) != SQLITE_OK)
		fatalx("sqlite3_open %s", e.db);
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "UPDATE recipients SET next_attempt_at = ? "
	    "WHERE message_id = ?", -1, &st, NULL);
	for (int i = 0; i < HEAP_N; i++) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)(now - 5000 + rank[i]));
		sqlite3_bind_int64(st, 2, (sqlite3_int64)t[i].sm.id);
		if (sqlite3_step(st) != SQLITE_DONE)
			fatalx("update: %s", sqlite3_errmsg(db));
		sqlite3_reset(st);
		order[rank[i]] = t[i].sm.id;
	}
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);

	if (env_open(&e, dir, 1, 1) != 0) {
		ok(0, "heap: configuration loads again");
		goto out;
	}
	is_int(e.loaded, HEAP_N, "heap: scheduler_load finds every message");
	is_int(scheduler_pending(srv.sched), HEAP_N, "heap: all pending");
	t_start = util_mono_ms();
	delivered = run_until(all_sent, NULL, 60000);
	ok(delivered, "heap: all delivered (%lld ms)", (long long)(util_mono_ms() - t_start));

	db = db_ro();
	sqlite3_prepare_v2(db, "SELECT message_id FROM events ORDER BY id", -1, &st, NULL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (n < HEAP_N && id != order[n])
			wrong++;
		if (n > 0 && n < HEAP_N && order[n] < order[n - 1])
			ordered_ids = 0;
		n++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	is_int(n, HEAP_N, "heap: one event per message");
	is_int(wrong, 0, "heap: delivered in next-attempt order");
	ok(!ordered_ids, "heap: that order is not the store's id order");
	{
		char nd[PATH_MAX + 16];
		snprintf(nd, sizeof(nd), "%s/local/new", e.dir);
		is_int(files_in(nd), HEAP_N, "heap: %d files in the Maildir", HEAP_N);
	}
	env_close(&e);
out:
	free(t);
	free(rank);
	free(order);
}

/* test_daily_limit - daily_limit = 2: the third message waits queued,
 * without an attempt, and still waits after a restart */
static void
test_daily_limit(void)
{
	struct env e;
	struct tmsg t[3];
	struct want w[3];
	char nd[PATH_MAX + 16];
	const char *dir = case_dir("daily");

	if (env_open(&e, dir, 0, 4) != 0) {
		ok(0, "daily: configuration loads");
		return;
	}
	for (int i = 0; i < 3; i++)
		tmsg_init(&t[i], "ida@limited.example", i == 0 ? "d0@dest.example" :
		    i == 1 ? "d1@dest.example" : "d2@dest.example", NULL, util_now(), 1);
	ok(commit_all(t, 3) == 0, "daily: three messages committed");
	w[0] = (struct want){ t[0].rids[0], "sent", 1 };
	w[1] = (struct want){ t[1].rids[0], "sent", 1 };
	w[2] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "daily: the first two sent");
	run_for(1500);          /* more than a scan_interval */
	is_str(rcpt_status(t[2].rids[0]), "queued", "daily: the third waits, queued");
	is_int(rcpt_attempts(t[2].rids[0]), 0, "daily: waiting is no attempt");
	is_int(scheduler_pending(srv.sched), 1, "daily: still pending in the scheduler");
	env_close(&e);
	is_int(db_int("SELECT count(*) FROM counters WHERE upstream = 'limited'"), 1,
	    "daily: counters saved at shutdown");
	ok(strstr(db_text("SELECT data FROM counters WHERE upstream = 'limited'"),
	    "outpost-counters 1\nfirst ") != NULL, "daily: counters in their text form");

	if (env_open(&e, dir, 1, 4) != 0) {
		ok(0, "daily: configuration loads again");
		return;
	}
	is_int(e.loaded, 1, "daily: the waiting message loaded after a restart");
	run_for(1500);
	is_str(rcpt_status(t[2].rids[0]), "queued", "daily: still waits after a restart");
	snprintf(nd, sizeof(nd), "%s/limited/new", e.dir);
	is_int(files_in(nd), 2, "daily: two files delivered in all");
	env_close(&e);
}

/* test_quota - 550 5.4.5 sending quota: deferred to the end of the
 * upstream's suspension (default 30 s cool-down), never bounced */
static void
test_quota(void)
{
	struct env e;
	struct tmsg t;
	struct want w[2];
	long long next;
	time_t t0;

	fake_reset(&fake);
	if (env_open(&e, case_dir("quota"), 0, 4) != 0) {
		ok(0, "quota: configuration loads");
		return;
	}
	t0 = util_now();
	tmsg_init(&t, "jim@fake.example", "quota1@dest.example", NULL, t0, 1);
	ok(commit_all(&t, 1) == 0, "quota: message committed");
	w[0] = (struct want){ t.rids[0], "deferred", 1 };
	w[1] = (struct want){ 0, NULL, 0 };
	ok(run_until(want_met, w, 4000), "quota: 550 5.4.5 is deferred, not bounced");
	next = db_int("SELECT next_attempt_at FROM recipients WHERE id = %lld",
	    (long long)t.rids[0]);
	ok(next >= (long long)t0 + 29 && next <= (long long)util_now() + 31,
	    "quota: retried after the 30 s suspension, not [queue] retry (%lld - %lld)",
	    next, (long long)t0);
	run_for(1500);
	is_int(fake_saw(&fake, "quota1@dest.example"), 1, "quota: not retried meanwhile");
	is_int(msg_dropped(t.sm.id), 0, "quota: data kept");
	env_close(&e);
}


/* heap_valid - heap order and every entry's index; returns the first
 * broken index, or -1 */
static long
heap_valid(const struct scheduler *s)
{
	for (size_t i = 0; i < s->nheap; i++) {
		if (s->heap[i]->hidx != i)
			return (long)i;
		if (i > 0 && scheduler_less(s->heap[i], s->heap[(i - 1) / 2]))
			return (long)i;
	}
	return -1;
}

/* test_big_heap - the queue tools' heap operations on a scheduler of
 * BIG_N messages built by hand (no store, no upstream: the timer is
 * never armed because the scheduler is stopping) */
static void
test_big_heap(void)
{
	static struct conf conf;
	struct scheduler s;
	struct sched_msg *m = xcalloc(BIG_N, sizeof(*m));
	struct sched_rcpt *r = xcalloc(BIG_N, sizeof(*r));
	time_t now = util_now();
	uint64_t x = 88172645463325252ULL;
	size_t removed = 0, notin = 0, n;
	long bad;
	int64_t t0;

	memset(&s, 0, sizeof(s));
	s.conf = &conf;
	s.stopping = 1;
	for (size_t i = 0; i < BIG_N; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		m[i].id = (int64_t)i + 1;
		snprintf(m[i].queue_id, sizeof(m[i].queue_id), "%012zX", i);
		m[i].hidx = SCHED_NOT_IN_HEAP;
		m[i].rcpts = &r[i];
		m[i].nrcpt = 1;
		r[i].next_attempt = now + 3600 + (time_t)(x % 86400);
		m[i].anext = i + 1 < BIG_N ? &m[i + 1] : NULL;
		m[i].aprev = i > 0 ? &m[i - 1] : NULL;
		scheduler_requeue(&s, &m[i]);
	}
	s.all = &m[0];
	s.nmsgs = BIG_N;
	is_int((long long)s.nheap, BIG_N, "big heap: every message in the heap");
	is_int(heap_valid(&s), -1, "big heap: heap order and indexes after the pushes");
	/* what hold and delete do: every third message out of the middle */
	for (size_t i = 0; i < BIG_N; i += 3) {
		scheduler_heap_remove(&s, &m[i]);
		m[i].held = 1;
		removed++;
	}
	is_int((long long)s.nheap, BIG_N - removed, "big heap: removed ones are gone");
	bad = heap_valid(&s);
	is_int(bad, -1, "big heap: heap order and indexes after removals");
	for (size_t i = 0; i < BIG_N; i += 3)
		if (m[i].hidx == SCHED_NOT_IN_HEAP)
			notin++;
	is_int((long long)notin, (long long)removed, "big heap: removed ones know it");
	t0 = util_mono_ms();
	n = scheduler_retry_all(&s);
	is_int((long long)n, BIG_N - removed, "big heap: the flush counts the unheld ones");
	ok(util_mono_ms() - t0 < 2000, "big heap: a flush of %zu messages takes %lld ms",
	    n, (long long)(util_mono_ms() - t0));
	is_int(heap_valid(&s), -1, "big heap: heap order after the flush");
	ok(s.nheap > 0 && s.heap[0]->due <= (double)util_now() &&
	    s.heap[s.nheap - 1]->due <= (double)util_now(), "big heap: all due now");
	is_int(r[0].next_attempt > now + 3000, 1, "big heap: a held message is not flushed");
	free(s.heap);
	free(r);
	free(m);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "maildir", test_maildir }, { "refused", test_refused },
	{ "bounce", test_bounce }, { "lifetime", test_lifetime },
	{ "routing", test_routing }, { "reload", test_reload },
	{ "heap", test_heap }, { "daily_limit", test_daily_limit },
	{ "quota", test_quota }, { "big_heap", test_big_heap },
};

int
main(void)
{
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	log_init(LOG_DEST_STDERR, getenv("TEST_DEBUG") != NULL, "test_scheduler");
	if (evthread_use_pthreads() != 0)
		fatalx("libevent without pthreads");
	base = event_base_new();
	if (tap_tmpdir(tmpdir, sizeof(tmpdir), "test_scheduler") == NULL)
		return 99;
	umask(022);

	srv.base = base;
	srv.started = util_now();
	srv.loopq = loopq_new(base);
	srv.signer = signer_new(srv.loopq, 2);
	srv.dns = dns_new(base, "", err, sizeof(err));
	if (srv.dns == NULL)
		fatalx("dns_new: %s", err);
	fake_start(&fake);
	refused_port = closed_port();

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int64_t t0 = util_mono_ms();
		cases[i].fn();
		printf("# %s: %lld ms\n", cases[i].name, (long long)(util_mono_ms() - t0));
	}

	while (fake.conns)
		fake_conn_free(fake.conns);
	evconnlistener_free(fake.lev);
	dns_free(srv.dns);
	signer_free(srv.signer);
	loopq_drain(srv.loopq);
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
