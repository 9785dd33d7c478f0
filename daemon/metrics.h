/*
 * metrics - Prometheus text exposition on [server] metrics_listen
 * (libevent evhttp, GET /metrics).
 */
#ifndef OUTPOST_METRICS_H
#define OUTPOST_METRICS_H

#include <stddef.h>

struct server;
struct metrics;

/* Listen on srv->conf->server.metrics_listen. NULL with err[0] == '\0'
 * when it is "no"; NULL with a message in err when it cannot listen. */
struct metrics *metrics_start(struct server *srv, char *err, size_t errlen);
void metrics_stop(struct metrics *m);

#endif
