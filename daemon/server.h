/*
 * server - the daemon's shared state, one instance owned by main.c and
 * handed to every module that lives on the event loop.
 */
#ifndef OUTPOST_SERVER_H
#define OUTPOST_SERVER_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct conf;
struct auth_db;
struct auth_penalty;
struct signer;
struct store;
struct scheduler;
struct dns;
struct loopq;
struct listener;

struct server {
	struct event_base *base;
	struct conf *conf;
	struct auth_db *users;
	struct auth_penalty *penalty;
	struct loopq *loopq;
	struct signer *signer;
	struct store *store;
	struct scheduler *sched;
	struct dns *dns;
	struct listener **listeners;
	size_t nlisteners;
	int nsessions;              /* open submission sessions, all listeners */
	time_t started;
	int stopping;               /* set on SIGTERM: no new work */
};

#endif
