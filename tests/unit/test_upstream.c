/*
 * test_upstream - the upstream client against an in-process scripted SMTP
 * server, and the Maildir upstream.
 *
 * The fake server listens on 127.0.0.1:0 on the same event loop. Each case
 * gives it a script (greeting, EHLO reply, replies per command, where to
 * drop the connection) and afterwards checks what it received: the exact
 * bytes after DATA, which commands came in one read, whether MAIL was ever
 * sent. Every case runs the loop under a timer guard.
 *
 * Covers RELIABILITY.md S2 (dot-stuffing, one transaction), C1 (421),
 * C2/C3 (drops before and after the dot), C4 (silence), C5 (STARTTLS
 * missing), C6 (AUTH 535), C8 (long and endless replies), reuse, Maildir.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "conf.h"
#include "dns.h"
#include "log.h"
#include "loopq.h"
#include "server.h"
#include "signer.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"
#include "tap.h"

#define FS_MAX_RCPT 8
#define FS_MAX_READS 64

/* What the fake server answers. NULL greeting: say nothing at all. */
struct fs_script {
	const char *greeting;
	const char *ehlo;
	const char *auth;
	const char *mail;
	const char *rcpt[FS_MAX_RCPT];  /* by order; the last one repeats */
	const char *data;
	const char *dot;
	size_t close_in_body;           /* drop after this many body bytes */
	int close_after_dot;            /* drop without replying */
	int silent_after_dot;
	const char *starttls;           /* reply to STARTTLS; 220 starts TLS */
	int implicit_tls;
};

struct fs_conn;

/* What it saw. */
struct fs {
	struct evconnlistener *lev;
	int port;
	const struct fs_script *sc;
	int nconns;
	struct evbuffer *all;           /* every byte received, all connections */
	char *reads[FS_MAX_READS];      /* each read of the first connection */
	int nreads;
	struct evbuffer *body;          /* raw bytes between 354 and the dot */
	int nmail, nrset, nauth;
	char auth_line[512];
	struct fs_conn *conns;
};

struct fs_conn {
	struct fs *fs;
	struct bufferevent *bev;
	int in_data;
	int closing;
	int nrcpt;
	int id;
	size_t body_bytes;
	struct fs_conn *next;
};

static struct event_base *base;
static struct server srv;
static struct conf conf;
static char tmpdir[256];
static SSL_CTX *fs_ssl_ctx;         /* NULL: no openssl CLI, TLS cases skipped */
static char cert_path[512];

/* fs_conn_free - drop a fake-server connection */
static void
fs_conn_free(struct fs_conn *fc)
{
	struct fs_conn **pp;

	for (pp = &fc->fs->conns; *pp && *pp != fc; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = fc->next;
	bufferevent_free(fc->bev);
	free(fc);
}

/* fs_reply - send a reply; a 421 closes the connection after it */
static void
fs_reply(struct fs_conn *fc, const char *r)
{
	if (r == NULL)
		return;
	bufferevent_write(fc->bev, r, strlen(r));
	if (strncmp(r, "421", 3) == 0)
		fc->closing = 1;
}

static void
fs_write_cb(struct bufferevent *bev, void *arg)
{
	struct fs_conn *fc = arg;

	if (fc->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		fs_conn_free(fc);
}

static void
fs_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		fs_conn_free(arg);
}

static void fs_read_cb(struct bufferevent *bev, void *arg);

/* fs_tls_start - server side TLS over the plain connection (anything the
 * script wrote before, e.g. a 220 with injected plaintext, goes first) */
static void
fs_tls_start(struct fs_conn *fc, struct bufferevent *under, int opts)
{
	SSL *ssl = SSL_new(fs_ssl_ctx);

	fc->bev = bufferevent_openssl_filter_new(base, under, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, opts);
	bufferevent_openssl_set_allow_dirty_shutdown(fc->bev, 1);
	bufferevent_setcb(fc->bev, fs_read_cb, fs_write_cb, fs_event_cb, fc);
	bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
}

/* fs_command - one command line (CRLF included in line) */
static void
fs_command(struct fs_conn *fc, const char *line)
{
	const struct fs_script *sc = fc->fs->sc;

	if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
		fs_reply(fc, sc->ehlo ? sc->ehlo : "250 fake\r\n");
	} else if (strncasecmp(line, "AUTH", 4) == 0) {
		fc->fs->nauth++;
		util_strlcpy(fc->fs->auth_line, line, sizeof(fc->fs->auth_line));
		fs_reply(fc, sc->auth ? sc->auth : "235 2.7.0 ok\r\n");
	} else if (strncasecmp(line, "MAIL", 4) == 0) {
		fc->fs->nmail++;
		fs_reply(fc, sc->mail ? sc->mail : "250 2.1.0 ok\r\n");
	} else if (strncasecmp(line, "RCPT", 4) == 0) {
		const char *r = NULL;
		for (int i = fc->nrcpt; i >= 0 && r == NULL; i--)
			if (i < FS_MAX_RCPT)
				r = sc->rcpt[i];
		fc->nrcpt++;
		fs_reply(fc, r ? r : "250 2.1.5 ok\r\n");
	} else if (strncasecmp(line, "DATA", 4) == 0) {
		const char *r = sc->data ? sc->data : "354 go\r\n";
		fs_reply(fc, r);
		if (strncmp(r, "354", 3) == 0)
			fc->in_data = 1;
	} else if (strncasecmp(line, "RSET", 4) == 0) {
		fc->fs->nrset++;
		fc->nrcpt = 0;
		fs_reply(fc, "250 2.0.0 ok\r\n");
	} else if (strncasecmp(line, "STARTTLS", 8) == 0 && sc->starttls) {
		fs_reply(fc, sc->starttls);
		if (strncmp(sc->starttls, "220", 3) == 0)
			fs_tls_start(fc, fc->bev, BEV_OPT_CLOSE_ON_FREE);
	} else if (strncasecmp(line, "QUIT", 4) == 0) {
		fs_reply(fc, "221 2.0.0 bye\r\n");
		fc->closing = 1;
	} else {
		fs_reply(fc, "500 5.5.1 what\r\n");
	}
}

static void
fs_read_cb(struct bufferevent *bev, void *arg)
{
	struct fs_conn *fc = arg;
	struct fs *fs = fc->fs;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in);

	if (fc->closing) {
		evbuffer_drain(in, n);
		return;
	}
	if (fc->id == 1 && fs->nreads < FS_MAX_READS) {
		char *s = xmalloc(n + 1);
		evbuffer_copyout(in, s, n);
		s[n] = '\0';
		fs->reads[fs->nreads++] = s;
	}
	{
		char *s = xmalloc(n + 1);
		evbuffer_copyout(in, s, n);
		evbuffer_add(fs->all, s, n);
		free(s);
	}
	for (;;) {
		size_t eol;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_CRLF_STRICT);
		char *line;
		size_t len;

		if (p.pos < 0)
			return;
		len = (size_t)p.pos + eol;
		line = xmalloc(len + 1);
		evbuffer_remove(in, line, len);
		line[len] = '\0';
		if (fc->in_data) {
			if (strcmp(line, ".\r\n") == 0) {
				fc->in_data = 0;
				free(line);
				if (fs->sc->close_after_dot) {
					fs_conn_free(fc);
					return;
				}
				if (!fs->sc->silent_after_dot)
					fs_reply(fc, fs->sc->dot ? fs->sc->dot : "250 2.0.0 queued\r\n");
				continue;
			}
			evbuffer_add(fs->body, line, len);
			fc->body_bytes += len;
			free(line);
			if (fs->sc->close_in_body && fc->body_bytes >= fs->sc->close_in_body) {
				fs_conn_free(fc);
				return;
			}
			continue;
		}
		fs_command(fc, line);
		free(line);
		if (fc->bev != bev)
			return;                 /* STARTTLS: the TLS bufferevent reads now */
		if (fc->closing) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		}
	}
}

static void
fs_accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct fs *fs = arg;
	struct fs_conn *fc = xcalloc(1, sizeof(*fc));

	fc->fs = fs;
	fc->id = ++fs->nconns;
	fc->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(fc->bev, fs_read_cb, fs_write_cb, fs_event_cb, fc);
	bufferevent_enable(fc->bev, EV_READ | EV_WRITE);
	if (fs->sc->implicit_tls) {
		fs_tls_start(fc, fc->bev, BEV_OPT_CLOSE_ON_FREE);
	}
	fc->next = fs->conns;
	fs->conns = fc;
	if (fs->sc->greeting)
		fs_reply(fc, fs->sc->greeting);
}

/* fs_start - listen on 127.0.0.1:0 with this script */
static struct fs *
fs_start(const struct fs_script *sc)
{
	struct fs *fs = xcalloc(1, sizeof(*fs));
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fs->sc = sc;
	fs->all = evbuffer_new();
	fs->body = evbuffer_new();
	fs->lev = evconnlistener_new_bind(base, fs_accept_cb, fs,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	if (fs->lev == NULL)
		fatal("listen");
	getsockname(evconnlistener_get_fd(fs->lev), (struct sockaddr *)&sin, &slen);
	fs->port = ntohs(sin.sin_port);
	return fs;
}

static void
fs_stop(struct fs *fs)
{
	while (fs->conns)
		fs_conn_free(fs->conns);
	evconnlistener_free(fs->lev);
	evbuffer_free(fs->all);
	evbuffer_free(fs->body);
	for (int i = 0; i < fs->nreads; i++)
		free(fs->reads[i]);
	free(fs);
}

/* fs_text - everything received, as a string (static buffer per call) */
static char *
fs_text(struct evbuffer *b)
{
	static char *s;
	size_t n = evbuffer_get_length(b);

	free(s);
	s = xmalloc(n + 1);
	evbuffer_copyout(b, s, n);
	s[n] = '\0';
	return s;
}

/* A test job with up to 4 recipients. */
struct tjob {
	struct upstream_job job;
	struct upstream_rcpt rcpts[4];
	int ndone;
};

static void
tjob_done(struct upstream_job *job, void *arg)
{
	struct tjob *t = arg;

	t->ndone++;
}

static void
tjob_init(struct tjob *t, const char *data, size_t nrcpt)
{
	static const char *addrs[] = { "a@x.example", "b@x.example", "c@x.example", "d@x.example" };

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < nrcpt; i++) {
		t->rcpts[i].id = (int64_t)i + 1;
		t->rcpts[i].addr = addrs[i];
	}
	t->job.msg_id = 1;
	t->job.queue_id = "3F2A1B09C4D7";
	t->job.sender = "s@y.example";
	t->job.data = data;
	t->job.len = strlen(data);
	t->job.rcpts = t->rcpts;
	t->job.nrcpt = nrcpt;
	t->job.done = tjob_done;
	t->job.arg = t;
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
	event_base_loopbreak(base);
}

/* run - loop until every job is done (plus settle_ms), or the guard */
static int
run(struct tjob **jobs, int njobs, int guard_s, int settle_ms)
{
	int expired = 0;
	struct event *guard = evtimer_new(base, guard_cb, &expired);
	struct timeval tv = { guard_s, 0 };

	evtimer_add(guard, &tv);
	for (;;) {
		int all = 1;
		for (int i = 0; i < njobs; i++)
			if (jobs[i]->ndone == 0)
				all = 0;
		if (all || expired)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	if (!expired && settle_ms > 0) {
		struct timeval st = { 0, settle_ms * 1000 };
		event_base_loopexit(base, &st);
		event_base_dispatch(base);
	}
	event_free(guard);
	return !expired;
}

/* cu_init - an SMTP upstream at the fake server, plain, short timeouts */
static void
cu_init(struct conf_upstream *cu, int port)
{
	memset(cu, 0, sizeof(*cu));
	util_strlcpy(cu->name, "test", sizeof(cu->name));
	util_strlcpy(cu->host, "127.0.0.1", sizeof(cu->host));
	cu->port = port;
	cu->tls = CONF_TLS_NONE;
	cu->tls_verify = 1;
	cu->max_connections = 2;
	cu->max_messages_per_connection = 100;
	cu->idle_timeout = 30;
	cu->connect_timeout = 5;
	cu->greeting_timeout = 5;
	cu->command_timeout = 5;
	cu->data_timeout = 5;
	cu->data_block_timeout = 5;
	cu->data_done_timeout = 5;
}

/* one_job - deliver one job through an upstream built from cu */
static int
one_job(const struct conf_upstream *cu, struct tjob *t, int guard_s)
{
	char err[256];
	struct upstream *u = upstream_new(&srv, cu, err, sizeof(err));
	struct tjob *jobs[1] = { t };
	int r;

	if (u == NULL) {
		printf("# upstream_new: %s\n", err);
		return 0;
	}
	upstream_submit(u, &t->job);
	if (t->ndone != 0)
		printf("# done called inside upstream_submit\n");
	r = run(jobs, 1, guard_s, 100);
	upstream_free(u);
	return r && t->ndone == 1;
}

static void
test_plain_dotstuff(void)
{
	static const struct fs_script sc = {
		.greeting = "220 fake ESMTP\r\n",
		.ehlo = "250-fake\r\n250 8BITMIME\r\n",
	};
	const char *data = "Subject: t\r\n\r\n.\r\n..x\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@x>\r\n"
	    "DATA\r\n.x\r\nend";
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	cu_init(&cu, fs->port);
	tjob_init(&t, data, 1);
	ok(one_job(&cu, &t, 10), "plain: job done once");
	is_int(t.rcpts[0].code, 250, "plain: 250");
	is_str(t.rcpts[0].reply, "250 2.0.0 queued", "plain: final reply kept");
	is_str(fs_text(fs->body), "Subject: t\r\n\r\n..\r\n...x\r\nMAIL FROM:<evil@x>\r\n"
	    "RCPT TO:<v@x>\r\nDATA\r\n..x\r\nend\r\n", "S2: dot-stuffed body, CRLF added");
	is_int(fs->nmail, 1, "S2: exactly one MAIL");
	{
		char want[64];
		snprintf(want, sizeof(want), "127.0.0.1[127.0.0.1]:%d", fs->port);
		is_str(t.job.relay, want, "relay host[ip]:port");
	}
	ok(strstr(fs_text(fs->all), "MAIL FROM:<s@y.example>\r\n") != NULL, "no params without SIZE/8BITMIME use");
	is_int(t.job.possible_duplicate, 0, "not a possible duplicate");
	fs_stop(fs);
}

static void
test_bare_lf(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n" };
	const char *data = "a\n.\nb\rc\r\n.";
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	cu_init(&cu, fs->port);
	tjob_init(&t, data, 1);
	ok(one_job(&cu, &t, 10), "bare LF: done");
	is_str(fs_text(fs->body), "a\r\n..\r\nb\r\nc\r\n..\r\n", "bare CR/LF become CRLF, dots stuffed");
	fs_stop(fs);
}

/* test_big_body - a body of several write chunks, with lines of every
 * length, dots, bare CR and LF everywhere (also at chunk edges), comes
 * out as the one-byte-at-a-time rule makes it: CRLF endings, dots
 * stuffed, a final CRLF */
static void
test_big_body(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n" };
	static const char alphabet[] = "abcdefgh.\r\n";
	size_t n = 300 * 1024, w = 0;
	char *data = xmalloc(n + 1), *want = xmalloc(3 * n + 8);
	unsigned long seed = 99;
	int bol = 1, pcr = 0;
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		/* mostly long runs of letters, now and then a special byte */
		data[i] = (seed >> 33) % 40 == 0 ? alphabet[8 + (seed >> 20) % 3] :
		    alphabet[(seed >> 24) % 8];
	}
	data[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		char ch = data[i];

		if (pcr) {
			pcr = 0;
			want[w++] = '\r';
			want[w++] = '\n';
			bol = 1;
			if (ch == '\n')
				continue;
		}
		if (bol && ch == '.')
			want[w++] = '.';
		bol = 0;
		if (ch == '\r') {
			pcr = 1;
		} else if (ch == '\n') {
			want[w++] = '\r';
			want[w++] = '\n';
			bol = 1;
		} else {
			want[w++] = ch;
		}
	}
	if (pcr || !bol) {
		want[w++] = '\r';
		want[w++] = '\n';
	}
	want[w] = '\0';
	cu_init(&cu, fs->port);
	tjob_init(&t, data, 1);
	ok(one_job(&cu, &t, 20), "big body: done");
	is_int(t.rcpts[0].code, 250, "big body: 250");
	is_int((long)evbuffer_get_length(fs->body), (long)w, "big body: length as the byte rule");
	ok(strcmp(fs_text(fs->body), want) == 0, "big body: bytes as the byte rule");
	fs_stop(fs);
	free(data);
	free(want);
}

static void
test_pipelining(void)
{
	static const struct fs_script sc = {
		.greeting = "220 fake\r\n",
		.ehlo = "250-fake\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
	};
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;
	int found = 0;

	cu_init(&cu, fs->port);
	tjob_init(&t, "x\r\n", 2);
	t.job.body_8bit = 1;
	ok(one_job(&cu, &t, 10), "pipelining: done");
	for (int i = 0; i < fs->nreads; i++) {
		const char *m = strstr(fs->reads[i], "MAIL FROM:");
		if (m && strstr(m, "RCPT TO:<a@x.example>") && strstr(m, "RCPT TO:<b@x.example>") &&
		    strstr(m, "DATA\r\n"))
			found = 1;
	}
	ok(found, "RFC 2920: MAIL, RCPTs and DATA in one read");
	ok(strstr(fs_text(fs->all), "MAIL FROM:<s@y.example> SIZE=3 BODY=8BITMIME\r\n") != NULL,
	    "SIZE and BODY=8BITMIME sent when offered");
	is_int(t.rcpts[0].code, 250, "pipelining: rcpt 1 sent");
	is_int(t.rcpts[1].code, 250, "pipelining: rcpt 2 sent");
	fs_stop(fs);
}

static void
test_rcpt_mix(int pipelining)
{
	struct fs_script sc = {
		.greeting = "220 fake\r\n",
		.ehlo = pipelining ? "250-fake\r\n250 PIPELINING\r\n" : "250 fake\r\n",
		.rcpt = { "250 2.1.5 ok\r\n", "451 4.2.0 try later\r\n", "550 5.1.1 no such user\r\n" },
		.dot = "250 2.0.0 Ok: queued as ABC\r\n",
	};
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	cu_init(&cu, fs->port);
	tjob_init(&t, "hi\r\n", 3);
	ok(one_job(&cu, &t, 10), "mix%s: done", pipelining ? " (pipelined)" : "");
	is_int(t.rcpts[0].code, 250, "mix: accepted one gets the final reply");
	is_str(t.rcpts[0].reply, "250 2.0.0 Ok: queued as ABC", "mix: final text");
	is_int(t.rcpts[1].code, 451, "mix: 451 at RCPT kept");
	is_str(t.rcpts[1].reply, "451 4.2.0 try later", "mix: 451 text");
	is_int(t.rcpts[2].code, 550, "mix: 550 at RCPT kept");
	fs_stop(fs);
}

static void
test_421_greeting(void)
{
	static const struct fs_script sc = { .greeting = "421 4.3.2 too busy\r\n" };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	cu_init(&cu, fs->port);
	tjob_init(&t, "hi\r\n", 2);
	ok(one_job(&cu, &t, 10), "C1 greeting: done");
	is_int(t.rcpts[0].code, 421, "C1 greeting: 421");
	is_str(t.rcpts[1].reply, "421 4.3.2 too busy", "C1 greeting: reply kept");
	is_int(fs->nmail, 0, "C1 greeting: no MAIL");
	fs_stop(fs);
}

static void
test_421_rcpt(void)
{
	static const struct fs_script sc = {
		.greeting = "220 fake\r\n",
		.rcpt = { "550 5.1.1 unknown\r\n", "250 ok\r\n", "421 4.7.0 closing\r\n" },
	};
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	cu_init(&cu, fs->port);
	tjob_init(&t, "hi\r\n", 3);
	ok(one_job(&cu, &t, 10), "C1 rcpt: done");
	is_int(t.rcpts[0].code, 550, "C1 rcpt: 5xx answered before keeps it");
	is_int(t.rcpts[1].code, 421, "C1 rcpt: accepted but unfinished gets 421");
	is_int(t.rcpts[2].code, 421, "C1 rcpt: the 421 itself");
	is_str(t.rcpts[2].reply, "421 4.7.0 closing", "C1 rcpt: text");
	fs_stop(fs);
}

static void
test_drop_mid_body(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n", .close_in_body = 1000 };
	size_t len = 2 * 1024 * 1024;
	char *data = xmalloc(len + 1);
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	for (size_t i = 0; i < len; i++)
		data[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : 'a';
	data[len] = '\0';
	cu_init(&cu, fs->port);
	tjob_init(&t, data, 1);
	ok(one_job(&cu, &t, 10), "C2: done");
	is_int(t.rcpts[0].code / 100, 4, "C2: drop mid-body is 4xx");
	ok(strstr(t.rcpts[0].reply, "lost connection") != NULL, "C2: says lost connection (%s)",
	    t.rcpts[0].reply);
	is_int(t.job.possible_duplicate, 0, "C2: not a duplicate");
	fs_stop(fs);
	free(data);
}

static void
test_drop_after_dot(int silent)
{
	struct fs_script sc = { .greeting = "220 fake\r\n" };
	struct fs *fs;
	struct conf_upstream cu;
	struct tjob t;

	if (silent)
		sc.silent_after_dot = 1;
	else
		sc.close_after_dot = 1;
	fs = fs_start(&sc);
	cu_init(&cu, fs->port);
	cu.data_done_timeout = 1;
	tjob_init(&t, "hi\r\n", 2);
	ok(one_job(&cu, &t, 10), "C3 %s: done", silent ? "silent" : "close");
	is_int(t.rcpts[0].code / 100, 4, "C3: 4xx, never a bounce");
	is_int(t.rcpts[1].code / 100, 4, "C3: 4xx for every recipient");
	is_int(t.job.possible_duplicate, 1, "C3: possible duplicate");
	ok(strstr(t.rcpts[0].reply, "after end of data (possible duplicate)") != NULL,
	    "C3: reply says so (%s)", t.rcpts[0].reply);
	fs_stop(fs);
}

static void
test_silent(void)
{
	static const struct fs_script sc = { .greeting = NULL };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;
	int64_t t0 = util_mono_ms();

	cu_init(&cu, fs->port);
	cu.greeting_timeout = 1;
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "C4: done");
	ok(util_mono_ms() - t0 < 4000, "C4: within the timeout");
	is_int(t.rcpts[0].code, 451, "C4: 451");
	ok(strncmp(t.rcpts[0].reply, "451 4.4.2 timeout waiting for greeting from", 43) == 0,
	    "C4: timeout reply (%s)", t.rcpts[0].reply);
	fs_stop(fs);
}

static void
test_rcpt_timeout(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n", .rcpt = { "" } };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;
	char want[128];

	cu_init(&cu, fs->port);
	cu.command_timeout = 1;
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "C4 rcpt: done");
	snprintf(want, sizeof(want), "451 4.4.2 timeout waiting for reply to RCPT from "
	    "127.0.0.1[127.0.0.1]:%d", fs->port);
	is_str(t.rcpts[0].reply, want, "C4 rcpt: reply");
	fs_stop(fs);
}

static void
test_starttls_missing(void)
{
	static const struct fs_script sc = {
		.greeting = "220 fake\r\n",
		.ehlo = "250-fake\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n",
	};
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;
	char pw[] = "secret";

	cu_init(&cu, fs->port);
	cu.tls = CONF_TLS_STARTTLS;
	cu.tls_verify = 0;
	util_strlcpy(cu.username, "relay@x", sizeof(cu.username));
	cu.password = pw;
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "C5: done");
	is_int(t.rcpts[0].code, 454, "C5: 454");
	ok(strncmp(t.rcpts[0].reply, "454 4.7.0 TLS required but STARTTLS not offered by "
	    "127.0.0.1[127.0.0.1]", 70) == 0, "C5: reply (%s)", t.rcpts[0].reply);
	is_int(fs->nmail, 0, "C5: MAIL never sent in clear");
	is_int(fs->nauth, 0, "C5: AUTH never sent in clear");
	fs_stop(fs);
}

static void
test_auth(const char *reply, const char *ehlo)
{
	struct fs_script sc = { .greeting = "220 fake\r\n", .ehlo = ehlo, .auth = reply };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;
	char pw[] = "pw";

	cu_init(&cu, fs->port);
	util_strlcpy(cu.username, "u", sizeof(cu.username));
	cu.password = pw;
	tjob_init(&t, "hi\r\n", 2);
	ok(one_job(&cu, &t, 10), "AUTH %.3s: done", reply);
	if (strncmp(reply, "235", 3) == 0) {
		/* base64("\0u\0pw") */
		is_str(fs->auth_line, "AUTH PLAIN AHUAcHc=\r\n", "AUTH PLAIN with initial response");
		is_int(t.rcpts[0].code, 250, "AUTH ok: delivered");
	} else {
		is_int(t.rcpts[0].code / 100, 4, "C6: 535 defers (4xx)");
		is_int(t.rcpts[1].code / 100, 4, "C6: every recipient deferred");
		ok(strncmp(t.rcpts[0].reply, "535", 3) == 0, "C6: reply is the 535 (%s)",
		    t.rcpts[0].reply);
		is_int(fs->nmail, 0, "C6: no MAIL after failed AUTH");
	}
	fs_stop(fs);
}

static void
test_no_auth_mech(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n", .ehlo = "250-fake\r\n250 AUTH CRAM-MD5\r\n" };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;
	char pw[] = "pw";

	cu_init(&cu, fs->port);
	util_strlcpy(cu.username, "u", sizeof(cu.username));
	cu.password = pw;
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "no mechanism: done");
	ok(strncmp(t.rcpts[0].reply, "454 4.7.0", 9) == 0, "no mechanism: 4.7.0 (%s)", t.rcpts[0].reply);
	is_int(fs->nmail, 0, "no mechanism: no MAIL");
	fs_stop(fs);
}

static void
test_malformed(int kind)
{
	struct fs_script sc = { .greeting = "220 fake\r\n" };
	struct fs *fs;
	struct conf_upstream cu;
	struct tjob t;
	char *big = NULL;

	if (kind == 0) {
		size_t n = 2 * 1024 * 1024;
		big = xmalloc(n + 8);
		memcpy(big, "220 ", 4);
		memset(big + 4, 'a', n);
		memcpy(big + 4 + n, "\r\n", 3);
		sc.greeting = big;
	} else {
		size_t n = 1000;
		big = xmalloc(n * 8 + 16);
		big[0] = '\0';
		for (size_t i = 0; i < n; i++)
			strcat(big, "250-xx\r\n");
		strcat(big, "250 ok\r\n");
		sc.ehlo = big;
	}
	fs = fs_start(&sc);
	cu_init(&cu, fs->port);
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "C8 %s: done", kind == 0 ? "2 MB line" : "endless 250-");
	ok(strncmp(t.rcpts[0].reply, "451 4.5.0 malformed reply from 127.0.0.1[127.0.0.1]", 50) == 0,
	    "C8: malformed (%s)", t.rcpts[0].reply);
	is_int(fs->nmail, 0, "C8: no MAIL");
	fs_stop(fs);
	free(big);
}

static void
test_reuse(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n", .ehlo = "250-fake\r\n250 PIPELINING\r\n" };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t1, t2;
	struct tjob *jobs[2] = { &t1, &t2 };
	struct upstream *u;
	char err[256];
	const char *all, *r;

	cu_init(&cu, fs->port);
	cu.max_connections = 1;
	u = upstream_new(&srv, &cu, err, sizeof(err));
	tjob_init(&t1, "one\r\n", 1);
	tjob_init(&t2, "two\r\n", 2);
	ok(upstream_ready(u), "reuse: ready before");
	upstream_submit(u, &t1.job);
	upstream_submit(u, &t2.job);
	ok(!upstream_ready(u), "reuse: not ready with a job waiting");
	is_int(upstream_inflight(u), 2, "reuse: two in flight");
	ok(run(jobs, 2, 10, 200), "reuse: both done");
	is_int(t1.ndone + t2.ndone, 2, "reuse: done once each");
	is_int(fs->nconns, 1, "reuse: one connection");
	is_int(fs->nmail, 2, "reuse: two transactions");
	/* The reply to the dot ended the first transaction: no RSET. */
	all = fs_text(fs->all);
	r = strstr(all, "MAIL FROM");
	ok(r && strstr(r + 1, "MAIL FROM") != NULL, "reuse: second MAIL on the same connection");
	ok(strstr(all, "RSET") == NULL, "reuse: no RSET after a completed transaction");
	is_int(fs->nrset, 0, "reuse: the server saw no RSET");
	is_int(upstream_inflight(u), 0, "reuse: nothing in flight");
	ok(upstream_ready(u), "reuse: idle connection is ready");
	upstream_close_idle(u);
	{
		struct tjob *none[1] = { &t1 };
		run(none, 1, 1, 200);
	}
	ok(strstr(fs_text(fs->all), "QUIT\r\n") != NULL, "close_idle: QUIT sent");
	upstream_free(u);
	fs_stop(fs);
}

/* A transaction abandoned before its dot (MAIL refused, no PIPELINING)
 * is closed with RSET before the connection takes the next job. */
static void
test_reuse_after_refusal(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n",
		.ehlo = "250 fake\r\n", .mail = "550 5.7.1 not you\r\n" };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t1, t2;
	struct tjob *jobs[2] = { &t1, &t2 };
	struct upstream *u;
	char err[256];
	const char *all, *m1, *rset, *m2;

	cu_init(&cu, fs->port);
	cu.max_connections = 1;
	u = upstream_new(&srv, &cu, err, sizeof(err));
	tjob_init(&t1, "one\r\n", 1);
	tjob_init(&t2, "two\r\n", 2);
	upstream_submit(u, &t1.job);
	upstream_submit(u, &t2.job);
	ok(run(jobs, 2, 10, 200), "refused reuse: both done");
	is_int(t1.job.rcpts[0].code, 550, "refused reuse: first refused");
	is_int(t2.job.rcpts[0].code, 550, "refused reuse: second refused");
	is_int(fs->nconns, 1, "refused reuse: one connection");
	all = fs_text(fs->all);
	m1 = strstr(all, "MAIL FROM");
	rset = m1 ? strstr(m1, "RSET\r\n") : NULL;
	m2 = rset ? strstr(rset, "MAIL FROM") : NULL;
	ok(m1 && rset && m2, "refused reuse: MAIL, RSET, MAIL");
	upstream_free(u);
	fs_stop(fs);
}

static void
test_refused(void)
{
	struct fs_script sc = { .greeting = "220 fake\r\n" };
	struct fs *fs = fs_start(&sc);
	int port = fs->port;
	struct conf_upstream cu;
	struct tjob t;
	char want[128];

	fs_stop(fs);                    /* nobody listens there now */
	cu_init(&cu, port);
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "refused: done");
	snprintf(want, sizeof(want), "451 4.4.1 connect to 127.0.0.1[127.0.0.1]:%d: "
	    "Connection refused", port);
	is_str(t.rcpts[0].reply, want, "refused: reply");
}

static void
test_hostname(void)
{
	static const struct fs_script sc = { .greeting = "220 fake\r\n" };
	struct fs *fs = fs_start(&sc);
	struct conf_upstream cu;
	struct tjob t;

	cu_init(&cu, fs->port);
	util_strlcpy(cu.host, "localhost", sizeof(cu.host));
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "hostname through c-ares: done");
	is_int(t.rcpts[0].code, 250, "hostname: delivered (%s)", t.rcpts[0].reply);
	fs_stop(fs);
}

static void
test_maildir(void)
{
	struct conf_upstream cu;
	struct tjob t;
	char dir[512], path[1024], name[256], buf[256];
	const char *data = "From: a@b\r\n\r\n.\r\n..x\r\nno final newline";
	struct stat st;
	FILE *f;
	size_t n;
	const char *prefix = "250 2.0.0 Ok: delivered to maildir as ";

	memset(&cu, 0, sizeof(cu));
	util_strlcpy(cu.name, "local", sizeof(cu.name));
	cu.is_maildir = 1;
	snprintf(dir, sizeof(dir), "%s/deep/outbox", tmpdir);
	util_strlcpy(cu.maildir, dir, sizeof(cu.maildir));
	cu.max_connections = 2;
	tjob_init(&t, data, 2);
	ok(one_job(&cu, &t, 10), "maildir: done");
	is_int(t.rcpts[0].code, 250, "maildir: 250");
	is_int(t.rcpts[1].code, 250, "maildir: 250 for each recipient");
	ok(strncmp(t.rcpts[0].reply, prefix, strlen(prefix)) == 0, "maildir: reply (%s)", t.rcpts[0].reply);
	snprintf(path, sizeof(path), "maildir:%s", dir);
	is_str(t.job.relay, path, "maildir: relay");
	util_strlcpy(name, t.rcpts[0].reply + strlen(prefix), sizeof(name));
	snprintf(path, sizeof(path), "%s/new/%s", dir, name);
	ok(stat(path, &st) == 0, "maildir: file in new/");
	is_int(st.st_mode & 07777, 0600, "maildir: mode 0600");
	f = fopen(path, "rb");
	n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	if (f)
		fclose(f);
	ok(n == strlen(data) && memcmp(buf, data, n) == 0, "maildir: byte-exact");
	snprintf(path, sizeof(path), "%s/cur", dir);
	ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "maildir: cur/ 0700");
	ok(strstr(name, "Q3F2A1B09C4D7R") != NULL, "maildir: name has the queue id (%s)", name);

	/* unwritable: a file where the directory should be */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	f = fopen(path, "w");
	if (f)
		fclose(f);
	snprintf(dir, sizeof(dir), "%s/file/sub", tmpdir);
	util_strlcpy(cu.maildir, dir, sizeof(cu.maildir));
	tjob_init(&t, data, 1);
	ok(one_job(&cu, &t, 10), "maildir error: done");
	ok(strncmp(t.rcpts[0].reply, "451 4.3.0 maildir ", 18) == 0, "maildir error: 451 (%s)",
	    t.rcpts[0].reply);
}

/* test_tls - STARTTLS with plaintext injected after the 220 (C5: purged,
 * handshake and delivery still succeed), a name that does not match the
 * certificate (454 4.7.5, nothing sent), and implicit TLS. */
static void
test_tls(void)
{
	static const struct fs_script st = {
		.greeting = "220 fake\r\n",
		.ehlo = "250-fake\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
		.starttls = "220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n",
	};
	static const struct fs_script si = {
		.greeting = "220 fake\r\n", .ehlo = "250-fake\r\n250 AUTH PLAIN\r\n",
		.implicit_tls = 1,
	};
	struct fs *fs;
	struct conf_upstream cu;
	struct tjob t;
	char pw[] = "pw";
	const char *all;

	if (fs_ssl_ctx == NULL) {
		ok(1, "# SKIP no openssl CLI for a test certificate");
		return;
	}
	fs = fs_start(&st);
	cu_init(&cu, fs->port);
	cu.tls = CONF_TLS_STARTTLS;
	util_strlcpy(cu.ca_file, cert_path, sizeof(cu.ca_file));
	util_strlcpy(cu.username, "u", sizeof(cu.username));
	cu.password = pw;
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "STARTTLS: done");
	is_int(t.rcpts[0].code, 250, "STARTTLS: delivered after purge (%s)", t.rcpts[0].reply);
	all = fs_text(fs->all);
	ok(strstr(all, "STARTTLS\r\n") && strstr(strstr(all, "STARTTLS\r\n"), "EHLO"),
	    "STARTTLS: EHLO again inside TLS");
	is_int(fs->nauth, 1, "STARTTLS: AUTH once, inside TLS");
	is_int(fs->nmail, 1, "STARTTLS: one MAIL");
	fs_stop(fs);

	fs = fs_start(&st);
	cu_init(&cu, fs->port);
	cu.tls = CONF_TLS_STARTTLS;
	util_strlcpy(cu.ca_file, cert_path, sizeof(cu.ca_file));
	util_strlcpy(cu.tls_name, "wrong.example", sizeof(cu.tls_name));
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "TLS wrong name: done");
	ok(strncmp(t.rcpts[0].reply, "454 4.7.5 TLS handshake with 127.0.0.1[127.0.0.1] failed: ", 58) == 0,
	    "TLS wrong name: 454 4.7.5 (%s)", t.rcpts[0].reply);
	is_int(fs->nmail, 0, "TLS wrong name: no MAIL");
	fs_stop(fs);

	fs = fs_start(&si);
	cu_init(&cu, fs->port);
	cu.tls = CONF_TLS_IMPLICIT;
	util_strlcpy(cu.ca_file, cert_path, sizeof(cu.ca_file));
	util_strlcpy(cu.username, "u", sizeof(cu.username));
	cu.password = pw;
	tjob_init(&t, "hi\r\n", 1);
	ok(one_job(&cu, &t, 10), "implicit TLS: done");
	is_int(t.rcpts[0].code, 250, "implicit TLS: delivered (%s)", t.rcpts[0].reply);
	is_int(fs->nauth, 1, "implicit TLS: AUTH");
	fs_stop(fs);
}

/* make_cert - a self-signed certificate for 127.0.0.1 in tmpdir */
static void
make_cert(void)
{
	char cmd[2048], key[512], err[256];

	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
	    "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
	    "-keyout '%s' -out '%s' >/dev/null 2>&1", key, cert_path);
	if (system(cmd) != 0)
		return;
	fs_ssl_ctx = tls_server_ctx(cert_path, key, err, sizeof(err));
	if (fs_ssl_ctx == NULL)
		printf("# tls_server_ctx: %s\n", err);
}

struct dns_probe {
	int called, err;
	size_t n;
};

static void
dns_probe_cb(int err, const char *errstr, const struct sockaddr_storage *addrs,
    size_t naddrs, void *arg)
{
	struct dns_probe *p = arg;

	p->called++;
	p->err = err;
	p->n = naddrs;
}

static void
test_dns(void)
{
	char err[256];
	struct dns *d = dns_new(base, "", err, sizeof(err));
	struct dns_probe p1 = { 0 }, p2 = { 0 };

	ok(d != NULL, "dns_new");
	dns_resolve(d, "192.0.2.1", 25, dns_probe_cb, &p1);
	is_int(p1.called, 0, "dns: literal answered later, not inside dns_resolve");
	event_base_loop(base, EVLOOP_NONBLOCK);
	is_int(p1.called, 1, "dns: literal answered on the loop");
	is_int((long long)p1.n, 1, "dns: one address");
	dns_resolve(d, "[::1]", 25, dns_probe_cb, &p2);
	dns_free(d);
	is_int(p2.called, 1, "dns_free: pending callback called once");
	ok(p2.err != 0, "dns_free: with an error");
	d = dns_new(base, "127.0.0.1:5353", err, sizeof(err));
	ok(d != NULL, "dns_new with ip:port");
	dns_free(d);
	d = dns_new(base, "[::1]:5353", err, sizeof(err));
	ok(d != NULL, "dns_new with [v6]:port");
	dns_free(d);
}

int
main(void)
{
	char err[256];

	signal(SIGPIPE, SIG_IGN);
	log_init(LOG_DEST_STDERR, getenv("TEST_DEBUG") != NULL, "test_upstream");
	evthread_use_pthreads();
	base = event_base_new();
	if (tap_tmpdir(tmpdir, sizeof(tmpdir), "test_upstream") == NULL)
		return 99;
	umask(022);

	memset(&conf, 0, sizeof(conf));
	util_strlcpy(conf.server.hostname, "relay.test.example", sizeof(conf.server.hostname));
	srv.base = base;
	srv.conf = &conf;
	srv.loopq = loopq_new(base);
	srv.signer = signer_new(srv.loopq, 2);
	srv.dns = dns_new(base, "", err, sizeof(err));
	if (srv.dns == NULL)
		fatalx("dns_new: %s", err);

	test_dns();
	test_plain_dotstuff();
	test_bare_lf();
	test_big_body();
	test_pipelining();
	test_rcpt_mix(0);
	test_rcpt_mix(1);
	test_421_greeting();
	test_421_rcpt();
	test_drop_mid_body();
	test_drop_after_dot(0);
	test_drop_after_dot(1);
	test_silent();
	test_rcpt_timeout();
	test_starttls_missing();
	test_auth("235 2.7.0 Authentication successful\r\n", "250-fake\r\n250 AUTH LOGIN PLAIN\r\n");
	test_auth("535 5.7.8 Authentication credentials invalid\r\n", "250-fake\r\n250 AUTH PLAIN\r\n");
	test_auth("535 5.7.8 Authentication credentials invalid\r\n", "250-fake\r\n250 AUTH LOGIN\r\n");
	test_no_auth_mech();
	test_malformed(0);
	test_malformed(1);
	test_reuse();
	test_reuse_after_refusal();
	test_refused();
	test_hostname();
	test_maildir();
	make_cert();
	test_tls();

	dns_free(srv.dns);
	signer_free(srv.signer);
	loopq_drain(srv.loopq);
	loopq_free(srv.loopq);
	event_base_free(base);
	if (fs_ssl_ctx)
		SSL_CTX_free(fs_ssl_ctx);
	{
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	return done();
}
