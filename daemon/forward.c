/*
 * forward - forwarded mail: classification, envelope, ARC (forward.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arc.h"
#include "auth.h"
#include "conf.h"
#include "dkim_canon.h"
#include "dkim_key.h"
#include "dmarc.h"
#include "dns.h"
#include "forward.h"
#include "log.h"
#include "message.h"

#define FORWARD_RESULTS_MAX 2048    /* the resinfo list of our AAR */

struct forward_q {
	struct forward_plan *fp;
	int idx;                    /* < nkeys: a key; -1, -2: _dmarc names */
};

/* forward_field - the first (topmost) field named name, or NULL */
static const struct dkim_canon_field *
forward_field(const struct dkim_canon_msg *m, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < m->nfields; i++)
		if (m->fields[i].namelen == n && strncasecmp(m->fields[i].text, name, n) == 0)
			return &m->fields[i];
	return NULL;
}

/* forward_resent - the top Resent-From: (else Resent-Sender:) mailbox
 * into addr if the user owns it; 1 if so */
static int
forward_resent(const struct dkim_canon_msg *m, const struct auth_user *u, char *addr,
    size_t len)
{
	static const char *const names[] = { "Resent-From", "Resent-Sender" };

	char a[ADDR_MAX + 1];

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const struct dkim_canon_field *f = forward_field(m, names[i]);

		if (f == NULL)
			continue;
		if (message_parse_mailbox(f->text + f->namelen + 1, f->len - f->namelen - 1,
		    a, sizeof(a)) == 1 && auth_sender_allowed(u, a)) {
			util_strlcpy(addr, a, len);
			return 1;
		}
	}
	return 0;
}

/* forward_add_list_id - "List-Id: <ID>" on top when the message has none
 * (RFC 2919; Gmail asks lists for it) */
static void
forward_add_list_id(const struct dkim_canon_msg *m, const char *id, char **msg, size_t *len)
{
	char field[ADDR_MAX + 16];
	size_t n;
	char *out;

	if (forward_field(m, "List-Id") != NULL)
		return;
	n = (size_t)snprintf(field, sizeof(field), "List-Id: <%s>\r\n", id);
	out = xmalloc(n + *len + 1);
	memcpy(out, field, n);
	memcpy(out + n, *msg, *len);
	out[n + *len] = '\0';
	free(*msg);
	*msg = out;
	*len += n;
}

/* forward_list_id - the list's id: list=ID, else LOCAL.DOMAIN of own */
static void
forward_list_id(const char *opt, const char *own, char *id, size_t len)
{
	const char *at = strrchr(own, '@');

	if (opt[0] != '\0') {
		util_strlcpy(id, opt, len);
		return;
	}
	if ((size_t)snprintf(id, len, "%.*s.%.*s", at ? (int)(at - own) : 0, own, HOST_MAX,
	    at ? at + 1 : own) >= len)
		id[len - 1] = '\0';
}

/* forward_prepare - classify, rewrite, List-Id, DNS names */
int
forward_prepare(struct forward_plan *fp, const struct conf *c, const struct auth_user *u,
    int listener_forward, const struct dmarc_psl *psl, const char *from_domain,
    int from_owned, char **msg, size_t *len, char *err, size_t errlen)
{
	const struct conf_domain *cd;
	struct dkim_canon_msg m;
	const char *listopt = NULL;
	int list = 0;

	memset(fp, 0, sizeof(*fp));
	util_strlcpy(fp->from_domain, from_domain, sizeof(fp->from_domain));
	dkim_canon_split(*msg, *len, &m);
	if (!from_owned && u != NULL) {
		list = auth_user_option(u, "list", &listopt);
		if (forward_resent(&m, u, fp->envelope, sizeof(fp->envelope))) {
			fp->via = "resent";
		} else if (list || auth_user_option(u, "forward", NULL) || listener_forward) {
			fp->via = list || auth_user_option(u, "forward", NULL) ? "account" :
			    "listener";
			if (auth_user_address(u, fp->envelope, sizeof(fp->envelope)) < 0) {
				dkim_canon_msg_free(&m);
				snprintf(err, errlen, "451 4.3.5 forwarding account %.64s has no"
				    " address of its own in the users file", u->name);
				return -1;
			}
		}
		if (fp->via)
			fp->forwarded = 1;
	}
	if (fp->forwarded) {
		util_strlcpy(fp->domain, util_addr_domain(fp->envelope), sizeof(fp->domain));
		util_strlower(fp->domain);
		if (list) {
			char id[ADDR_MAX + 2];

			forward_list_id(listopt, fp->envelope, id, sizeof(id));
			forward_add_list_id(&m, id, msg, len);
		}
		cd = conf_domain_find(c, fp->domain);
		if (cd && cd->forward_return_path[0])
			util_strlcpy(fp->envelope, cd->forward_return_path, sizeof(fp->envelope));
		fp->seal = cd == NULL || cd->arc != CONF_ARC_NEVER;
	} else if (from_owned && (cd = conf_domain_find(c, from_domain)) != NULL &&
	    cd->arc == CONF_ARC_ALWAYS) {
		fp->seal = 1;
		fp->via = "always";
		util_strlcpy(fp->domain, from_domain, sizeof(fp->domain));
	}
	dkim_canon_msg_free(&m);
	if (!fp->seal)
		return 0;
	fp->nkeys = dkim_verify_keynames(*msg, *len, fp->keys, ARRAY_LEN(fp->keys));
	if (dmarc_org_domain(psl, from_domain, fp->org_domain, sizeof(fp->org_domain)) < 0)
		util_strlcpy(fp->org_domain, from_domain, sizeof(fp->org_domain));
	return 0;
}

/* forward_answered - one query is done; the last one reports */
static void
forward_answered(struct forward_plan *fp)
{
	if (--fp->pending == 0)
		fp->done(fp->arg);
}

/* forward_txt_cb - keep a key record, or the DMARC candidates */
static void
forward_txt_cb(enum dns_status st, const char *errstr, const struct dns_txt *txt,
    size_t n, void *arg)
{
	struct forward_q *q = arg;
	struct forward_plan *fp = q->fp;

	(void)errstr;
	if (st == DNS_CANCELLED)
		fp->cancelled = 1;
	if (q->idx >= 0) {
		struct dkim_verify_keyent *e = &fp->ents[q->idx];

		e->tempfail = st == DNS_TEMPFAIL || st == DNS_CANCELLED;
		/* One key record per name (RFC 6376 3.6.2.2); several: the
		 * first, as libopendkim takes it. */
		if (st == DNS_OK && n > 0)
			e->txt = xstrdup(txt[0].data);
	} else {
		int k = -q->idx - 1;

		fp->dmarc_temp[k] = st == DNS_TEMPFAIL || st == DNS_CANCELLED;
		for (size_t i = 0; st == DNS_OK && i < n && fp->ndmarc[k] < FORWARD_TXT_MAX; i++)
			fp->dmarc[k][fp->ndmarc[k]++] = xstrdup(txt[i].data);
	}
	free(q);
	forward_answered(fp);
}

/* forward_ask - one TXT query for fp */
static void
forward_ask(struct forward_plan *fp, struct dns *dns, const char *name, int idx)
{
	struct forward_q *q = xcalloc(1, sizeof(*q));

	q->fp = fp;
	q->idx = idx;
	dns_query_txt(dns, name, forward_txt_cb, q);
}

/* forward_fetch - every key, then _dmarc.FROM and _dmarc.ORG */
void
forward_fetch(struct forward_plan *fp, struct dns *dns, void (*done)(void *arg), void *arg)
{
	char name[HOST_MAX + 8];

	fp->done = done;
	fp->arg = arg;
	/* One extra count held while queries start, so no answer can
	 * report before all are asked (answers come later anyway). */
	fp->pending = fp->nkeys + 3;
	for (size_t i = 0; i < fp->nkeys; i++) {
		fp->ents[i].name = fp->keys[i].name;
		forward_ask(fp, dns, fp->keys[i].name, (int)i);
	}
	snprintf(name, sizeof(name), "_dmarc.%s", fp->from_domain);
	forward_ask(fp, dns, name, -1);
	snprintf(name, sizeof(name), "_dmarc.%s", fp->org_domain);
	forward_ask(fp, dns, name, -2);
	forward_answered(fp);
}

/* forward_dmarc - DMARC of the From: domain against the passing DKIM
 * domains (RFC 7489 6.6.3: the From: domain's record, else the
 * organizational domain's), as Authentication-Results resinfo */
static void
forward_dmarc(const struct forward_plan *fp, const struct dmarc_psl *psl,
    const struct dkim_verify_sig *sigs, size_t nsigs, char *out, size_t len)
{
	struct dmarc_record rec;
	struct dmarc_query q;
	struct dmarc_verdict v;
	const char *pass[DKIM_VERIFY_SIGS_MAX];
	size_t npass = 0;
	int k;

	memset(&v, 0, sizeof(v));
	for (size_t i = 0; i < nsigs && npass < ARRAY_LEN(pass); i++)
		if (sigs[i].res == DKIM_VERIFY_PASS)
			pass[npass++] = sigs[i].domain;
	k = fp->ndmarc[0] == 0 && !fp->dmarc_temp[0] ? 1 : 0;
	if (k == 1 && strcasecmp(fp->org_domain, fp->from_domain) == 0)
		k = 0;
	if (fp->dmarc_temp[k]) {
		v.result = DMARC_TEMPERROR;
	} else {
		switch (dmarc_select((const char *const *)fp->dmarc[k], fp->ndmarc[k], &rec,
		    NULL, 0)) {
		case DMARC_SELECT_OK:
			memset(&q, 0, sizeof(q));
			q.from_domain = fp->from_domain;
			q.rec = &rec;
			q.rec_domain = k ? fp->org_domain : NULL;
			q.dkim_pass = pass;
			q.ndkim = npass;
			dmarc_evaluate(psl, &q, &v);
			break;
		case DMARC_SELECT_NONE:
			v.result = DMARC_NONE;
			break;
		default:
			v.result = DMARC_PERMERROR;
			break;
		}
	}
	dmarc_format_ar(&v, fp->from_domain, out, len);
}

/* forward_rsa_key - the domain's first RSA key (ARC is rsa-sha256 only,
 * RFC 8617 4.1.3) */
static const struct dkim_key *
forward_rsa_key(const struct dkim_domain *d)
{
	for (size_t i = 0; d && i < d->nkeys; i++)
		if (d->keys[i].type == DKIM_KEY_RSA)
			return &d->keys[i];
	return NULL;
}

/* forward_seal - verify, validate, evaluate, seal */
int
forward_seal(const struct forward_plan *fp, struct dkim_verifier *v,
    const struct dmarc_psl *psl, const struct dkim_domain *keys, const char *authserv_id,
    time_t now, char **msg, size_t *len, char *log, size_t loglen, char *err,
    size_t errlen)
{
	struct dkim_verify_keytab tab = { fp->ents, fp->nkeys };
	struct dkim_verify_lookup lk = { dkim_verify_keytab_lookup, &tab };
	struct dkim_verify_sig sigs[DKIM_VERIFY_SIGS_MAX];
	struct arc_result chain;
	struct arc_seal_params sp;
	const struct dkim_key *k;
	char results[FORWARD_RESULTS_MAX], dmarc[512], arcres[ARC_REASON_MAX + 64];
	char *set = NULL, *out;
	size_t nsigs = 0, n, setlen;
	int rc;

	if ((k = forward_rsa_key(keys)) == NULL) {
		snprintf(log, loglen, "arc skipped: no RSA key for %s (ARC is rsa-sha256 only)",
		    fp->domain);
		return 1;
	}
	if (dkim_verify_message(v, *msg, *len, &lk, sigs, ARRAY_LEN(sigs), &nsigs, err,
	    errlen) < 0)
		return -1;
	arc_validate(*msg, *len, &lk, now, &chain);
	n = dkim_verify_format(sigs, nsigs, results, sizeof(results));
	forward_dmarc(fp, psl, sigs, nsigs, dmarc, sizeof(dmarc));
	arc_ar_result(&chain, arcres, sizeof(arcres));
	if (n < sizeof(results))
		snprintf(results + n, sizeof(results) - n, "; %s; %s", dmarc, arcres);
	memset(&sp, 0, sizeof(sp));
	sp.key = dkim_key_parse(k->pem, k->pemlen);
	if (sp.key == NULL) {
		snprintf(err, errlen, "the key %s of %s cannot be parsed", k->selector, fp->domain);
		return -1;
	}
	sp.domain = fp->domain;
	sp.selector = k->selector;
	sp.authserv_id = authserv_id;
	sp.results = results;
	sp.t = now;
	rc = arc_seal(&sp, &chain, *msg, *len, &set, err, errlen);
	EVP_PKEY_free(sp.key);
	if (rc == ARC_SEAL_SKIP) {
		snprintf(log, loglen, "arc not sealed (%s): %s", err, results);
		return 1;
	}
	if (rc < 0)
		return -1;
	setlen = strlen(set);
	out = xmalloc(setlen + *len + 1);
	memcpy(out, set, setlen);
	memcpy(out + setlen, *msg, *len);
	out[setlen + *len] = '\0';
	free(set);
	free(*msg);
	*msg = out;
	*len += setlen;
	snprintf(log, loglen, "arc i=%d cv=%s d=%s s=%s: %s", chain.instances + 1,
	    chain.status == ARC_NONE ? "none" : chain.status == ARC_PASS ? "pass" : "fail",
	    fp->domain, k->selector, results);
	return 0;
}

/* forward_plan_clear - the fetched records */
void
forward_plan_clear(struct forward_plan *fp)
{
	for (size_t i = 0; i < fp->nkeys; i++) {
		free((char *)fp->ents[i].txt);
		fp->ents[i].txt = NULL;
	}
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; i < fp->ndmarc[k]; i++)
			free(fp->dmarc[k][i]);
		fp->ndmarc[k] = 0;
	}
}
