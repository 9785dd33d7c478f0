/*
 * domcheck - the daemon's own deliverability self-check: selfcheck_dns
 * for every [domain] at start and every [server] check_interval (default
 * 6h; 0 = off), on a thread of its own (DNS waits must not hold up the
 * signer pool or the loop). Each FAIL is logged with its fix; the last
 * result per domain shows in `outpostctl status`; with [domain]
 * refuse_when_failing = yes, mail From: a domain whose SPF and DKIM both
 * FAIL is refused with 451 4.7.26 instead of being relayed into certain
 * 5.7.26 rejections.
 *
 * Results are handed to the loop through loopq; everything but the
 * thread itself runs on the loop.
 */
#ifndef OUTPOST_DOMCHECK_H
#define OUTPOST_DOMCHECK_H

#include <stddef.h>
#include <time.h>

struct server;
struct domcheck;
struct evbuffer;

#define DOMCHECK_TEXT_MAX 512

/* The last result for one domain. */
struct domcheck_result {
	time_t at;                  /* 0: not checked yet */
	int nok, nwarn, nfail;
	int spf_fail, dkim_fail;
	char first_fail[DOMCHECK_TEXT_MAX]; /* "spf: ..." or "" */
};

/* Starts the thread when check_interval > 0 and there are domains. */
struct domcheck *domcheck_new(struct server *srv);
/* Stop the thread (a check under way finishes its domain first); call
 * before loopq_free, since the thread posts results there. */
void domcheck_stop(struct domcheck *dc);
/* Free, after loopq_free (a result still queued is dropped with it). */
void domcheck_free(struct domcheck *dc);
/* The last result for domain (exact [domain] name, case ignored), or NULL. */
const struct domcheck_result *domcheck_get(const struct domcheck *dc, const char *domain);
/* 1 (with the reply text in why) when mail From: domain must be refused:
 * its [domain] says refuse_when_failing and SPF and DKIM both FAIL. */
int domcheck_refuses(const struct domcheck *dc, const char *domain, char *why, size_t len);
/* For status: one line per domain, or a JSON array. */
void domcheck_status(const struct domcheck *dc, struct evbuffer *out, int json);

#endif
