/*
 * selfcheck - the deliverability self-check: a domain's sending setup
 * against what receivers require (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489
 * DMARC, MX, PTR and forward-confirmed reverse DNS, MTA-STS / TLS-RPT),
 * and the egress address against DNS block lists.
 *
 * Each finding is OK / WARN / FAIL with the exact fix (the record to
 * publish). Blocking: a private resolver (dns.h, base NULL, dns_wait) on
 * [server] dns_server, so it runs in outpostctl or in a worker thread of
 * the daemon, never on the event loop.
 */
#ifndef OUTPOST_SELFCHECK_H
#define OUTPOST_SELFCHECK_H

#include <stdio.h>

struct conf;

enum selfcheck_level { SELFCHECK_OK, SELFCHECK_INFO, SELFCHECK_WARN, SELFCHECK_FAIL };

#define SELFCHECK_TEXT_MAX 512
#define SELFCHECK_FIX_MAX 1024

struct selfcheck_finding {
	enum selfcheck_level level;
	char check[16];             /* "spf", "dkim", "dmarc", "mx", "ptr",
	                             * "fcrdns", "mta-sts", "tls-rpt", "rbl" */
	char text[SELFCHECK_TEXT_MAX];  /* what was found */
	char fix[SELFCHECK_FIX_MAX];    /* what to do; "" when OK */
};

struct selfcheck_report {
	char subject[256];          /* the domain or IP checked */
	struct selfcheck_finding *f;
	size_t n;
};

/* `outpostctl check dns DOMAIN`: every check for DOMAIN (a [domain] of c,
 * or any domain: then only what can be checked without its keys). 0 when
 * the checks ran (findings in r), -1 with err when they could not. */
int selfcheck_dns(const struct conf *c, const char *domain, struct selfcheck_report *r,
    char *err, size_t errlen);
/* `outpostctl check rbl [IP]`: ip (NULL: every upstream's egress address)
 * against [server] rbl. */
int selfcheck_rbl(const struct conf *c, const char *ip, struct selfcheck_report *r,
    char *err, size_t errlen);
/* Print as text (one line per finding, fix indented below) or JSON. */
void selfcheck_print(const struct selfcheck_report *r, int json, FILE *out);
/* 1 when any finding is FAIL */
int selfcheck_failed(const struct selfcheck_report *r);
void selfcheck_report_free(struct selfcheck_report *r);

/* ---- pure helpers, exported for the unit tests ------------------------- */

/* The SPF record to publish so that every address of ips (IPv4 / IPv6
 * literals) passes: record with "ip4:A" / "ip6:A" terms inserted before
 * its all (else before its first modifier, else at its end), or a new
 * "v=spf1 ip4:A -all" when record is NULL or "". 0, or -1 when out is too
 * small (out is then cut short). */
int selfcheck_spf_suggest(const char *record, const char *const *ips, size_t n,
    char *out, size_t outlen);
/* The block-list query name of ip under zone: 2.0.0.127.zone (IPv4),
 * 32 reversed nibbles (IPv6). 0, or -1 for a bad ip or a short buffer. */
int selfcheck_rbl_name(const char *ip, const char *zone, char *out, size_t outlen);

#endif
