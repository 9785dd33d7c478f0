/*
 * forward - forwarded mail (RFC 8617 ARC): which submitted messages are
 * forwarded, the envelope they leave with, and the ARC set sealed onto
 * them before the forwarder's own DKIM signature.
 *
 * A message is forwarded when its From: is not the submitting user's and
 * either its top Resent-From:/Resent-Sender: is (a client's redirect),
 * or the user is a forwarding or list account (users-file options
 * forward, list, list=ID), or its listener says `forward = yes`. Its
 * envelope sender becomes the Resent- address or the account's own
 * address (or [domain] forward_return_path), so SPF is evaluated for our
 * domain and bounces reach someone who can act. List accounts add
 * List-Id: when the message has none.
 *
 * Sealing is in three steps, so no worker thread waits on the network:
 *   forward_prepare  (pool)  classify, List-Id, the DNS names needed
 *   forward_fetch    (loop)  the TXT records: every DKIM/ARC key, DMARC
 *   forward_seal     (pool)  verify what arrived (libopendkim), validate
 *                            the chain, DMARC alignment, then the ARC set
 * [domain] arc = auto seals forwarded mail, always every message of the
 * domain, never none.
 *
 * Trust: the message comes from an authenticated user but its content
 * (signatures, ARC sets, Resent- fields) may be anything; the DNS answers
 * are the Internet's. Everything is bounded (DKIM_VERIFY_KEYS_MAX names,
 * FORWARD_TXT_MAX records per DMARC name).
 */
#ifndef OUTPOST_FORWARD_H
#define OUTPOST_FORWARD_H

#include <stddef.h>
#include <time.h>

#include "dkim_verify.h"
#include "util.h"

struct auth_user;
struct conf;
struct dkim_domain;
struct dmarc_psl;
struct dns;

#define FORWARD_TXT_MAX 4           /* DMARC records kept per name */
#define FORWARD_LOG_MAX 512

struct forward_plan {
	int forwarded;              /* forwarded mail: envelope rewritten */
	int seal;                   /* add an ARC set ([domain] arc) */
	const char *via;            /* "resent", "account", "listener", "always" */
	char envelope[ADDR_MAX + 1];    /* the MAIL FROM it leaves with */
	char domain[HOST_MAX];      /* the forwarder's domain: d= of ARC and DKIM */
	char from_domain[HOST_MAX]; /* the header From: domain (DMARC) */
	char org_domain[HOST_MAX];  /* its organizational domain */
	/* DNS: the keys of every signature, then _dmarc.FROM and _dmarc.ORG */
	struct dkim_verify_keyname keys[DKIM_VERIFY_KEYS_MAX];
	size_t nkeys;
	struct dkim_verify_keyent ents[DKIM_VERIFY_KEYS_MAX];
	char *dmarc[2][FORWARD_TXT_MAX];
	size_t ndmarc[2];
	int dmarc_temp[2];
	size_t pending;
	int cancelled;              /* the resolver went away: give up */
	void (*done)(void *arg);
	void *arg;
};

/* In the pool, after the RFC 5322 checks: decide and prepare. u is the
 * authenticated user (NULL for a trusted device, which never forwards);
 * from_owned says whether u may send as the From: address. May insert
 * List-Id into *msg (realloc'd). Returns 0 with fp filled
 * (fp->forwarded 0 when the message is not forwarded), or -1 with an
 * SMTP reply in err. */
int forward_prepare(struct forward_plan *fp, const struct conf *c,
    const struct auth_user *u, int listener_forward, const struct dmarc_psl *psl,
    const char *from_domain, int from_owned, char **msg, size_t *len,
    char *err, size_t errlen);

/* On the loop: fetch every TXT record fp needs; done(arg) runs once, later,
 * on the loop, when all have answered (fp->cancelled if dns was freed). */
void forward_fetch(struct forward_plan *fp, struct dns *dns, void (*done)(void *arg),
    void *arg);

/* In the pool: verify the DKIM signatures that arrived, validate the ARC
 * chain, evaluate DMARC, and put an ARC set for fp->domain with keys'
 * first RSA key above *msg (replaced). `log` gets "arc i=1 cv=none
 * d=example.org; dkim=pass ...". Returns 0 when sealed, 1 when RFC 8617
 * forbids it (chain ended, 50 sets, temporary key errors: relayed as it
 * is, reason in log), -1 with a reason in err on a local fault. */
int forward_seal(const struct forward_plan *fp, struct dkim_verifier *v,
    const struct dmarc_psl *psl, const struct dkim_domain *keys,
    const char *authserv_id, time_t now, char **msg, size_t *len,
    char *log, size_t loglen, char *err, size_t errlen);

/* Free what forward_fetch stored. */
void forward_plan_clear(struct forward_plan *fp);

#endif
