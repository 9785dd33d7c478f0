/*
 * arc - ARC chain validation and sealing (RFC 8617) on OpenSSL EVP.
 *
 * API: arc_validate, arc_status_str, arc_ar_result, arc_seal (see
 * arc.h).
 *
 * An ARC-Message-Signature is a DKIM-Signature under another name
 * (RFC 8617 4.1.2): dkim_canon_sign writes it, dkim_verify_field checks
 * it. An ARC-Seal signs, relaxed, the ARC sets 1..i in increasing
 * instance order, each as AAR, AMS, AS, its own field last with b= empty
 * (RFC 8617 5.1.1); that data is built here and signed by
 * dkim_canon_finish or checked by dkim_verify_check.
 *
 * Trust: the ARC fields are hostile. Instances are parsed strictly
 * (digits, 1..50), every set is located before anything is hashed, and
 * only field indices into the split message are kept.
 */
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "arc.h"
#include "dkim_canon.h"
#include "dkim_verify.h"
#include "metrics.h"
#include "util.h"

enum { ARC_AAR, ARC_AMS, ARC_AS, ARC_KINDS };

static const char *arc_names[ARC_KINDS] = {
	"ARC-Authentication-Results", "ARC-Message-Signature", "ARC-Seal"
};

/* The AMS signs what DKIM signs, never an ARC field (RFC 8617 4.1.2);
 * DKIM-Signature is signed so a later hop sees it was not added. */
static const char *arc_sign_hdrs[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
	"List-Unsubscribe-Post", "DKIM-Signature", NULL
};

/* Where the sets are: field indices by instance and kind. */
struct arc_sets {
	size_t idx[ARC_INSTANCES_MAX + 1][ARC_KINDS];
	int count[ARC_INSTANCES_MAX + 1][ARC_KINDS];
	int n;                      /* the highest valid instance */
	int bad;                    /* an ARC field without a valid i= */
	int over;                   /* the highest i= above 50, or 0 */
	int any;                    /* any ARC field at all */
};

/* arc_kind - which ARC field f is, or -1 */
static int
arc_kind(const struct dkim_canon_field *f)
{
	for (int k = 0; k < ARC_KINDS; k++)
		if (f->namelen == strlen(arc_names[k]) &&
		    strncasecmp(f->text, arc_names[k], f->namelen) == 0)
			return k;
	return -1;
}

/* arc_value - f's value after the colon */
static const char *
arc_value(const struct dkim_canon_field *f, size_t *len)
{
	const char *colon = memchr(f->text, ':', f->len);

	*len = colon ? f->len - (size_t)(colon + 1 - f->text) : 0;
	return colon ? colon + 1 : f->text + f->len;
}

/* arc_number - a decimal instance, -1 if not one; *over set above 50
 * (RFC 8617 4.2.1: 1..50; a leading zero makes it no instance to us) */
static int
arc_number(const char *s, size_t len, int *over)
{
	int v = 0;

	if (len == 0 || len > 3 || s[0] == '0')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v > ARC_INSTANCES_MAX)
		*over = 1;
	return v;
}

/* arc_instance - i= of an ARC field: a tag of the AMS and AS; the AAR
 * starts "i=N;" (RFC 8617 4.1.1: arc-info = instance ";" authres) */
static int
arc_instance(const struct dkim_canon_field *f, int kind, int *over)
{
	char buf[16];
	size_t len;
	const char *v = arc_value(f, &len), *end = v + len, *d;

	if (kind != ARC_AAR) {
		if (dkim_verify_tag(v, len, "i", buf, sizeof(buf)) != 1)
			return -1;
		return arc_number(buf, strlen(buf), over);
	}
	while (v < end && strchr(" \t\r\n", *v) != NULL)
		v++;
	if (v == end || *v++ != 'i')
		return -1;
	while (v < end && strchr(" \t\r\n", *v) != NULL)
		v++;
	if (v == end || *v++ != '=')
		return -1;
	while (v < end && strchr(" \t\r\n", *v) != NULL)
		v++;
	for (d = v; v < end && isdigit((unsigned char)*v); v++)
		;
	len = (size_t)(v - d);
	while (v < end && strchr(" \t\r\n", *v) != NULL)
		v++;
	if (v == end || *v != ';')
		return -1;
	return arc_number(d, len, over);
}

/* arc_collect - find every ARC field and its instance */
static void
arc_collect(const struct dkim_canon_msg *m, struct arc_sets *s)
{
	int k, i, over;

	memset(s, 0, sizeof(*s));
	for (size_t f = 0; f < m->nfields; f++) {
		if ((k = arc_kind(&m->fields[f])) < 0)
			continue;
		s->any = 1;
		over = 0;
		if ((i = arc_instance(&m->fields[f], k, &over)) <= 0) {
			s->bad = 1;
			continue;
		}
		if (over) {
			s->over = i > s->over ? i : s->over;
			continue;
		}
		if (s->count[i][k]++ == 0)
			s->idx[i][k] = f;
		if (i > s->n)
			s->n = i;
	}
}

/* arc_fail - the chain fails at instance i */
static void
arc_fail(struct arc_result *res, int i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
arc_fail(struct arc_result *res, int i, const char *fmt, ...)
{
	va_list ap;

	res->status = ARC_FAIL;
	res->fail_instance = i;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

/* arc_put - a canonicalised field (relaxed, CRLF) onto data */
static void
arc_put(char **data, size_t *len, size_t *size, const struct dkim_canon_field *f)
{
	if (*len + f->len + 3 > *size) {
		*size = (*len + f->len + 3) * 2;
		*data = xrealloc(*data, *size);
	}
	*len += dkim_canon_header(f->text, f->len, *data + *len);
}

/* arc_seal_data - what the ARC-Seal of instance i covers before itself:
 * sets 1..i-1 whole, then AAR(i) and AMS(i) (RFC 8617 5.1.1) */
static char *
arc_seal_data(const struct dkim_canon_msg *m, const struct arc_sets *s, int i, size_t *len)
{
	char *data = NULL;
	size_t size = 0;

	*len = 0;
	for (int k = 1; k <= i; k++)
		for (int kind = 0; kind < ARC_KINDS; kind++)
			if (k < i || kind != ARC_AS)
				arc_put(&data, len, &size, &m->fields[s->idx[k][kind]]);
	if (data == NULL)
		data = xstrdup("");
	return data;
}

/* arc_check_seal - one ARC-Seal (RFC 8617 4.1.3, 5.2 step 6): its tags,
 * its key, its signature over sets 1..i */
static enum dkim_verify_res
arc_check_seal(const struct dkim_canon_msg *m, const struct arc_sets *s, int i,
    const struct dkim_verify_lookup *lk, char *why, size_t whylen)
{
	const struct dkim_canon_field *f = &m->fields[s->idx[i][ARC_AS]];
	char a[24], d[HOST_MAX], sel[DKIM_VERIFY_SELECTOR_MAX], h[8];
	char *b = xmalloc(DKIM_VERIFY_TXT_MAX), *data;
	size_t vlen, len;
	const char *v = arc_value(f, &vlen);
	enum dkim_verify_res r;
	EVP_PKEY *key = NULL;

	if (dkim_verify_tag(v, vlen, "a", a, sizeof(a)) != 1 ||
	    dkim_verify_tag(v, vlen, "b", b, DKIM_VERIFY_TXT_MAX) != 1 ||
	    dkim_verify_tag(v, vlen, "d", d, sizeof(d)) != 1 ||
	    dkim_verify_tag(v, vlen, "s", sel, sizeof(sel)) != 1 ||
	    dkim_verify_tag(v, vlen, "h", h, sizeof(h)) != 0) {
		util_strlcpy(why, "missing, malformed or h= tag", whylen);
		free(b);
		return DKIM_VERIFY_FAIL;
	}
	if (strcmp(a, "rsa-sha256") != 0 && strcmp(a, "ed25519-sha256") != 0) {
		util_strlcpy(why, "unsupported algorithm", whylen);
		free(b);
		return DKIM_VERIFY_FAIL;
	}
	util_strlower(d);
	if ((r = dkim_verify_key(lk, d, sel, a, &key, why, whylen)) != DKIM_VERIFY_PASS) {
		free(b);
		return r;
	}
	data = arc_seal_data(m, s, i, &len);
	data = xrealloc(data, len + f->len + 3);
	len += dkim_verify_canon_nob(f->text, f->len, data + len);
	r = dkim_verify_check(key, a, data, len, b, why, whylen);
	EVP_PKEY_free(key);
	free(data);
	free(b);
	return r;
}

/* arc_structure - RFC 8617 5.2 steps 2-3: every set whole and once,
 * contiguous from 1, cv= right; 0 or -1 with res filled */
static int
arc_structure(const struct dkim_canon_msg *m, const struct arc_sets *s,
    struct arc_result *res)
{
	char cv[16];
	const struct dkim_canon_field *f;
	size_t vlen;
	const char *v;

	if (s->over) {
		arc_fail(res, 0, "i= above %d", ARC_INSTANCES_MAX);
		return -1;
	}
	if (s->bad) {
		arc_fail(res, 0, "ARC field without a valid i=");
		return -1;
	}
	for (int i = s->n; i >= 1; i--) {
		for (int k = 0; k < ARC_KINDS; k++) {
			if (s->count[i][k] == 0) {
				arc_fail(res, i, "i=%d has no %s", i, arc_names[k]);
				return -1;
			}
			if (s->count[i][k] > 1) {
				arc_fail(res, i, "i=%d has %d %s fields", i, s->count[i][k],
				    arc_names[k]);
				return -1;
			}
		}
		f = &m->fields[s->idx[i][ARC_AS]];
		v = arc_value(f, &vlen);
		if (dkim_verify_tag(v, vlen, "cv", cv, sizeof(cv)) != 1) {
			arc_fail(res, i, "ARC-Seal i=%d has no cv=", i);
			return -1;
		}
		if (strcasecmp(cv, i == 1 ? "none" : "pass") != 0) {
			arc_fail(res, i, "ARC-Seal i=%d has cv=%.8s", i, cv);
			return -1;
		}
	}
	return 0;
}

/* arc_validate - RFC 8617 5.2, see arc.h */
void
arc_validate(const char *msg, size_t len, const struct dkim_verify_lookup *lk,
    time_t now, struct arc_result *res)
{
	struct dkim_canon_msg m;
	struct arc_sets *s = xcalloc(1, sizeof(*s));
	struct dkim_verify_sig ams;
	char why[DKIM_VERIFY_REASON_MAX], cv[16];
	const char *v;
	size_t vlen;
	int temp = 0;
	enum dkim_verify_res r;

	memset(res, 0, sizeof(*res));
	dkim_canon_split(msg, len, &m);
	arc_collect(&m, s);
	res->instances = s->over > s->n ? s->over : s->n;
	if (!s->any) {
		res->status = ARC_NONE;
		goto out;
	}
	/* step 3 first: a chain someone already declared failed is over */
	if (s->n > 0 && s->count[s->n][ARC_AS] == 1) {
		v = arc_value(&m.fields[s->idx[s->n][ARC_AS]], &vlen);
		if (dkim_verify_tag(v, vlen, "cv", cv, sizeof(cv)) == 1 &&
		    strcasecmp(cv, "fail") == 0) {
			res->ended = 1;
			arc_fail(res, s->n, "ARC-Seal i=%d has cv=fail", s->n);
			goto out;
		}
	}
	if (arc_structure(&m, s, res) != 0)
		goto out;

	/* step 4: the latest AMS, as a DKIM signature */
	dkim_verify_field(&m, s->idx[s->n][ARC_AMS], 1, lk, now, &ams);
	if (ams.res == DKIM_VERIFY_TEMPERROR) {
		temp = s->n;
		snprintf(res->reason, sizeof(res->reason), "ARC-Message-Signature i=%d: %s",
		    s->n, ams.reason);
	} else if (ams.res != DKIM_VERIFY_PASS) {
		arc_fail(res, s->n, "ARC-Message-Signature i=%d: %s", s->n, ams.reason);
		goto out;
	}
	/* step 6: every seal, the latest first */
	for (int i = s->n; i >= 1; i--) {
		r = arc_check_seal(&m, s, i, lk, why, sizeof(why));
		if (r == DKIM_VERIFY_PASS)
			continue;
		if (r != DKIM_VERIFY_TEMPERROR) {
			arc_fail(res, i, "ARC-Seal i=%d: %s", i, why);
			goto out;
		}
		if (temp == 0) {
			temp = i;
			snprintf(res->reason, sizeof(res->reason), "ARC-Seal i=%d: %s", i, why);
		}
	}
	res->status = temp ? ARC_TEMPERROR : ARC_PASS;
	res->fail_instance = temp;
out:
	free(s);
	dkim_canon_msg_free(&m);
}

/* arc_status_str - the RFC 8601 result word */
const char *
arc_status_str(enum arc_status s)
{
	switch (s) {
	case ARC_NONE:
		return "none";
	case ARC_PASS:
		return "pass";
	case ARC_FAIL:
		return "fail";
	case ARC_TEMPERROR:
		return "temperror";
	}
	return "fail";
}

/* arc_ar_result - "arc=STATUS (reason)" */
size_t
arc_ar_result(const struct arc_result *r, char *buf, size_t len)
{
	char reason[ARC_REASON_MAX];
	size_t k;
	int n;

	/* a comment holds no parentheses or backslash (RFC 5322 3.2.2) */
	for (k = 0; r->reason[k] != '\0' && k + 1 < sizeof(reason); k++)
		reason[k] = strchr("()\\\r\n", r->reason[k]) ? ' ' : r->reason[k];
	reason[k] = '\0';
	if (r->status == ARC_PASS || r->status == ARC_NONE || reason[0] == '\0')
		n = snprintf(buf, len, "arc=%s", arc_status_str(r->status));
	else
		n = snprintf(buf, len, "arc=%s (%s)", arc_status_str(r->status), reason);
	return n < 0 ? 0 : (size_t)n;
}

/* arc_fold - "NAME: VALUE" folded before a space where a line would pass
 * DKIM_CANON_FOLD (RFC 5322 2.2.3), with CRLF; malloc'd */
static char *
arc_fold(const char *name, const char *value)
{
	size_t cap = strlen(name) + 2 * strlen(value) + 8, len, col, w;
	char *out = xmalloc(cap);
	const char *p = value, *q;

	len = (size_t)snprintf(out, cap, "%s:", name);
	col = len;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (q = p; *q != '\0' && *q != ' '; q++)
			;
		w = (size_t)(q - p);
		if (col + 1 + w > DKIM_CANON_FOLD && col > 1) {
			memcpy(out + len, "\r\n\t", 3);
			len += 3;
			col = 1;
		} else {
			out[len++] = ' ';
			col++;
		}
		memcpy(out + len, p, w);
		len += w;
		col += w;
		p = q;
	}
	memcpy(out + len, "\r\n", 3);
	return out;
}

/* arc_param_ok - a parameter that can go into a field: printable ASCII
 * and SP only, not empty, and without the octets in bad */
static int
arc_param_ok(const char *s, const char *bad)
{
	if (s == NULL || *s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < ' ' || *s > '~' || strchr(bad, *s) != NULL)
			return 0;
	return 1;
}

/* arc_seal - RFC 8617 5.1, see arc.h */
int
arc_seal(const struct arc_seal_params *p, const struct arc_result *chain,
    const char *msg, size_t len, char **out, char *err, size_t errlen)
{
	struct dkim_canon_msg m;
	struct arc_sets *s = NULL;
	struct dkim_canon_field f;
	struct dkim_canon_sig sig = { 0 };
	char first[16], *aar = NULL, *ams = NULL, *as = NULL, *value, *data = NULL;
	char *tags[7] = { NULL };
	const char *cv;
	size_t dlen = 0, dsize = 0;
	int i, rc = -1;

	*out = NULL;
	if (p->key == NULL || EVP_PKEY_get_base_id(p->key) != EVP_PKEY_RSA) {
		util_seterr(err, errlen, "ARC seals with an RSA key only (rsa-sha256)");
		return -1;
	}
	if (!arc_param_ok(p->domain, " ;=") || !arc_param_ok(p->selector, " ;=") ||
	    !arc_param_ok(p->authserv_id, " ;()\"\\") || !arc_param_ok(p->results, "")) {
		util_seterr(err, errlen, "bad d=, s=, authserv-id or results");
		return -1;
	}
	/* RFC 8617 5.1.2: no set beyond 50, none on a chain that ended */
	if (chain->ended || chain->instances >= ARC_INSTANCES_MAX ||
	    chain->status == ARC_TEMPERROR) {
		util_seterr(err, errlen, "not sealed: %s",
		    chain->ended ? "the chain ended in cv=fail" :
		    chain->status == ARC_TEMPERROR ? "chain validation temperror" :
		    "50 ARC sets already");
		return ARC_SEAL_SKIP;
	}
	i = chain->instances + 1;
	cv = chain->status == ARC_PASS ? "pass" : chain->status == ARC_FAIL ? "fail" : "none";
	if ((i == 1 && chain->status == ARC_PASS) || (i > 1 && chain->status == ARC_NONE)) {
		util_seterr(err, errlen, "chain status %s with %d sets", cv, i - 1);
		return -1;
	}

	/* ARC-Authentication-Results: i=N; authserv-id; results (4.1.1) */
	value = xasprintf("i=%d; %s; %s", i, p->authserv_id, p->results);
	aar = arc_fold(arc_names[ARC_AAR], value);
	free(value);

	/* ARC-Message-Signature: DKIM with i= and without v= (4.1.2) */
	snprintf(first, sizeof(first), "i=%d", i);
	sig.hdrname = arc_names[ARC_AMS];
	sig.first_tags = first;
	sig.domain = p->domain;
	sig.selector = p->selector;
	sig.sign = arc_sign_hdrs;
	sig.t = p->t;
	if (dkim_canon_sign(p->key, &sig, msg, len, &ams, err, errlen) != 0)
		goto out;

	/* ARC-Seal over sets 1..N and ours; a failed chain over ours only
	 * (RFC 8617 5.1.1, 5.1.2) */
	dkim_canon_split(msg, len, &m);
	s = xcalloc(1, sizeof(*s));
	arc_collect(&m, s);
	if (chain->status == ARC_PASS) {
		if (s->n != chain->instances || s->bad || arc_structure(&m, s,
		    &(struct arc_result){ 0 }) != 0) {
			util_seterr(err, errlen, "the message is not the one validated");
			dkim_canon_msg_free(&m);
			goto out;
		}
		for (int k = 1; k <= s->n; k++)
			for (int kind = 0; kind < ARC_KINDS; kind++)
				arc_put(&data, &dlen, &dsize, &m.fields[s->idx[k][kind]]);
	}
	dkim_canon_msg_free(&m);
	f.text = aar;
	f.len = strlen(aar) - 2;
	arc_put(&data, &dlen, &dsize, &f);
	f.text = ams;
	f.len = strlen(ams) - 2;
	arc_put(&data, &dlen, &dsize, &f);
	tags[0] = xasprintf("i=%d", i);
	tags[1] = xstrdup("a=rsa-sha256");
	tags[2] = xasprintf("t=%lld", (long long)p->t);
	tags[3] = xasprintf("cv=%s", cv);
	tags[4] = xasprintf("d=%s", p->domain);
	tags[5] = xasprintf("s=%s", p->selector);
	if (dkim_canon_finish(p->key, arc_names[ARC_AS], (const char *const *)tags, data,
	    dlen, &as, err, errlen) != 0)
		goto out;
	*out = xasprintf("%s%s%s", as, ams, aar);
	metrics_inc(METRICS_ARC_SEALS);
	rc = 0;
out:
	for (int k = 0; tags[k] != NULL; k++)
		free(tags[k]);
	free(s);
	free(data);
	free(as);
	free(ams);
	free(aar);
	return rc;
}
