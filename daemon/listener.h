/*
 * listener - one listening socket per [listen NAME] (IPv4 or IPv6),
 * accepting connections under the global and per-IP caps (421 4.7.0 when
 * over), and starting an smtp_session for each.
 */
#ifndef OUTPOST_LISTENER_H
#define OUTPOST_LISTENER_H

#include <stddef.h>

struct server;
struct conf_listen;
struct listener;

struct listener *listener_new(struct server *srv, const struct conf_listen *cl,
    char *err, size_t errlen);
void listener_free(struct listener *l);
/* Stop accepting (shutdown). */
void listener_disable(struct listener *l);
/* A session from ip ended: release its per-IP slot. */
void listener_release_ip(struct listener *l, const char *ip);

#endif
