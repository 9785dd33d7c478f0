/*
 * dmarc - DMARC without DNS, see dmarc.h.
 *
 * Public Suffix List. Every rule name goes into one open-addressing hash
 * set with a bit per kind: plain ("co.uk"), wildcard ("*.ck" stored as
 * "ck") and exception ("!www.ck" stored as "www.ck"). A lookup walks the
 * suffixes of the domain, each one a hash probe on a substring of the
 * domain itself: no allocation and no writes, so concurrent readers need
 * no lock once dmarc_psl_load has returned.
 *
 * Both sections of the list count, ICANN and PRIVATE. The private entries
 * (github.io, blogspot.com ...) are names under which unrelated people
 * get their own subdomains; alice.github.io and mallory.github.io are two
 * organizations, and relaxed alignment must not join them. That is what
 * RFC 7489 3.2 asks of the list, and what libpsl and OpenDMARC do too.
 *
 * The list writes IDN suffixes as UTF-8 U-labels (公司.cn: some 470 rules,
 * 300 of them below a TLD); they are stored as A-labels (xn--55qx5d.cn)
 * so they match the ASCII domains found in mail. Domains themselves are
 * taken as ASCII only: a U-label in a From domain is refused.
 *
 * Records: RFC 7489 6.3 says syntax errors in tags other than v and p
 * fall back to defaults, so a bad pct= or adkim= is a warning, not an
 * invalid record. A known tag given twice makes the record invalid (the
 * record is ambiguous; RFC 6376 3.2 does the same for DKIM tag lists, and
 * the admin is told which tag to remove).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "util.h"

#define LABEL_MAX 63
#define LABELS_MAX (DMARC_DOMAIN_MAX / 2 + 1)
#define PSL_LINE_MAX 512
/* The list holds about 10,000 rules; this only stops a runaway file. */
#define PSL_RULES_MAX 1000000

#define RULE_PLAIN 1
#define RULE_WILD 2
#define RULE_EXCEPT 4

struct psl_slot {
	uint32_t hash;
	uint32_t off;                   /* into text */
	uint16_t len;                   /* 0: empty slot */
	uint8_t kinds;                  /* RULE_* bits */
};

struct dmarc_psl {
	char *text;                     /* rule names back to back */
	struct psl_slot *slots;
	size_t mask;                    /* slot count - 1 */
	size_t nrules;
};

/* A domain split into labels: lower case, no trailing dot. */
struct domain {
	char s[DMARC_DOMAIN_MAX + 1];
	size_t len;
	size_t lab[LABELS_MAX];         /* start offset of each label */
	size_t nlab;
};

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
is_label_char(int c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '_';
}

/* domain_split - check and normalize a domain of n bytes into d. */
static int
domain_split(const char *in, size_t n, struct domain *d)
{
	size_t i, start = 0;

	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > DMARC_DOMAIN_MAX)
		return -1;
	d->nlab = 0;
	for (i = 0; i <= n; i++) {
		if (i == n || in[i] == '.') {
			if (i == start || i - start > LABEL_MAX)
				return -1;
			d->lab[d->nlab++] = start;
			start = i + 1;
			continue;
		}
		if (!is_label_char((unsigned char)in[i]))
			return -1;
		d->s[i] = (char)lower((unsigned char)in[i]);
	}
	for (i = 0; i < d->nlab; i++)
		if (d->lab[i] > 0)
			d->s[d->lab[i] - 1] = '.';
	d->s[n] = '\0';
	d->len = n;
	return 0;
}

static int
domain_parse(const char *in, struct domain *d)
{
	return in == NULL ? -1 : domain_split(in, strlen(in), d);
}

/* ---- Public Suffix List ------------------------------------------------ */

/* FNV-1a: short keys, no adversary who controls the table (the list is
 * the admin's), and lookups are on the hot path of every message. */
static uint32_t
psl_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--) {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

static int
psl_kinds(const struct dmarc_psl *psl, const char *s, size_t n)
{
	uint32_t h = psl_hash(s, n);
	size_t i = h & psl->mask;

	for (;; i = (i + 1) & psl->mask) {
		const struct psl_slot *e = &psl->slots[i];

		if (e->len == 0)
			return 0;
		if (e->hash == h && e->len == n &&
		    memcmp(psl->text + e->off, s, n) == 0)
			return e->kinds;
	}
}

/* psl_insert - add a rule; the table always has a free slot (sized at
 * twice the rule count). A name seen before gets the new kind bit. */
static void
psl_insert(struct dmarc_psl *psl, uint32_t off, uint16_t len, int kind)
{
	const char *s = psl->text + off;
	uint32_t h = psl_hash(s, len);
	size_t i = h & psl->mask;

	for (;; i = (i + 1) & psl->mask) {
		struct psl_slot *e = &psl->slots[i];

		if (e->len == 0) {
			e->hash = h;
			e->off = off;
			e->len = len;
			e->kinds = (uint8_t)kind;
			psl->nrules++;
			return;
		}
		if (e->hash == h && e->len == len &&
		    memcmp(psl->text + e->off, s, len) == 0) {
			e->kinds |= (uint8_t)kind;
			return;
		}
	}
}

struct psl_rule {
	uint32_t off;
	uint16_t len;
	uint8_t kind;
};

/* RFC 3492 Punycode parameters. */
#define PC_BASE 36
#define PC_TMIN 1
#define PC_TMAX 26
#define PC_SKEW 38
#define PC_DAMP 700

/* utf8_next - one code point from [*s, end), or -1 for a malformed,
 * overlong or surrogate sequence. */
static long
utf8_next(const unsigned char **s, const unsigned char *end)
{
	const unsigned char *p = *s;
	unsigned long cp;
	int len, i;

	if (p[0] < 0x80)
		cp = p[0], len = 1;
	else if ((p[0] & 0xe0) == 0xc0)
		cp = p[0] & 0x1f, len = 2;
	else if ((p[0] & 0xf0) == 0xe0)
		cp = p[0] & 0x0f, len = 3;
	else if ((p[0] & 0xf8) == 0xf0)
		cp = p[0] & 0x07, len = 4;
	else
		return -1;
	if (end - p < len)
		return -1;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*s = p + len;
	return (long)cp;
}

static unsigned long
pc_adapt(unsigned long delta, unsigned long npoints, int first)
{
	unsigned long k = 0;

	delta = first ? delta / PC_DAMP : delta / 2;
	delta += delta / npoints;
	while (delta > ((PC_BASE - PC_TMIN) * PC_TMAX) / 2) {
		delta /= PC_BASE - PC_TMIN;
		k += PC_BASE;
	}
	return k + (PC_BASE - PC_TMIN + 1) * delta / (delta + PC_SKEW);
}

static char
pc_digit(unsigned long d)
{
	return (char)(d < 26 ? 'a' + d : '0' + (d - 26));
}

/* a_label - RFC 3492 encoding of one UTF-8 label as "xn--...", so the
 * list's U-label rules (公司.cn) match the A-labels found in mail. The
 * list is already lower case and NFC, so no IDNA mapping is needed.
 * Returns 0, or -1 (malformed UTF-8, or longer than a label may be). */
static int
a_label(const char *in, size_t n, char *out, size_t *outlen)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + n;
	unsigned long cp[LABEL_MAX], next = 0x80, delta = 0, bias = 72;
	size_t ncp = 0, nbasic = 0, h, i, o = 4;
	char buf[LABEL_MAX + 1];

	while (p < end) {
		long c = utf8_next(&p, end);

		if (c < 0 || ncp == LABEL_MAX)
			return -1;
		cp[ncp++] = (unsigned long)c;
	}
	memcpy(buf, "xn--", 4);
	for (i = 0; i < ncp; i++)
		if (cp[i] < 0x80) {
			if (o == LABEL_MAX)
				return -1;
			buf[o++] = (char)lower((int)cp[i]);
			nbasic++;
		}
	if (nbasic > 0) {
		if (o == LABEL_MAX)
			return -1;
		buf[o++] = '-';
	}
	for (h = nbasic; h < ncp; next++, delta++) {
		unsigned long m = ULONG_MAX;

		for (i = 0; i < ncp; i++)
			if (cp[i] >= next && cp[i] < m)
				m = cp[i];
		/* At most 63 code points below 0x110000: no overflow. */
		delta += (m - next) * (h + 1);
		next = m;
		for (i = 0; i < ncp; i++) {
			unsigned long q, k, t;

			if (cp[i] < next)
				delta++;
			if (cp[i] != next)
				continue;
			for (q = delta, k = PC_BASE;; k += PC_BASE) {
				t = k <= bias ? PC_TMIN :
				    k >= bias + PC_TMAX ? PC_TMAX : k - bias;
				if (q < t)
					break;
				if (o == LABEL_MAX)
					return -1;
				buf[o++] = pc_digit(t + (q - t) % (PC_BASE - t));
				q = (q - t) / (PC_BASE - t);
			}
			if (o == LABEL_MAX)
				return -1;
			buf[o++] = pc_digit(q);
			bias = pc_adapt(delta, h + 1, h == nbasic);
			delta = 0;
			h++;
		}
	}
	memcpy(out, buf, o);
	*outlen = o;
	return 0;
}

/* to_ascii - a rule name with its non-ASCII labels as A-labels, into out
 * (DMARC_DOMAIN_MAX + 1 bytes). Returns the length, or -1. */
static int
to_ascii(const char *in, size_t n, char *out)
{
	size_t i = 0, o = 0;

	while (i <= n) {
		size_t j = i, len;
		int ascii = 1;

		for (; j < n && in[j] != '.'; j++)
			if ((unsigned char)in[j] >= 0x80)
				ascii = 0;
		if (ascii) {
			len = j - i;
			if (o + len > DMARC_DOMAIN_MAX)
				return -1;
			memcpy(out + o, in + i, len);
		} else {
			char lab[LABEL_MAX];

			if (a_label(in + i, j - i, lab, &len) < 0 ||
			    o + len > DMARC_DOMAIN_MAX)
				return -1;
			memcpy(out + o, lab, len);
		}
		o += len;
		if (j == n)
			break;
		if (o == DMARC_DOMAIN_MAX)
			return -1;
		out[o++] = '.';
		i = j + 1;
	}
	out[o] = '\0';
	return (int)o;
}

/* psl_line - one line of the list to its kind and normalized name. The
 * spec reads a rule up to the first white space; "//" starts a comment
 * line. Returns 1 for a rule, 0 for a line to skip. */
static int
psl_line(char *line, int *kind, struct domain *d)
{
	char ascii[DMARC_DOMAIN_MAX + 1], *p = line, *e;
	int n;

	while (is_wsp((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '\n' || *p == '\r' || (p[0] == '/' && p[1] == '/'))
		return 0;
	for (e = p; *e && !is_wsp((unsigned char)*e) && *e != '\n' && *e != '\r'; e++)
		;
	*kind = RULE_PLAIN;
	if (*p == '!') {
		*kind = RULE_EXCEPT;
		p++;
	} else if (p[0] == '*' && p[1] == '.') {
		*kind = RULE_WILD;
		p += 2;
	}
	if ((n = to_ascii(p, (size_t)(e - p), ascii)) < 0)
		return 0;
	/* Also rejects "*" anywhere but in front. */
	return domain_split(ascii, (size_t)n, d) == 0;
}

struct dmarc_psl *
dmarc_psl_load(const char *path, char *err, size_t errlen)
{
	struct dmarc_psl *psl;
	struct psl_rule *rules = NULL;
	size_t nrules = 0, caprules = 0, textlen = 0, textcap = 0, nslots, i;
	char line[PSL_LINE_MAX];
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		util_seterr(err, errlen, "%s: %s; organizational domains fall "
		    "back to the last two labels", path, strerror(errno));
		return NULL;
	}
	psl = xcalloc(1, sizeof(*psl));
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strlen(line);
		struct domain d;
		int kind;

		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			/* Longer than any valid rule: skip the rest of it. */
			int c;
			while ((c = getc(fp)) != EOF && c != '\n')
				;
			continue;
		}
		if (!psl_line(line, &kind, &d))
			continue;
		if (nrules == PSL_RULES_MAX)
			break;
		if (nrules == caprules) {
			caprules = caprules ? caprules * 2 : 8192;
			rules = xreallocarray(rules, caprules, sizeof(*rules));
		}
		if (textlen + d.len > textcap) {
			textcap = textcap ? textcap * 2 : 131072;
			psl->text = xrealloc(psl->text, textcap);
		}
		memcpy(psl->text + textlen, d.s, d.len);
		rules[nrules].off = (uint32_t)textlen;
		rules[nrules].len = (uint16_t)d.len;
		rules[nrules].kind = (uint8_t)kind;
		nrules++;
		textlen += d.len;
	}
	if (ferror(fp) || nrules == 0) {
		util_seterr(err, errlen, "%s: %s; organizational domains fall "
		    "back to the last two labels", path,
		    ferror(fp) ? "read error" : "no rules in the file");
		fclose(fp);
		free(rules);
		free(psl->text);
		free(psl);
		return NULL;
	}
	fclose(fp);
	psl->text = xrealloc(psl->text, textlen);
	for (nslots = 16; nslots < nrules * 2; nslots *= 2)
		;
	psl->slots = xcalloc(nslots, sizeof(*psl->slots));
	psl->mask = nslots - 1;
	for (i = 0; i < nrules; i++)
		psl_insert(psl, rules[i].off, rules[i].len, rules[i].kind);
	free(rules);
	return psl;
}

void
dmarc_psl_free(struct dmarc_psl *psl)
{
	if (psl == NULL)
		return;
	free(psl->text);
	free(psl->slots);
	free(psl);
}

size_t
dmarc_psl_rules(const struct dmarc_psl *psl)
{
	return psl ? psl->nrules : 0;
}

/* org_label - index of the first label of the organizational domain.
 * PSL algorithm: an exception rule wins outright and its public suffix
 * is the rule minus its first label; otherwise the matching rule with the
 * most labels (plain, or wildcard matching one more label); otherwise
 * the implicit rule "*" (the TLD). RFC 7489 3.2 adds one label. Without a
 * list: the last two labels. */
static size_t
org_label(const struct dmarc_psl *psl, const struct domain *d)
{
	int kinds[LABELS_MAX];
	size_t i, ps = d->nlab - 1;
	int found = 0;

	if (psl == NULL)
		return d->nlab >= 2 ? d->nlab - 2 : 0;
	for (i = 0; i < d->nlab; i++)
		kinds[i] = psl_kinds(psl, d->s + d->lab[i], d->len - d->lab[i]);
	for (i = 0; i < d->nlab; i++) {
		if (kinds[i] & RULE_EXCEPT) {
			ps = i + 1 < d->nlab ? i + 1 : i;
			break;
		}
		if (!found && ((kinds[i] & RULE_PLAIN) ||
		    (i + 1 < d->nlab && (kinds[i + 1] & RULE_WILD)))) {
			ps = i;
			found = 1;
		}
	}
	/* A public suffix itself is its own organizational domain. */
	return ps > 0 ? ps - 1 : 0;
}

int
dmarc_org_domain(const struct dmarc_psl *psl, const char *domain,
    char *out, size_t outlen)
{
	struct domain d;
	const char *org;

	if (domain_parse(domain, &d) < 0)
		return -1;
	org = d.s + d.lab[org_label(psl, &d)];
	if (util_strlcpy(out, org, outlen) >= outlen)
		return -1;
	return 0;
}

/* ---- alignment and evaluation ------------------------------------------ */

/* is_sub - a is b or a subdomain of it (both normalized). */
static int
is_sub(const struct domain *a, const struct domain *b)
{
	return a->len >= b->len &&
	    strcmp(a->s + a->len - b->len, b->s) == 0 &&
	    (a->len == b->len || a->s[a->len - b->len - 1] == '.');
}

int
dmarc_aligned(const char *from_domain, const char *auth_domain, int strict,
    const struct dmarc_psl *psl)
{
	struct domain f, a;

	if (domain_parse(from_domain, &f) < 0 ||
	    domain_parse(auth_domain, &a) < 0)
		return 0;
	if (strict)
		return strcmp(f.s, a.s) == 0;
	if (strcmp(f.s + f.lab[org_label(psl, &f)],
	    a.s + a.lab[org_label(psl, &a)]) != 0)
		return 0;
	/* Without the list "last two labels" makes every x.co.uk one
	 * organization; only a parent/child pair is then safe to align. */
	if (psl == NULL)
		return is_sub(&f, &a) || is_sub(&a, &f);
	return 1;
}

static const char *
policy_tag(const struct dmarc_query *q)
{
	const struct dmarc_record *rec = q->rec;
	struct domain f, r;

	if (q->rec_domain == NULL || domain_parse(q->from_domain, &f) < 0 ||
	    domain_parse(q->rec_domain, &r) < 0 || strcmp(f.s, r.s) == 0)
		return "p";
	/* Record found at the organizational domain: From is a subdomain. */
	if (q->from_nonexistent && rec->np != DMARC_POLICY_UNSET)
		return "np";
	if (rec->sp != DMARC_POLICY_UNSET)
		return "sp";
	return "p";
}

enum dmarc_result
dmarc_evaluate(const struct dmarc_psl *psl, const struct dmarc_query *q,
    struct dmarc_verdict *v)
{
	const struct dmarc_record *rec = q->rec;
	size_t i;

	memset(v, 0, sizeof(*v));
	v->pct = 100;
	if (rec == NULL) {
		v->result = DMARC_NONE;
		return v->result;
	}
	for (i = 0; i < q->ndkim; i++) {
		if (dmarc_aligned(q->from_domain, q->dkim_pass[i],
		    rec->adkim_strict, psl)) {
			v->aligned |= DMARC_ALIGNED_DKIM;
			if (v->dkim_domain == NULL)
				v->dkim_domain = q->dkim_pass[i];
		}
	}
	if (q->spf_pass != NULL &&
	    dmarc_aligned(q->from_domain, q->spf_pass, rec->aspf_strict, psl))
		v->aligned |= DMARC_ALIGNED_SPF;
	v->result = v->aligned ? DMARC_PASS : DMARC_FAIL;
	v->p = rec->p;
	v->pct = rec->pct;
	util_strlcpy(v->policy_tag, policy_tag(q), sizeof(v->policy_tag));
	v->policy = v->policy_tag[0] == 'n' ? rec->np :
	    v->policy_tag[0] == 's' ? rec->sp : rec->p;
	return v->result;
}

const char *
dmarc_policy_name(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_POLICY_NONE:
		return "none";
	case DMARC_POLICY_QUARANTINE:
		return "quarantine";
	case DMARC_POLICY_REJECT:
		return "reject";
	default:
		return "";
	}
}

const char *
dmarc_result_name(enum dmarc_result r)
{
	switch (r) {
	case DMARC_PASS:
		return "pass";
	case DMARC_FAIL:
		return "fail";
	case DMARC_TEMPERROR:
		return "temperror";
	case DMARC_PERMERROR:
		return "permerror";
	default:
		return "none";
	}
}

/* Bounded appender: keeps the length it would have needed. */
struct sbuf {
	char *s;
	size_t size, len;
};

static void PRINTF_LIKE(2, 3)
sbuf_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b->len < b->size ? b->s + b->len : NULL,
	    b->len < b->size ? b->size - b->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n;
}

size_t
dmarc_format_ar(const struct dmarc_verdict *v, const char *from_domain,
    char *out, size_t outlen)
{
	struct sbuf b = { out, outlen, 0 };
	struct domain d;

	if (outlen > 0)
		out[0] = '\0';
	sbuf_add(&b, "dmarc=%s", dmarc_result_name(v->result));
	if ((v->result == DMARC_PASS || v->result == DMARC_FAIL) &&
	    v->p != DMARC_POLICY_UNSET) {
		sbuf_add(&b, " (p=%s", dmarc_policy_name(v->p));
		if (v->policy_tag[0] != '\0' && strcmp(v->policy_tag, "p") != 0)
			sbuf_add(&b, " %s=%s", v->policy_tag,
			    dmarc_policy_name(v->policy));
		sbuf_add(&b, ")");
	}
	if (from_domain == NULL || *from_domain == '\0')
		return b.len;
	if (domain_parse(from_domain, &d) == 0) {
		sbuf_add(&b, " header.from=%s", d.s);
	} else {
		/* RFC 8601 value: a quoted-string, printable ASCII only. */
		const unsigned char *p = (const unsigned char *)from_domain;
		size_t i;

		sbuf_add(&b, " header.from=\"");
		for (i = 0; p[i] != '\0' && i < DMARC_DOMAIN_MAX; i++)
			sbuf_add(&b, "%s%c", p[i] == '"' || p[i] == '\\' ?
			    "\\" : "", p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?');
		sbuf_add(&b, "\"");
	}
	return b.len;
}

/* ---- records ----------------------------------------------------------- */

enum tag {
	T_V, T_P, T_SP, T_NP, T_ADKIM, T_ASPF, T_PCT, T_RUA, T_RUF, T_FO,
	T_RI, T_RF, T_NTAGS
};

static const char *const tag_names[T_NTAGS] = {
	"v", "p", "sp", "np", "adkim", "aspf", "pct", "rua", "ruf", "fo",
	"ri", "rf",
};

/* Tags of later drafts (DMARCbis) that need no warning when ignored. */
static const char *const tag_known_later[] = { "t", "psd" };

#define SHOW_MAX 48

/* show - text from DNS made safe to quote in a message: printable ASCII,
 * cut after 40 bytes. buf holds SHOW_MAX bytes. */
static const char *
show(const char *s, char *buf)
{
	size_t i, j = 0;

	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == 40) {
			memcpy(buf + j, "...", 3);
			j += 3;
			break;
		}
		buf[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[j] = '\0';
	return buf;
}

static void PRINTF_LIKE(2, 3)
warn(struct dmarc_record *rec, const char *fmt, ...)
{
	char msg[DMARC_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rec->warning[0] != '\0')
		util_strlcat(rec->warning, "; ", sizeof(rec->warning));
	util_strlcat(rec->warning, msg, sizeof(rec->warning));
}

/* dmarc1_len - length of a leading dmarc-version and its dmarc-sep
 * blanks (RFC 7489 6.4: "v" *WSP "=" *WSP "DMARC1", the version in upper
 * case), or 0 when the text does not start with it. */
static size_t
dmarc1_len(const char *s)
{
	const char *p = s;

	while (is_wsp((unsigned char)*p))
		p++;
	if (lower((unsigned char)*p++) != 'v')
		return 0;
	while (is_wsp((unsigned char)*p))
		p++;
	if (*p++ != '=')
		return 0;
	while (is_wsp((unsigned char)*p))
		p++;
	if (strncmp(p, "DMARC1", 6) != 0)
		return 0;
	p += 6;
	while (is_wsp((unsigned char)*p))
		p++;
	if (*p != ';' && *p != '\0')
		return 0;
	return (size_t)(p - s);
}

/* version_error - why a text does not start with v=DMARC1, as a fix. */
static void
version_error(const char *txt, char *err, size_t errlen)
{
	char buf[DMARC_RECORD_MAX + 1], shown[SHOW_MAX], *p, *eq, *val;

	util_strlcpy(buf, txt, sizeof(buf));
	if ((p = strchr(buf, ';')) != NULL)
		*p = '\0';
	p = util_strtrim(buf);
	if ((eq = strchr(p, '=')) != NULL) {
		*eq = '\0';
		val = util_strtrim(eq + 1);
		if (util_strcaseeq(util_strtrim(p), "v")) {
			if (util_strcaseeq(val, "DMARC1"))
				util_seterr(err, errlen, "v=%s: the version must "
				    "be exactly DMARC1, in upper case",
				    show(val, shown));
			else if (strncmp(val, "DMARC1", 6) == 0 &&
			    is_wsp((unsigned char)val[6]))
				util_seterr(err, errlen, "v=DMARC1 must be "
				    "followed by ';' before the next tag");
			else if (util_strncaseprefix(val, "DMARC"))
				util_seterr(err, errlen, "v=%s: the version "
				    "must be DMARC1", show(val, shown));
			else
				util_seterr(err, errlen, "not a DMARC record "
				    "(v=%s): it must start with v=DMARC1",
				    show(val, shown));
			return;
		}
	}
	for (p = strchr(txt, ';'); p != NULL; p = strchr(p + 1, ';'))
		if (dmarc1_len(p + 1) > 0) {
			util_seterr(err, errlen, "v=DMARC1 must be the first "
			    "tag; move it to the front");
			return;
		}
	util_seterr(err, errlen, "not a DMARC record: it must start with "
	    "v=DMARC1");
}

static int
parse_policy(const char *v, enum dmarc_policy *out)
{
	if (util_strcaseeq(v, "none"))
		*out = DMARC_POLICY_NONE;
	else if (util_strcaseeq(v, "quarantine"))
		*out = DMARC_POLICY_QUARANTINE;
	else if (util_strcaseeq(v, "reject"))
		*out = DMARC_POLICY_REJECT;
	else
		return -1;
	return 0;
}

/* parse_digits - 1 to maxdig decimal digits, value at most max. */
static int
parse_digits(const char *v, size_t maxdig, unsigned long max,
    unsigned long *out)
{
	unsigned long n = 0;
	size_t i;

	for (i = 0; is_digit((unsigned char)v[i]); i++) {
		if (n > (max - (unsigned long)(v[i] - '0')) / 10)
			return -1;
		n = n * 10 + (unsigned long)(v[i] - '0');
	}
	if (i == 0 || i > maxdig || v[i] != '\0')
		return -1;
	*out = n;
	return 0;
}

static int
fo_word(const char *w)
{
	return w[1] == '\0' && strchr("01ds", lower((unsigned char)*w)) != NULL;
}

/* rf_word - RFC 5321 Keyword (Ldh-str), e.g. "afrf". */
static int
rf_word(const char *w)
{
	size_t i;

	if (!is_alpha((unsigned char)w[0]) && !is_digit((unsigned char)w[0]))
		return 0;
	for (i = 1; w[i] != '\0'; i++)
		if (!is_alpha((unsigned char)w[i]) &&
		    !is_digit((unsigned char)w[i]) && w[i] != '-')
			return 0;
	return w[i - 1] != '-';
}

/* parse_colon_list - "a : b:c" checked word by word into "a:b:c" (lower
 * case). Returns 0, or -1 with out untouched. */
static int
parse_colon_list(char *v, int (*word_ok)(const char *), char *out,
    size_t outlen)
{
	char tmp[64], *p, *next;

	tmp[0] = '\0';
	for (p = v; p != NULL; p = next) {
		char *c = strchr(p, ':'), *w;

		next = c ? c + 1 : NULL;
		if (c != NULL)
			*c = '\0';
		w = util_strlower(util_strtrim(p));
		if (!word_ok(w))
			return -1;
		if (tmp[0] != '\0')
			util_strlcat(tmp, ":", sizeof(tmp));
		if (util_strlcat(tmp, w, sizeof(tmp)) >= sizeof(tmp))
			return -1;
	}
	if (util_strlcpy(out, tmp, outlen) >= outlen)
		return -1;
	return 0;
}

/* uri_ok - RFC 3986 scheme ":" and printable ASCII; a mailto: needs an
 * '@'. The optional "!size" suffix (RFC 7489 6.4) is printable too. */
static int
uri_ok(const char *u)
{
	const char *p = u;

	if (!is_alpha((unsigned char)*p))
		return 0;
	while (is_alpha((unsigned char)*p) || is_digit((unsigned char)*p) ||
	    *p == '+' || *p == '-' || *p == '.')
		p++;
	if (*p++ != ':' || *p == '\0')
		return 0;
	for (; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
	if (util_strncaseprefix(u, "mailto:") && strchr(u, '@') == NULL)
		return 0;
	return 1;
}

/* parse_uris - comma-separated URIs; bad ones are dropped with a
 * warning (RFC 7489 6.3: syntax errors outside v and p are ignored). */
static void
parse_uris(struct dmarc_record *rec, const char *tag, char *v,
    char list[][DMARC_URI_LEN], size_t *n)
{
	char shown[SHOW_MAX], *p, *next;

	for (p = v; p != NULL; p = next) {
		char *c = strchr(p, ','), *u;

		next = c ? c + 1 : NULL;
		if (c != NULL)
			*c = '\0';
		u = util_strtrim(p);
		if (!uri_ok(u)) {
			warn(rec, "%s: \"%s\" is not a URI such as "
			    "mailto:dmarc@example.com; ignored", tag,
			    show(u, shown));
		} else if (*n == DMARC_URI_MAX) {
			warn(rec, "%s: only the first %d URIs are used", tag,
			    DMARC_URI_MAX);
			return;
		} else if (util_strlcpy(list[*n], u, DMARC_URI_LEN) >=
		    DMARC_URI_LEN) {
			warn(rec, "%s: \"%s\" is longer than %d bytes; ignored",
			    tag, show(u, shown), DMARC_URI_LEN - 1);
		} else {
			(*n)++;
		}
	}
}

static enum tag
tag_find(const char *name)
{
	int t;

	for (t = 0; t < T_NTAGS; t++)
		if (util_strcaseeq(name, tag_names[t]))
			return (enum tag)t;
	return T_NTAGS;
}

static void
tag_unknown(struct dmarc_record *rec, const char *name)
{
	char shown[SHOW_MAX];
	size_t i;

	for (i = 0; i < ARRAY_LEN(tag_known_later); i++)
		if (util_strcaseeq(name, tag_known_later[i]))
			return;
	warn(rec, "unknown tag \"%s\" ignored", show(name, shown));
}

/* parse_tag - one known tag's value into rec. Returns -1 for a bad p=
 * or sp=, which the caller judges once rua= is known. */
static int
parse_tag(struct dmarc_record *rec, enum tag t, char *v)
{
	char shown[SHOW_MAX];
	unsigned long n;

	switch (t) {
	case T_V:
		break;
	case T_P:
		return parse_policy(v, &rec->p);
	case T_SP:
		return parse_policy(v, &rec->sp);
	case T_NP:
		if (parse_policy(v, &rec->np) < 0)
			warn(rec, "np=%s is not none, quarantine or reject; "
			    "ignored", show(v, shown));
		break;
	case T_ADKIM:
	case T_ASPF:
		if (util_strcaseeq(v, "s") || util_strcaseeq(v, "r"))
			*(t == T_ADKIM ? &rec->adkim_strict : &rec->aspf_strict) =
			    lower((unsigned char)*v) == 's';
		else
			warn(rec, "%s=%s is not r or s; using r",
			    tag_names[t], show(v, shown));
		break;
	case T_PCT:
		if (parse_digits(v, 3, 100, &n) == 0)
			rec->pct = (int)n;
		else
			warn(rec, "pct=%s is not 0 to 100; using 100",
			    show(v, shown));
		break;
	case T_RUA:
		parse_uris(rec, "rua", v, rec->rua, &rec->nrua);
		break;
	case T_RUF:
		parse_uris(rec, "ruf", v, rec->ruf, &rec->nruf);
		break;
	case T_FO:
		show(v, shown);
		if (parse_colon_list(v, fo_word, rec->fo, sizeof(rec->fo)) < 0)
			warn(rec, "fo=%s is not a list of 0, 1, d, s; using 0",
			    shown);
		break;
	case T_RI:
		if (parse_digits(v, 32, UINT32_MAX, &n) == 0)
			rec->ri = n;
		else
			warn(rec, "ri=%s is not a number of seconds; using "
			    "86400", show(v, shown));
		break;
	case T_RF:
		show(v, shown);
		if (parse_colon_list(v, rf_word, rec->rf, sizeof(rec->rf)) < 0)
			warn(rec, "rf=%s is not a list of report formats; "
			    "using afrf", shown);
		break;
	case T_NTAGS:
		break;
	}
	return 0;
}

int
dmarc_parse(const char *txt, struct dmarc_record *rec, char *err,
    size_t errlen)
{
	char buf[DMARC_RECORD_MAX + 1], shown[SHOW_MAX];
	char bad_p[SHOW_MAX], bad_sp[SHOW_MAX];
	char *p, *next;
	unsigned seen = 0, bad = 0;
	size_t n = strlen(txt);

	memset(rec, 0, sizeof(*rec));
	rec->pct = 100;
	rec->ri = 86400;
	util_strlcpy(rec->fo, "0", sizeof(rec->fo));
	util_strlcpy(rec->rf, "afrf", sizeof(rec->rf));
	if (n > DMARC_RECORD_MAX) {
		util_seterr(err, errlen, "record is %zu bytes long; at most "
		    "%d are read", n, DMARC_RECORD_MAX);
		return -1;
	}
	if (dmarc1_len(txt) == 0) {
		version_error(txt, err, errlen);
		return -1;
	}
	memcpy(buf, txt, n + 1);
	for (p = buf; p != NULL; p = next) {
		char *semi = strchr(p, ';'), *name, *eq, *v;
		enum tag t;

		next = semi ? semi + 1 : NULL;
		if (semi != NULL)
			*semi = '\0';
		name = util_strtrim(p);
		if (*name == '\0')
			continue;       /* ";;" and a final ';' */
		if ((eq = strchr(name, '=')) == NULL) {
			warn(rec, "\"%s\" is not tag=value; ignored",
			    show(name, shown));
			continue;
		}
		*eq = '\0';
		name = util_strtrim(name);
		v = util_strtrim(eq + 1);
		if ((t = tag_find(name)) == T_NTAGS) {
			tag_unknown(rec, name);
			continue;
		}
		if (seen & (1u << t)) {
			util_seterr(err, errlen, "%s= appears twice; keep only "
			    "one", tag_names[t]);
			return -1;
		}
		seen |= 1u << t;
		if (parse_tag(rec, t, v) < 0) {
			show(v, t == T_P ? bad_p : bad_sp);
			bad |= 1u << t;
		}
	}
	if (rec->p == DMARC_POLICY_UNSET || (bad & (1u << T_SP))) {
		/* RFC 7489 6.6.3: a valid rua= still makes it p=none. */
		if (rec->nrua == 0) {
			if (bad & (1u << T_P))
				util_seterr(err, errlen, "p=%s: write p=none, "
				    "p=quarantine or p=reject", bad_p);
			else if (rec->p == DMARC_POLICY_UNSET)
				util_seterr(err, errlen, "no p= tag: add p=none "
				    "(or quarantine, or reject) after v=DMARC1");
			else
				util_seterr(err, errlen, "sp=%s: write sp=none, "
				    "sp=quarantine or sp=reject, or remove it",
				    bad_sp);
			return -1;
		}
		if (bad & (1u << T_P))
			warn(rec, "p=%s is not none, quarantine or reject; "
			    "treated as p=none because rua= is valid", bad_p);
		else if (rec->p == DMARC_POLICY_UNSET)
			warn(rec, "no p= tag; treated as p=none because rua= "
			    "is valid");
		else
			warn(rec, "sp=%s is not none, quarantine or reject; "
			    "treated as p=none because rua= is valid", bad_sp);
		rec->p = DMARC_POLICY_NONE;
		rec->sp = rec->np = DMARC_POLICY_UNSET;
		rec->p_fallback = 1;
	}
	return 0;
}

enum dmarc_select_rc
dmarc_select(const char *const *txts, size_t ntxt, struct dmarc_record *rec,
    char *err, size_t errlen)
{
	size_t i, n = 0, which = 0;

	memset(rec, 0, sizeof(*rec));
	for (i = 0; i < ntxt; i++)
		if (txts[i] != NULL && dmarc1_len(txts[i]) > 0) {
			n++;
			which = i;
		}
	if (n > 1) {
		util_seterr(err, errlen, "%zu TXT records start with v=DMARC1; "
		    "publish exactly one (RFC 7489 6.6.3)", n);
		return DMARC_SELECT_MULTIPLE;
	}
	if (n == 1)
		return dmarc_parse(txts[which], rec, err, errlen) == 0 ?
		    DMARC_SELECT_OK : DMARC_SELECT_INVALID;
	util_seterr(err, errlen, "no TXT record starts with v=DMARC1");
	/* A near miss ("v=dmarc1", "v=DMARC1 p=none") deserves its fix. */
	for (i = 0; i < ntxt; i++) {
		const char *p = txts[i];

		if (p == NULL)
			continue;
		while (is_wsp((unsigned char)*p))
			p++;
		if (lower((unsigned char)*p++) != 'v')
			continue;
		while (is_wsp((unsigned char)*p))
			p++;
		if (*p++ != '=')
			continue;
		while (is_wsp((unsigned char)*p))
			p++;
		if (util_strncaseprefix(p, "DMARC")) {
			version_error(txts[i], err, errlen);
			break;
		}
	}
	return DMARC_SELECT_NONE;
}

int
dmarc_suggest(const char *domain, const char *rua, char *out, size_t outlen)
{
	struct domain d;
	char uri[DMARC_URI_LEN];
	int n;

	if (domain_parse(domain, &d) < 0)
		return -1;
	if (rua == NULL)
		n = snprintf(uri, sizeof(uri), "mailto:dmarc@%s", d.s);
	else if (strchr(rua, ':') == NULL)
		n = snprintf(uri, sizeof(uri), "mailto:%s", rua);
	else
		n = snprintf(uri, sizeof(uri), "%s", rua);
	/* ',' and ';' separate URIs and tags: RFC 7489 wants them %-encoded. */
	if (n < 0 || (size_t)n >= sizeof(uri) || !uri_ok(uri) ||
	    strpbrk(uri, ",;") != NULL)
		return -1;
	n = snprintf(out, outlen, "v=DMARC1; p=none; rua=%s", uri);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}
