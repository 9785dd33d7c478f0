/*
 * server - the daemon's shared state, one instance owned by main.c and
 * handed to every module that lives on the event loop.
 */
#ifndef OUTPOST_SERVER_H
#define OUTPOST_SERVER_H

#include <stddef.h>
#include <stdio.h>
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
struct dkim_signer;
struct alert;
struct server;
struct throttle_users;
struct suppress;
struct unsub;
struct unsub_http;
struct control;
struct dkim_verifier;
struct dmarc_psl;
struct domcheck;
struct metrics;

/* The DKIM keys in use, shared by every signing job. A job holds a
 * reference from submission to completion (both on the loop thread), so
 * a reload can swap in new keys while old jobs still sign with the old
 * ones; the last reference frees a retired set. */
struct server_dkim {
	struct dkim_signer *signer;
	int refs;
};

struct server_dkim *server_dkim_hold(struct server *srv);
void server_dkim_release(struct server *srv, struct server_dkim *d);
/* Load conf's DKIM keys (errors to errs as file:line); NULL on errors. */
struct server_dkim *server_dkim_load(const struct conf *c, FILE *errs);
void server_dkim_install(struct server *srv, struct server_dkim *d);
/* Re-read the users file and the DKIM keys (SIGHUP, outpostctl reload);
 * on errors the running ones stay. Returns 0 with a summary in report, or
 * -1 with the errors ("file:line: message; ...") in report (may be
 * NULL). The suppression list and the unsubscribes are re-read too, on a
 * read-only connection of their own (server_suppress_reload). */
int server_reload(struct server *srv, char *report, size_t reportlen);
/* Free the configs reloads replaced (at exit, after everything else). */
void server_retired_free(struct server *srv);
int server_suppress_reload(struct server *srv);

struct server {
	struct event_base *base;
	struct conf *conf;
	struct auth_db *users;
	struct auth_penalty *penalty;
	struct throttle_users *user_limits; /* [server] user_rate /
	                             * user_daily_limit; NULL when neither is set */
	struct loopq *loopq;
	struct signer *signer;
	struct store *store;
	struct scheduler *sched;
	struct dns *dns;
	struct server_dkim *dkim;   /* current keys (never NULL once started) */
	struct alert *alert;        /* postmaster alerts; NULL in tools and tests */
	struct suppress *suppress;  /* suppressed recipients; NULL in tools and
	                             * tests that do not set one */
	struct unsub *unsubs;       /* per-sender unsubscribes (unsub.h); NULL
	                             * in tools and tests that do not set one */
	struct unsub_http *unsub_http; /* the one-click endpoint; NULL when off */
	struct listener **listeners;
	size_t nlisteners;
	struct control *control;    /* state_dir/control (outpostctl) */
	/* Forwarded mail (forward.h): DKIM verification, the Public Suffix
	 * List, and a resolver of its own with short timeouts. NULL in tools
	 * and tests that do not set them: then nothing is sealed. */
	struct dkim_verifier *verifier;
	struct dmarc_psl *psl;
	struct dns *vdns;
	struct domcheck *domcheck;  /* periodic check dns; NULL in tests */
	struct metrics *metrics;    /* /metrics over HTTP; NULL when off */
	/* Bulk mail (issue 10): the one-click unsubscribe token key
	 * (state_dir/unsubscribe.key), NULL when no [domain] has
	 * unsubscribe = yes and [unsubscribe] does not listen; the volume
	 * table of bulk detection, NULL in tools and tests. */
	struct unsub_key *unsub_key;
	struct bulk *bulk;
	struct conf **retired;      /* configs replaced by reloads, freed at exit */
	size_t nretired;
	int nsessions;              /* open submission sessions, all listeners */
	time_t started;
	int stopping;               /* set on SIGTERM: no new work */
};

#endif
