/*
 * http - the small HTTP servers outpostd runs on its event loop (the
 * Prometheus metrics, the one-click unsubscribe endpoint): libevent's
 * evhttp bound to one "ip:port", with bounded requests and a timeout.
 */
#ifndef OUTPOST_HTTP_H
#define OUTPOST_HTTP_H

#include <stddef.h>

struct event_base;
struct evhttp;
struct evhttp_request;

/* Serve listen ("127.0.0.1:9587", "[::1]:8025") with cb for every
 * request, whatever its method (cb answers 405 itself: libevent would say
 * 501); requests over headers_max or body_max bytes are refused, a
 * connection idle for timeout seconds is closed. NULL with err when the
 * address is not one or cannot be bound. evhttp_free() it. */
struct evhttp *http_listen(struct event_base *base, const char *listen, size_t headers_max,
    size_t body_max, int timeout, void (*cb)(struct evhttp_request *, void *), void *arg,
    char *err, size_t errlen);

#endif
