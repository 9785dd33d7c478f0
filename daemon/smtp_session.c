/*
 * smtp_session - the submission server's SMTP state machine.
 *
 * One session per client connection, living on the event loop. Input is
 * untrusted: every line is length-checked before it is parsed (a command
 * line is at most SMTP_LINE_MAX octets, CRLF included), and only CRLF ends
 * a line: a bare CR or LF in a command gets 500 5.5.2, in DATA the whole
 * message is refused with 550 5.5.2 at its end (SMTP smuggling,
 * CVE-2023-51764). Only CRLF "." CRLF ends DATA (RFC 5321 4.1.1.4).
 *
 * Commands are dispatched through a table {verb, states allowed, handler};
 * the state changes in smtp_session_set_state() only, which logs at debug
 * level. Work that must not run on the loop (crypt(3) for AUTH, the
 * RFC 5322 checks and signing at the final dot) goes to the signer pool;
 * the store thread commits the message; only then is 250 sent (the final
 * dot is in smtp_submit.c; smtp_session_int.h is shared). While such
 * a job runs the session is "busy": it reads no further commands
 * (pipelined input waits in the buffer), and if the client goes away the
 * session is freed when the job comes back, never under the job's feet.
 *
 * [server] user_rate / user_daily_limit are counted per recipient at RCPT
 * for the authenticated user (throttle.h); beyond them RCPT gets 451 4.7.1
 * and the first refusal per day is logged as an ALERT line.
 *
 * STARTTLS (RFC 3207 4.2): input already buffered after the STARTTLS line
 * is discarded, and HELO and AUTH state are forgotten after the handshake.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "alert.h"
#include "auth.h"
#include "conf.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "signer.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "smtp_session_int.h"
#include "store.h"
#include "suppress.h"
#include "throttle.h"
#include "tls.h"
#include "unsub.h"
#include "unsub_http.h"
#include "unsub_token.h"
#include "util.h"

#define SESSION_SASL_LINE_MAX 2048   /* RFC 4954 4 allows 12288; PLAIN needs far less */
#define SESSION_OUT_HIGH (256 * 1024) /* stop reading commands while replies pile up */
#define SESSION_IN_HIGH (256 * 1024)  /* libevent stops reading the socket above this */
#define SESSION_BAD_MAX 20            /* unknown or invalid commands before 421 */
#define SESSION_DATA_PROGRESS 1024    /* DATA bytes that renew the data deadline */
#define SESSION_AUTH_DELAY_MAX 30     /* seconds: cap on the per-IP failure delay */
#define SESSION_REPLY_MAX 1024

static const char *session_state_names[ST_COUNT] = {
	"CONNECTED", "READY", "MAIL", "RCPT", "DATA", "SASL", "TLS", "CLOSING",
};

#define BIT(s) (1u << (s))
#define ANY_CMD_STATE (BIT(ST_CONNECTED) | BIT(ST_READY) | BIT(ST_MAIL) | BIT(ST_RCPT))

/* An AUTH check running in the pool. */
struct auth_job {
	struct session *s;
	const struct auth_user *u;
	char name[AUTH_NAME_MAX];
	char pass[AUTH_PASS_MAX];
	int ok;
};

static unsigned long session_counter;
static struct session *session_list;

static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);
static void session_event_cb(struct bufferevent *bev, short what, void *arg);
static void session_process(struct session *s);
static void session_free(struct session *s);
static void session_close_flushed(struct session *s);

/* smtp_session_set_state - the one place the state changes */
void
smtp_session_set_state(struct session *s, enum session_state st)
{
	if (s->state != st)
		log_debug("%s: state %s -> %s", s->id, session_state_names[s->state],
		    session_state_names[st]);
	s->state = st;
}

/* smtp_session_reply - queue one reply line (CRLF added) */
void
smtp_session_reply(struct session *s, const char *fmt, ...)
{
	char line[SESSION_REPLY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	if (log_debug_enabled()) {
		char esc[SESSION_REPLY_MAX * 2];
		log_debug("%s: > %s", s->id, log_escn(line, (size_t)n - 2, esc, sizeof(esc)));
	}
	bufferevent_write(s->bev, line, (size_t)n);
}

/* smtp_session_deadline - (re)arm the per-command deadline */
void
smtp_session_deadline(struct session *s, long seconds)
{
	struct timeval tv = { seconds, 0 };

	if (seconds <= 0)
		event_del(s->deadline);
	else
		event_add(s->deadline, &tv);
}

/* session_close - send nothing more; close once the output is flushed */
static void
session_close(struct session *s)
{
	smtp_session_set_state(s, ST_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		/* Nothing to flush: free from the loop, never under the
		 * caller's feet (it may still be walking the session). */
		event_active(s->deadline, EV_TIMEOUT, 0);
		return;
	}
	smtp_session_deadline(s, 10);    /* a client that never reads cannot hold us */
}

/* smtp_session_reset - forget the transaction (RSET, EHLO, end of DATA) */
void
smtp_session_reset(struct session *s)
{
	for (size_t i = 0; i < s->nrcpt; i++) {
		free(s->rcpts[i]);
		free(s->rcpt_orcpt[i]);
	}
	free(s->rcpts);
	free(s->rcpt_notify);
	free(s->rcpt_orcpt);
	s->rcpts = NULL;
	s->rcpt_notify = NULL;
	s->rcpt_orcpt = NULL;
	s->nrcpt = 0;
	s->nunsub = 0;
	memset(&s->mail, 0, sizeof(s->mail));
	s->qid[0] = '\0';
	smtp_data_free(&s->data);
	if (s->state == ST_MAIL || s->state == ST_RCPT || s->state == ST_DATA)
		smtp_session_set_state(s, ST_READY);
}

/* session_may_submit - RFC 6409 4.3: who may start a transaction */
static int
session_may_submit(const struct session *s)
{
	if (s->user[0])
		return 1;
	/* auth = optional lets trusted LAN devices (printers, scanners)
	 * submit without AUTH; nobody else ever does: no open relay. */
	return s->trusted && s->cl->auth == CONF_AUTH_OPTIONAL;
}

/* smtp_session_sender_ok - may this client use addr as a sender? */
int
smtp_session_sender_ok(const struct session *s, const char *addr)
{
	const char *dom;

	if (s->auth_user)
		return auth_sender_allowed(s->auth_user, addr);
	/* A trusted device without AUTH may send as the office's domains
	 * (those with a [domain] section), so a compromised printer cannot
	 * spoof anybody else; with no [domain] at all, any sender. */
	if (s->conf->ndomains == 0)
		return 1;
	dom = util_addr_domain(addr);
	return *dom && conf_domain_find(s->conf, dom) != NULL;
}

/* session_forwarder - a forwarding or list account, or a listener where
 * every user forwards: MAIL FROM may be foreign (it is rewritten) */
static int
session_forwarder(const struct session *s)
{
	if (s->auth_user == NULL)
		return 0;
	return s->cl->forward || auth_user_option(s->auth_user, "forward", NULL) ||
	    auth_user_option(s->auth_user, "list", NULL);
}

/* ---- commands ---- */

static void
cmd_helo(struct session *s, const char *args, int esmtp)
{
	const struct conf *c = s->conf;

	if (!smtp_helo_valid(args)) {
		smtp_session_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		s->nbad++;
		return;
	}
	smtp_session_reset(s);
	util_strlcpy(s->helo, args, sizeof(s->helo));
	s->esmtp = esmtp;
	smtp_session_set_state(s, ST_READY);
	if (!esmtp) {
		smtp_session_reply(s, "250 %s", c->server.hostname);
		return;
	}
	smtp_session_reply(s, "250-%s Hello %s [%s]", c->server.hostname, s->helo, s->ip);
	smtp_session_reply(s, "250-PIPELINING");
	smtp_session_reply(s, "250-SIZE %zu", c->server.max_message_size);
	smtp_session_reply(s, "250-8BITMIME");
	smtp_session_reply(s, "250-SMTPUTF8");
	/* RFC 3461: NOTIFY, RET, ENVID and ORCPT are kept and honoured by
	 * the DSNs the scheduler sends */
	smtp_session_reply(s, "250-DSN");
	if (s->cl->tls == CONF_TLS_STARTTLS && !s->tls)
		smtp_session_reply(s, "250-STARTTLS");
	/* RFC 4954 4: never offer a password exchange in clear. */
	if (s->tls && s->user[0] == '\0')
		smtp_session_reply(s, "250-AUTH PLAIN LOGIN");
	smtp_session_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_ehlo(struct session *s, const char *args)
{
	cmd_helo(s, args, 1);
}

static void
cmd_helo_plain(struct session *s, const char *args)
{
	cmd_helo(s, args, 0);
}

static void session_tls_start(struct session *s);

static void
cmd_starttls(struct session *s, const char *args)
{
	if (*args) {
		smtp_session_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->tls) {
		smtp_session_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	if (s->cl->tls != CONF_TLS_STARTTLS || s->ssl_ctx == NULL) {
		smtp_session_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	session_tls_start(s);
}

static void session_auth_check(struct session *s, const char *name, const char *pass);

static void
cmd_auth(struct session *s, const char *args)
{
	char mech[32], user[AUTH_NAME_MAX], pass[AUTH_PASS_MAX];
	const char *sp, *initial = NULL;
	size_t mlen;

	if (!s->tls) {
		smtp_session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	if (s->user[0]) {
		smtp_session_reply(s, "503 5.5.1 Already authenticated");
		return;
	}
	sp = strchr(args, ' ');
	mlen = sp ? (size_t)(sp - args) : strlen(args);
	if (mlen == 0 || mlen >= sizeof(mech)) {
		smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	if (sp) {
		initial = sp + 1;
		if (strchr(initial, ' ')) {
			smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return;
		}
	}
	s->sasl_mech = util_strcaseeq(mech, "PLAIN") ? "PLAIN" : "LOGIN";
	if (util_strcaseeq(mech, "PLAIN")) {
		if (initial == NULL) {
			s->sasl = SASL_PLAIN;
			smtp_session_set_state(s, ST_SASL);
			smtp_session_reply(s, "334 ");
			return;
		}
		if (auth_decode_plain(strcmp(initial, "=") == 0 ? "" : initial,
		    user, sizeof(user), pass, sizeof(pass)) < 0) {
			smtp_session_reply(s, "501 5.5.2 Cannot decode AUTH PLAIN response");
			return;
		}
		session_auth_check(s, user, pass);
		util_wipe(pass, sizeof(pass));
	} else if (util_strcaseeq(mech, "LOGIN")) {
		if (initial) {
			if (auth_decode_login(initial, s->sasl_name, sizeof(s->sasl_name)) < 0) {
				smtp_session_reply(s, "501 5.5.2 Cannot decode AUTH LOGIN response");
				return;
			}
			s->sasl = SASL_LOGIN_PASS;
			smtp_session_set_state(s, ST_SASL);
			smtp_session_reply(s, "334 UGFzc3dvcmQ6");
			return;
		}
		s->sasl = SASL_LOGIN_USER;
		smtp_session_set_state(s, ST_SASL);
		smtp_session_reply(s, "334 VXNlcm5hbWU6");
	} else {
		smtp_session_reply(s, "504 5.5.4 Unrecognized authentication type");
	}
}

/* session_sasl_line - a continuation line of AUTH (RFC 4954 4) */
static void
session_sasl_line(struct session *s, const char *line)
{
	char user[AUTH_NAME_MAX], pass[AUTH_PASS_MAX];
	enum sasl_step step = s->sasl;

	s->sasl = SASL_NONE;
	smtp_session_set_state(s, ST_READY);
	if (strcmp(line, "*") == 0) {
		smtp_session_reply(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	switch (step) {
	case SASL_PLAIN:
		if (auth_decode_plain(line, user, sizeof(user), pass, sizeof(pass)) < 0) {
			smtp_session_reply(s, "501 5.5.2 Cannot decode AUTH PLAIN response");
			return;
		}
		session_auth_check(s, user, pass);
		util_wipe(pass, sizeof(pass));
		break;
	case SASL_LOGIN_USER:
		if (auth_decode_login(line, s->sasl_name, sizeof(s->sasl_name)) < 0) {
			smtp_session_reply(s, "501 5.5.2 Cannot decode AUTH LOGIN response");
			return;
		}
		s->sasl = SASL_LOGIN_PASS;
		smtp_session_set_state(s, ST_SASL);
		smtp_session_reply(s, "334 UGFzc3dvcmQ6");
		break;
	case SASL_LOGIN_PASS:
		if (auth_decode_login(line, pass, sizeof(pass)) < 0) {
			smtp_session_reply(s, "501 5.5.2 Cannot decode AUTH LOGIN response");
			return;
		}
		session_auth_check(s, s->sasl_name, pass);
		util_wipe(pass, sizeof(pass));
		break;
	case SASL_NONE:
		break;
	}
}

static void
auth_job_work(void *arg)
{
	struct auth_job *j = arg;

	j->ok = auth_verify(j->u, j->pass);
	util_wipe(j->pass, sizeof(j->pass));
}

/* session_auth_result - reply to AUTH, now or after the per-IP delay */
static void
session_auth_result(struct session *s, int ok, const char *name)
{
	char esc[AUTH_NAME_MAX * 4];

	if (ok) {
		const struct auth_user *u = auth_find(s->srv->users, name);
		util_strlcpy(s->user, name, sizeof(s->user));
		auth_user_free(s->auth_user);
		s->auth_user = u ? auth_user_dup(u) : NULL;
		auth_penalty_success(s->srv->penalty, s->ip);
		metrics_inc(METRICS_AUTH_SUCCESSES);
		log_info("%s: client=[%s], sasl_method=%s, sasl_username=%s", s->id, s->ip,
		    s->sasl_mech, log_esc(name, esc, sizeof(esc)));
		smtp_session_reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	s->auth_failures++;
	metrics_inc(METRICS_AUTH_FAILURES);
	auth_penalty_fail(s->srv->penalty, s->ip, util_now());
	log_warn("%s: [%s]: SASL authentication failed for user %s (%d on this connection)",
	    s->id, s->ip, log_esc(name, esc, sizeof(esc)), s->auth_failures);
	/* Repeated failures end the connection, counted on this connection
	 * and across all connections from the same address (S10). */
	if (s->auth_failures >= s->conf->server.auth_max_failures ||
	    auth_penalty_count(s->srv->penalty, s->ip, util_now()) >
	    s->conf->server.auth_max_failures) {
		smtp_session_reply(s, "421 4.7.0 %s Too many authentication failures; closing",
		    s->conf->server.hostname);
		session_close(s);
		return;
	}
	/* Same reply for an unknown user and a bad password (RFC 4954 6). */
	smtp_session_reply(s, "535 5.7.8 Authentication credentials invalid");
}

struct auth_delay {
	struct session *s;
	struct event *ev;
	char name[AUTH_NAME_MAX];
};

static void
auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_delay *d = arg;
	struct session *s = d->s;

	event_free(d->ev);
	s->busy = 0;
	if (s->dead) {
		free(d);
		session_free(s);
		return;
	}
	session_auth_result(s, 0, d->name);
	free(d);
	if (s->state != ST_CLOSING)
		session_process(s);
}

static void
auth_job_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;
	long delay;

	if (s->dead) {
		s->busy = 0;
		free(j);
		session_free(s);
		return;
	}
	if (j->ok) {
		s->busy = 0;
		session_auth_result(s, 1, j->name);
		free(j);
		session_process(s);
		return;
	}
	/* Slow down guessing from this address: the delay grows with the
	 * recent failures of the IP, whatever connection they came on. */
	delay = (long)auth_penalty_count(s->srv->penalty, s->ip, util_now()) *
	    s->conf->server.auth_failure_delay;
	if (delay > SESSION_AUTH_DELAY_MAX)
		delay = SESSION_AUTH_DELAY_MAX;
	if (delay > 0) {
		struct auth_delay *d = xcalloc(1, sizeof(*d));
		struct timeval tv = { delay, 0 };
		d->s = s;
		util_strlcpy(d->name, j->name, sizeof(d->name));
		d->ev = evtimer_new(s->srv->base, auth_delay_cb, d);
		evtimer_add(d->ev, &tv);
		free(j);
		return;             /* still busy */
	}
	s->busy = 0;
	session_auth_result(s, 0, j->name);
	free(j);
	if (s->state != ST_CLOSING)
		session_process(s);
}

/* session_auth_check - verify name/pass in the pool; the session waits */
static void
session_auth_check(struct session *s, const char *name, const char *pass)
{
	struct auth_job *j = xcalloc(1, sizeof(*j));

	j->s = s;
	j->u = auth_find(s->srv->users, name);
	util_strlcpy(j->name, name, sizeof(j->name));
	util_strlcpy(j->pass, pass, sizeof(j->pass));
	s->busy = 1;
	smtp_session_deadline(s, 0);
	signer_submit(s->srv->signer, auth_job_work, auth_job_done, j);
}

static void
cmd_mail(struct session *s, const char *args)
{
	const struct conf *c = s->conf;
	char err[SMTP_ERR_MAX], esc[ADDR_MAX * 4];

	if (!session_may_submit(s)) {
		metrics_rejected(METRICS_REJ_AUTH_REQUIRED);
		smtp_session_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (s->state == ST_MAIL || s->state == ST_RCPT) {
		smtp_session_reply(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (smtp_parse_mail(args, &s->mail, err, sizeof(err)) < 0) {
		metrics_rejected(METRICS_REJ_SYNTAX);
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_session_reply(s, "%s", err);
		s->nbad++;
		return;
	}
	if (s->mail.has_size && s->mail.size > c->server.max_message_size) {
		metrics_rejected(METRICS_REJ_MESSAGE_TOO_BIG);
		smtp_session_reply(s, "552 5.3.4 Message size exceeds fixed maximum message size (%zu)",
		    c->server.max_message_size);
		memset(&s->mail, 0, sizeof(s->mail));
		return;
	}
	if (!smtp_session_sender_ok(s, s->mail.addr) && !session_forwarder(s)) {
		metrics_rejected(METRICS_REJ_SENDER_NOT_OWNED);
		if (s->user[0])
			smtp_session_reply(s, "553 5.7.1 Sender address <%s> not owned by user %s",
			    log_esc(s->mail.addr, esc, sizeof(esc)), s->user);
		else
			smtp_session_reply(s, "553 5.7.1 Sender address <%s> is not in a domain this relay signs for",
			    log_esc(s->mail.addr, esc, sizeof(esc)));
		memset(&s->mail, 0, sizeof(s->mail));
		return;
	}
	util_queue_id(s->qid);
	smtp_session_set_state(s, ST_MAIL);
	log_debug("%s: %s: mail from=<%s>", s->id, s->qid, log_esc(s->mail.addr, esc, sizeof(esc)));
	smtp_session_reply(s, "250 2.1.0 Ok");
}

/* session_user_allowed - [server] user_rate / user_daily_limit for one
 * more recipient of the authenticated user; a refusal is answered here,
 * and the first refusal per alert window is logged as an alert (a
 * compromised account sends as fast as it can) */
static int
session_user_allowed(struct session *s)
{
	const struct conf_server *cs = &s->conf->server;
	struct timespec ts;
	char esc[AUTH_NAME_MAX * 4 + 1];
	int alert = 0;

	if (s->user[0] == '\0' || s->srv->user_limits == NULL)
		return 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (throttle_user_check(s->srv->user_limits, s->user, 1,
	    (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, &alert))
		return 1;
	log_esc(s->user, esc, sizeof(esc));
	if (alert) {
		/* Once per window per user: a compromised account is the
		 * usual cause, and the admin should hear of it by mail. */
		char cause[AUTH_NAME_MAX + 16], summary[AUTH_NAME_MAX * 4 + 128];
		snprintf(cause, sizeof(cause), "user-limit:%.200s", esc);
		snprintf(summary, sizeof(summary), "user %.200s exceeded %s (possible compromised "
		    "account)", esc, cs->user_rate.n && cs->user_daily_limit ?
		    "user_rate or user_daily_limit" : cs->user_rate.n ? "user_rate" :
		    "user_daily_limit");
		alert_raise(s->srv->alert, cause, summary, "Further recipients from this "
		    "user get 451 4.7.1 until the limit allows again.", "If the user did not "
		    "send this mail, change the password (outpostctl passwd) and check the "
		    "computer; otherwise raise user_rate / user_daily_limit");
	}
	log_info("%s: user %s: recipient refused, sending rate limit reached", s->id, esc);
	metrics_rejected(METRICS_REJ_RATE_LIMITED);
	smtp_session_reply(s, "451 4.7.1 Sending rate limit reached for user %s; try again later",
	    esc);
	return 0;
}

/* RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with CRLF. */
#define SESSION_SUPPRESS_LINE 510

/* session_suppressed - 1 after refusing a suppressed recipient with a
 * 550 5.1.1 that says since when and why (the upstream's words escaped
 * and cut so that the line stays within RFC 5321's limit) */
static int
session_suppressed(struct session *s, const char *addr)
{
	const struct suppress_entry *e;
	char a[ADDR_MAX * 4 + 1], why[SUPPRESS_REPLY_MAX * 4 + 1], day[16];
	char reason[SUPPRESS_REASON_MAX * 4 + 1];
	static const char tail[] = "; remove it with outpostctl suppress remove";
	struct tm tm;
	time_t since;
	int fixed, room;

	if ((e = suppress_find(s->srv->suppress, addr, util_now())) == NULL)
		return 0;
	since = e->first_seen;
	if (gmtime_r(&since, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
		util_strlcpy(day, "?", sizeof(day));
	log_esc(addr, a, sizeof(a));
	log_esc(e->reply, why, sizeof(why));
	log_esc(e->reason, reason, sizeof(reason));
	log_info("%s: RCPT to=<%s> refused: suppressed since %s (%s)", s->id, a, day,
	    reason);
	metrics_rejected(METRICS_REJ_SUPPRESSED);
	fixed = (int)(strlen("550 5.1.1 <> is suppressed since  (: )") + strlen(a) +
	    strlen(day) + strlen(reason) + strlen(tail));
	room = SESSION_SUPPRESS_LINE - fixed;
	if (room < 0)
		room = 0;
	smtp_session_reply(s, "550 5.1.1 <%s> is suppressed since %s (%s%s%.*s)%s", a, day,
	    reason, why[0] ? ": " : "", why[0] ? room : 0, why, tail);
	return 1;
}

/* session_unsubscribed - 1 after refusing a recipient who unsubscribed
 * from this envelope sender (one-click unsubscribe, issue 10). Only that
 * sender's mail is refused: the office's other senders, transactional
 * mail included, still reach the recipient. 5.7.1: delivery not
 * authorized (RFC 3463 3.8), as the recipient asked. */
static int
session_unsubscribed(struct session *s, const char *addr)
{
	const struct unsub_entry *e;
	char a[ADDR_MAX * 4 + 1], from[ADDR_MAX * 4 + 1], day[16];
	struct tm tm;
	time_t at;

	if (s->mail.addr[0] == '\0' ||
	    (e = unsub_find(s->srv->unsubs, s->mail.addr, addr)) == NULL)
		return 0;
	at = e->at;
	if (gmtime_r(&at, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
		util_strlcpy(day, "?", sizeof(day));
	log_esc(addr, a, sizeof(a));
	log_esc(s->mail.addr, from, sizeof(from));
	log_info("%s: RCPT to=<%s> refused: unsubscribed from <%s> on %s", s->id, a, from, day);
	metrics_rejected(METRICS_REJ_UNSUBSCRIBED);
	smtp_session_reply(s, "550 5.7.1 <%s>: recipient unsubscribed on %s", a, day);
	return 1;
}

/* A mailto: unsubscribe (RFC 2369 3.2, RFC 8058 3.2) waiting for the
 * store; the session is busy until then. */
struct unsub_wait {
	struct session *s;
	char rcpt[UNSUB_FIELD_MAX], sender[UNSUB_FIELD_MAX], list[UNSUB_FIELD_MAX];
};

/* session_unsub_stored - the unsubscribe is on disk (or not): answer
 * the RCPT and read on */
static void
session_unsub_stored(int err, void *arg)
{
	struct unsub_wait *w = arg;
	struct session *s = w->s;
	char r[UNSUB_FIELD_MAX * 4], f[UNSUB_FIELD_MAX * 4], l[UNSUB_FIELD_MAX * 4];

	s->busy = 0;
	if (err == STORE_OK) {
		/* again: a reload since the RCPT read the table without it */
		unsub_add(s->srv->unsubs, w->sender, w->rcpt, w->list, util_now());
		log_info("unsubscribe: <%s> from <%s> (list %s) via mailto",
		    log_esc(w->rcpt, r, sizeof(r)), log_esc(w->sender, f, sizeof(f)),
		    log_esc(w->list[0] ? w->list : "-", l, sizeof(l)));
	} else {
		unsub_remove(s->srv->unsubs, w->sender, w->rcpt);
	}
	free(w);
	if (s->dead) {
		session_free(s);
		return;
	}
	smtp_session_deadline(s, s->conf->server.timeout_command);
	if (err != STORE_OK) {
		smtp_session_reply(s, "451 4.3.0 Unsubscribe not recorded; try again later");
	} else {
		s->nunsub++;
		smtp_session_set_state(s, ST_RCPT);
		smtp_session_reply(s, "250 2.1.5 unsubscribe recorded");
	}
	session_process(s);
}

/* session_unsub_mailto - 1 when addr is unsubscribe+TOKEN@DOMAIN of a
 * [domain] with unsubscribe = yes, answered (or to be answered once the
 * store wrote it); such an address is never relayed. A valid token
 * unsubscribes its recipient from its sender like the one-click POST
 * (unsub_http.h), anything else there is an unknown address. */
static int
session_unsub_mailto(struct session *s, const char *addr)
{
	static const char prefix[] = "unsubscribe+";
	const struct conf_domain *d;
	const char *at = strrchr(addr, '@');
	char token[UNSUB_TOKEN_LEN + 2];
	struct store_unsub_row row;
	struct unsub_wait *w;
	size_t n;
	int v;

	if (at == NULL || strncasecmp(addr, prefix, sizeof(prefix) - 1) != 0 ||
	    (d = conf_domain_find(s->conf, at + 1)) == NULL || !d->unsubscribe)
		return 0;
	n = (size_t)(at - addr) - (sizeof(prefix) - 1);
	v = 0;
	if (n == UNSUB_TOKEN_LEN && s->srv->unsub_http != NULL) {
		memcpy(token, addr + sizeof(prefix) - 1, n);
		token[n] = '\0';
		v = unsub_http_token(s->srv->unsub_http, token, &row);
	}
	if (v < 0) {
		smtp_session_reply(s, "451 4.3.0 Unsubscribe not recorded; try again later");
		return 1;
	}
	if (v == 0) {
		metrics_rejected(METRICS_REJ_UNSUBSCRIBE_INVALID);
		smtp_session_reply(s, "550 5.1.1 unknown unsubscribe address");
		return 1;
	}
	if (unsub_add(s->srv->unsubs, row.sender, row.rcpt, row.list, util_now()) == 0) {
		s->nunsub++;        /* already: the same answer, nothing new */
		smtp_session_set_state(s, ST_RCPT);
		smtp_session_reply(s, "250 2.1.5 unsubscribe recorded");
		return 1;
	}
	w = xcalloc(1, sizeof(*w));
	w->s = s;
	memcpy(w->rcpt, row.rcpt, sizeof(w->rcpt));
	memcpy(w->sender, row.sender, sizeof(w->sender));
	memcpy(w->list, row.list, sizeof(w->list));
	s->busy = 1;
	smtp_session_deadline(s, 0);
	store_unsub_add(s->srv->store, row.sender, row.rcpt, row.list, util_now(),
	    session_unsub_stored, w);
	return 1;
}

static void
cmd_rcpt(struct session *s, const char *args)
{
	struct smtp_rcpt r;
	char err[SMTP_ERR_MAX];

	/* Checked before the state so that every RCPT of an unauthenticated
	 * stranger reads 530, whatever came before (RELIABILITY S8). */
	if (!session_may_submit(s)) {
		metrics_rejected(METRICS_REJ_AUTH_REQUIRED);
		smtp_session_reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (s->state != ST_MAIL && s->state != ST_RCPT) {
		smtp_session_reply(s, "503 5.5.1 Need MAIL command first");
		return;
	}
	if (smtp_parse_rcpt(args, s->mail.smtputf8, &r, err, sizeof(err)) < 0) {
		metrics_rejected(METRICS_REJ_SYNTAX);
		smtp_session_reply(s, "%s", err);
		s->nbad++;
		return;
	}
	if (s->nrcpt >= (size_t)s->conf->server.max_recipients) {
		metrics_rejected(METRICS_REJ_TOO_MANY_RCPTS);
		smtp_session_reply(s, "452 4.5.3 Too many recipients (limit %d)",
		    s->conf->server.max_recipients);
		return;
	}
	if (session_unsub_mailto(s, r.addr) || session_suppressed(s, r.addr) ||
	    session_unsubscribed(s, r.addr))
		return;
	if (!session_user_allowed(s))
		return;
	s->rcpts = xreallocarray(s->rcpts, s->nrcpt + 1, sizeof(*s->rcpts));
	s->rcpt_notify = xreallocarray(s->rcpt_notify, s->nrcpt + 1, sizeof(*s->rcpt_notify));
	s->rcpt_orcpt = xreallocarray(s->rcpt_orcpt, s->nrcpt + 1, sizeof(*s->rcpt_orcpt));
	s->rcpts[s->nrcpt] = xstrdup(r.addr);
	s->rcpt_notify[s->nrcpt] = r.notify;
	s->rcpt_orcpt[s->nrcpt] = r.orcpt[0] ? xstrdup(r.orcpt) : NULL;
	s->nrcpt++;
	smtp_session_set_state(s, ST_RCPT);
	smtp_session_reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(struct session *s, const char *args)
{
	if (*args) {
		smtp_session_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->state == ST_MAIL) {
		smtp_session_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->state != ST_RCPT) {
		smtp_session_reply(s, "503 5.5.1 Need RCPT command first");
		return;
	}
	smtp_data_init(&s->data, s->conf->server.max_message_size);
	s->data_since_renew = 0;
	smtp_session_set_state(s, ST_DATA);
	smtp_session_deadline(s, s->conf->server.timeout_data);
	smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct session *s, const char *args)
{
	smtp_session_reset(s);
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, const char *args)
{
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, const char *args)
{
	smtp_session_reply(s, "221 2.0.0 Bye");
	session_close(s);
}

static void
cmd_vrfy(struct session *s, const char *args)
{
	/* RFC 5321 3.5.3: no address harvesting through the relay. */
	smtp_session_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct session *s, const char *args)
{
	smtp_session_reply(s, "502 5.5.1 EXPN not available");
}

static void
cmd_help(struct session *s, const char *args)
{
	smtp_session_reply(s, "214-2.0.0 outpost submission service. Commands:");
	smtp_session_reply(s, "214-2.0.0   EHLO HELO STARTTLS AUTH MAIL RCPT DATA");
	smtp_session_reply(s, "214 2.0.0   RSET NOOP VRFY HELP QUIT");
}

static void
cmd_bdat(struct session *s, const char *args)
{
	/* CHUNKING is not advertised (RFC 3030); a client that sends BDAT
	 * anyway may follow it with binary data we must not parse as commands. */
	smtp_session_reply(s, "503 5.5.1 BDAT without CHUNKING; closing");
	session_close(s);
}

typedef void (*cmd_fn)(struct session *s, const char *args);

/* The verb table: which states accept the verb, and its handler. A verb
 * in a state outside its mask gets the table's reply. */
static const struct {
	enum smtp_verb verb;
	unsigned states;
	cmd_fn fn;
	const char *refuse;
} session_cmds[] = {
	{ SMTP_VERB_EHLO, ANY_CMD_STATE, cmd_ehlo, NULL },
	{ SMTP_VERB_HELO, ANY_CMD_STATE, cmd_helo_plain, NULL },
	{ SMTP_VERB_STARTTLS, BIT(ST_READY), cmd_starttls,
	  "503 5.5.1 STARTTLS only after EHLO and outside a transaction" },
	{ SMTP_VERB_AUTH, BIT(ST_READY), cmd_auth,
	  "503 5.5.1 AUTH only after EHLO and outside a transaction" },
	{ SMTP_VERB_MAIL, BIT(ST_READY) | BIT(ST_MAIL) | BIT(ST_RCPT), cmd_mail,
	  "503 5.5.1 Send EHLO first" },
	{ SMTP_VERB_RCPT, ANY_CMD_STATE, cmd_rcpt, NULL },
	{ SMTP_VERB_DATA, BIT(ST_READY) | BIT(ST_MAIL) | BIT(ST_RCPT), cmd_data,
	  "503 5.5.1 Send EHLO first" },
	{ SMTP_VERB_RSET, ANY_CMD_STATE, cmd_rset, NULL },
	{ SMTP_VERB_NOOP, ANY_CMD_STATE, cmd_noop, NULL },
	{ SMTP_VERB_QUIT, ANY_CMD_STATE, cmd_quit, NULL },
	{ SMTP_VERB_VRFY, ANY_CMD_STATE, cmd_vrfy, NULL },
	{ SMTP_VERB_EXPN, ANY_CMD_STATE, cmd_expn, NULL },
	{ SMTP_VERB_HELP, ANY_CMD_STATE, cmd_help, NULL },
	{ SMTP_VERB_BDAT, ANY_CMD_STATE, cmd_bdat, NULL },
};

/* session_command - dispatch one complete command line */
static void
session_command(struct session *s, const char *line)
{
	const char *args;
	enum smtp_verb v;
	char esc[SMTP_LINE_MAX * 4];

	if (log_debug_enabled())
		log_debug("%s: < %s", s->id, log_esc(util_strncaseprefix(line, "AUTH ") ?
		    "AUTH ..." : line, esc, sizeof(esc)));
	if (s->state == ST_SASL) {
		session_sasl_line(s, line);
		return;
	}
	/* Stopping: an open transaction may finish (MAIL, RCPT, DATA, RSET
	 * are answered as usual); outside one there is nothing to finish. */
	if (s->srv->stopping && s->state != ST_MAIL && s->state != ST_RCPT) {
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down",
		    s->conf->server.hostname);
		session_close(s);
		return;
	}
	v = smtp_parse_verb(line, &args);
	for (size_t i = 0; i < ARRAY_LEN(session_cmds); i++) {
		if (session_cmds[i].verb != v)
			continue;
		if (!(session_cmds[i].states & BIT(s->state))) {
			smtp_session_reply(s, "%s", session_cmds[i].refuse);
			s->nbad++;
		} else {
			session_cmds[i].fn(s, args);
		}
		return;
	}
	s->nbad++;
	smtp_session_reply(s, "500 5.5.2 Command unrecognized");
}

/* ---- the final dot (the rest is in smtp_submit.c) ---- */

/* smtp_session_finish - reply to the final dot and move on */
void
smtp_session_finish(struct session *s)
{
	s->busy = 0;
	smtp_session_reset(s);
	if (s->dead) {
		session_free(s);
		return;
	}
	if (s->srv->stopping) {
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", s->conf->server.hostname);
		session_close(s);
		return;
	}
	smtp_session_deadline(s, s->conf->server.timeout_command);
	session_process(s);
}

/* session_data_scan - hand the buffered input to the DATA scanner;
 * 1 when the end of the data was found */
static int
session_data_scan(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec vec[8];
	size_t consumed = 0, used;
	int n, end = 0;

	n = evbuffer_peek(in, -1, NULL, vec, ARRAY_LEN(vec));
	if (n > (int)ARRAY_LEN(vec))
		n = ARRAY_LEN(vec);
	for (int v = 0; v < n && !end; v++) {
		used = smtp_data_feed(&s->data, vec[v].iov_base, vec[v].iov_len, &end);
		consumed += used;
	}
	evbuffer_drain(in, consumed);
	s->data_since_renew += consumed;
	if (s->data_since_renew >= SESSION_DATA_PROGRESS) {
		/* The deadline is renewed by progress, not by any read: a
		 * client trickling a byte at a time cannot hold the slot. */
		s->data_since_renew = 0;
		smtp_session_deadline(s, s->conf->server.timeout_data);
	}
	return end;
}

/* session_line - take one CRLF line off the input into buf.
 * Returns 1 with a line, 0 when more input is needed, -1 when a bad line
 * was consumed and answered.
 *
 * Only CRLF ends a command. After a bare LF, an overlong line or a bare
 * CR, everything up to the next CRLF is discarded under the one 500
 * already sent, so "NOOP\nRSET\r\n" is a single bad line and nothing
 * smuggled behind a bare LF ever runs as a command. */
static int
session_line(struct session *s, char *buf, size_t bufsize)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr eol;
	size_t len, limit = s->state == ST_SASL ? SESSION_SASL_LINE_MAX : SMTP_LINE_MAX;
	int crlf, was_skipping;
	char prev;

	eol = evbuffer_search(in, "\n", 1, NULL);
	if (eol.pos < 0) {
		/* No line end yet: never buffer more than a line's worth. */
		len = evbuffer_get_length(in);
		if (len > limit) {
			evbuffer_drain(in, len);
			if (!s->skip_line) {
				s->skip_line = 1;
				s->nbad++;
				smtp_session_reply(s, "500 5.5.2 Line too long (limit %zu octets)", limit);
			}
			return -1;
		}
		return 0;
	}
	len = (size_t)eol.pos + 1;
	prev = '\0';
	if (eol.pos > 0) {
		struct evbuffer_ptr p;
		evbuffer_ptr_set(in, &p, (size_t)eol.pos - 1, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &p, &prev, 1);
	}
	crlf = prev == '\r';
	was_skipping = s->skip_line;
	if (s->skip_line || len > limit || !crlf) {
		evbuffer_drain(in, len);
		/* The skip ends with a proper CRLF line end. */
		s->skip_line = !crlf;
		if (was_skipping)
			return -1;
		s->nbad++;
		if (!crlf)
			smtp_session_reply(s, "500 5.5.2 Bare LF in command; only CRLF line endings are accepted");
		else
			smtp_session_reply(s, "500 5.5.2 Line too long (limit %zu octets)", limit);
		return -1;
	}
	evbuffer_remove(in, buf, len);
	buf[len] = '\0';
	if (memchr(buf, '\r', len - 2) != NULL || strlen(buf) != len) {
		s->nbad++;
		smtp_session_reply(s, "500 5.5.2 Bare CR or NUL in command; only CRLF line endings are accepted");
		return -1;
	}
	buf[len - 2] = '\0';
	(void)bufsize;
	return 1;
}

/* session_process - run every complete command that is buffered */
static void
session_process(struct session *s)
{
	char line[SESSION_SASL_LINE_MAX + 2];
	struct evbuffer *out = bufferevent_get_output(s->bev);
	int r;

	while (!s->busy && !s->dead && s->state != ST_CLOSING && s->state != ST_TLS) {
		if (evbuffer_get_length(out) > SESSION_OUT_HIGH) {
			/* A pipelining client that never reads its replies:
			 * stop here, the write callback resumes us. */
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == ST_DATA) {
			if (evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
				break;
			if (session_data_scan(s))
				smtp_submit_data_end(s);
			continue;
		}
		r = session_line(s, line, sizeof(line));
		if (r == 0)
			break;
		if (r > 0) {
			session_command(s, line);
			if (!s->busy && s->state != ST_DATA && s->state != ST_CLOSING &&
			    s->state != ST_TLS)
				smtp_session_deadline(s, s->conf->server.timeout_command);
		}
		if (s->nbad >= SESSION_BAD_MAX && s->state != ST_CLOSING) {
			smtp_session_reply(s, "421 4.7.0 %s Too many errors; closing",
			    s->conf->server.hostname);
			session_close(s);
		}
	}
	if (!s->dead && s->state != ST_CLOSING)
		bufferevent_enable(s->bev, EV_READ);
}

/* ---- TLS ---- */

/* session_tls_start - after "220 Ready": discard plaintext, wrap in TLS */
static void
session_tls_start(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tbev;
	SSL *ssl;

	/* RFC 3207 4.2 / CVE-2011-0411: anything the client pipelined after
	 * STARTTLS arrived in clear and must not be read as commands. */
	evbuffer_drain(in, evbuffer_get_length(in));
	ssl = SSL_new(s->ssl_ctx);
	if (ssl == NULL) {
		session_close(s);
		return;
	}
	tbev = bufferevent_openssl_filter_new(s->srv->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL) {
		SSL_free(ssl);
		session_close(s);
		return;
	}
	/* The filter moves our replies into the socket bufferevent's output
	 * only up to that one's write high-watermark; without it a client
	 * that pipelines and never reads would make the socket side grow
	 * without end while our own output (SESSION_OUT_HIGH) stays empty. */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, SESSION_OUT_HIGH);
	s->bev = tbev;
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_IN_HIGH);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	smtp_session_set_state(s, ST_TLS);
	smtp_session_deadline(s, s->conf->server.timeout_tls);
}

/* session_tls_ready - handshake done: start over, as RFC 3207 4.2 says */
static void
session_tls_ready(struct session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	s->tls = 1;
	tls_describe(ssl, s->tls_desc, sizeof(s->tls_desc));
	metrics_tls(0, ssl);
	log_debug("%s: TLS established: %s", s->id, s->tls_desc);
	s->helo[0] = '\0';
	s->user[0] = '\0';
	auth_user_free(s->auth_user);
	s->auth_user = NULL;
	smtp_session_reset(s);
	smtp_session_set_state(s, ST_CONNECTED);
	smtp_session_deadline(s, s->conf->server.timeout_command);
	if (s->cl->tls == CONF_TLS_IMPLICIT)
		smtp_session_reply(s, "220 %s ESMTP outpost", s->conf->server.hostname);
	session_process(s);
}

/* ---- libevent callbacks ---- */

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

/* session_close_flushed - free once the last reply reached the socket.
 * Under STARTTLS the session's bufferevent is a filter: its output being
 * empty only means the bytes moved to the socket bufferevent below, so
 * wait for that one too (polled; bounded by the closing deadline). */
static void
session_close_flushed(struct session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	struct timeval tv = { 0, 20 * 1000 };

	if (under && evbuffer_get_length(bufferevent_get_output(under)) > 0) {
		event_del(s->deadline);
		if (s->close_polls++ < 500) {   /* 10 s at most */
			event_add(s->deadline, &tv);
			return;
		}
	}
	session_free(s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == ST_CLOSING) {
		session_close_flushed(s);
		return;
	}
	/* Replies drained: resume a pipelining client we paused. */
	if (!s->busy && s->state != ST_TLS)
		session_process(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if ((what & BEV_EVENT_CONNECTED) && s->state == ST_TLS) {
		session_tls_ready(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		if (s->state == ST_TLS) {
			char ebuf[256];
			log_info("%s: TLS handshake failed from [%s]: %s", s->id, s->ip,
			    tls_error(ebuf, sizeof(ebuf)));
		} else if (s->state == ST_DATA) {
			log_info("%s: lost connection after DATA (%zu bytes) from [%s]", s->id,
			    s->data.len, s->ip);
		}
		if (s->busy) {
			/* The job in flight holds the session; it frees it. */
			s->dead = 1;
			bufferevent_disable(s->bev, EV_READ | EV_WRITE);
			return;
		}
		session_free(s);
	}
}

static void
session_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->state == ST_CLOSING) {
		session_close_flushed(s);
		return;
	}
	log_info("%s: timeout in state %s from [%s]", s->id, session_state_names[s->state], s->ip);
	if (s->state == ST_TLS) {
		session_free(s);
		return;
	}
	smtp_session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->server.hostname);
	session_close(s);
}

/* session_free - release everything; the connection is closed */
static void
session_free(struct session *s)
{
	if (s->busy) {
		s->dead = 1;
		return;
	}
	log_info("%s: disconnect from [%s]", s->id, s->ip);
	if (s->prev)
		s->prev->next = s->next;
	else
		session_list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	smtp_session_reset(s);
	if (s->deadline)
		event_free(s->deadline);
	if (s->bev)
		bufferevent_free(s->bev);
	listener_release_ip(s->listener, s->ip);
	s->srv->nsessions--;
	auth_user_free(s->auth_user);
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	util_wipe(s->sasl_name, sizeof(s->sasl_name));
	free(s);
}

void
smtp_session_start(struct server *srv, struct listener *l, const struct conf_listen *cl,
    struct ssl_ctx_st *ctx, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct session *s = xcalloc(1, sizeof(*s));

	s->srv = srv;
	s->conf = srv->conf;
	s->listener = l;
	s->cl = cl;
	/* our own reference: a reload may replace the listener's context
	 * before this session asks for STARTTLS */
	if (ctx != NULL && SSL_CTX_up_ref(ctx) == 1)
		s->ssl_ctx = ctx;
	snprintf(s->id, sizeof(s->id), "S%06lX", ++session_counter & 0xffffff);
	util_sockaddr_ip(sa, s->ip, sizeof(s->ip));
	s->port = util_sockaddr_port(sa);
	s->trusted = conf_is_trusted(s->conf, sa);
	s->deadline = evtimer_new(srv->base, session_deadline_cb, s);
	srv->nsessions++;
	metrics_connection(cl->name);
	s->next = session_list;
	if (session_list)
		session_list->prev = s;
	session_list = s;

	if (cl->tls == CONF_TLS_IMPLICIT) {
		SSL *ssl = s->ssl_ctx ? SSL_new(s->ssl_ctx) : NULL;
		s->bev = ssl ? bufferevent_openssl_socket_new(srv->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (s->bev == NULL) {
			if (ssl)
				SSL_free(ssl);
			close(fd);
			session_free(s);
			return;
		}
		smtp_session_set_state(s, ST_TLS);
	} else {
		s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (s->bev == NULL)
			fatalx("bufferevent_socket_new failed");
	}
	log_info("%s: connect from [%s]:%d to %s%s", s->id, s->ip, s->port, cl->name,
	    s->trusted ? " (trusted network)" : "");
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_IN_HIGH);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (s->state == ST_TLS) {
		smtp_session_deadline(s, s->conf->server.timeout_tls);
		return;
	}
	smtp_session_set_state(s, ST_CONNECTED);
	smtp_session_deadline(s, s->conf->server.timeout_command);
	smtp_session_reply(s, "220 %s ESMTP outpost", s->conf->server.hostname);
}

/* smtp_session_refuse - over a connection cap: one 421 line, then close */
void
smtp_session_refuse(struct server *srv, int fd, const char *why)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "421 4.7.0 %s %s; try again later\r\n",
	    srv->conf->server.hostname, why);

	metrics_inc(METRICS_CONN_REFUSED);
	/* Best effort, non-blocking: a client that cannot take 80 bytes
	 * right after connecting does not get them. */
	if (n > 0 && write(fd, line, (size_t)n) < 0)
		log_debug("refuse: write: %s", strerror(errno));
	close(fd);
}

/* smtp_session_shutdown - close every session that is not in the middle
 * of a transaction: one waiting for its commit closes after its reply
 * (smtp_session_finish), one between MAIL and the final dot may finish
 * the transaction first (session_command), within main's grace time. */
void
smtp_session_shutdown(struct server *srv)
{
	struct session *s, *next;

	for (s = session_list; s; s = next) {
		next = s->next;
		if (s->busy || s->state == ST_CLOSING || s->state == ST_MAIL ||
		    s->state == ST_RCPT || s->state == ST_DATA)
			continue;
		if (s->state == ST_TLS) {
			event_active(s->deadline, EV_TIMEOUT, 0);
			continue;
		}
		smtp_session_reply(s, "421 4.3.2 %s Service shutting down", srv->conf->server.hostname);
		session_close(s);
	}
}
