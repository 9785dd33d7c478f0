/*
 * spf - SPF evaluation (RFC 7208) with libspf2 over our resolver.
 *
 * spf_check() builds a libspf2 server on a custom DNS layer (struct
 * spf_layer, see spf_dns.h of libspf2): each lookup runs one dns.c query
 * on a private loop and waits for it, so the layer is synchronous like
 * libspf2 expects. The RFC 7208 4.6.4 limit of 10 lookup mechanisms is
 * libspf2's (max_dns_mech), counted over the whole include chain.
 *
 * libspf2 reports the result and a comment but not which mechanism
 * matched. To name it, the top record's mechanisms are tried one at a
 * time: the layer answers the domain's TXT with "v=spf1 MECH" (the
 * qualifier dropped), and the first that passes is the one that matched.
 * Only done for pass/fail/softfail/neutral, where every lookup already
 * succeeded once.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "spf.h"
#include "log.h"
#include "util.h"

/* dns_wait bound per lookup: longer than c-ares' own retries (2 s + 4 s),
 * so a lookup normally ends with c-ares' verdict. */
#define SPF_WAIT_MS 10000
#define SPF_TERMS_MAX 64
#define SPF_MAX_LOOKUPS 10          /* RFC 7208 4.6.4 */
/* The receiver's name in libspf2's comments, cut off again */
#define SPF_REC_DOM "outpost"
/* dns_resolve wants a port; c-ares refuses 0 (ARES_ESERVICE). Unused. */
#define SPF_ANY_PORT 25

struct spf_layer {
	struct dns *d;
	const char *over_name;      /* mechanism search: this name's TXT ... */
	const char *over_txt;       /* ... is this record instead */
};

/* One lookup in flight. On the heap: if dns_wait gives up first, the
 * query still calls back later (at the latest from dns_free). */
struct spf_pending {
	SPF_dns_server_t *srv;
	char *domain;
	ns_type type;
	SPF_dns_rr_t *rr;
	int done;
	int abandoned;
};

/* spf_herrno - libspf2's status for one of our answers */
int
spf_herrno(enum dns_status st, int nxdomain, size_t n)
{
	switch (st) {
	case DNS_OK:
		return n > 0 ? NETDB_SUCCESS : NO_DATA;
	case DNS_NOTFOUND:
		return nxdomain ? HOST_NOT_FOUND : NO_DATA;
	default:
		return TRY_AGAIN;
	}
}

/* spf_ptr_addr - "4.3.2.1.in-addr.arpa" / nibbles "ip6.arpa" -> address */
int
spf_ptr_addr(const char *name, struct sockaddr_storage *ss)
{
	char buf[HOST_MAX], *lab[34], *p, *save = NULL;
	size_t n = 0, len;

	if (util_strlcpy(buf, name, sizeof(buf)) >= sizeof(buf))
		return -1;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '.')
		buf[len - 1] = '\0';
	for (p = strtok_r(buf, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
		if (n == ARRAY_LEN(lab))
			return -1;
		lab[n++] = p;
	}
	memset(ss, 0, sizeof(*ss));
	if (n == 6 && util_strcaseeq(lab[4], "in-addr") && util_strcaseeq(lab[5], "arpa")) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		char ip[INET_ADDRSTRLEN];

		for (size_t i = 0; i < 4; i++)
			if (strlen(lab[i]) > 3 || strspn(lab[i], "0123456789") != strlen(lab[i]))
				return -1;
		snprintf(ip, sizeof(ip), "%s.%s.%s.%s", lab[3], lab[2], lab[1], lab[0]);
		sin->sin_family = AF_INET;
		return inet_pton(AF_INET, ip, &sin->sin_addr) == 1 ? 0 : -1;
	}
	if (n == 34 && util_strcaseeq(lab[32], "ip6") && util_strcaseeq(lab[33], "arpa")) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		for (size_t i = 0; i < 32; i++) {
			int c = tolower((unsigned char)lab[i][0]);
			int v = isdigit(c) ? c - '0' : c - 'a' + 10;

			if (lab[i][1] != '\0' || !isxdigit(c))
				return -1;
			/* lab[0] is the lowest nibble of the last byte */
			sin6->sin6_addr.s6_addr[15 - i / 2] |= (unsigned char)(i % 2 ? v << 4 : v);
		}
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

/* spf_rr_add - one record's data into rr; nul adds a terminating NUL */
static void
spf_rr_add(SPF_dns_rr_t *rr, const void *data, size_t len, int nul)
{
	if (SPF_dns_rr_buf_realloc(rr, rr->num_rr, len + (nul ? 1 : 0)) != SPF_E_SUCCESS) {
		rr->herrno = TRY_AGAIN;     /* out of memory: try later */
		return;
	}
	memcpy(rr->rr[rr->num_rr], data, len);
	if (nul)
		((char *)rr->rr[rr->num_rr])[len] = '\0';
	rr->num_rr++;
}

/* spf_pending_rr - a new, empty answer for p with the status of st */
static SPF_dns_rr_t *
spf_pending_rr(struct spf_pending *p, enum dns_status st, int nxdomain, size_t n)
{
	SPF_dns_rr_t *rr = SPF_dns_rr_new_init(p->srv, p->domain, p->type, 0,
	    spf_herrno(st, nxdomain, n));

	if (rr == NULL)
		fatalx("spf: out of memory");
	return rr;
}

/* spf_pending_end - p answered; 1 if p was abandoned (and is now freed) */
static int
spf_pending_end(struct spf_pending *p)
{
	if (!p->abandoned)
		return 0;
	free(p->domain);
	free(p);
	return 1;
}

/* spf_strings - TXT, MX and PTR answers: NUL-terminated strings */
static void
spf_strings(struct spf_pending *p, enum dns_status st, const char *errstr,
    const char *const *s, const size_t *lens, size_t n)
{
	if (spf_pending_end(p))
		return;
	p->rr = spf_pending_rr(p, st, strcmp(errstr, ares_strerror(ARES_ENOTFOUND)) == 0, n);
	for (size_t i = 0; st == DNS_OK && i < n; i++)
		if (s[i][0] != '\0' || p->type == ns_t_txt)     /* not a null MX */
			spf_rr_add(p->rr, s[i], lens ? lens[i] : strlen(s[i]), 1);
	if (p->rr->herrno == NETDB_SUCCESS && p->rr->num_rr == 0)
		p->rr->herrno = NO_DATA;
	p->done = 1;
}

/* spf_txt_cb - a TXT answer for libspf2 */
static void
spf_txt_cb(enum dns_status st, const char *errstr, const struct dns_txt *txt, size_t n,
    void *arg)
{
	const char *s[DNS_TXT_MAX];
	size_t lens[DNS_TXT_MAX];

	for (size_t i = 0; i < n && i < DNS_TXT_MAX; i++) {
		s[i] = txt[i].data;
		lens[i] = txt[i].len;
	}
	spf_strings(arg, st, errstr, s, lens, n < DNS_TXT_MAX ? n : DNS_TXT_MAX);
}

/* spf_mx_cb - an MX answer: the hosts (null MX dropped) */
static void
spf_mx_cb(enum dns_status st, const char *errstr, const struct dns_mx *mx, size_t n,
    void *arg)
{
	const char *s[DNS_MX_MAX];

	for (size_t i = 0; i < n && i < DNS_MX_MAX; i++)
		s[i] = mx[i].host;
	spf_strings(arg, st, errstr, s, NULL, n < DNS_MX_MAX ? n : DNS_MX_MAX);
}

/* spf_names_cb - a PTR answer: the names */
static void
spf_names_cb(enum dns_status st, const char *errstr, const char *const *names, size_t n,
    void *arg)
{
	spf_strings(arg, st, errstr, names, NULL, n);
}

/* spf_addr_cb - A or AAAA: the addresses of the asked family */
static void
spf_addr_cb(int err, const char *errstr, const struct sockaddr_storage *addrs,
    size_t naddrs, void *arg)
{
	struct spf_pending *p = arg;
	int family = p->type == ns_t_a ? AF_INET : AF_INET6;
	enum dns_status st;

	(void)errstr;
	if (spf_pending_end(p))
		return;
	if (err == ARES_SUCCESS)
		st = DNS_OK;
	else if (err == ARES_ENOTFOUND || err == ARES_ENODATA)
		st = DNS_NOTFOUND;
	else
		st = DNS_TEMPFAIL;
	p->rr = spf_pending_rr(p, st, err == ARES_ENOTFOUND, naddrs);
	for (size_t i = 0; st == DNS_OK && i < naddrs; i++) {
		if (addrs[i].ss_family != family)
			continue;
		if (family == AF_INET)
			spf_rr_add(p->rr, &((const struct sockaddr_in *)&addrs[i])->sin_addr,
			    sizeof(struct in_addr), 0);
		else
			spf_rr_add(p->rr, &((const struct sockaddr_in6 *)&addrs[i])->sin6_addr,
			    sizeof(struct in6_addr), 0);
	}
	if (p->rr->herrno == NETDB_SUCCESS && p->rr->num_rr == 0)
		p->rr->herrno = NO_DATA;
	p->done = 1;
}

/* spf_layer_lookup - libspf2's lookup: one query, waited for */
static SPF_dns_rr_t *
spf_layer_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type, int should_cache)
{
	struct spf_layer *l = srv->hook;
	struct spf_pending *p;
	struct sockaddr_storage ss;
	SPF_dns_rr_t *rr;

	(void)should_cache;
	p = xcalloc(1, sizeof(*p));
	p->srv = srv;
	p->domain = xstrdup(domain);
	p->type = type;
	if (type == ns_t_txt && l->over_name && util_strcaseeq(domain, l->over_name)) {
		size_t len = strlen(l->over_txt);

		spf_strings(p, DNS_OK, "", &l->over_txt, &len, 1);
	} else if (type == ns_t_txt) {
		dns_query_txt(l->d, domain, spf_txt_cb, p);
	} else if (type == ns_t_mx) {
		dns_query_mx(l->d, domain, spf_mx_cb, p);
	} else if (type == ns_t_a || type == ns_t_aaaa) {
		dns_resolve(l->d, domain, SPF_ANY_PORT, spf_addr_cb, p);
	} else if (type == ns_t_ptr && spf_ptr_addr(domain, &ss) == 0) {
		dns_query_ptr(l->d, &ss, spf_names_cb, p);
	} else {
		/* type 99 (RFC 7208 3.1: not published any more), or junk */
		p->rr = spf_pending_rr(p, DNS_NOTFOUND, 0, 0);
		p->done = 1;
	}
	if (!p->done)
		dns_wait(l->d, SPF_WAIT_MS);
	if (!p->done) {
		p->abandoned = 1;       /* its callback frees it */
		if ((rr = SPF_dns_rr_new_init(srv, domain, type, 0, TRY_AGAIN)) == NULL)
			fatalx("spf: out of memory");
		return rr;
	}
	rr = p->rr;
	free(p->domain);
	free(p);
	return rr;
}

/* spf_result_of - ours from libspf2's */
static enum spf_result
spf_result_of(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return SPF_R_PASS;
	case SPF_RESULT_FAIL:
		return SPF_R_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_R_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return SPF_R_NEUTRAL;
	case SPF_RESULT_NONE:
		return SPF_R_NONE;
	case SPF_RESULT_TEMPERROR:
		return SPF_R_TEMPERROR;
	default:
		return SPF_R_PERMERROR;
	}
}

/* spf_eval - one MAIL FROM evaluation; the response (caller frees) or
 * NULL with err */
static SPF_response_t *
spf_eval(SPF_server_t *srv, const char *ip, const char *domain, const char *helo,
    char *err, size_t errlen)
{
	SPF_request_t *req;
	SPF_response_t *resp = NULL;
	char from[HOST_MAX + 16];
	SPF_errcode_t e;

	if ((req = SPF_request_new(srv)) == NULL)
		fatalx("spf: out of memory");
	e = strchr(ip, ':') ? SPF_request_set_ipv6_str(req, ip) : SPF_request_set_ipv4_str(req, ip);
	if (e != SPF_E_SUCCESS) {
		util_seterr(err, errlen, "%s: not an IP address", ip);
		SPF_request_free(req);
		return NULL;
	}
	snprintf(from, sizeof(from), "postmaster@%s", domain);
	if (SPF_request_set_helo_dom(req, helo && *helo ? helo : domain) != SPF_E_SUCCESS ||
	    SPF_request_set_env_from(req, from) != 0) {
		util_seterr(err, errlen, "%s: not a domain libspf2 accepts", domain);
		SPF_request_free(req);
		return NULL;
	}
	SPF_request_query_mailfrom(req, &resp);
	SPF_request_free(req);
	if (resp == NULL)
		util_seterr(err, errlen, "libspf2 gave no answer for %s", domain);
	return resp;
}

/* spf_is_modifier - "name=value" (RFC 7208 4.6.1), not a mechanism */
static int
spf_is_modifier(const char *term)
{
	size_t n = strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789-_.");

	return isalpha((unsigned char)term[0]) && term[n] == '=';
}

/* spf_mechanism - which of record's mechanisms matched ip (see the top) */
static void
spf_mechanism(struct spf_layer *l, SPF_server_t *srv, const char *ip, const char *domain,
    const char *helo, const char *record, struct spf_outcome *out)
{
	char buf[SPF_TEXT_MAX], txt[SPF_TEXT_MAX + 8], e[64], *t, *save = NULL;
	const char *redirect = NULL;
	int tries = 0;

	util_strlcpy(buf, record, sizeof(buf));
	t = strtok_r(buf, " ", &save);      /* v=spf1 */
	while ((t = strtok_r(NULL, " ", &save)) != NULL && tries++ < SPF_TERMS_MAX) {
		const char *mech = strchr("+-~?", t[0]) ? t + 1 : t;
		SPF_response_t *r;
		int pass;

		if (spf_is_modifier(t)) {
			if (util_strncaseprefix(t, "redirect="))
				redirect = t;
			continue;
		}
		snprintf(txt, sizeof(txt), "v=spf1 %s", mech);
		l->over_name = domain;
		l->over_txt = txt;
		r = spf_eval(srv, ip, domain, helo, e, sizeof(e));
		l->over_name = l->over_txt = NULL;
		pass = r && SPF_response_result(r) == SPF_RESULT_PASS;
		if (r)
			SPF_response_free(r);
		if (pass) {
			util_strlcpy(out->mechanism, t, sizeof(out->mechanism));
			return;
		}
	}
	if (redirect)
		snprintf(out->mechanism, sizeof(out->mechanism),
		    "no mechanism matched; %s decided", redirect);
	else
		util_strlcpy(out->mechanism, "no mechanism matched and the record has no all"
		    " (neutral by default)", sizeof(out->mechanism));
}

/* spf_record - the domain's v=spf1 record(s): the first into rec; how
 * many there were, or -1 after a temporary failure */
static int
spf_record(SPF_dns_server_t *layer, const char *domain, char *rec, size_t reclen)
{
	SPF_dns_rr_t *rr = spf_layer_lookup(layer, domain, ns_t_txt, 0);
	int found = rr->herrno == TRY_AGAIN ? -1 : 0;

	rec[0] = '\0';
	for (int i = 0; rr->herrno == NETDB_SUCCESS && i < rr->num_rr; i++) {
		const char *t = rr->rr[i]->txt;

		if (util_strncaseprefix(t, "v=spf1") && (t[6] == ' ' || t[6] == '\0') &&
		    found++ == 0)
			util_strlcpy(rec, t, reclen);
	}
	SPF_dns_rr_free(rr);
	return found;
}

/* spf_term_is - term (qualifier dropped) is mechanism or modifier name,
 * alone or followed by one of the separators in sep */
static int
spf_term_is(const char *term, const char *name, const char *sep)
{
	size_t n = strlen(name);

	return strncasecmp(term, name, n) == 0 &&
	    (term[n] == '\0' || strchr(sep, term[n]) != NULL);
}

/* spf_count_lookups - the terms of record that cost a DNS query
 * (include, a, mx, ptr, exists, redirect: RFC 7208 4.6.4), counting the
 * records it includes or redirects to. libspf2 counts per record only,
 * so a chain of includes could pass it with more than 10. Targets with
 * macros are counted but not followed. Stops past SPF_MAX_LOOKUPS. */
static int
spf_count_lookups(SPF_dns_server_t *layer, const char *record, int depth)
{
	char buf[SPF_TEXT_MAX], sub[SPF_TEXT_MAX], *t, *save = NULL;
	int n = 0;

	util_strlcpy(buf, record, sizeof(buf));
	for (t = strtok_r(buf, " ", &save); t && n <= SPF_MAX_LOOKUPS;
	    t = strtok_r(NULL, " ", &save)) {
		const char *m = strchr("+-~?", t[0]) ? t + 1 : t;
		const char *target = NULL;

		if (spf_term_is(m, "a", ":/") || spf_term_is(m, "mx", ":/") ||
		    spf_term_is(m, "ptr", ":") || spf_term_is(m, "exists", ":"))
			n++;
		else if (util_strncaseprefix(m, "include:"))
			target = m + 8;
		else if (util_strncaseprefix(m, "redirect="))
			target = m + 9;
		if (target == NULL)
			continue;
		n++;
		if (depth < SPF_MAX_LOOKUPS && strchr(target, '%') == NULL &&
		    spf_record(layer, target, sub, sizeof(sub)) == 1)
			n += spf_count_lookups(layer, sub, depth + 1);
	}
	return n;
}

/* spf_messages - libspf2's comment and error messages into out */
static void
spf_messages(SPF_response_t *r, struct spf_outcome *out)
{
	const char *c = SPF_response_get_header_comment(r);

	if (c && strncmp(c, SPF_REC_DOM ": ", strlen(SPF_REC_DOM) + 2) == 0)
		c += strlen(SPF_REC_DOM) + 2;
	util_strlcpy(out->explanation, c ? c : "", sizeof(out->explanation));
	if (SPF_response_errcode(r) == SPF_E_BIG_DNS)
		out->problem = SPF_P_LOOKUPS;
	for (int i = 0; i < SPF_response_messages(r); i++) {
		SPF_error_t *e = SPF_response_message(r, i);

		if (SPF_error_code(e) == SPF_E_DNS_ERROR)
			out->result = SPF_R_TEMPERROR;  /* RFC 7208 4.4 */
		if (SPF_error_code(e) == SPF_E_BIG_DNS)
			out->problem = SPF_P_LOOKUPS;
		else if (SPF_error_code(e) == SPF_E_MULTIPLE_RECORDS)
			out->problem = SPF_P_MULTIPLE;
		else if (SPF_error_errorp(e) && out->problem == SPF_P_NONE)
			out->problem = SPF_P_SYNTAX;
		if (out->explanation[0])
			util_strlcat(out->explanation, "; ", sizeof(out->explanation));
		util_strlcat(out->explanation, SPF_error_message(e), sizeof(out->explanation));
	}
}

/* spf_check - one evaluation on a fresh resolver and libspf2 server */
int
spf_check(const char *dns_server, const char *ip, const char *domain,
    const char *helo, struct spf_outcome *out, char *err, size_t errlen)
{
	struct dns_opts o = { dns_server, SPF_DNS_TIMEOUT_MS, SPF_DNS_TRIES };
	struct spf_layer l = { 0 };
	SPF_dns_server_t layer = { 0 };
	SPF_server_t *srv;
	SPF_response_t *r;
	struct in6_addr in6;
	int nrec, lookups;

	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, ip, &in6) != 1 && inet_pton(AF_INET6, ip, &in6) != 1) {
		util_seterr(err, errlen, "%s: not an IP address", ip);
		return -1;
	}
	if ((l.d = dns_new_opts(NULL, &o, err, errlen)) == NULL)
		return -1;
	/* libspf2 prints warnings to stderr by default; ours are in out */
	SPF_warning_handler = NULL;
	SPF_info_handler = NULL;
	layer.lookup = spf_layer_lookup;   /* destroy NULL: freed here */
	layer.name = "outpost";
	layer.hook = &l;
	if ((srv = SPF_server_new_dns(&layer, 0)) == NULL)
		fatalx("spf: out of memory");
	if (SPF_server_set_rec_dom(srv, SPF_REC_DOM) != SPF_E_SUCCESS)
		fatalx("spf: out of memory");
	nrec = spf_record(&layer, domain, out->record, sizeof(out->record));
	if (nrec < 0) {
		/* libspf2 would wait for the same failure again */
		out->result = SPF_R_TEMPERROR;
		snprintf(out->explanation, sizeof(out->explanation),
		    "TXT lookup of %s failed", domain);
		util_strlcpy(out->mechanism, out->explanation, sizeof(out->mechanism));
		SPF_server_free(srv);
		dns_free(l.d);
		return 0;
	}
	if ((r = spf_eval(srv, ip, domain, helo, err, errlen)) == NULL) {
		SPF_server_free(srv);
		dns_free(l.d);
		return -1;
	}
	out->result = spf_result_of(SPF_response_result(r));
	spf_messages(r, out);
	if (out->result != SPF_R_PERMERROR)
		out->problem = SPF_P_NONE;
	if (nrec > 1) {
		out->result = SPF_R_PERMERROR;      /* RFC 7208 4.5 */
		out->problem = SPF_P_MULTIPLE;
	} else if (nrec == 1 && out->problem != SPF_P_LOOKUPS &&
	    (lookups = spf_count_lookups(&layer, out->record, 0)) > SPF_MAX_LOOKUPS) {
		out->result = SPF_R_PERMERROR;
		out->problem = SPF_P_LOOKUPS;
		snprintf(out->explanation, sizeof(out->explanation),
		    "more than %d DNS lookups (include, a, mx, ptr, exists, redirect)"
		    " counting the include chain: RFC 7208 4.6.4 makes that a permerror",
		    SPF_MAX_LOOKUPS);
	}
	switch (out->result) {
	case SPF_R_PASS:
	case SPF_R_FAIL:
	case SPF_R_SOFTFAIL:
	case SPF_R_NEUTRAL:
		if (SPF_response_reason(r) == SPF_REASON_MECH ||
		    SPF_response_reason(r) == SPF_REASON_DEFAULT)
			spf_mechanism(&l, srv, ip, domain, helo, out->record, out);
		break;
	case SPF_R_NONE:
		util_strlcpy(out->mechanism, "no SPF record", sizeof(out->mechanism));
		break;
	default:
		util_strlcpy(out->mechanism, out->explanation, sizeof(out->mechanism));
		break;
	}
	SPF_response_free(r);
	SPF_server_free(srv);
	dns_free(l.d);
	return 0;
}

/* spf_result_name - RFC 7208 2.6 name of a result */
const char *
spf_result_name(enum spf_result r)
{
	static const char *const names[] = { "none", "neutral", "pass", "fail", "softfail",
		"temperror", "permerror" };

	return (size_t)r < ARRAY_LEN(names) ? names[r] : "none";
}
