/*
 * spf - SPF evaluation (RFC 7208) with libspf2, its DNS answered through
 * the project's resolver (dns.h) instead of libspf2's own, so
 * [server] dns_server is honoured. Blocking (a private resolver and
 * dns_wait): for outpostctl and worker threads.
 *
 * libspf2 asks a "DNS layer" (spf_dns.h) for one name and type at a time
 * and gets an SPF_dns_rr_t back; ours runs that query on a private dns.c
 * instance and converts the answer: NXDOMAIN -> HOST_NOT_FOUND, no
 * records -> NO_DATA, anything temporary -> TRY_AGAIN. The obsolete SPF
 * RR type (99, RFC 7208 3.1) is answered NO_DATA without a query, so
 * libspf2 goes on to TXT at once.
 *
 * Input trusted: none; records come from DNS and libspf2 parses them.
 *
 * Process-wide side effect: spf_check() sets libspf2's warning and info
 * handlers to NULL, since what they would print to stderr is returned in
 * struct spf_outcome instead.
 */
#ifndef OUTPOST_SPF_H
#define OUTPOST_SPF_H

#include <stddef.h>
#include <sys/socket.h>

#include "dns.h"

enum spf_result { SPF_R_NONE, SPF_R_NEUTRAL, SPF_R_PASS, SPF_R_FAIL, SPF_R_SOFTFAIL,
	SPF_R_TEMPERROR, SPF_R_PERMERROR };

#define SPF_TEXT_MAX 512
/* Per query: c-ares' first try, doubled once (2 tries), so one lookup is
 * over within about 6 s even when the server is gone. */
#define SPF_DNS_TIMEOUT_MS 2000
#define SPF_DNS_TRIES 2

/* Why a permerror happened, for the self-check's fix. */
enum spf_problem { SPF_P_NONE, SPF_P_LOOKUPS, SPF_P_MULTIPLE, SPF_P_SYNTAX };

struct spf_outcome {
	enum spf_result result;
	char record[SPF_TEXT_MAX];      /* the domain's SPF record, "" if none */
	char mechanism[SPF_TEXT_MAX];   /* the mechanism that matched, or why not */
	char explanation[SPF_TEXT_MAX]; /* libspf2's comment / error text */
	enum spf_problem problem;       /* for SPF_R_PERMERROR */
};

/* Evaluate MAIL FROM postmaster@domain from ip ("192.0.2.1" or an IPv6
 * literal), helo as given. dns_server as in the config ("" = system).
 * 0, or -1 with err when libspf2 could not run at all. */
int spf_check(const char *dns_server, const char *ip, const char *domain,
    const char *helo, struct spf_outcome *out, char *err, size_t errlen);
const char *spf_result_name(enum spf_result r);

/* ---- pure helpers, exported for the unit tests ------------------------- */

/* The address of a reverse name ("4.3.2.1.in-addr.arpa", 32 nibbles
 * under "ip6.arpa"; case-insensitive, one trailing dot accepted) into ss
 * with port 0. 0, or -1 when name is not one. */
int spf_ptr_addr(const char *name, struct sockaddr_storage *ss);

/* libspf2's h_errno for one of our answers: n records -> NETDB_SUCCESS
 * (NO_DATA when n is 0), DNS_NOTFOUND -> HOST_NOT_FOUND when nxdomain,
 * else NO_DATA; DNS_TEMPFAIL / DNS_CANCELLED -> TRY_AGAIN. */
int spf_herrno(enum dns_status st, int nxdomain, size_t n);

#endif
