/*
 * smtp_session_int - internal to smtp_session.c and smtp_submit.c; not
 * for other modules (they use smtp_session.h).
 *
 * smtp_session.c owns the connection: the verb table and commands, TLS,
 * the libevent callbacks and the session's lifecycle. smtp_submit.c takes
 * the message from the final dot to the 250 (checks, forwarded mail and
 * ARC, DKIM, commit). struct session is defined here because both work on
 * it; while a submission runs the session is busy and the job owns it.
 */
#ifndef OUTPOST_SMTP_SESSION_INT_H
#define OUTPOST_SMTP_SESSION_INT_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "auth.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "util.h"

struct bufferevent;
struct event;
struct server;
struct listener;
struct conf_listen;

enum session_state {
	ST_CONNECTED,       /* greeting sent, no HELO/EHLO yet */
	ST_READY,           /* after HELO/EHLO: no transaction */
	ST_MAIL,            /* MAIL accepted */
	ST_RCPT,            /* at least one RCPT accepted */
	ST_DATA,            /* reading the message */
	ST_SASL,            /* waiting for a SASL continuation line */
	ST_TLS,             /* TLS handshake in progress */
	ST_CLOSING,         /* final reply queued, closing after the flush */
	ST_COUNT
};

enum sasl_step { SASL_NONE, SASL_PLAIN, SASL_LOGIN_USER, SASL_LOGIN_PASS };

struct session {
	struct session *prev, *next; /* all sessions, for shutdown */
	struct server *srv;
	struct listener *listener;
	const struct conf_listen *cl;
	const struct conf *conf;    /* the config this session started under
	                             * (a reload swaps srv->conf; old ones live
	                             * until exit), read by its pool jobs too */
	SSL_CTX *ssl_ctx;
	struct bufferevent *bev;
	struct event *deadline;
	enum session_state state;
	char id[16];                /* session id for log lines */
	char ip[IP_STR_MAX];
	int port;
	int trusted;                /* peer inside trusted_networks */
	int tls;                    /* TLS established */
	char tls_desc[128];
	int esmtp;                  /* EHLO rather than HELO */
	char helo[HOST_MAX];
	int nbad;                   /* unknown/invalid commands so far */
	int busy;                   /* a worker job or the store owns us */
	int dead;                   /* connection gone while busy */
	int skip_line;              /* discarding an overlong line up to LF */
	int close_polls;            /* waits for the socket to drain at close */

	/* authentication */
	char user[AUTH_NAME_MAX];   /* authenticated user, "" if none */
	struct auth_user *auth_user; /* our copy: survives a users reload */
	enum sasl_step sasl;
	const char *sasl_mech;      /* "PLAIN" or "LOGIN" */
	char sasl_name[AUTH_NAME_MAX];
	int auth_failures;

	/* the transaction */
	char qid[QUEUE_ID_LEN + 1];
	struct smtp_mail mail;
	char **rcpts;
	int *rcpt_notify;
	char **rcpt_orcpt;
	size_t nrcpt;
	size_t nunsub;              /* RCPTs that were mailto: unsubscribes
	                             * (recorded, not recipients) */
	struct smtp_data data;      /* the message being received (DATA) */
	size_t data_since_renew;
};


/* smtp_session.c */
void smtp_session_set_state(struct session *s, enum session_state st);
void smtp_session_reply(struct session *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
void smtp_session_deadline(struct session *s, long seconds);
void smtp_session_reset(struct session *s);
int smtp_session_sender_ok(const struct session *s, const char *addr);
void smtp_session_finish(struct session *s);

/* smtp_submit.c: the client sent CRLF.CRLF; the session is busy until
 * the reply (smtp_session_finish) */
void smtp_submit_data_end(struct session *s);

#endif
