/*
 * control - the control socket (control.h has the protocol).
 *
 * Runs on the event loop: an evconnlistener on the Unix socket, one
 * bufferevent per request. The answer is built whole in an evbuffer
 * (status is small), written, and the connection freed once the output
 * has drained. Verbs are rows of control_verbs[]; each writes its answer
 * into `out` and returns 0, or -1 with a reason for "error: ".
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "conf.h"
#include "bulk.h"
#include "control.h"
#include "domcheck.h"
#include "log.h"
#include "scheduler.h"
#include "server.h"
#include "upstream.h"
#include "util.h"

#define CONTROL_ARGS_MAX 16
#define CONTROL_ERR_MAX 256
#define CONTROL_BACKLOG 16

struct control {
	struct server *srv;
	struct evconnlistener *lev;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct control_conn *conns;     /* open requests, freed with us */
};

struct control_conn {
	struct control *c;
	struct bufferevent *bev;
	uid_t uid;
	int answered;
	int shut;                   /* answer sent, our side shut down */
	struct control_conn *prev, *next;
};

typedef int (*control_fn)(struct control *c, int argc, char **argv,
    struct evbuffer *out, char *err, size_t errlen);

struct control_verb {
	const char *name;
	control_fn fn;
};

static int control_status(struct control *c, int argc, char **argv,
    struct evbuffer *out, char *err, size_t errlen);

static int control_queue(struct control *c, int argc, char **argv,
    struct evbuffer *out, char *err, size_t errlen);

static int control_reload(struct control *c, int argc, char **argv,
    struct evbuffer *out, char *err, size_t errlen);

static const struct control_verb control_verbs[] = {
	{ "status", control_status },
	{ "queue", control_queue },
	{ "reload", control_reload },
};

/* control_conn_free - unlink and close one request */
static void
control_conn_free(struct control_conn *cc)
{
	if (cc->prev)
		cc->prev->next = cc->next;
	else
		cc->c->conns = cc->next;
	if (cc->next)
		cc->next->prev = cc->prev;
	bufferevent_free(cc->bev);
	free(cc);
}

/* control_fmt_time - "2026-11-22 19:52:10 UTC" */
static const char *
control_fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		util_strlcpy(buf, "?", len);
	return buf;
}

/* control_fmt_dur - "3d4h", "2h13m", "41s" */
static const char *
control_fmt_dur(long s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, len, "%ldd%ldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%ldh%ldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%ldm%lds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lds", s);
	return buf;
}

/* control_fmt_rate - a rate in messages/s the way it was configured */
static const char *
control_fmt_rate(double r, char *buf, size_t len)
{
	if (r <= 0)
		snprintf(buf, len, "unlimited");
	else if (r >= 1)
		snprintf(buf, len, "%.3g/second", r);
	else if (r * 60 >= 1)
		snprintf(buf, len, "%.3g/minute", r * 60);
	else
		snprintf(buf, len, "%.3g/hour", r * 3600);
	return buf;
}

/* control_up_state - see control.h */
const char *
control_up_state(const struct scheduler_up_status *st, double now)
{
	if (st->down_until > 0)
		return "down";
	if (st->thr.suspended_until > now)
		return "suspended";
	return "up";
}

/* control_status_line - see control.h */
void
control_status_line(struct server *srv, char *buf, size_t len)
{
	struct scheduler_queue_status q;
	struct scheduler_up_status st;
	time_t now = util_now();
	size_t n, nups = scheduler_nupstreams(srv->sched);
	int w;

	scheduler_queue_status(srv->sched, &q);
	w = snprintf(buf, len, "%zu messages queued (%zu deferred, %zu held)%s", q.msgs,
	    q.deferred, q.held, nups ? "; upstreams:" : "");
	n = w < 0 ? 0 : (size_t)w;
	for (size_t i = 0; i < nups && n < len; i++) {
		scheduler_upstream_status(srv->sched, i, &st);
		w = snprintf(buf + n, len - n, "%s %s %s", i ? "," : "", st.cu->name,
		    control_up_state(&st, (double)now));
		n += w < 0 ? 0 : (size_t)w;
	}
}

/* control_status_text - the status for people */
static void
control_status_text(struct control *c, struct evbuffer *out)
{
	struct server *srv = c->srv;
	struct scheduler_queue_status q;
	struct scheduler_up_status st;
	time_t now = util_now();
	char b1[64], b2[64], reason[UPSTREAM_REPLY_MAX * 4 + 1];
	const char *last = "";

	scheduler_queue_status(srv->sched, &q);
	evbuffer_add_printf(out, "outpostd %s, pid %ld, up %s, hostname %s\n", PACKAGE_VERSION,
	    (long)getpid(), control_fmt_dur((long)(now - srv->started), b1, sizeof(b1)),
	    srv->conf->server.hostname);
	evbuffer_add_printf(out, "sessions: %d open%s\n", srv->nsessions,
	    srv->stopping ? " (stopping)" : "");
	evbuffer_add_printf(out, "queue: %zu messages, %zu recipients pending (%zu deferred),"
	    " %zu in delivery, %zu held", q.msgs, q.rcpts, q.deferred, q.inflight, q.held);
	if (q.oldest)
		evbuffer_add_printf(out, ", oldest %s", control_fmt_dur((long)(now - q.oldest),
		    b1, sizeof(b1)));
	evbuffer_add_printf(out, "\n");
	if (srv->bulk != NULL && bulk_unsubless(srv->bulk, &last) > 0)
		evbuffer_add_printf(out, "bulk without unsubscribe: %lu message%s since start, "
		    "last from <%s> (set [domain] unsubscribe = yes)\n",
		    bulk_unsubless(srv->bulk, NULL), bulk_unsubless(srv->bulk, NULL) == 1 ?
		    "" : "s", log_esc(last, reason, sizeof(reason)));
	if (srv->conf->ndomains > 0) {
		evbuffer_add_printf(out, "self-check (check dns, every %s):\n",
		    srv->conf->server.check_interval ? control_fmt_dur(
		    srv->conf->server.check_interval, b1, sizeof(b1)) : "never");
		domcheck_status(srv->domcheck, out, 0);
	}
	for (size_t i = 0; i < scheduler_nupstreams(srv->sched); i++) {
		const struct conf_upstream *cu;

		scheduler_upstream_status(srv->sched, i, &st);
		cu = st.cu;
		if (cu->is_maildir)
			evbuffer_add_printf(out, "\nupstream %s (maildir:%s): %s\n", cu->name,
			    cu->maildir, control_up_state(&st, (double)now));
		else
			evbuffer_add_printf(out, "\nupstream %s (%s:%d): %s\n", cu->name, cu->host,
			    cu->port, control_up_state(&st, (double)now));
		if (st.down_until > 0)
			evbuffer_add_printf(out, "  unreachable: avoided until %s\n",
			    control_fmt_time(st.down_until, b1, sizeof(b1)));
		evbuffer_add_printf(out, "  rate: %s", control_fmt_rate(st.thr.rate_current,
		    b1, sizeof(b1)));
		evbuffer_add_printf(out, " (configured %s)\n", control_fmt_rate(
		    st.thr.rate_configured, b2, sizeof(b2)));
		if (st.thr.suspended_until > (double)now)
			evbuffer_add_printf(out, "  suspended until %s (%s more)\n",
			    control_fmt_time((time_t)st.thr.suspended_until, b1, sizeof(b1)),
			    control_fmt_dur((long)(st.thr.suspended_until - (double)now + 0.999),
			    b2, sizeof(b2)));
		if (st.thr.reason[0])
			evbuffer_add_printf(out, "  last throttled by: %s (%lu time%s)\n",
			    log_esc(st.thr.reason, reason, sizeof(reason)), st.thr.throttle_events,
			    st.thr.throttle_events == 1 ? "" : "s");
		evbuffer_add_printf(out, "  connections: %zu busy of %d; %zu message%s waiting\n",
		    st.jobs, cu->max_connections, st.waiting, st.waiting == 1 ? "" : "s");
		evbuffer_add_printf(out, "  since start: %lu recipients delivered, %lu not\n",
		    st.sent, st.failed);
		if (st.last_error_at)
			evbuffer_add_printf(out, "  last error: %s (%s ago)\n",
			    log_esc(st.last_error, reason, sizeof(reason)), control_fmt_dur(
			    (long)(now - st.last_error_at), b1, sizeof(b1)));
		evbuffer_add_printf(out, "  last 24h: %lu messages", st.thr.day_msgs);
		if (st.thr.day_limit)
			evbuffer_add_printf(out, " of %lu allowed", st.thr.day_limit);
		evbuffer_add_printf(out, ", %lu recipients", st.thr.day_rcpts);
		if (st.thr.day_rcpt_limit)
			evbuffer_add_printf(out, " of %lu allowed", st.thr.day_rcpt_limit);
		evbuffer_add_printf(out, "\n");
	}
}

/* control_status_json - the same as one JSON object */
static void
control_status_json(struct control *c, struct evbuffer *out)
{
	struct server *srv = c->srv;
	struct scheduler_queue_status q;
	struct scheduler_up_status st;
	time_t now = util_now();
	char j1[HOST_MAX * 2 + 8], j2[PATH_MAX * 2 + 8];
	char esc[UPSTREAM_REPLY_MAX * 4 + 1], jr[sizeof(esc) * 2 + 8];
	const char *last = "";
	unsigned long n;

	scheduler_queue_status(srv->sched, &q);
	evbuffer_add_printf(out, "{\"version\": \"%s\", \"pid\": %ld, \"started\": %lld,"
	    " \"now\": %lld, \"hostname\": %s, \"sessions\": %d, \"stopping\": %s,\n",
	    PACKAGE_VERSION, (long)getpid(), (long long)srv->started, (long long)now,
	    util_json_str(srv->conf->server.hostname, j1, sizeof(j1)), srv->nsessions,
	    srv->stopping ? "true" : "false");
	evbuffer_add_printf(out, " \"queue\": {\"messages\": %zu, \"recipients\": %zu,"
	    " \"deferred\": %zu, \"in_delivery\": %zu, \"held\": %zu, \"oldest\": %lld},\n"
	    " \"upstreams\": [", q.msgs, q.rcpts, q.deferred, q.inflight, q.held,
	    (long long)q.oldest);
	for (size_t i = 0; i < scheduler_nupstreams(srv->sched); i++) {
		const struct conf_upstream *cu;

		scheduler_upstream_status(srv->sched, i, &st);
		cu = st.cu;
		evbuffer_add_printf(out, "%s\n  {\"name\": %s, \"address\": %s, \"port\": %d,"
		    " \"state\": \"%s\", \"down_until\": %lld,", i ? "," : "",
		    util_json_str(cu->name, j1, sizeof(j1)),
		    util_json_str(cu->is_maildir ? cu->maildir : cu->host, j2, sizeof(j2)),
		    cu->is_maildir ? 0 : cu->port, control_up_state(&st, (double)now),
		    (long long)st.down_until);
		evbuffer_add_printf(out, " \"rate_current\": %.6g, \"rate_configured\": %.6g,"
		    " \"suspended_until\": %.3f, \"reason\": %s, \"throttle_events\": %lu,"
		    " \"cooldown\": %.3f,", st.thr.rate_current, st.thr.rate_configured,
		    st.thr.suspended_until > (double)now ? st.thr.suspended_until : 0.0,
		    util_json_str(log_esc(st.thr.reason, esc, sizeof(esc)), jr, sizeof(jr)),
		    st.thr.throttle_events, st.thr.cooldown);
		evbuffer_add_printf(out, " \"sent\": %lu, \"failed\": %lu, \"last_error\": %s,"
		    " \"last_error_at\": %lld,", st.sent, st.failed,
		    util_json_str(log_esc(st.last_error, esc, sizeof(esc)), jr, sizeof(jr)),
		    (long long)st.last_error_at);
		evbuffer_add_printf(out, " \"connections\": %zu, \"max_connections\": %d,"
		    " \"waiting\": %zu, \"day_messages\": %lu, \"day_limit\": %lu,"
		    " \"day_recipients\": %lu, \"day_recipient_limit\": %lu}",
		    st.jobs, cu->max_connections, st.waiting, st.thr.day_msgs,
		    st.thr.day_limit, st.thr.day_rcpts, st.thr.day_rcpt_limit);
	}
	n = srv->bulk != NULL ? bulk_unsubless(srv->bulk, &last) : 0;
	evbuffer_add_printf(out, "],\n \"bulk_without_unsubscribe\": {\"count\": %lu,"
	    " \"last_sender\": %s},", n, util_json_str(log_esc(last, esc, sizeof(esc)), jr,
	    sizeof(jr)));
	evbuffer_add_printf(out, "\n \"selfcheck\": ");
	domcheck_status(srv->domcheck, out, 1);
	evbuffer_add_printf(out, "}\n");
}

/* control_status - "status [--json]" */
static int
control_status(struct control *c, int argc, char **argv, struct evbuffer *out,
    char *err, size_t errlen)
{
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0)) {
		snprintf(err, errlen, "usage: status [--json]");
		return -1;
	}
	if (argc == 2)
		control_status_json(c, out);
	else
		control_status_text(c, out);
	return 0;
}

/* control_queue - "queue hold|release|delete|retry ID..." and
 * "queue retry --all"; every id is tried, failures are reported together */
static int
control_queue(struct control *c, int argc, char **argv, struct evbuffer *out,
    char *err, size_t errlen)
{
	static const struct { const char *name; enum scheduler_admin_op op; } ops[] = {
		{ "hold", SCHED_ADMIN_HOLD }, { "release", SCHED_ADMIN_RELEASE },
		{ "delete", SCHED_ADMIN_DELETE }, { "retry", SCHED_ADMIN_RETRY },
	};
	char why[128], esc[64], fails[CONTROL_ERR_MAX] = "";
	size_t i, done = 0, o = 0;
	int failed = 0;

	for (i = 0; argc >= 3 && i < ARRAY_LEN(ops); i++)
		if (strcmp(argv[1], ops[i].name) == 0)
			break;
	if (argc < 3 || i == ARRAY_LEN(ops)) {
		snprintf(err, errlen, "usage: queue hold|release|delete|retry ID... | retry --all");
		return -1;
	}
	if (strcmp(argv[2], "--all") == 0) {
		if (ops[i].op != SCHED_ADMIN_RETRY || argc != 3) {
			snprintf(err, errlen, "--all goes with retry only");
			return -1;
		}
		evbuffer_add_printf(out, "%zu messages due now\n",
		    scheduler_retry_all(c->srv->sched));
		return 0;
	}
	for (int k = 2; k < argc; k++) {
		for (char *p = argv[k]; *p; p++)       /* ids are upper-case hex */
			*p = (char)toupper((unsigned char)*p);
		if (!util_queue_id_valid(argv[k])) {
			util_strlcpy(why, "not a queue id", sizeof(why));
		} else if (scheduler_admin(c->srv->sched, ops[i].op, argv[k], why,
		    sizeof(why)) == 0) {
			evbuffer_add_printf(out, "%s: %s\n", argv[k], ops[i].op == SCHED_ADMIN_HOLD ?
			    "held" : ops[i].op == SCHED_ADMIN_RELEASE ? "released" :
			    ops[i].op == SCHED_ADMIN_DELETE ? "deleted" : "due now");
			done++;
			continue;
		}
		/* one line for all failures: "2 done; ABC: not held; ..." */
		failed = 1;
		if (o < sizeof(fails))
			o += (size_t)snprintf(fails + o, sizeof(fails) - o, "; %s: %s",
			    log_esc(argv[k], esc, sizeof(esc)), why);
	}
	if (failed)
		snprintf(err, errlen, "%zu done%s", done, fails);
	return failed ? -1 : 0;
}

/* control_reload - SIGHUP's work, with its outcome for the caller */
static int
control_reload(struct control *c, int argc, char **argv, struct evbuffer *out,
    char *err, size_t errlen)
{
	char report[CONTROL_ERR_MAX];

	(void)argv;
	if (argc != 1) {
		snprintf(err, errlen, "usage: reload");
		return -1;
	}
	log_info("reload requested by outpostctl");
	if (server_reload(c->srv, report, sizeof(report)) < 0) {
		snprintf(err, errlen, "not reloaded, the running settings stay: %s", report);
		return -1;
	}
	evbuffer_add_printf(out, "reloaded: %s\n", report);
	return 0;
}

/* control_answer - queue the reply; the connection closes once sent */
static void
control_answer(struct control_conn *cc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
control_answer(struct control_conn *cc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(cc->bev), fmt, ap);
	va_end(ap);
	cc->answered = 1;
}

/* control_dispatch - split the request line and run its verb */
static void
control_dispatch(struct control_conn *cc, char *line)
{
	char *argv[CONTROL_ARGS_MAX + 1], *save = NULL, *tok;
	char err[CONTROL_ERR_MAX] = "", esc[64];
	struct evbuffer *body;
	int argc = 0;

	for (tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (argc == CONTROL_ARGS_MAX) {
			control_answer(cc, "error: too many arguments\n");
			return;
		}
		argv[argc++] = tok;
	}
	argv[argc] = NULL;
	if (argc == 0) {
		control_answer(cc, "error: empty request\n");
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(control_verbs); i++) {
		if (strcmp(argv[0], control_verbs[i].name) != 0)
			continue;
		body = evbuffer_new();
		if (body == NULL)
			fatalx("control: evbuffer_new failed");
		log_debug("control: uid %ld: %s", (long)cc->uid, argv[0]);
		if (control_verbs[i].fn(cc->c, argc, argv, body, err, sizeof(err)) == 0) {
			control_answer(cc, "ok\n");
			evbuffer_add_buffer(bufferevent_get_output(cc->bev), body);
		} else {
			control_answer(cc, "error: %s\n", err);
		}
		evbuffer_free(body);
		return;
	}
	control_answer(cc, "error: unknown request '%s'\n", log_esc(argv[0], esc, sizeof(esc)));
}

/* control_read_cb - wait for the whole request line, bounded */
static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol;
	char line[CONTROL_LINE_MAX + 1];
	size_t n;

	if (cc->answered) {
		/* whatever follows the request is read and dropped, so the
		 * close that ends the answer is not a reset (lingering close) */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			control_answer(cc, "error: request line too long\n");
		return;
	}
	if ((size_t)eol.pos > CONTROL_LINE_MAX) {
		control_answer(cc, "error: request line too long\n");
		return;
	}
	n = (size_t)eol.pos;
	evbuffer_remove(in, line, n);
	line[n] = '\0';
	if (memchr(line, '\0', n) != NULL) {
		control_answer(cc, "error: NUL in request\n");
		return;
	}
	if (n > 0 && line[n - 1] == '\r')
		line[n - 1] = '\0';
	control_dispatch(cc, line);
}

/* control_write_cb - the answer is out: shut our side down; the peer's
 * EOF (or the timeout) then frees the connection */
static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_conn *cc = arg;

	if (cc->answered && !cc->shut && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		cc->shut = 1;
		shutdown(bufferevent_getfd(bev), SHUT_WR);
	}
}

/* control_event_cb - EOF, error or timeout: drop the request */
static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn *cc = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && !cc->answered)
		log_debug("control: request timed out");
	control_conn_free(cc);
}

/* control_accept_cb - check who is calling, then read one request */
static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *c = arg;
	struct control_conn *cc;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = { CONTROL_TIMEOUT, 0 };

	(void)lev;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid() && cred.gid != getegid())) {
		static const char deny[] = "error: permission denied\n";

		log_warn("control: refused uid %ld gid %ld", (long)cred.uid, (long)cred.gid);
		if (write(fd, deny, sizeof(deny) - 1) < 0) {
			/* the peer is gone; nothing to tell */
		}
		evutil_closesocket(fd);
		return;
	}
	cc = xcalloc(1, sizeof(*cc));
	cc->c = c;
	cc->uid = cred.uid;
	cc->bev = bufferevent_socket_new(c->srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (cc->bev == NULL)
		fatalx("control: bufferevent_socket_new failed");
	cc->next = c->conns;
	if (c->conns)
		c->conns->prev = cc;
	c->conns = cc;
	bufferevent_setcb(cc->bev, control_read_cb, control_write_cb, control_event_cb, cc);
	bufferevent_set_timeouts(cc->bev, &tv, &tv);
	bufferevent_setwatermark(cc->bev, EV_READ, 0, CONTROL_LINE_MAX + 2);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
}

/* control_new - bind the socket with mode 0660 from the start */
struct control *
control_new(struct server *srv, const char *path, char *err, size_t errlen)
{
	struct control *c;
	struct sockaddr_un sun;
	struct stat sb;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long for a Unix socket (at most %zu bytes)",
		    path, sizeof(sun.sun_path) - 1);
		return NULL;
	}
	util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	/* A socket left by a daemon that died is replaced; one that still
	 * answers means another outpostd uses this state_dir. */
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket", path);
			close(fd);
			return NULL;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			snprintf(err, errlen, "%s: another outpostd is running with this state_dir",
			    path);
			close(fd);
			return NULL;
		}
		unlink(path);
	}
	if (evutil_make_socket_nonblocking(fd) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		umask(old);
		snprintf(err, errlen, "%s: bind: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	if (chmod(path, 0660) < 0 || listen(fd, CONTROL_BACKLOG) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	util_strlcpy(c->path, path, sizeof(c->path));
	c->lev = evconnlistener_new(srv->base, control_accept_cb, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (c->lev == NULL) {
		snprintf(err, errlen, "%s: evconnlistener_new failed", path);
		close(fd);
		unlink(path);
		free(c);
		return NULL;
	}
	return c;
}

/* control_free - stop listening, drop open requests, remove the socket */
void
control_free(struct control *c)
{
	if (c == NULL)
		return;
	while (c->conns)
		control_conn_free(c->conns);
	evconnlistener_free(c->lev);
	unlink(c->path);
	free(c);
}
