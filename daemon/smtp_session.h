/*
 * smtp_session - the submission server's SMTP state machine, one per
 * client connection (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 2920
 * PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8).
 */
#ifndef OUTPOST_SMTP_SESSION_H
#define OUTPOST_SMTP_SESSION_H

#include <sys/socket.h>

struct server;
struct listener;
struct conf_listen;
struct ssl_ctx_st;

/* Takes ownership of fd. ctx is the listener's TLS context (NULL when
 * tls = none). */
void smtp_session_start(struct server *srv, struct listener *l,
    const struct conf_listen *cl, struct ssl_ctx_st *ctx, int fd,
    const struct sockaddr *sa, socklen_t salen);
/* Over a connection cap: write one 421 4.7.0 line (best effort) and
 * close fd. */
void smtp_session_refuse(struct server *srv, int fd, const char *why);

/* Graceful stop: idle sessions get 421 4.3.2 and close. */
void smtp_session_shutdown(struct server *srv);

#endif
