/*
 * spf - SPF evaluation (RFC 7208) with libspf2, its DNS answered through
 * the project's resolver (dns.h) instead of libspf2's own, so
 * [server] dns_server is honoured. Blocking (a private resolver and
 * dns_wait): for outpostctl and worker threads.
 */
#ifndef OUTPOST_SPF_H
#define OUTPOST_SPF_H

#include <stddef.h>

enum spf_result { SPF_R_NONE, SPF_R_NEUTRAL, SPF_R_PASS, SPF_R_FAIL, SPF_R_SOFTFAIL,
	SPF_R_TEMPERROR, SPF_R_PERMERROR };

#define SPF_TEXT_MAX 512

struct spf_outcome {
	enum spf_result result;
	char record[SPF_TEXT_MAX];      /* the domain's SPF record, "" if none */
	char mechanism[SPF_TEXT_MAX];   /* the mechanism that matched, or why not */
	char explanation[SPF_TEXT_MAX]; /* libspf2's comment / error text */
};

/* Evaluate MAIL FROM postmaster@domain from ip ("192.0.2.1" or an IPv6
 * literal), helo as given. dns_server as in the config ("" = system).
 * 0, or -1 with err when libspf2 could not run at all. */
int spf_check(const char *dns_server, const char *ip, const char *domain,
    const char *helo, struct spf_outcome *out, char *err, size_t errlen);
const char *spf_result_name(enum spf_result r);

#endif
