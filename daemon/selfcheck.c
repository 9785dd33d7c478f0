/*
 * selfcheck - the deliverability self-check (see selfcheck.h).
 *
 * selfcheck_dns() looks at a domain the way a receiver does: SPF of each
 * sending address (spf.c), every configured DKIM selector against its
 * private key, DMARC (dmarc.c parses it), MX, PTR and forward-confirmed
 * reverse DNS of the sending addresses, MTA-STS and TLS-RPT. The sending
 * addresses are the upstreams' egress_ip, else their host's addresses.
 * selfcheck_rbl() looks an address up in the [server] rbl zones.
 *
 * Independent queries run together on one private resolver and one
 * dns_wait; with SC_DNS_TIMEOUT_MS and SC_DNS_TRIES a dead DNS server
 * costs seconds, not a hang. Findings carry text from DNS: bytes outside
 * printable ASCII are replaced before they reach a terminal or JSON.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "conf.h"
#include "dkim_key.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "dns.h"
#include "log.h"
#include "selfcheck.h"
#include "spf.h"
#include "util.h"

#define SC_DNS_TIMEOUT_MS 2000
#define SC_DNS_TRIES 2
/* One round of parallel queries: longer than c-ares' own 2 s + 4 s. */
#define SC_WAIT_MS 10000
#define SC_ADDRS_MAX 16         /* sending addresses checked */
#define SC_TXT_MAX 16           /* TXT records kept per name */
#define SC_FCRDNS_NAMES 3       /* PTR names tried forward */
#define SC_ZONES_MAX 16         /* block lists */
#define SC_ANY_PORT 25          /* dns_resolve wants one; c-ares refuses 0 */
#define SC_ERR_MAX 128

/* One sending address and where it came from. */
struct sc_addr {
	char ip[IP_STR_MAX];
	const struct conf_upstream *up;
	int from_host;              /* resolved from up->host, not egress_ip */
};

/* Answers copied out of dns.c's callbacks. */
struct sc_strs {                /* TXT records or PTR names */
	enum dns_status st;
	char err[SC_ERR_MAX];
	char *v[SC_TXT_MAX];
	size_t n;
};

struct sc_mx {
	enum dns_status st;
	char err[SC_ERR_MAX];
	char *host[DNS_MX_MAX];
	unsigned pref[DNS_MX_MAX];
	size_t n;
};

struct sc_addrs {
	int err;                    /* c-ares status */
	char errstr[SC_ERR_MAX];
	char ip[DNS_MAX_ADDRS][IP_STR_MAX];
	size_t n;
};

static const char *const level_names[] = { "OK", "INFO", "WARN", "FAIL" };

/* ---- findings ---------------------------------------------------------- */

/* sc_clean - printable ASCII only; tabs become blanks, newlines are kept
 * where keep_nl (a fix that is a zone-file record) */
static void
sc_clean(char *s, int keep_nl)
{
	for (; *s; s++) {
		if (*s == '\t')
			*s = ' ';
		else if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			if (!(keep_nl && *s == '\n'))
				*s = '?';
	}
}

static void sc_add(struct selfcheck_report *r, enum selfcheck_level lv, const char *check,
    const char *fix, const char *fmt, ...) PRINTF_LIKE(5, 6);

/* sc_add - one finding; fix NULL or "" when there is nothing to do */
static void
sc_add(struct selfcheck_report *r, enum selfcheck_level lv, const char *check,
    const char *fix, const char *fmt, ...)
{
	struct selfcheck_finding *f;
	va_list ap;

	r->f = xreallocarray(r->f, r->n + 1, sizeof(*r->f));
	f = &r->f[r->n++];
	memset(f, 0, sizeof(*f));
	f->level = lv;
	util_strlcpy(f->check, check, sizeof(f->check));
	va_start(ap, fmt);
	vsnprintf(f->text, sizeof(f->text), fmt, ap);
	va_end(ap);
	util_strlcpy(f->fix, fix ? fix : "", sizeof(f->fix));
	sc_clean(f->text, 0);
	sc_clean(f->fix, 1);
}

/* ---- DNS answers ------------------------------------------------------- */

/* sc_strs_set - status and reason of an answer */
static void
sc_strs_set(struct sc_strs *s, enum dns_status st, const char *errstr)
{
	s->st = st;
	util_strlcpy(s->err, errstr, sizeof(s->err));
}

/* sc_txt_cb - TXT records copied (the first SC_TXT_MAX) */
static void
sc_txt_cb(enum dns_status st, const char *errstr, const struct dns_txt *txt, size_t n,
    void *arg)
{
	struct sc_strs *s = arg;

	sc_strs_set(s, st, errstr);
	for (size_t i = 0; i < n && s->n < SC_TXT_MAX; i++)
		s->v[s->n++] = xstrndup(txt[i].data, txt[i].len);
}

/* sc_names_cb - PTR names copied */
static void
sc_names_cb(enum dns_status st, const char *errstr, const char *const *names, size_t n,
    void *arg)
{
	struct sc_strs *s = arg;

	sc_strs_set(s, st, errstr);
	for (size_t i = 0; i < n && s->n < SC_TXT_MAX; i++)
		s->v[s->n++] = xstrdup(names[i]);
}

/* sc_strs_free - the copied strings freed */
static void
sc_strs_free(struct sc_strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	s->n = 0;
}

/* sc_mx_cb - MX hosts copied, lowest preference first */
static void
sc_mx_cb(enum dns_status st, const char *errstr, const struct dns_mx *mx, size_t n,
    void *arg)
{
	struct sc_mx *m = arg;

	m->st = st;
	util_strlcpy(m->err, errstr, sizeof(m->err));
	for (size_t i = 0; i < n && m->n < DNS_MX_MAX; i++) {
		m->pref[m->n] = mx[i].pref;
		m->host[m->n++] = xstrdup(mx[i].host);
	}
}

/* sc_addrs_cb - addresses as text */
static void
sc_addrs_cb(int err, const char *errstr, const struct sockaddr_storage *addrs,
    size_t naddrs, void *arg)
{
	struct sc_addrs *a = arg;

	a->err = err;
	util_strlcpy(a->errstr, errstr, sizeof(a->errstr));
	for (size_t i = 0; i < naddrs && a->n < DNS_MAX_ADDRS; i++)
		if (util_sockaddr_ip((const struct sockaddr *)&addrs[i], a->ip[a->n],
		    sizeof(a->ip[0])) != NULL)
			a->n++;
}

/* sc_dns_new - the private resolver on [server] dns_server */
static struct dns *
sc_dns_new(const struct conf *c, char *err, size_t errlen)
{
	struct dns_opts o = { c->server.dns_server, SC_DNS_TIMEOUT_MS, SC_DNS_TRIES };

	return dns_new_opts(NULL, &o, err, errlen);
}

/* sc_first_with - the first of s's strings starting with prefix (any
 * case) followed by ';', a blank or the end, or NULL */
static const char *
sc_first_with(const struct sc_strs *s, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; s->st == DNS_OK && i < s->n; i++)
		if (strncasecmp(s->v[i], prefix, n) == 0 &&
		    (s->v[i][n] == '\0' || s->v[i][n] == ';' || s->v[i][n] == ' '))
			return s->v[i];
	return NULL;
}

/* ---- sending addresses ------------------------------------------------- */

/* sc_private - an address receivers never see (RFC 1918, loopback,
 * link-local, CGN, ULA): the upstream's own public address is the one */
static int
sc_private(const char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1)
		return a[0] == 10 || a[0] == 127 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		    (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254) ||
		    (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] == 0;
	if (inet_pton(AF_INET6, ip, a) == 1)
		return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) ||
		    memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
	return 1;
}

/* sc_addr_add - one sending address, once */
static void
sc_addr_add(struct sc_addr *out, size_t *n, const char *ip,
    const struct conf_upstream *up, int from_host)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(out[i].ip, ip) == 0)
			return;
	if (*n == SC_ADDRS_MAX)
		return;
	util_strlcpy(out[*n].ip, ip, sizeof(out[0].ip));
	out[*n].up = up;
	out[*n].from_host = from_host;
	(*n)++;
}

/* sc_egress - the sending addresses of domain's upstreams (all upstreams
 * when domain is NULL or its [domain] names none); findings about those
 * that cannot be known go under check */
static size_t
sc_egress(struct dns *d, const struct conf *c, const char *domain, const char *check,
    struct selfcheck_report *r, struct sc_addr *out)
{
	const struct conf_domain *cd = domain ? conf_domain_find(c, domain) : NULL;
	const struct conf_upstream *ups[SC_ADDRS_MAX];
	struct sc_addrs *res;
	size_t nups = 0, n = 0;

	if (cd && cd->nupstreams > 0) {
		for (size_t i = 0; i < cd->nupstreams && nups < SC_ADDRS_MAX; i++)
			if ((ups[nups] = conf_upstream_find(c, cd->upstreams[i])) != NULL)
				nups++;
	} else {
		for (size_t i = 0; i < c->nupstreams && nups < SC_ADDRS_MAX; i++)
			ups[nups++] = &c->upstreams[i];
	}
	res = xcalloc(nups ? nups : 1, sizeof(*res));
	for (size_t i = 0; i < nups; i++)
		if (!ups[i]->is_maildir && ups[i]->egress_ip[0] == '\0')
			dns_resolve(d, ups[i]->host, SC_ANY_PORT, sc_addrs_cb, &res[i]);
	dns_wait(d, SC_WAIT_MS);
	for (size_t i = 0; i < nups; i++) {
		const struct conf_upstream *u = ups[i];

		if (u->is_maildir) {
			sc_add(r, SELFCHECK_INFO, check, NULL, "upstream %s delivers to a maildir:"
			    " no sending address to check", u->name);
		} else if (u->egress_ip[0]) {
			sc_addr_add(out, &n, u->egress_ip, u, 0);
		} else if (res[i].n == 0) {
			sc_add(r, SELFCHECK_WARN, check, "set egress_ip in [upstream] to the"
			    " address receivers see", "upstream %s: cannot resolve %s (%s)",
			    u->name, u->host, res[i].errstr[0] ? res[i].errstr : "no answer");
		}
		for (size_t k = 0; k < res[i].n; k++) {
			if (sc_private(res[i].ip[k]))
				sc_add(r, SELFCHECK_INFO, check, "set egress_ip in [upstream] to"
				    " the public address receivers see", "upstream %s: %s is %s,"
				    " a private address; not checked", u->name, u->host,
				    res[i].ip[k]);
			else
				sc_addr_add(out, &n, res[i].ip[k], u, 1);
		}
	}
	free(res);
	return n;
}

/* ---- SPF --------------------------------------------------------------- */

/* sc_quote - s as zone-file character-strings of at most 255 bytes
 * (RFC 1035 3.3.14): "..." "..." */
static void
sc_quote(const char *s, char *out, size_t outlen)
{
	size_t len = strlen(s);

	out[0] = '\0';
	for (size_t off = 0; off < len || off == 0; off += 255) {
		char part[260];

		snprintf(part, sizeof(part), "%s\"%.255s\"", off ? " " : "", s + off);
		util_strlcat(out, part, outlen);
		if (len == 0)
			break;
	}
}

/* selfcheck_spf_suggest - the SPF record that lets ips pass */
int
selfcheck_spf_suggest(const char *record, const char *const *ips, size_t n, char *out,
    size_t outlen)
{
	char buf[SPF_TEXT_MAX], add[SPF_TEXT_MAX] = "", *t, *save = NULL;
	size_t used;
	int inserted = 0;

	if (record == NULL || record[0] == '\0')
		record = "v=spf1 -all";
	for (size_t i = 0; i < n; i++) {
		char term[IP_STR_MAX + 8];

		snprintf(term, sizeof(term), " %s:%s", strchr(ips[i], ':') ? "ip6" : "ip4", ips[i]);
		if (strstr(add, term) == NULL)
			util_strlcat(add, term, sizeof(add));
	}
	util_strlcpy(buf, record, sizeof(buf));
	out[0] = '\0';
	used = 0;
	for (t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		const char *m = strchr("+-~?", t[0]) ? t + 1 : t;
		int is_mod = isalpha((unsigned char)t[0]) && strchr(t, '=') &&
		    strcspn(t, "=") < strcspn(t, ":/");

		/* before the all, else before the first modifier (redirect=
		 * only applies when no mechanism matched) */
		if (!inserted && used > 0 && (util_strcaseeq(m, "all") || is_mod)) {
			used = util_strlcat(out, add, outlen);
			inserted = 1;
		}
		if (used > 0)
			util_strlcat(out, " ", outlen);
		used = util_strlcat(out, t, outlen);
	}
	if (!inserted)
		used = util_strlcat(out, add, outlen);
	return used < outlen ? 0 : -1;
}

/* sc_spf_fix - "publish DOMAIN TXT ..." for the failing addresses */
static void
sc_spf_fix(const char *domain, const char *record, const char *const *ips, size_t n,
    int from_host, char *fix, size_t fixlen)
{
	char rec[SPF_TEXT_MAX], q[SPF_TEXT_MAX + 16];

	if (selfcheck_spf_suggest(record, ips, n, rec, sizeof(rec)) < 0) {
		util_strlcpy(fix, "the record grows too long: replace ip4:/ip6: terms by the"
		    " include: of your provider", fixlen);
		return;
	}
	sc_quote(rec, q, sizeof(q));
	snprintf(fix, fixlen, "publish %s TXT %s%s", domain, q, from_host ?
	    " (or the include: your upstream provider documents for its servers)" : "");
}

/* sc_spf - SPF of every sending address */
static void
sc_spf(const struct conf *c, const char *domain, const struct sc_addr *a, size_t n,
    struct selfcheck_report *r)
{
	struct spf_outcome *o = xcalloc(n ? n : 1, sizeof(*o));
	const char *bad[SC_ADDRS_MAX];
	char fix[SELFCHECK_FIX_MAX], err[SC_ERR_MAX];
	const char *record = "";
	size_t nbad = 0;
	int ok[SC_ADDRS_MAX], from_host = 0;

	if (n == 0)
		sc_add(r, SELFCHECK_INFO, "spf", "set egress_ip in [upstream] to the address"
		    " receivers see", "no sending address known: SPF not evaluated");
	for (size_t i = 0; i < n; i++) {
		ok[i] = spf_check(c->server.dns_server, a[i].ip, domain, c->server.hostname,
		    &o[i], err, sizeof(err)) == 0;
		if (!ok[i]) {
			sc_add(r, SELFCHECK_WARN, "spf", NULL, "%s: SPF not evaluated: %s",
			    a[i].ip, err);
			continue;
		}
		if (o[i].record[0])
			record = o[i].record;
		if (o[i].result == SPF_R_FAIL || o[i].result == SPF_R_SOFTFAIL ||
		    o[i].result == SPF_R_NEUTRAL || o[i].result == SPF_R_NONE) {
			bad[nbad++] = a[i].ip;
			from_host |= a[i].from_host;
		}
	}
	/* one record that lets every failing address pass */
	sc_spf_fix(domain, record, bad, nbad, from_host, fix, sizeof(fix));
	for (size_t i = 0; i < n; i++) {
		const struct spf_outcome *s = &o[i];

		if (!ok[i])
			continue;
		switch (s->result) {
		case SPF_R_PASS:
			sc_add(r, SELFCHECK_OK, "spf", NULL, "%s is allowed by %s's SPF (%s):"
			    " %s matched", a[i].ip, domain, s->record, s->mechanism);
			break;
		case SPF_R_NONE:
			sc_add(r, SELFCHECK_FAIL, "spf", fix, "%s publishes no SPF record:"
			    " receivers cannot tell that %s may send for it", domain, a[i].ip);
			break;
		case SPF_R_TEMPERROR:
			sc_add(r, SELFCHECK_WARN, "spf", "make sure every name server of the"
			    " domain and of its include: targets answers TXT queries",
			    "%s: SPF temperror: %s", a[i].ip, s->explanation);
			break;
		case SPF_R_PERMERROR:
			if (s->problem == SPF_P_LOOKUPS)
				snprintf(fix, sizeof(fix), "cut %s's SPF to at most 10 DNS"
				    " lookups: replace include:, a and mx terms by the ip4:/ip6:"
				    " ranges they stand for, and drop includes of services you"
				    " no longer use", domain);
			else if (s->problem == SPF_P_MULTIPLE)
				snprintf(fix, sizeof(fix), "merge them into exactly one v=spf1 TXT"
				    " record at %s (RFC 7208 4.5)", domain);
			else
				snprintf(fix, sizeof(fix), "correct the syntax of %s's SPF record"
				    " (RFC 7208 4, 12)", domain);
			sc_add(r, SELFCHECK_FAIL, "spf", fix, "%s's SPF is broken (permerror: %s):"
			    " %s", domain, s->problem == SPF_P_MULTIPLE ? "more than one v=spf1"
			    " record" : s->problem == SPF_P_LOOKUPS ? "too many DNS lookups" :
			    "invalid record", s->explanation);
			break;
		default:
			sc_add(r, SELFCHECK_FAIL, "spf", fix, "%s is not allowed by %s's SPF (%s):"
			    " %s (%s)", a[i].ip, domain, s->record, spf_result_name(s->result),
			    s->mechanism);
			break;
		}
	}
	free(o);
}

/* ---- DKIM -------------------------------------------------------------- */

/* sc_unquote - the concatenated "..." strings of a zone-file record */
static void
sc_unquote(const char *rec, char *out, size_t outlen)
{
	const char *p = rec, *q;
	size_t used = 0;

	out[0] = '\0';
	while ((p = strchr(p, '"')) != NULL && (q = strchr(p + 1, '"')) != NULL) {
		if (used + (size_t)(q - p - 1) < outlen) {
			memcpy(out + used, p + 1, (size_t)(q - p - 1));
			used += (size_t)(q - p - 1);
			out[used] = '\0';
		}
		p = q + 1;
	}
}

/* sc_key_p - the p= of a key record, white space removed; 1 if found */
static int
sc_key_p(const char *rec, char *p, size_t plen)
{
	size_t k = 0;

	if (dkim_verify_tag(rec, strlen(rec), "p", p, plen) != 1)
		return 0;
	for (size_t i = 0; p[i]; i++)
		if (!isspace((unsigned char)p[i]))
			p[k++] = p[i];
	p[k] = '\0';
	return 1;
}

/* sc_dkim_key - one selector: published and equal to the private key */
static void
sc_dkim_key(const struct dkim_domain *dd, const struct dkim_key *k,
    const struct sc_strs *s, struct selfcheck_report *r)
{
	char name[HOST_MAX + CONF_SELECTOR_MAX + 16], err[SC_ERR_MAX], fix[SELFCHECK_FIX_MAX];
	char want[DNS_TXT_BYTES_MAX / 4], got[DNS_TXT_BYTES_MAX / 4], *rec, *value;
	const char *pub = NULL;

	snprintf(name, sizeof(name), "%s._domainkey.%s", k->selector, dd->name);
	if ((rec = dkim_key_txt_record(dd->name, k->selector, k->pem, k->pemlen, err,
	    sizeof(err))) == NULL) {
		sc_add(r, SELFCHECK_FAIL, "dkim", "check the key file (outpostctl check-config)",
		    "%s: %s", k->path, err);
		return;
	}
	value = xmalloc(strlen(rec) + 1);
	sc_unquote(rec, value, strlen(rec) + 1);
	if (!sc_key_p(value, want, sizeof(want)))
		want[0] = '\0';
	snprintf(fix, sizeof(fix), "publish this record:\n%s", rec);
	for (size_t i = 0; s->st == DNS_OK && i < s->n && pub == NULL; i++)
		if (sc_key_p(s->v[i], got, sizeof(got)))
			pub = s->v[i];
	if (s->st == DNS_TEMPFAIL)
		sc_add(r, SELFCHECK_WARN, "dkim", NULL, "%s: lookup failed (%s)", name, s->err);
	else if (pub == NULL)
		sc_add(r, SELFCHECK_FAIL, "dkim", fix, "%s: no DKIM key published for selector"
		    " %s", name, k->selector);
	else if (got[0] == '\0')
		sc_add(r, SELFCHECK_FAIL, "dkim", fix, "%s: the published key is revoked"
		    " (empty p=)", name);
	else if (strcmp(got, want) != 0)
		sc_add(r, SELFCHECK_FAIL, "dkim", fix, "%s: published key does not match %s's"
		    " private key (%s)", name, k->selector, k->path);
	else
		sc_add(r, SELFCHECK_OK, "dkim", NULL, "%s publishes %s's key (%s, %d bits)",
		    name, k->selector, dkim_key_alg(k), k->bits);
	free(value);
	free(rec);
}

/* sc_dkim - every key of the domain's [domain] (or the parent that signs
 * for it) */
static void
sc_dkim(struct dns *d, const struct conf *c, const char *domain, struct selfcheck_report *r)
{
	const struct dkim_domain *dd;
	struct dkim_keyset *ks;
	struct sc_strs *res;
	char *errtext = NULL, fix[SELFCHECK_FIX_MAX];
	size_t errlen = 0;
	FILE *errs = open_memstream(&errtext, &errlen);
	int nerr = 0;

	if (errs == NULL)
		fatal("open_memstream");
	ks = dkim_key_load(c, errs, &nerr);
	fclose(errs);
	if (nerr > 0)
		sc_add(r, SELFCHECK_FAIL, "dkim", "correct the dkim_key lines or key files"
		    " (outpostctl check-config lists every error)", "the DKIM keys do not all"
		    " load: %.*s", (int)strcspn(errtext, "\n"), errtext);
	free(errtext);
	dd = dkim_key_find(ks, domain);
	if (dd == NULL && conf_domain_find(c, domain) == NULL) {
		snprintf(fix, sizeof(fix), "add [domain %s] with its dkim_key to check its keys",
		    domain);
		sc_add(r, SELFCHECK_INFO, "dkim", fix, "%s is no [domain] of this configuration:"
		    " DKIM keys not checked", domain);
		dkim_key_free(ks);
		return;
	}
	if (dd == NULL || dd->nkeys == 0) {
		snprintf(fix, sizeof(fix), "outpostctl dkim keygen %s SELECTOR, add the"
		    " dkim_key line it prints to [domain %s], reload, and publish the TXT"
		    " record it prints", domain, domain);
		sc_add(r, SELFCHECK_FAIL, "dkim", fix, "no dkim_key configured for %s: its"
		    " mail goes out unsigned", domain);
		dkim_key_free(ks);
		return;
	}
	res = xcalloc(dd->nkeys, sizeof(*res));
	for (size_t i = 0; i < dd->nkeys; i++) {
		char name[HOST_MAX + CONF_SELECTOR_MAX + 16];

		snprintf(name, sizeof(name), "%s._domainkey.%s", dd->keys[i].selector, dd->name);
		dns_query_txt(d, name, sc_txt_cb, &res[i]);
	}
	dns_wait(d, SC_WAIT_MS);
	for (size_t i = 0; i < dd->nkeys; i++) {
		sc_dkim_key(dd, &dd->keys[i], &res[i], r);
		sc_strs_free(&res[i]);
	}
	free(res);
	dkim_key_free(ks);
}

/* ---- DMARC ------------------------------------------------------------- */

/* sc_dmarc_found - a valid record: OK, or WARN for p=none */
static void
sc_dmarc_found(const struct dmarc_record *rec, const char *at, const char *domain,
    struct selfcheck_report *r)
{
	char rua[DMARC_URI_LEN * 2] = "", fix[SELFCHECK_FIX_MAX];

	for (size_t i = 0; i < rec->nrua; i++) {
		if (i)
			util_strlcat(rua, ",", sizeof(rua));
		util_strlcat(rua, rec->rua[i], sizeof(rua));
	}
	if (rec->p == DMARC_POLICY_NONE) {
		snprintf(fix, sizeof(fix), "once the aggregate reports (rua) show only your own"
		    " servers, all passing, publish _dmarc.%s TXT \"v=DMARC1; p=quarantine%s%s\","
		    " later p=reject", at, rua[0] ? "; rua=" : "", rua);
		sc_add(r, SELFCHECK_WARN, "dmarc", fix, "_dmarc.%s: p=none: monitoring only,"
		    " receivers apply no policy to mail failing DMARC", at);
	} else {
		sc_add(r, SELFCHECK_OK, "dmarc", NULL, "_dmarc.%s: p=%s%s%s, adkim=%s aspf=%s,"
		    " pct=%d, rua=%s%s", at, dmarc_policy_name(rec->p),
		    rec->sp ? " sp=" : "", rec->sp ? dmarc_policy_name(rec->sp) : "",
		    rec->adkim_strict ? "s" : "r", rec->aspf_strict ? "s" : "r", rec->pct,
		    rua[0] ? rua : "(none: you get no reports)",
		    strcmp(at, domain) ? " (the organizational domain's record)" : "");
	}
	if (rec->warning[0])
		sc_add(r, SELFCHECK_WARN, "dmarc", "correct these tags of the record",
		    "_dmarc.%s: %s", at, rec->warning);
}

/* sc_dmarc - _dmarc.DOMAIN, else the organizational domain's record */
static void
sc_dmarc(struct dns *d, const char *domain, struct sc_strs *own, struct selfcheck_report *r)
{
	struct dmarc_record rec;
	struct dmarc_psl *psl;
	struct sc_strs org_res = { 0 };
	char org[DMARC_DOMAIN_MAX + 1], err[DMARC_ERR_MAX], sugg[512], fix[SELFCHECK_FIX_MAX];
	char name[HOST_MAX + 8];
	const char *at = domain;
	struct sc_strs *res = own;
	enum dmarc_select_rc rc;

	psl = dmarc_psl_load(DMARC_PSL_PATH, err, sizeof(err));
	rc = dmarc_select((const char *const *)own->v, own->st == DNS_OK ? own->n : 0, &rec,
	    err, sizeof(err));
	if (rc == DMARC_SELECT_NONE && own->st != DNS_TEMPFAIL &&
	    dmarc_org_domain(psl, domain, org, sizeof(org)) == 0 && strcmp(org, domain) != 0) {
		snprintf(name, sizeof(name), "_dmarc.%s", org);
		dns_query_txt(d, name, sc_txt_cb, &org_res);
		dns_wait(d, SC_WAIT_MS);
		rc = dmarc_select((const char *const *)org_res.v,
		    org_res.st == DNS_OK ? org_res.n : 0, &rec, err, sizeof(err));
		if (rc != DMARC_SELECT_NONE || org_res.st == DNS_TEMPFAIL) {
			at = org;
			res = &org_res;
		}
	}
	if (dmarc_suggest(domain, NULL, sugg, sizeof(sugg)) < 0)
		sugg[0] = '\0';
	if (res->st == DNS_TEMPFAIL) {
		sc_add(r, SELFCHECK_WARN, "dmarc", NULL, "_dmarc.%s: lookup failed (%s)", at,
		    res->err);
	} else if (rc == DMARC_SELECT_OK) {
		sc_dmarc_found(&rec, at, domain, r);
	} else if (rc == DMARC_SELECT_NONE) {
		snprintf(fix, sizeof(fix), "publish _dmarc.%s TXT \"%s\"", domain, sugg);
		sc_add(r, SELFCHECK_FAIL, "dmarc", fix, "no DMARC record at _dmarc.%s: large"
		    " receivers require one from bulk senders", domain);
	} else {
		snprintf(fix, sizeof(fix), "publish exactly one valid record at _dmarc.%s, such"
		    " as \"%s\"", at, sugg);
		sc_add(r, SELFCHECK_FAIL, "dmarc", fix, "_dmarc.%s: %s", at, err);
	}
	sc_strs_free(&org_res);
	dmarc_psl_free(psl);
}

/* ---- MX, PTR, MTA-STS, TLS-RPT ----------------------------------------- */

/* sc_mx_report - MX present, none, or null (RFC 7505) */
static void
sc_mx_report(const char *domain, const struct sc_mx *m, struct selfcheck_report *r)
{
	char list[512] = "", one[HOST_MAX + 16], fix[SELFCHECK_FIX_MAX];

	if (m->st == DNS_TEMPFAIL) {
		sc_add(r, SELFCHECK_WARN, "mx", NULL, "%s: MX lookup failed (%s)", domain, m->err);
		return;
	}
	if (m->st != DNS_OK || m->n == 0) {
		snprintf(fix, sizeof(fix), "publish %s MX 10 <a host that accepts mail for %s>",
		    domain, domain);
		sc_add(r, SELFCHECK_FAIL, "mx", fix, "%s has no MX record: bounces, replies and"
		    " DMARC reports to it cannot be delivered, and receivers distrust it",
		    domain);
		return;
	}
	if (m->n == 1 && m->host[0][0] == '\0') {
		snprintf(fix, sizeof(fix), "replace the null MX of %s by the host that receives"
		    " its mail", domain);
		sc_add(r, SELFCHECK_FAIL, "mx", fix, "%s has a null MX (RFC 7505): it accepts no"
		    " mail, and receivers should refuse mail from it (RFC 7505 4.2)", domain);
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		snprintf(one, sizeof(one), "%s%u %s", i ? ", " : "", m->pref[i], m->host[i]);
		util_strlcat(list, one, sizeof(list));
	}
	sc_add(r, SELFCHECK_OK, "mx", NULL, "%s MX %s", domain, list);
}

/* sc_optional - MTA-STS (RFC 8461) and TLS-RPT (RFC 8460): OK or INFO */
static void
sc_optional(const char *name, const struct sc_strs *s, const char *check,
    const char *version, const char *why, struct selfcheck_report *r)
{
	const char *rec = sc_first_with(s, version);

	if (rec)
		sc_add(r, SELFCHECK_OK, check, NULL, "%s: %s", name, rec);
	else if (s->st == DNS_TEMPFAIL)
		sc_add(r, SELFCHECK_WARN, check, NULL, "%s: lookup failed (%s)", name, s->err);
	else
		sc_add(r, SELFCHECK_INFO, check, NULL, "no %s record at %s (optional: %s)",
		    version, name, why);
}

/* sc_ptr - PTR of each sending address and forward confirmation
 * (RFC 8601 / M3AAWG: receivers want a name that resolves back) */
static void
sc_ptr(struct dns *d, const struct conf *c, const struct sc_addr *a, size_t n,
    struct selfcheck_report *r)
{
	struct sc_strs *ptr = xcalloc(n ? n : 1, sizeof(*ptr));
	struct sc_addrs (*fwd)[SC_FCRDNS_NAMES] = xcalloc(n ? n : 1, sizeof(*fwd));
	char fix[SELFCHECK_FIX_MAX];

	if (n == 0)
		sc_add(r, SELFCHECK_INFO, "ptr", "set egress_ip in [upstream] to the address"
		    " receivers see", "no sending address known: PTR not checked");
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, a[i].ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
			ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, a[i].ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
			ss.ss_family = AF_INET6;
		dns_query_ptr(d, &ss, sc_names_cb, &ptr[i]);
	}
	dns_wait(d, SC_WAIT_MS);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; ptr[i].st == DNS_OK && k < ptr[i].n && k < SC_FCRDNS_NAMES; k++)
			dns_resolve(d, ptr[i].v[k], SC_ANY_PORT, sc_addrs_cb, &fwd[i][k]);
	dns_wait(d, SC_WAIT_MS);
	for (size_t i = 0; i < n; i++) {
		const char *name = NULL;

		if (ptr[i].st == DNS_TEMPFAIL) {
			sc_add(r, SELFCHECK_WARN, "ptr", NULL, "%s: PTR lookup failed (%s)",
			    a[i].ip, ptr[i].err);
			continue;
		}
		if (ptr[i].st != DNS_OK || ptr[i].n == 0) {
			snprintf(fix, sizeof(fix), "ask the provider of %.63s (ISP or hosting company)"
			    " to set its PTR to a name that resolves back to it, such as %.255s",
			    a[i].ip, c->server.hostname);
			sc_add(r, SELFCHECK_FAIL, "ptr", fix, "%s has no PTR record: many receivers"
			    " refuse mail from addresses without reverse DNS", a[i].ip);
			continue;
		}
		for (size_t k = 0; k < ptr[i].n && k < SC_FCRDNS_NAMES && !name; k++)
			for (size_t j = 0; j < fwd[i][k].n && !name; j++)
				if (strcmp(fwd[i][k].ip[j], a[i].ip) == 0)
					name = ptr[i].v[k];
		if (name) {
			sc_add(r, SELFCHECK_OK, "fcrdns", NULL, "%s PTR %s, which resolves back"
			    " to %s", a[i].ip, name, a[i].ip);
		} else {
			snprintf(fix, sizeof(fix), "publish %.255s %s %.63s, or ask the provider of %.63s to"
			    " set its PTR to a name that resolves back to it", ptr[i].v[0],
			    strchr(a[i].ip, ':') ? "AAAA" : "A", a[i].ip, a[i].ip);
			sc_add(r, SELFCHECK_FAIL, "fcrdns", fix, "%s PTR %s, but %s does not resolve"
			    " back to %s (%s)", a[i].ip, ptr[i].v[0], ptr[i].v[0], a[i].ip,
			    fwd[i][0].n ? fwd[i][0].ip[0] : fwd[i][0].errstr);
		}
	}
	for (size_t i = 0; i < n; i++)
		sc_strs_free(&ptr[i]);
	free(ptr);
	free(fwd);
}

/* sc_domain_ok - a domain name we can look up */
static int
sc_domain_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > DMARC_DOMAIN_MAX || s[0] == '.' || strstr(s, ".."))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
	    == len;
}

/* selfcheck_dns - every check of one domain */
int
selfcheck_dns(const struct conf *c, const char *domain, struct selfcheck_report *r,
    char *err, size_t errlen)
{
	struct sc_addr addrs[SC_ADDRS_MAX];
	struct sc_strs dmarc = { 0 }, sts = { 0 }, rpt = { 0 };
	struct sc_mx mx = { 0 };
	char dom[HOST_MAX], name[HOST_MAX + 16], sts_name[HOST_MAX + 16], rpt_name[HOST_MAX + 16];
	struct dns *d;
	size_t n;

	if (!sc_domain_ok(domain)) {
		util_seterr(err, errlen, "%s: not a domain name", domain);
		return -1;
	}
	util_strlcpy(dom, domain, sizeof(dom));
	util_strlower(dom);
	if (dom[strlen(dom) - 1] == '.')
		dom[strlen(dom) - 1] = '\0';
	if ((d = sc_dns_new(c, err, errlen)) == NULL)
		return -1;
	util_strlcpy(r->subject, dom, sizeof(r->subject));
	snprintf(name, sizeof(name), "_dmarc.%s", dom);
	snprintf(sts_name, sizeof(sts_name), "_mta-sts.%s", dom);
	snprintf(rpt_name, sizeof(rpt_name), "_smtp._tls.%s", dom);
	dns_query_txt(d, name, sc_txt_cb, &dmarc);
	dns_query_txt(d, sts_name, sc_txt_cb, &sts);
	dns_query_txt(d, rpt_name, sc_txt_cb, &rpt);
	dns_query_mx(d, dom, sc_mx_cb, &mx);
	n = sc_egress(d, c, dom, "spf", r, addrs);     /* waits for all of them */
	sc_spf(c, dom, addrs, n, r);
	sc_dkim(d, c, dom, r);
	sc_dmarc(d, dom, &dmarc, r);
	sc_mx_report(dom, &mx, r);
	sc_ptr(d, c, addrs, n, r);
	sc_optional(sts_name, &sts, "mta-sts", "v=STSv1", "lets receivers insist on TLS to"
	    " your MX, RFC 8461", r);
	sc_optional(rpt_name, &rpt, "tls-rpt", "v=TLSRPTv1", "receivers report TLS"
	    " failures delivering to you, RFC 8460", r);
	sc_strs_free(&dmarc);
	sc_strs_free(&sts);
	sc_strs_free(&rpt);
	for (size_t i = 0; i < mx.n; i++)
		free(mx.host[i]);
	dns_free(d);
	return 0;
}

/* ---- block lists ------------------------------------------------------- */

/* selfcheck_rbl_name - the reversed query name (RFC 5782 2.1, 2.4) */
int
selfcheck_rbl_name(const char *ip, const char *zone, char *out, size_t outlen)
{
	unsigned char a[16];
	size_t used;

	if (inet_pton(AF_INET, ip, a) == 1) {
		used = (size_t)snprintf(out, outlen, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
		return used < outlen ? 0 : -1;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	out[0] = '\0';
	for (int i = 15; i >= 0; i--) {
		char nib[8];

		snprintf(nib, sizeof(nib), "%x.%x.", a[i] & 0xf, a[i] >> 4);
		util_strlcat(out, nib, outlen);
	}
	return util_strlcat(out, zone, outlen) < outlen ? 0 : -1;
}

/* sc_rbl_delist - where to ask for removal */
static const char *
sc_rbl_delist(const char *zone)
{
	static const struct { const char *zone, *url; } known[] = {
		{ "zen.spamhaus.org", "https://check.spamhaus.org/" },
		{ "bl.spamcop.net", "https://www.spamcop.net/bl.shtml" },
		{ "b.barracudacentral.org", "https://www.barracudacentral.org/rbl/removal-request" },
		{ "dnsbl-1.uceprotect.net", "https://www.uceprotect.net/en/rblcheck.php" },
	};

	for (size_t i = 0; i < ARRAY_LEN(known); i++)
		if (util_strcaseeq(zone, known[i].zone))
			return known[i].url;
	return NULL;
}

/* sc_rbl_one - the verdict of one zone on one address */
static void
sc_rbl_one(const char *ip, const char *zone, const struct sc_addrs *a,
    const struct sc_strs *txt, struct selfcheck_report *r)
{
	char fix[SELFCHECK_FIX_MAX], reason[SELFCHECK_TEXT_MAX / 2] = "";
	const char *url = sc_rbl_delist(zone);
	unsigned char v4[4];

	if (a->err == ARES_ENOTFOUND || a->err == ARES_ENODATA || (a->err == 0 && a->n == 0)) {
		sc_add(r, SELFCHECK_OK, "rbl", NULL, "%s is not listed in %s", ip, zone);
		return;
	}
	if (a->err != 0) {
		sc_add(r, SELFCHECK_WARN, "rbl", NULL, "%s: lookup in %s failed (%s)", ip, zone,
		    a->errstr);
		return;
	}
	if (inet_pton(AF_INET, a->ip[0], v4) != 1 || v4[0] != 127) {
		sc_add(r, SELFCHECK_WARN, "rbl", "check the zone name in [server] rbl", "%s: %s"
		    " answered %s, not a 127.0.0.x code: the zone may be gone or wildcarded",
		    ip, zone, a->ip[0]);
		return;
	}
	if (v4[1] == 255 && v4[2] == 255) {
		sc_add(r, SELFCHECK_WARN, "rbl", "query the list through a resolver of your own"
		    " (dns_server): lists refuse queries from public resolvers and"
		    " unregistered heavy users", "%s: the block list %s refused the query"
		    " (answer %s)", ip, zone, a->ip[0]);
		return;
	}
	if (txt->st == DNS_OK && txt->n > 0)
		snprintf(reason, sizeof(reason), ": %s", txt->v[0]);
	snprintf(fix, sizeof(fix), "find and stop the cause first (a compromised account,"
	    " a bad list, a missing bounce handling), then ask %s to delist %s%s%s", zone, ip,
	    url ? " at " : " (see its web site)", url ? url : "");
	sc_add(r, SELFCHECK_FAIL, "rbl", fix, "%s is listed in %s (%s)%s", ip, zone, a->ip[0],
	    reason);
}

/* selfcheck_rbl - each address under each [server] rbl zone */
int
selfcheck_rbl(const struct conf *c, const char *ip, struct selfcheck_report *r,
    char *err, size_t errlen)
{
	struct sc_addr addrs[SC_ADDRS_MAX];
	char zones[CONF_RBL_MAX], *zone[SC_ZONES_MAX], *t, *save = NULL;
	struct sc_addrs *res;
	struct sc_strs *txt;
	unsigned char bin[16];
	size_t n = 0, nz = 0;
	struct dns *d;

	if (ip && inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1) {
		util_seterr(err, errlen, "%s: not an IPv4 or IPv6 address", ip);
		return -1;
	}
	util_strlcpy(zones, c->server.rbl, sizeof(zones));
	for (t = strtok_r(zones, ", \t", &save); t && nz < SC_ZONES_MAX;
	    t = strtok_r(NULL, ", \t", &save))
		zone[nz++] = t;
	if ((d = sc_dns_new(c, err, errlen)) == NULL)
		return -1;
	util_strlcpy(r->subject, ip ? ip : "egress addresses", sizeof(r->subject));
	if (ip)
		sc_addr_add(addrs, &n, ip, NULL, 0);
	else
		n = sc_egress(d, c, NULL, "rbl", r, addrs);
	if (n == 0 && ip == NULL)
		sc_add(r, SELFCHECK_INFO, "rbl", "set egress_ip in [upstream], or give the"
		    " address: outpostctl check rbl IP", "no sending address known");
	if (nz == 0)
		sc_add(r, SELFCHECK_INFO, "rbl", NULL, "no block list configured ([server] rbl)");
	res = xcalloc(n * nz + 1, sizeof(*res));
	txt = xcalloc(n * nz + 1, sizeof(*txt));
	for (size_t i = 0; i < n; i++) {
		for (size_t z = 0; z < nz; z++) {
			char name[HOST_MAX + 80];

			if (selfcheck_rbl_name(addrs[i].ip, zone[z], name, sizeof(name)) < 0) {
				res[i * nz + z].err = ARES_EBADNAME;
				util_strlcpy(res[i * nz + z].errstr, "name too long",
				    sizeof(res[0].errstr));
				continue;
			}
			dns_resolve(d, name, SC_ANY_PORT, sc_addrs_cb, &res[i * nz + z]);
			dns_query_txt(d, name, sc_txt_cb, &txt[i * nz + z]);
		}
	}
	dns_wait(d, SC_WAIT_MS);
	for (size_t i = 0; i < n; i++)
		for (size_t z = 0; z < nz; z++)
			sc_rbl_one(addrs[i].ip, zone[z], &res[i * nz + z], &txt[i * nz + z], r);
	for (size_t i = 0; i < n * nz; i++)
		sc_strs_free(&txt[i]);
	free(res);
	free(txt);
	dns_free(d);
	return 0;
}

/* ---- output ------------------------------------------------------------ */

/* selfcheck_print - text (fix indented below its finding) or JSON */
void
selfcheck_print(const struct selfcheck_report *r, int json, FILE *out)
{
	char a[6 * SELFCHECK_FIX_MAX + 3], b[6 * SELFCHECK_FIX_MAX + 3];
	size_t count[4] = { 0 };

	if (json) {
		fprintf(out, "{\"subject\":%s,\"findings\":[",
		    util_json_str(r->subject, a, sizeof(a)));
		for (size_t i = 0; i < r->n; i++) {
			const struct selfcheck_finding *f = &r->f[i];

			fprintf(out, "%s{\"level\":\"%s\",\"check\":%s,", i ? "," : "",
			    level_names[f->level], util_json_str(f->check, a, sizeof(a)));
			fprintf(out, "\"text\":%s,\"fix\":%s}", util_json_str(f->text, a, sizeof(a)),
			    util_json_str(f->fix, b, sizeof(b)));
		}
		fprintf(out, "],\"ok\":%s}\n", selfcheck_failed(r) ? "false" : "true");
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct selfcheck_finding *f = &r->f[i];

		count[f->level]++;
		fprintf(out, "%-4s %-4s %s\n", level_names[f->level], f->check, f->text);
		if (f->fix[0] == '\0')
			continue;
		fputs("     fix: ", out);
		for (const char *p = f->fix; *p; p++) {
			fputc(*p, out);
			if (*p == '\n')
				fputs("          ", out);
		}
		fputc('\n', out);
	}
	fprintf(out, "%s: %zu FAIL, %zu WARN, %zu INFO, %zu OK\n", r->subject,
	    count[SELFCHECK_FAIL], count[SELFCHECK_WARN], count[SELFCHECK_INFO],
	    count[SELFCHECK_OK]);
}

/* selfcheck_failed - 1 when any finding is FAIL */
int
selfcheck_failed(const struct selfcheck_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->f[i].level == SELFCHECK_FAIL)
			return 1;
	return 0;
}

/* selfcheck_report_free - the findings freed; r reusable */
void
selfcheck_report_free(struct selfcheck_report *r)
{
	free(r->f);
	r->f = NULL;
	r->n = 0;
}
