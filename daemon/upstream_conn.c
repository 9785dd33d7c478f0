/*
 * upstream_conn - one SMTP client connection of an [upstream]: the state
 * machine that connects, speaks TLS, EHLO and AUTH, runs transactions and
 * streams bodies. The pool that owns connections and hands them jobs is
 * upstream.c; upstream_conn.h is the interface between the two.
 *
 * A new connection is opened for one job and owns it from the start, so
 * a connection that fails before its transaction fails only that job.
 * After a transaction it waits, idle, for the next job (idle_timeout,
 * then QUIT), up to max_messages_per_connection; RSET goes only after a
 * transaction abandoned before its final dot.
 *
 * up_set_state() is the one place the state changes (logged at debug
 * level, the state's RFC 5321 4.5.3.2 timeout armed), and a table gives
 * each state its reply handler, timeout and the words for error replies.
 *
 *   RESOLVE -> CONNECT -> [TLS: implicit] -> GREETING -> EHLO (or HELO)
 *   -> [STARTTLS -> TLS -> EHLO] -> [AUTH] -> IDLE
 *   IDLE -> MAIL -> RCPT... -> DATA -> BODY -> DOT -> IDLE | QUIT
 *   MAIL | RCPT | DATA refused -> RSET -> IDLE | QUIT
 *
 * With PIPELINING (RFC 2920) MAIL, every RCPT and DATA leave in one write
 * and the replies are read in order; otherwise one command per reply.
 *
 * API (upstream_conn.h): upstream_conn_new, upstream_conn_idle,
 * upstream_conn_assign, upstream_conn_quit_idle, and for upstream_free
 * upstream_conn_abort_all and upstream_conn_release_dead.
 *
 * Input trusted: nothing from the server. Reply lines are bounded
 * (SMTP_TEXT_LINE_MAX, checked before an end of line arrives, and a read
 * high-watermark), parsed by smtp_reply_feed() (bounded lines per reply,
 * text made printable). When TLS is required, nothing but EHLO and
 * STARTTLS is ever sent before the handshake, and input buffered with the
 * 220 to STARTTLS is thrown away (RFC 3207 5, CVE-2011-0411).
 *
 * Failures that are not the server's answer become 4xx replies written
 * here; after the final dot was sent they are marked possible duplicates
 * and never turn into bounces. A connection hands its job back through
 * upstream_job_done(), never calling done() itself.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "alert.h"
#include "conf.h"
#include "dns.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"
#include "upstream.h"
#include "upstream_conn.h"
#include "util.h"

#define UP_INPUT_MAX (16 * 1024)    /* read high-watermark */
#define UP_BODY_CHUNK (64 * 1024)   /* body bytes queued per write callback */
#define UP_BODY_LOW (16 * 1024)     /* write low-watermark while sending */
#define UP_STAGE 4096               /* dot-stuffing staging buffer */
#define UP_TRASH_MAX (DNS_MAX_ADDRS + 2)
#define UP_TEXT_MAX UPSTREAM_REPLY_MAX

/* capabilities from EHLO */
#define CAP_PIPELINING 0x01
#define CAP_SIZE       0x02
#define CAP_8BITMIME   0x04
#define CAP_SMTPUTF8   0x08
#define CAP_STARTTLS   0x10
#define CAP_AUTH_PLAIN 0x20
#define CAP_AUTH_LOGIN 0x40

/* per recipient, during one transaction */
#define RF_SKIP 0x1     /* answered locally, never sent */
#define RF_SENT 0x2     /* RCPT sent */
#define RF_ACC  0x4     /* accepted at RCPT */

enum up_state {
	UP_RESOLVE, UP_CONNECT, UP_TLS, UP_GREETING, UP_EHLO, UP_HELO,
	UP_STARTTLS, UP_AUTH_PLAIN, UP_AUTH_LOGIN, UP_AUTH_USER, UP_AUTH_PASS,
	UP_IDLE, UP_MAIL, UP_RCPT, UP_DATA, UP_BODY, UP_DOT, UP_RSET, UP_QUIT,
	UP_CLOSED
};

struct up_conn {
	struct upstream *u;         /* NULL once orphaned at upstream_free */
	enum up_state state;
	int id;
	struct bufferevent *bev;
	evutil_socket_t fd;
	int fd_ours;                /* close fd ourselves (plain bufferevent) */
	struct bufferevent *trash[UP_TRASH_MAX];
	evutil_socket_t trash_fd[UP_TRASH_MAX];
	int ntrash;
	struct event *timer;
	struct event *gc_ev;
	int dns_pending;
	int dead;

	struct sockaddr_storage addrs[DNS_MAX_ADDRS];
	size_t naddrs, ai;
	int last_errno;
	char ip[IP_STR_MAX];
	char relay[UPSTREAM_RELAY_MAX];

	int caps;
	int tls_on;
	int authed;
	int quit_when_idle;
	int nmsgs;
	struct smtp_reply reply;

	struct upstream_job *job;
	unsigned char *rflags;
	size_t ri;                  /* next recipient whose RCPT reply is due */
	size_t naccepted;
	int pipelined;
	int mail_failed;
	int abort_data;             /* 354 with no recipient: send only the dot */
	size_t body_off;
	int bol, pending_cr;

	struct up_conn *prev, *next;
};

typedef void (*up_reply_fn)(struct up_conn *, const struct smtp_reply *);

static void up_on_greeting(struct up_conn *, const struct smtp_reply *);
static void up_on_ehlo(struct up_conn *, const struct smtp_reply *);
static void up_on_helo(struct up_conn *, const struct smtp_reply *);
static void up_on_starttls(struct up_conn *, const struct smtp_reply *);
static void up_on_auth(struct up_conn *, const struct smtp_reply *);
static void up_on_mail(struct up_conn *, const struct smtp_reply *);
static void up_on_rcpt(struct up_conn *, const struct smtp_reply *);
static void up_on_data(struct up_conn *, const struct smtp_reply *);
static void up_on_dot(struct up_conn *, const struct smtp_reply *);
static void up_on_rset(struct up_conn *, const struct smtp_reply *);
static void up_on_unexpected(struct up_conn *, const struct smtp_reply *);
static void up_on_quit(struct up_conn *, const struct smtp_reply *);

#define TMO(f) offsetof(struct conf_upstream, f)

/* The state table: name, what we wait for (timeouts), what we were doing
 * (lost connections), which timeout applies (RFC 5321 4.5.3.2) and who
 * handles a complete reply. */
static const struct up_state_info {
	const char *name;
	const char *wait;
	const char *doing;
	size_t tmo;                 /* offset of a long in conf_upstream, 0 = none */
	up_reply_fn on_reply;
} up_states[] = {
	[UP_RESOLVE]    = { "resolve", "DNS", "while resolving", 0, NULL },
	[UP_CONNECT]    = { "connect", "connect", "while connecting", TMO(connect_timeout), NULL },
	[UP_TLS]        = { "tls", "TLS handshake", "during TLS handshake", TMO(command_timeout), NULL },
	[UP_GREETING]   = { "greeting", "greeting", "while receiving the initial greeting", TMO(greeting_timeout), up_on_greeting },
	[UP_EHLO]       = { "ehlo", "reply to EHLO", "while sending EHLO", TMO(command_timeout), up_on_ehlo },
	[UP_HELO]       = { "helo", "reply to HELO", "while sending HELO", TMO(command_timeout), up_on_helo },
	[UP_STARTTLS]   = { "starttls", "reply to STARTTLS", "while sending STARTTLS", TMO(command_timeout), up_on_starttls },
	[UP_AUTH_PLAIN] = { "auth-plain", "reply to AUTH", "while sending AUTH", TMO(command_timeout), up_on_auth },
	[UP_AUTH_LOGIN] = { "auth-login", "reply to AUTH", "while sending AUTH", TMO(command_timeout), up_on_auth },
	[UP_AUTH_USER]  = { "auth-user", "reply to AUTH", "while sending AUTH", TMO(command_timeout), up_on_auth },
	[UP_AUTH_PASS]  = { "auth-pass", "reply to AUTH", "while sending AUTH", TMO(command_timeout), up_on_auth },
	[UP_IDLE]       = { "idle", "next job", "while idle", TMO(idle_timeout), up_on_unexpected },
	[UP_MAIL]       = { "mail", "reply to MAIL", "while sending MAIL FROM", TMO(command_timeout), up_on_mail },
	[UP_RCPT]       = { "rcpt", "reply to RCPT", "while sending RCPT TO", TMO(command_timeout), up_on_rcpt },
	[UP_DATA]       = { "data", "reply to DATA", "while sending DATA", TMO(data_timeout), up_on_data },
	[UP_BODY]       = { "body", "message body", "while sending DATA", TMO(data_block_timeout), up_on_unexpected },
	[UP_DOT]        = { "dot", "reply to end of data", "after end of data", TMO(data_done_timeout), up_on_dot },
	[UP_RSET]       = { "rset", "reply to RSET", "while sending RSET", TMO(command_timeout), up_on_rset },
	[UP_QUIT]       = { "quit", "reply to QUIT", "while sending QUIT", TMO(command_timeout), up_on_quit },
	[UP_CLOSED]     = { "closed", "nothing", "after close", 0, NULL },
};

static void up_conn_close(struct up_conn *c);
static void up_conn_free(struct up_conn *c);
static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void up_connect_next(struct up_conn *c);
static void up_idle_or_quit(struct up_conn *c, int quit);
static void up_fail(struct up_conn *c, int code, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* up_code - the reply code a text of ours or the server's starts with */
static int
up_code(const char *text)
{
	if (text[0] >= '2' && text[0] <= '5' && text[1] >= '0' && text[1] <= '9' &&
	    text[2] >= '0' && text[2] <= '9')
		return (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
	return 451;
}

/* up_set_state - the one place a connection changes state */
static void
up_set_state(struct up_conn *c, enum up_state st)
{
	const struct up_state_info *si = &up_states[st];

	if (c->u && log_debug_enabled())
		log_debug("upstream %s: conn %d %s -> %s", c->u->cu->name, c->id,
		    up_states[c->state].name, si->name);
	c->state = st;
	if (c->timer == NULL)
		return;
	if (si->tmo && c->u) {
		long secs = *(const long *)(const void *)((const char *)c->u->cu + si->tmo);
		struct timeval tv = { secs > 0 ? secs : 1, 0 };
		evtimer_add(c->timer, &tv);
	} else {
		evtimer_del(c->timer);
	}
}

/* up_send - queue one command line (CRLF added); never logs secrets */
static void PRINTF_LIKE(3, 4)
up_send(struct up_conn *c, int secret, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	if (log_debug_enabled() && !secret) {
		char line[SMTP_TEXT_LINE_MAX], esc[SMTP_TEXT_LINE_MAX * 2];
		va_list aq;
		va_copy(aq, ap);
		vsnprintf(line, sizeof(line), fmt, aq);
		va_end(aq);
		log_debug("upstream %s: conn %d > %s", c->u->cu->name, c->id,
		    log_esc(line, esc, sizeof(esc)));
	}
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* up_gc_cb - free what callbacks could not free on the spot */
static void
up_gc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;

	for (int i = 0; i < c->ntrash; i++) {
		bufferevent_free(c->trash[i]);
		if (c->trash_fd[i] >= 0)
			evutil_closesocket(c->trash_fd[i]);
	}
	c->ntrash = 0;
	if (c->dead && !c->dns_pending)
		up_conn_free(c);
}

/* up_gc - run up_gc_cb after the current callback has returned */
static void
up_gc(struct up_conn *c)
{
	struct timeval zero = { 0, 0 };

	if (c->gc_ev)
		evtimer_add(c->gc_ev, &zero);
}

/* up_bev_discard - detach the current bufferevent; freed by up_gc_cb.
 * close_fd: the socket goes with it (failed connect) or stays (TLS). */
static void
up_bev_discard(struct up_conn *c, int close_fd)
{
	if (c->bev == NULL)
		return;
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->ntrash >= UP_TRASH_MAX)
		fatalx("upstream: too many discarded bufferevents");
	c->trash[c->ntrash] = c->bev;
	c->trash_fd[c->ntrash] = (close_fd && c->fd_ours) ? c->fd : -1;
	c->ntrash++;
	if (close_fd) {
		c->fd = -1;
		c->fd_ours = 0;
	}
	c->bev = NULL;
	up_gc(c);
}

/* up_bev_setup - callbacks, watermarks and interest for a new bev */
static void
up_bev_setup(struct up_conn *c)
{
	bufferevent_setcb(c->bev, up_read_cb, up_write_cb, up_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, UP_INPUT_MAX);
	bufferevent_setwatermark(c->bev, EV_WRITE, UP_BODY_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* up_conn_free - release everything of a connection */
static void
up_conn_free(struct up_conn *c)
{
	struct upstream *u = c->u;

	for (int i = 0; i < c->ntrash; i++) {
		bufferevent_free(c->trash[i]);
		if (c->trash_fd[i] >= 0)
			evutil_closesocket(c->trash_fd[i]);
	}
	if (c->bev)
		bufferevent_free(c->bev);   /* TLS: closes fd, frees SSL */
	if (c->fd_ours && c->fd >= 0)
		evutil_closesocket(c->fd);
	if (c->timer)
		event_free(c->timer);
	if (c->gc_ev)
		event_free(c->gc_ev);
	free(c->rflags);
	if (u && c->dead) {
		if (c->prev)
			c->prev->next = c->next;
		else
			u->dead = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	free(c);
}

/* up_conn_close - take a connection out of the pool; freed later */
static void
up_conn_close(struct up_conn *c)
{
	struct upstream *u = c->u;

	if (c->dead)
		return;
	if (c->job) {
		upstream_job_settle(c->job, 451, "451 4.3.0 connection closed");
		upstream_job_done(u, c->job);
		c->job = NULL;
	}
	up_set_state(c, UP_CLOSED);
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	/* pool list -> dead list */
	if (c->prev)
		c->prev->next = c->next;
	else
		u->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = u->dead;
	if (u->dead)
		u->dead->prev = c;
	u->dead = c;
	u->nconns--;
	c->dead = 1;
	up_gc(c);
	upstream_dispatch(u);
}

/* up_finish_txn - hand the job back; QUIT at the limit. A transaction
 * that ended with the reply to the final dot leaves the server reset
 * (RFC 5321 4.1.1.4), so the connection is idle at once; one abandoned
 * earlier (MAIL, every RCPT or DATA refused) is closed with RSET first. */
static void
up_finish_txn(struct up_conn *c, int ended)
{
	struct upstream *u = c->u;

	upstream_job_done(u, c->job);
	c->job = NULL;
	free(c->rflags);
	c->rflags = NULL;
	c->nmsgs++;
	if (c->nmsgs >= u->cu->max_messages_per_connection || u->freeing) {
		up_send(c, 0, "QUIT");
		up_set_state(c, UP_QUIT);
	} else if (ended) {
		up_idle_or_quit(c, c->quit_when_idle);
	} else {
		up_send(c, 0, "RSET");
		up_set_state(c, UP_RSET);
	}
}

/* up_fail - settle the job with a local or server reply and close */
static void
up_fail(struct up_conn *c, int code, const char *fmt, ...)
{
	char text[UP_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (c->job) {
		log_warn("%s: upstream %s: %s", c->job->queue_id, c->u->cu->name, text);
		/* Before AUTH nothing depends on this message or account: the
		 * server is unreachable or refusing everybody (failover). */
		if (c->state <= UP_STARTTLS)
			c->job->unreachable = 1;
		if (c->ip[0])           /* host[ip]:port once an address was tried */
			util_strlcpy(c->job->relay, c->relay, sizeof(c->job->relay));
		upstream_job_settle(c->job, code ? code : up_code(text), text);
		upstream_job_done(c->u, c->job);
		c->job = NULL;
	} else if (c->state != UP_QUIT && c->state != UP_IDLE && c->state != UP_RSET) {
		log_warn("upstream %s: %s", c->u->cu->name, text);
	}
	up_conn_close(c);
}

/* up_dot_sent - the final dot may have reached the server */
static int
up_dot_sent(struct up_conn *c)
{
	return c->state == UP_DOT && !c->abort_data &&
	    (c->bev == NULL || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0);
}

/* up_lost - the connection went away (EOF, reset, TLS error) */
static void
up_lost(struct up_conn *c)
{
	if (c->job == NULL) {
		up_conn_close(c);           /* idle, RSET, QUIT: nothing at stake */
		return;
	}
	if (up_dot_sent(c)) {
		c->job->possible_duplicate = 1;
		up_fail(c, 451, "451 4.4.2 lost connection with %s after end of data "
		    "(possible duplicate)", c->relay);
		return;
	}
	up_fail(c, 451, "451 4.4.2 lost connection with %s %s", c->relay,
	    up_states[c->state == UP_DOT ? UP_BODY : c->state].doing);
}

/* up_timer_cb - the current state's timeout expired */
static void
up_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct up_conn *c = arg;

	switch (c->state) {
	case UP_CONNECT:
		c->last_errno = ETIMEDOUT;
		up_bev_discard(c, 1);
		c->ai++;
		up_connect_next(c);
		return;
	case UP_IDLE:
		up_send(c, 0, "QUIT");
		up_set_state(c, UP_QUIT);
		return;
	case UP_QUIT:
	case UP_RSET:
		up_conn_close(c);
		return;
	case UP_BODY:
		up_fail(c, 451, "451 4.4.2 timeout sending message body to %s", c->relay);
		return;
	case UP_DOT:
		if (up_dot_sent(c)) {
			c->job->possible_duplicate = 1;
			up_fail(c, 451, "451 4.4.2 timeout waiting for reply from %s after "
			    "end of data (possible duplicate)", c->relay);
		} else {
			up_fail(c, 451, "451 4.4.2 timeout sending message body to %s", c->relay);
		}
		return;
	default:
		up_fail(c, 451, "451 4.4.2 timeout waiting for %s from %s",
		    up_states[c->state].wait, c->relay);
		return;
	}
}

/* up_malformed - RFC 5321 4.2 violated: stop talking to this server */
static void
up_malformed(struct up_conn *c)
{
	if (c->job && up_dot_sent(c)) {
		c->job->possible_duplicate = 1;
		up_fail(c, 451, "451 4.5.0 malformed reply from %s[%s] after end of data "
		    "(possible duplicate)", c->u->cu->host, c->ip);
		return;
	}
	up_fail(c, 451, "451 4.5.0 malformed reply from %s[%s]", c->u->cu->host, c->ip);
}

/* up_ehlo_cap - one EHLO keyword line (RFC 5321 4.1.1.1) */
static void
up_ehlo_cap(struct up_conn *c, const char *kw)
{
	if (util_strcaseeq(kw, "PIPELINING"))
		c->caps |= CAP_PIPELINING;
	else if (util_strcaseeq(kw, "SIZE") || util_strncaseprefix(kw, "SIZE "))
		c->caps |= CAP_SIZE;
	else if (util_strcaseeq(kw, "8BITMIME"))
		c->caps |= CAP_8BITMIME;
	else if (util_strcaseeq(kw, "SMTPUTF8"))
		c->caps |= CAP_SMTPUTF8;
	else if (util_strcaseeq(kw, "STARTTLS"))
		c->caps |= CAP_STARTTLS;
	else if (util_strncaseprefix(kw, "AUTH ") || util_strncaseprefix(kw, "AUTH=")) {
		/* RFC 4954 4: space-separated mechanism names */
		const char *p = kw + 5;
		while (*p) {
			size_t n;
			while (*p == ' ')
				p++;
			n = strcspn(p, " ");
			if (n == 5 && util_strncaseprefix(p, "PLAIN"))
				c->caps |= CAP_AUTH_PLAIN;
			else if (n == 5 && util_strncaseprefix(p, "LOGIN"))
				c->caps |= CAP_AUTH_LOGIN;
			p += n;
		}
	}
}

/* up_line - one reply line (CRLF cut) */
static void
up_line(struct up_conn *c, const char *line, size_t len)
{
	int r;

	if (log_debug_enabled()) {
		char esc[SMTP_TEXT_LINE_MAX * 2];
		log_debug("upstream %s: conn %d < %s", c->u->cu->name, c->id,
		    log_escn(line, len, esc, sizeof(esc)));
	}
	/* Capabilities are on the lines after the first (RFC 5321 4.1.1.1). */
	if (c->state == UP_EHLO && c->reply.nlines > 0 && len > 4 &&
	    memcmp(line, "250", 3) == 0)
		up_ehlo_cap(c, line + 4);
	r = smtp_reply_feed(&c->reply, line, len);
	if (r < 0) {
		up_malformed(c);
		return;
	}
	if (r == 0)
		return;
	struct smtp_reply rep = c->reply;
	smtp_reply_init(&c->reply);
	if (rep.code == 421 && c->state != UP_QUIT) {
		/* RFC 5321 3.8: the server is closing; what has no final answer
		 * yet is deferred with the 421 itself (C1). */
		char text[UP_TEXT_MAX];
		smtp_reply_format(&rep, text, sizeof(text));
		up_fail(c, 421, "%s", text);
		return;
	}
	if (up_states[c->state].on_reply)
		up_states[c->state].on_reply(c, &rep);
}

/* up_read_cb - split input into lines, bounded before any EOL arrives */
static void
up_read_cb(struct bufferevent *bev, void *arg)
{
	struct up_conn *c = arg;
	char line[SMTP_TEXT_LINE_MAX + 1];

	while (c->bev == bev && c->state != UP_CLOSED) {
		struct evbuffer *in = bufferevent_get_input(bev);
		size_t len = evbuffer_get_length(in), eol_len = 0;
		struct evbuffer_ptr p;

		if (len == 0)
			return;
		p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (p.pos < 0) {
			if (len >= SMTP_TEXT_LINE_MAX)
				up_malformed(c);
			return;
		}
		if ((size_t)p.pos + eol_len > SMTP_TEXT_LINE_MAX) {
			up_malformed(c);
			return;
		}
		evbuffer_remove(in, line, (size_t)p.pos);
		evbuffer_drain(in, eol_len);
		line[p.pos] = '\0';
		up_line(c, line, (size_t)p.pos);
	}
}

/* up_stage_put - append k bytes through the staging buffer; a full stage
 * goes to out, and a run longer than the stage goes straight after it */
static void
up_stage_put(struct evbuffer *out, char *stage, size_t *n, const char *s, size_t k)
{
	if (*n + k > UP_STAGE) {
		evbuffer_add(out, stage, *n);
		*n = 0;
		if (k > UP_STAGE) {
			evbuffer_add(out, s, k);
			return;
		}
	}
	memcpy(stage + *n, s, k);
	*n += k;
}

/* up_body_fill - queue the next chunk of the body, dot-stuffed
 * (RFC 5321 4.5.2) with every line ending made CRLF, then the final dot.
 * A run of bytes without CR or LF is copied whole. */
static void
up_body_fill(struct up_conn *c)
{
	struct upstream_job *job = c->job;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char stage[UP_STAGE];
	size_t n = 0, end, i;

	if (evbuffer_get_length(out) >= UP_BODY_CHUNK)
		return;
	end = c->body_off + UP_BODY_CHUNK;
	if (end > job->len)
		end = job->len;
	for (i = c->body_off; i < end; ) {
		const char *p = job->data + i, *lf, *cr;
		size_t k;

		if (c->pending_cr) {
			c->pending_cr = 0;
			up_stage_put(out, stage, &n, "\r\n", 2);
			c->bol = 1;
			if (*p == '\n') {
				i++;
				continue;
			}
		}
		if (c->bol && *p == '.')
			up_stage_put(out, stage, &n, ".", 1);
		c->bol = 0;
		if (*p == '\r') {
			c->pending_cr = 1;
			i++;
			continue;
		}
		if (*p == '\n') {
			up_stage_put(out, stage, &n, "\r\n", 2);
			c->bol = 1;
			i++;
			continue;
		}
		k = end - i;
		if ((lf = memchr(p, '\n', k)) != NULL)
			k = (size_t)(lf - p);
		if ((cr = memchr(p, '\r', k)) != NULL)
			k = (size_t)(cr - p);
		up_stage_put(out, stage, &n, p, k);
		i += k;
	}
	c->body_off = end;
	if (c->body_off == job->len) {
		if (c->pending_cr || !c->bol)
			up_stage_put(out, stage, &n, "\r\n", 2);
		evbuffer_add(out, stage, n);
		evbuffer_add(out, ".\r\n", 3);
		up_set_state(c, UP_DOT);
		return;
	}
	evbuffer_add(out, stage, n);
	up_set_state(c, UP_BODY);       /* re-arms data_block_timeout */
}

/* up_write_cb - output drained below the low-watermark */
static void
up_write_cb(struct bufferevent *bev, void *arg)
{
	struct up_conn *c = arg;

	if (c->state == UP_BODY && c->job)
		up_body_fill(c);
}

/* up_tls_reason - why a handshake failed, for the deferral text */
static void
up_tls_reason(struct up_conn *c, char *buf, size_t len)
{
	SSL *ssl = c->bev ? bufferevent_openssl_get_ssl(c->bev) : NULL;
	unsigned long e;
	long vr;

	if (ssl && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, len, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return;
	}
	if (c->bev && (e = bufferevent_get_openssl_error(c->bev)) != 0) {
		ERR_error_string_n(e, buf, len);
		while (bufferevent_get_openssl_error(c->bev) != 0)
			;
		return;
	}
	if (errno)
		util_strlcpy(buf, strerror(errno), len);
	else
		util_strlcpy(buf, "connection closed during handshake", len);
}

/* up_tls_start - switch the socket to TLS (implicit, or after 220 to
 * STARTTLS). The plain bufferevent and whatever it buffered are dropped:
 * nothing read before the handshake may be taken as a reply (RFC 3207 5). */
static void
up_tls_start(struct up_conn *c)
{
	struct upstream *u = c->u;
	const char *name = u->cu->tls_name[0] ? u->cu->tls_name : u->cu->host;
	evutil_socket_t fd = c->fd;
	SSL *ssl;

	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	ssl = SSL_new(u->ssl_ctx);
	if (ssl == NULL || tls_client_prepare(ssl, name, u->cu->tls_verify) != 0) {
		char ebuf[256];
		if (ssl)
			SSL_free(ssl);
		up_fail(c, 454, "454 4.7.5 TLS handshake with %s[%s] failed: %s",
		    u->cu->host, c->ip, tls_error(ebuf, sizeof(ebuf)));
		return;
	}
	up_bev_discard(c, 0);
	c->bev = bufferevent_openssl_socket_new(u->srv->base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		up_fail(c, 454, "454 4.7.5 TLS handshake with %s[%s] failed: "
		    "cannot set up TLS", u->cu->host, c->ip);
		return;
	}
	c->fd_ours = 0;                 /* the TLS bufferevent closes it */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	up_bev_setup(c);
	up_set_state(c, UP_TLS);
}

/* up_send_ehlo - EHLO with our name (RFC 5321 4.1.1.1) */
static void
up_send_ehlo(struct up_conn *c, enum up_state st)
{
	const struct conf_upstream *cu = c->u->cu;
	const char *helo = cu->helo[0] ? cu->helo : c->u->hostname;

	c->caps = 0;
	smtp_reply_init(&c->reply);
	up_send(c, 0, "%s %s", st == UP_HELO ? "HELO" : "EHLO", helo);
	up_set_state(c, st);
}

/* up_event_cb - connected, handshake done, EOF or error */
static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct up_conn *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (c->state == UP_CONNECT) {
		if (what & BEV_EVENT_CONNECTED) {
			snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d",
			    c->u->cu->host, c->ip, c->u->cu->port);
			if (c->job)
				util_strlcpy(c->job->relay, c->relay, sizeof(c->job->relay));
			if (c->u->cu->tls == CONF_TLS_IMPLICIT)
				up_tls_start(c);
			else
				up_set_state(c, UP_GREETING);
			return;
		}
		c->last_errno = err ? err : ECONNREFUSED;
		up_bev_discard(c, 1);
		c->ai++;
		up_connect_next(c);
		return;
	}
	if (c->state == UP_TLS) {
		if (what & BEV_EVENT_CONNECTED) {
			char desc[128];
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			c->tls_on = 1;
			metrics_tls(1, ssl);
			if (ssl)
				tls_describe(ssl, desc, sizeof(desc));
			else
				util_strlcpy(desc, "?", sizeof(desc));
			log_debug("upstream %s: conn %d TLS with %s: %s", c->u->cu->name,
			    c->id, c->relay, desc);
			if (c->u->cu->tls == CONF_TLS_IMPLICIT)
				up_set_state(c, UP_GREETING);
			else
				up_send_ehlo(c, UP_EHLO);   /* forget pre-TLS EHLO */
			return;
		}
		char reason[256];
		errno = err;
		up_tls_reason(c, reason, sizeof(reason));
		up_fail(c, 454, "454 4.7.5 TLS handshake with %s[%s] failed: %s",
		    c->u->cu->host, c->ip, reason);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* Replies that came with the close are read first (a 421 then
		 * FIN is the common case). */
		if (c->bev == bev && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
			up_read_cb(bev, c);
		if (c->state != UP_CLOSED && c->bev == bev)
			up_lost(c);
	}
}

/* up_connect_next - connect to the next address, or give up */
static void
up_connect_next(struct up_conn *c)
{
	struct upstream *u = c->u;
	char ipbuf[IP_STR_MAX];

	while (c->ai < c->naddrs) {
		const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->ai];
		socklen_t slen = sa->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		evutil_socket_t fd;

		util_sockaddr_ip(sa, c->ip, sizeof(c->ip));
		snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", u->cu->host, c->ip,
		    util_sockaddr_port(sa));
		fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			c->last_errno = errno;
			c->ai++;
			continue;
		}
		/* Our own connect, so an immediate failure keeps its errno;
		 * libevent then waits for writability (sa == NULL). */
		if (connect(fd, sa, slen) != 0 && errno != EINPROGRESS) {
			c->last_errno = errno;
			close(fd);
			log_debug("upstream %s: connect to %s: %s", u->cu->name, c->relay,
			    strerror(c->last_errno));
			c->ai++;
			continue;
		}
		c->fd = fd;
		c->fd_ours = 1;
		c->bev = bufferevent_socket_new(u->srv->base, fd, 0);
		if (c->bev == NULL)
			fatalx("upstream: bufferevent_socket_new failed");
		up_bev_setup(c);
		up_set_state(c, UP_CONNECT);
		if (bufferevent_socket_connect(c->bev, NULL, 0) != 0) {
			c->last_errno = errno ? errno : ECONNREFUSED;
			up_bev_discard(c, 1);
			c->ai++;
			continue;
		}
		return;
	}
	util_strlcpy(ipbuf, c->ip, sizeof(ipbuf));
	up_fail(c, 451, "451 4.4.1 connect to %s[%s]:%d: %s", u->cu->host, ipbuf,
	    c->naddrs ? util_sockaddr_port((const struct sockaddr *)&c->addrs[c->naddrs - 1])
	    : u->cu->port, strerror(c->last_errno ? c->last_errno : ECONNREFUSED));
}

/* up_dns_cb - addresses for the upstream host */
static void
up_dns_cb(int err, const char *errstr, const struct sockaddr_storage *addrs,
    size_t naddrs, void *arg)
{
	struct up_conn *c = arg;

	c->dns_pending = 0;
	if (c->dead) {
		if (c->u)
			up_conn_free(c);
		else
			free(c);                /* orphaned by upstream_free */
		return;
	}
	if (err || naddrs == 0) {
		up_fail(c, 451, "451 4.4.3 host not found: %s (%s)", c->u->cu->host,
		    errstr && *errstr ? errstr : "no address");
		return;
	}
	memcpy(c->addrs, addrs, naddrs * sizeof(addrs[0]));
	c->naddrs = naddrs;
	c->ai = 0;
	up_connect_next(c);
}

/* upstream_conn_new - open a connection for job */
void
upstream_conn_new(struct upstream *u, struct upstream_job *job)
{
	struct up_conn *c = xcalloc(1, sizeof(*c));

	c->u = u;
	c->id = ++u->next_id;
	c->fd = -1;
	c->job = job;
	c->state = UP_RESOLVE;
	c->timer = evtimer_new(u->srv->base, up_timer_cb, c);
	c->gc_ev = evtimer_new(u->srv->base, up_gc_cb, c);
	if (c->timer == NULL || c->gc_ev == NULL)
		fatalx("upstream: evtimer_new failed");
	snprintf(c->relay, sizeof(c->relay), "%s:%d", u->cu->host, u->cu->port);
	util_strlcpy(job->relay, c->relay, sizeof(job->relay));
	smtp_reply_init(&c->reply);
	c->next = u->conns;
	if (u->conns)
		u->conns->prev = c;
	u->conns = c;
	u->nconns++;
	c->dns_pending = 1;
	log_debug("upstream %s: conn %d for %s", u->cu->name, c->id, job->queue_id);
	dns_resolve(u->srv->dns, u->cu->host, u->cu->port, up_dns_cb, c);
}

/* up_addr_ok - nothing in an address that could break the command line */
static int
up_addr_ok(const char *a)
{
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return 0;
	return strlen(a) <= ADDR_MAX;
}

/* up_ascii - no byte above 0x7f */
static int
up_ascii(const char *a)
{
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p > 0x7f)
			return 0;
	return 1;
}

/* up_next_rcpt - index of the next recipient to send, from i */
static size_t
up_next_rcpt(struct up_conn *c, size_t i)
{
	while (i < c->job->nrcpt && (c->rflags[i] & RF_SKIP))
		i++;
	return i;
}

/* up_send_rcpt - RCPT TO for recipient i */
static void
up_send_rcpt(struct up_conn *c, size_t i)
{
	c->rflags[i] |= RF_SENT;
	up_send(c, 0, "RCPT TO:<%s>", c->job->rcpts[i].addr);
}

/* up_txn_start - MAIL, RCPT..., DATA for the connection's job */
static void
up_txn_start(struct up_conn *c)
{
	struct upstream_job *job = c->job;
	char params[64] = "";
	size_t n = 0, i;
	int utf8 = 0;

	util_strlcpy(job->relay, c->relay, sizeof(job->relay));
	free(c->rflags);
	c->rflags = xcalloc(job->nrcpt ? job->nrcpt : 1, 1);
	c->naccepted = 0;
	c->mail_failed = 0;
	c->abort_data = 0;
	c->body_off = 0;
	c->bol = 1;
	c->pending_cr = 0;
	for (i = 0; i < job->nrcpt; i++) {
		if (!up_addr_ok(job->rcpts[i].addr)) {
			job->rcpts[i].code = 553;
			util_strlcpy(job->rcpts[i].reply, "553 5.1.3 invalid recipient address",
			    sizeof(job->rcpts[i].reply));
			c->rflags[i] |= RF_SKIP;
		} else {
			n++;
		}
	}
	if (!up_addr_ok(job->sender)) {
		upstream_job_settle(job, 553, "553 5.1.7 invalid sender address");
		n = 0;
	}
	if (job->smtputf8) {
		/* RFC 6531 3.4: without SMTPUTF8 at the server, only an
		 * all-ASCII envelope may still go. */
		int ascii = up_ascii(job->sender);
		for (i = 0; i < job->nrcpt && ascii; i++)
			ascii = up_ascii(job->rcpts[i].addr);
		if (c->caps & CAP_SMTPUTF8)
			utf8 = 1;
		else if (!ascii) {
			char text[UP_TEXT_MAX];
			snprintf(text, sizeof(text), "554 5.6.7 SMTPUTF8 is required, but "
			    "was not offered by host %s", c->relay);
			upstream_job_settle(job, 554, text);
			n = 0;
		}
	}
	if (n == 0) {
		/* nothing to send: the connection stays idle */
		upstream_job_done(c->u, job);
		c->job = NULL;
		free(c->rflags);
		c->rflags = NULL;
		up_set_state(c, UP_IDLE);
		return;
	}
	if ((c->caps & CAP_SIZE))
		snprintf(params + strlen(params), sizeof(params) - strlen(params),
		    " SIZE=%zu", job->len);
	if (job->body_8bit && (c->caps & CAP_8BITMIME))
		util_strlcat(params, " BODY=8BITMIME", sizeof(params));
	if (utf8)
		util_strlcat(params, " SMTPUTF8", sizeof(params));

	c->pipelined = (c->caps & CAP_PIPELINING) != 0;
	up_send(c, 0, "MAIL FROM:<%s>%s", job->sender, params);
	c->ri = up_next_rcpt(c, 0);
	if (c->pipelined) {
		/* RFC 2920 3.1: MAIL, RCPT and DATA may go in one group. */
		for (i = c->ri; i < job->nrcpt; i = up_next_rcpt(c, i + 1))
			up_send_rcpt(c, i);
		up_send(c, 0, "DATA");
	}
	up_set_state(c, UP_MAIL);
}

/* up_ready - connection set up (TLS, AUTH done): start or idle */
static void
up_ready(struct up_conn *c)
{
	if (c->job) {
		up_txn_start(c);
		if (c->state != UP_IDLE)
			return;
	}
	up_idle_or_quit(c, c->quit_when_idle);
}

/* up_idle_or_quit - a connection done with its transaction: QUIT it, or
 * park it idle for the next job */
static void
up_idle_or_quit(struct up_conn *c, int quit)
{
	if (quit) {
		up_send(c, 0, "QUIT");
		up_set_state(c, UP_QUIT);
		return;
	}
	up_set_state(c, UP_IDLE);
	upstream_dispatch(c->u);
}

/* up_start_auth - AUTH PLAIN with initial response, else LOGIN (RFC 4954) */
static void
up_start_auth(struct up_conn *c)
{
	const struct conf_upstream *cu = c->u->cu;

	if (cu->tls != CONF_TLS_NONE && !c->tls_on) {
		up_fail(c, 454, "454 4.7.0 refusing to send AUTH to %s[%s] without TLS",
		    cu->host, c->ip);
		return;
	}
	if (c->caps & CAP_AUTH_PLAIN) {
		const char *pw = cu->password ? cu->password : "";
		size_t ul = strlen(cu->username), pl = strlen(pw), len = ul + pl + 2;
		unsigned char *buf = xmalloc(len);
		char *b64;

		buf[0] = '\0';
		memcpy(buf + 1, cu->username, ul);
		buf[1 + ul] = '\0';
		memcpy(buf + 2 + ul, pw, pl);
		b64 = util_b64_encode(buf, len);
		util_wipe(buf, len);
		free(buf);
		log_debug("upstream %s: conn %d > AUTH PLAIN ****", cu->name, c->id);
		up_send(c, 1, "AUTH PLAIN %s", b64);
		util_wipe(b64, strlen(b64));
		free(b64);
		up_set_state(c, UP_AUTH_PLAIN);
	} else if (c->caps & CAP_AUTH_LOGIN) {
		up_send(c, 0, "AUTH LOGIN");
		up_set_state(c, UP_AUTH_LOGIN);
	} else {
		up_fail(c, 454, "454 4.7.0 %s[%s] offers no supported AUTH mechanism "
		    "(PLAIN, LOGIN)", cu->host, c->ip);
	}
}

/* up_after_ehlo - TLS first when required, then AUTH, then ready */
static void
up_after_ehlo(struct up_conn *c)
{
	const struct conf_upstream *cu = c->u->cu;

	if (cu->tls == CONF_TLS_STARTTLS && !c->tls_on) {
		if (!(c->caps & CAP_STARTTLS)) {
			up_fail(c, 454, "454 4.7.0 TLS required but STARTTLS not offered by %s[%s]",
			    cu->host, c->ip);
			return;
		}
		up_send(c, 0, "STARTTLS");
		up_set_state(c, UP_STARTTLS);
		return;
	}
	if (cu->username[0] && !c->authed) {
		up_start_auth(c);
		return;
	}
	up_ready(c);
}

/* up_refused - a 4xx/5xx before any transaction: defer the job */
static void
up_refused(struct up_conn *c, const struct smtp_reply *r, const char *what)
{
	char text[UP_TEXT_MAX];

	smtp_reply_format(r, text, sizeof(text));
	if (r->code / 100 == 4)
		up_fail(c, r->code, "%s", text);
	else
		up_fail(c, 451, "451 4.4.0 %s[%s] refused %s: %s", c->u->cu->host,
		    c->ip, what, text);
}

/* up_on_greeting - 220 (RFC 5321 4.3.1) */
static void
up_on_greeting(struct up_conn *c, const struct smtp_reply *r)
{
	if (r->code / 100 != 2) {
		up_refused(c, r, "to talk to us");
		return;
	}
	up_send_ehlo(c, UP_EHLO);
}

/* up_on_ehlo - capabilities, or fall back to HELO on 5xx */
static void
up_on_ehlo(struct up_conn *c, const struct smtp_reply *r)
{
	if (r->code / 100 == 2) {
		up_after_ehlo(c);
		return;
	}
	if (r->code / 100 == 5) {
		up_send_ehlo(c, UP_HELO);
		return;
	}
	up_refused(c, r, "EHLO");
}

/* up_on_helo - no extensions: fine unless TLS or AUTH is needed */
static void
up_on_helo(struct up_conn *c, const struct smtp_reply *r)
{
	if (r->code / 100 != 2) {
		up_refused(c, r, "HELO");
		return;
	}
	c->caps = 0;
	up_after_ehlo(c);
}

/* up_on_starttls - 220: handshake now (RFC 3207 4) */
static void
up_on_starttls(struct up_conn *c, const struct smtp_reply *r)
{
	char text[UP_TEXT_MAX];

	if (r->code != 220) {
		smtp_reply_format(r, text, sizeof(text));
		up_fail(c, 454, "454 4.7.0 TLS required but %s[%s] refused STARTTLS: %s",
		    c->u->cu->host, c->ip, text);
		return;
	}
	up_tls_start(c);
}

/* up_auth_failed - never bounce for our own credentials (C6) */
static void
up_auth_failed(struct up_conn *c, const struct smtp_reply *r)
{
	struct upstream *u = c->u;
	char text[UP_TEXT_MAX];
	int code = r->code / 100 == 4 ? r->code : 454;

	smtp_reply_format(r, text, sizeof(text));
	if (r->code == 535 || r->code / 100 == 5) {
		char cause[CONF_NAME_MAX + 16], summary[CONF_NAME_MAX + 64];
		snprintf(cause, sizeof(cause), "upstream-auth:%s", u->cu->name);
		snprintf(summary, sizeof(summary), "upstream %s refused our AUTH; its mail "
		    "is deferred, not bounced", u->cu->name);
		alert_raise(u->srv->alert, cause, summary, text, "check username and "
		    "password_file in this [upstream] section, then restart outpostd");
	}
	/* The same credentials would fail for every waiting job as well:
	 * defer them all now rather than repeat a refused login. */
	upstream_defer_waiting(u, c->relay, code, text);
	up_fail(c, code, "%s", text);
}

/* up_on_auth - 334 challenges and the final 235 (RFC 4954 4) */
static void
up_on_auth(struct up_conn *c, const struct smtp_reply *r)
{
	const struct conf_upstream *cu = c->u->cu;
	const char *secret = NULL;
	char *b64;

	if (r->code == 235) {
		c->authed = 1;
		up_ready(c);
		return;
	}
	if (r->code != 334 || c->state == UP_AUTH_PASS) {
		up_auth_failed(c, r);
		return;
	}
	if (c->state == UP_AUTH_LOGIN) {
		secret = cu->username;
		up_set_state(c, UP_AUTH_USER);
	} else if (c->state == UP_AUTH_USER) {
		secret = cu->password ? cu->password : "";
		up_set_state(c, UP_AUTH_PASS);
	} else {
		/* PLAIN answered with 334 despite the initial response */
		up_auth_failed(c, r);
		return;
	}
	b64 = util_b64_encode((const unsigned char *)secret, strlen(secret));
	up_send(c, 1, "%s", b64);
	util_wipe(b64, strlen(b64));
	free(b64);
}

/* up_on_mail - MAIL reply (RFC 5321 4.1.1.2) */
static void
up_on_mail(struct up_conn *c, const struct smtp_reply *r)
{
	char text[UP_TEXT_MAX];

	if (r->code / 100 != 2) {
		smtp_reply_format(r, text, sizeof(text));
		c->mail_failed = 1;
		upstream_job_settle(c->job, r->code, text);
		if (!c->pipelined) {
			up_finish_txn(c, 0);
			return;
		}
	}
	if (c->ri >= c->job->nrcpt) {
		/* cannot happen: up_txn_start sends at least one RCPT */
		up_finish_txn(c, 0);
		return;
	}
	if (!c->pipelined)
		up_send_rcpt(c, c->ri);
	up_set_state(c, UP_RCPT);
}

/* up_on_rcpt - one RCPT reply, in order (RFC 2920 3.1) */
static void
up_on_rcpt(struct up_conn *c, const struct smtp_reply *r)
{
	struct upstream_rcpt *rc = &c->job->rcpts[c->ri];

	if (rc->code == 0) {
		if (r->code / 100 == 2) {
			c->rflags[c->ri] |= RF_ACC;
			c->naccepted++;
		} else {
			rc->code = r->code;
			smtp_reply_format(r, rc->reply, sizeof(rc->reply));
		}
	}
	c->ri = up_next_rcpt(c, c->ri + 1);
	if (c->ri < c->job->nrcpt) {
		if (!c->pipelined)
			up_send_rcpt(c, c->ri);
		return;
	}
	if (c->pipelined) {
		up_set_state(c, UP_DATA);
	} else if (c->naccepted > 0 && !c->mail_failed) {
		up_send(c, 0, "DATA");
		up_set_state(c, UP_DATA);
	} else {
		up_finish_txn(c, 0);
	}
}

/* up_on_data - 354 starts the body; anything else ends the transaction */
static void
up_on_data(struct up_conn *c, const struct smtp_reply *r)
{
	char text[UP_TEXT_MAX];

	if (r->code == 354) {
		if (c->naccepted == 0 || c->mail_failed) {
			/* RFC 2920 3.1: DATA accepted without recipients: end it
			 * at once with an empty message, ignore the reply. */
			c->abort_data = 1;
			evbuffer_add(bufferevent_get_output(c->bev), ".\r\n", 3);
			up_set_state(c, UP_DOT);
			return;
		}
		up_body_fill(c);
		return;
	}
	smtp_reply_format(r, text, sizeof(text));
	for (size_t i = 0; i < c->job->nrcpt; i++)
		if (c->rflags[i] & RF_ACC) {
			c->job->rcpts[i].code = r->code;
			util_strlcpy(c->job->rcpts[i].reply, text, sizeof(c->job->rcpts[i].reply));
		}
	up_finish_txn(c, 0);
}

/* up_on_dot - the final reply applies to every accepted recipient */
static void
up_on_dot(struct up_conn *c, const struct smtp_reply *r)
{
	char text[UP_TEXT_MAX];

	if (!c->abort_data) {
		smtp_reply_format(r, text, sizeof(text));
		for (size_t i = 0; i < c->job->nrcpt; i++)
			if (c->rflags[i] & RF_ACC) {
				c->job->rcpts[i].code = r->code;
				util_strlcpy(c->job->rcpts[i].reply, text,
				    sizeof(c->job->rcpts[i].reply));
			}
	}
	up_finish_txn(c, 1);
}

/* up_on_rset - 250: idle and reusable */
static void
up_on_rset(struct up_conn *c, const struct smtp_reply *r)
{
	up_idle_or_quit(c, r->code / 100 != 2 || c->quit_when_idle);
}

/* up_on_unexpected - a reply nobody asked for (idle or mid-body) */
static void
up_on_unexpected(struct up_conn *c, const struct smtp_reply *r)
{
	char text[UP_TEXT_MAX];

	smtp_reply_format(r, text, sizeof(text));
	if (c->job == NULL) {
		log_debug("upstream %s: conn %d closed after unexpected reply: %s",
		    c->u->cu->name, c->id, text);
		up_conn_close(c);
		return;
	}
	up_fail(c, 451, "451 4.4.2 %s replied before end of data: %s", c->relay, text);
}

/* up_on_quit - 221 or anything: close */
static void
up_on_quit(struct up_conn *c, const struct smtp_reply *r)
{
	up_conn_close(c);
}

/* upstream_conn_idle - a live connection idle without a job, or NULL */
struct up_conn *
upstream_conn_idle(const struct upstream *u)
{
	struct up_conn *c;

	for (c = u->conns; c; c = c->next)
		if (c->state == UP_IDLE && c->job == NULL)
			return c;
	return NULL;
}

/* upstream_conn_assign - an idle connection takes job */
void
upstream_conn_assign(struct up_conn *c, struct upstream_job *job)
{
	c->job = job;
	up_txn_start(c);
}

/* upstream_conn_quit_idle - QUIT idle connections, the rest after their job */
void
upstream_conn_quit_idle(struct upstream *u)
{
	for (struct up_conn *c = u->conns; c; c = c->next) {
		if (c->state == UP_IDLE && c->job == NULL) {
			up_send(c, 0, "QUIT");
			up_set_state(c, UP_QUIT);
		} else {
			c->quit_when_idle = 1;
		}
	}
}

/* upstream_conn_abort_all - settle each live connection's job with text
 * (a possible duplicate once its dot went out) and close it */
void
upstream_conn_abort_all(struct upstream *u, const char *text)
{
	struct up_conn *c;

	while ((c = u->conns) != NULL) {
		if (c->job && up_dot_sent(c))
			c->job->possible_duplicate = 1;
		if (c->job)
			upstream_job_settle(c->job, 451, text);
		up_conn_close(c);
	}
}

/* upstream_conn_release_dead - free the closed connections; one the
 * resolver still holds is orphaned (u = NULL) and freed by up_dns_cb */
void
upstream_conn_release_dead(struct upstream *u)
{
	struct up_conn *c;

	while ((c = u->dead) != NULL) {
		if (c->dns_pending) {
			u->dead = c->next;
			if (u->dead)
				u->dead->prev = NULL;
			for (int i = 0; i < c->ntrash; i++) {
				bufferevent_free(c->trash[i]);
				if (c->trash_fd[i] >= 0)
					evutil_closesocket(c->trash_fd[i]);
			}
			c->ntrash = 0;
			event_free(c->timer);
			event_free(c->gc_ev);
			c->timer = c->gc_ev = NULL;
			c->u = NULL;
			continue;
		}
		up_conn_free(c);
	}
}
