/*
 * listener - the listening sockets of one [listen NAME] (bound, or passed
 * by systemd), accepting connections under the global and per-IP caps
 * (421 4.7.0 when over), and starting an smtp_session for each.
 */
#ifndef OUTPOST_LISTENER_H
#define OUTPOST_LISTENER_H

#include <stddef.h>

struct server;
struct conf_listen;
struct listener;

struct ssl_ctx_st;

/* Take the sockets systemd passed (LISTEN_FDS); before any listener_new.
 * Returns their number or -1 after err. */
int listener_activation(char *err, size_t errlen);
/* After every listener_new: -1 with err if a passed socket matched no
 * [listen] section. */
int listener_activation_unclaimed(char *err, size_t errlen);
/* Bind cl's addresses (or claim its passed sockets) and load its
 * certificate; accepting starts with listener_start. */
struct listener *listener_new(struct server *srv, const struct conf_listen *cl,
    char *err, size_t errlen);
int listener_start(struct listener *l, char *err, size_t errlen);
/* The section the listener serves now, and a reload's replacement. */
const struct conf_listen *listener_conf(const struct listener *l);
void listener_reconfigure(struct listener *l, const struct conf_listen *cl,
    struct ssl_ctx_st *ctx);
void listener_free(struct listener *l);
/* Stop accepting (shutdown). */
void listener_disable(struct listener *l);
/* A session from ip ended: release its per-IP slot. */
void listener_release_ip(struct listener *l, const char *ip);

#endif
