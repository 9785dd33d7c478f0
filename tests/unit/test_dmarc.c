/*
 * test_dmarc - organizational domains (a small PSL written here, the
 * fallback without a list, and a smoke test of the installed list),
 * record parsing and selection, alignment, evaluation, the
 * Authentication-Results text and the suggested record.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmarc.h"
#include "tap.h"
#include "util.h"

/* A list with every kind of rule, plus lines the loader must skip. */
static const char psl_text[] =
    "// test list\n"
    "// ===BEGIN ICANN DOMAINS===\n"
    "com\n"
    "uk\n"
    "co.uk\n"
    "Gov.UK\n"                          /* upper case in the file */
    "*.ck\n"
    "!www.ck\n"
    "jp\n"
    "*.kawasaki.jp\n"
    "!city.kawasaki.jp\n"
    "   // indented comment\n"
    "org and the rest of the line is ignored\n"
    "\xe5\x85\xac\xe5\x8f\xb8.cn\n"     /* 公司.cn = xn--55qx5d.cn */
    "a\xc3\xa9roport.ci\n"              /* aéroport.ci */
    "\xe5\x80\x8b\xe4\xba\xba.\xe9\xa6\x99\xe6\xb8\xaf\n" /* 個人.香港 */
    "*.\xd1\x80\xd1\x84\n"             /* *.рф */
    "\xff.cn\n"                          /* bad UTF-8: skipped */
    "\xc0\xae.cn\n"                      /* overlong UTF-8: skipped */
    "a..b\n"
    "foo.*.bar\n"
    "!\n"
    "\n"
    "// ===END ICANN DOMAINS===\n"
    "// ===BEGIN PRIVATE DOMAINS===\n"
    "github.io\n"
    "blogspot.com\n"
    "// ===END PRIVATE DOMAINS===";      /* no final newline */

static struct dmarc_psl *psl;

static void
test_org_domain(void)
{
	static const struct { const char *in, *want; } t[] = {
		{ "example.com", "example.com" },
		{ "a.b.example.com", "example.com" },
		{ "example.co.uk", "example.co.uk" },
		{ "x.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },               /* a suffix is its own */
		{ "com", "com" },
		{ "x.gov.uk", "x.gov.uk" },
		{ "bar.ck", "bar.ck" },             /* *.ck: a suffix */
		{ "foo.bar.ck", "foo.bar.ck" },
		{ "a.foo.bar.ck", "foo.bar.ck" },
		{ "www.ck", "www.ck" },             /* !www.ck */
		{ "a.b.www.ck", "www.ck" },
		{ "a.b.kawasaki.jp", "a.b.kawasaki.jp" },
		{ "city.kawasaki.jp", "city.kawasaki.jp" },
		{ "a.city.kawasaki.jp", "city.kawasaki.jp" },
		{ "x.y.example.jp", "example.jp" },
		{ "mail.example.org", "example.org" },
		{ "localhost", "localhost" },       /* single label */
		{ "a.b.example.zz", "example.zz" }, /* implicit "*" rule */
		{ "example.com.", "example.com" },
		{ "WWW.Example.COM", "example.com" },
		{ "X.Example.CO.UK.", "example.co.uk" },
		{ "alice.github.io", "alice.github.io" },
		{ "www.alice.github.io", "alice.github.io" },
		{ "github.io", "github.io" },
		{ "me.blogspot.com", "me.blogspot.com" },
		{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
		/* U-label rules match as A-labels (RFC 3492) */
		{ "a.b.xn--55qx5d.cn", "b.xn--55qx5d.cn" },
		{ "A.B.XN--55QX5D.CN", "b.xn--55qx5d.cn" },
		{ "b.xn--55qx5d.cn", "b.xn--55qx5d.cn" },
		{ "x.y.xn--aroport-bya.ci", "y.xn--aroport-bya.ci" },
		{ "a.b.xn--gmqw5a.xn--j6w193g", "b.xn--gmqw5a.xn--j6w193g" },
		{ "a.b.c.xn--p1ai", "b.c.xn--p1ai" },
		{ "a.b.cn", "b.cn" },
		{ "_dmarc.example.com", "example.com" },
	};
	static const char *const bad[] = {
		"", ".", "a..b", ".example.com", "example.com..", "a b.com",
		"ex@mple.com", "\xc3\xa9.com",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	};
	char out[DMARC_DOMAIN_MAX + 1], big[300];
	size_t i;

	for (i = 0; i < ARRAY_LEN(t); i++) {
		int rc = dmarc_org_domain(psl, t[i].in, out, sizeof(out));

		is_int(rc, 0, "org_domain('%s') rc", t[i].in);
		if (rc == 0)
			is_str(out, t[i].want, "org_domain('%s')", t[i].in);
	}
	for (i = 0; i < ARRAY_LEN(bad); i++)
		is_int(dmarc_org_domain(psl, bad[i], out, sizeof(out)), -1,
		    "org_domain refuses '%s'", bad[i]);
	is_int(dmarc_org_domain(psl, NULL, out, sizeof(out)), -1,
	    "org_domain refuses NULL");
	/* 63-byte labels are fine, 254 bytes in all is not. */
	memset(big, 'a', sizeof(big));
	for (i = 63; i < sizeof(big); i += 64)
		big[i] = '.';
	big[253] = '\0';
	is_int(dmarc_org_domain(psl, big, out, sizeof(out)), 0, "253 bytes ok");
	big[253] = 'a';
	big[254] = '\0';
	is_int(dmarc_org_domain(psl, big, out, sizeof(out)), -1,
	    "254 bytes refused");
	big[254] = '.';
	big[255] = '\0';
	is_int(dmarc_org_domain(psl, big, out, sizeof(out)), -1,
	    "254 bytes and a dot refused");
	is_int(dmarc_org_domain(psl, "a.example.com", out, 11), -1,
	    "short out buffer");
	is_int(dmarc_org_domain(psl, "a.example.com", out, 12), 0,
	    "exact out buffer");
}

/* Concurrent readers share one list with no lock (run under
 * --enable-sanitizers for what that is worth; the design is that a
 * loaded list is never written). */
static void *
reader(void *arg)
{
	static const char *const in[] = { "x.example.co.uk", "a.b.www.ck",
	    "me.alice.github.io", "a.b.xn--55qx5d.cn" };
	static const char *const want[] = { "example.co.uk", "www.ck",
	    "alice.github.io", "b.xn--55qx5d.cn" };
	char out[DMARC_DOMAIN_MAX + 1];
	long bad = 0;

	for (int i = 0; i < 5000; i++) {
		int k = i % 4;

		if (dmarc_org_domain(psl, in[k], out, sizeof(out)) != 0 ||
		    strcmp(out, want[k]) != 0)
			bad++;
	}
	*(long *)arg = bad;
	return NULL;
}

static void
test_threads(void)
{
	pthread_t th[4];
	long bad[4] = { 0 };
	int i, started = 0;

	for (i = 0; i < 4; i++)
		if (pthread_create(&th[i], NULL, reader, &bad[i]) == 0)
			started++;
		else
			break;
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	is_int(started, 4, "4 reader threads started");
	is_int(bad[0] + bad[1] + bad[2] + bad[3], 0,
	    "concurrent readers all agree");
}

/* Without a list: the last two labels. */
static void
test_org_fallback(void)
{
	static const struct { const char *in, *want; } t[] = {
		{ "example.com", "example.com" },
		{ "a.b.example.com", "example.com" },
		{ "x.example.co.uk", "co.uk" },     /* the known weakness */
		{ "localhost", "localhost" },
		{ "Mail.Example.COM.", "example.com" },
	};
	char out[DMARC_DOMAIN_MAX + 1];

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		is_int(dmarc_org_domain(NULL, t[i].in, out, sizeof(out)), 0,
		    "fallback org_domain('%s') rc", t[i].in);
		is_str(out, t[i].want, "fallback org_domain('%s')", t[i].in);
	}
	is_int((long long)dmarc_psl_rules(NULL), 0, "no list, no rules");
}

static void
test_psl_load(const char *dir)
{
	char path[512], err[DMARC_ERR_MAX], out[DMARC_DOMAIN_MAX + 1];
	struct dmarc_psl *p;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/missing.dat", dir);
	err[0] = '\0';
	ok(dmarc_psl_load(path, err, sizeof(err)) == NULL, "missing file: NULL");
	ok(strstr(err, "missing.dat") != NULL &&
	    strstr(err, "last two labels") != NULL, "missing file: %s", err);

	snprintf(path, sizeof(path), "%s/empty.dat", dir);
	fp = fopen(path, "w");
	fputs("// only comments\n\n", fp);
	fclose(fp);
	err[0] = '\0';
	ok(dmarc_psl_load(path, err, sizeof(err)) == NULL, "no rules: NULL");
	ok(strstr(err, "no rules") != NULL, "no rules: %s", err);

	/* An overlong line is skipped whole, the next rule still read. */
	snprintf(path, sizeof(path), "%s/long.dat", dir);
	fp = fopen(path, "w");
	for (int i = 0; i < 700; i++)
		fputc('x', fp);
	fputs("\nco.uk\n", fp);
	fclose(fp);
	p = dmarc_psl_load(path, err, sizeof(err));
	ok(p != NULL && dmarc_psl_rules(p) == 1, "overlong line skipped");
	ok(p && dmarc_org_domain(p, "a.b.co.uk", out, sizeof(out)) == 0 &&
	    strcmp(out, "b.co.uk") == 0, "rule after an overlong line");
	dmarc_psl_free(p);
	dmarc_psl_free(NULL);

	snprintf(path, sizeof(path), "%s/psl.dat", dir);
	fp = fopen(path, "w");
	fputs(psl_text, fp);
	fclose(fp);
	psl = dmarc_psl_load(path, err, sizeof(err));
	ok(psl != NULL, "custom list loads");
	/* com uk co.uk gov.uk ck(wild) www.ck jp kawasaki.jp(wild)
	 * city.kawasaki.jp org 公司.cn aéroport.ci 個人.香港 рф(wild)
	 * github.io blogspot.com */
	is_int((long long)dmarc_psl_rules(psl), 16, "custom list rule count");
}

/* The installed list, if any: a few names whose rules have been stable
 * for years. */
static void
test_psl_real(void)
{
	static const struct { const char *in, *want; } t[] = {
		{ "mail.example.co.uk", "example.co.uk" },
		{ "a.b.example.com", "example.com" },
		{ "www.me.blogspot.com", "me.blogspot.com" },
		{ "x.user.github.io", "user.github.io" },
		{ "a.www.ck", "www.ck" },
		{ "a.b.c.kawasaki.jp", "b.c.kawasaki.jp" },
		{ "a.city.kawasaki.jp", "city.kawasaki.jp" },
		{ "a.b.xn--55qx5d.cn", "b.xn--55qx5d.cn" },
	};
	char err[DMARC_ERR_MAX], out[DMARC_DOMAIN_MAX + 1];
	struct dmarc_psl *real;

	if (access(DMARC_PSL_PATH, R_OK) != 0) {
		ok(1, "# SKIP %s not installed", DMARC_PSL_PATH);
		return;
	}
	real = dmarc_psl_load(DMARC_PSL_PATH, err, sizeof(err));
	ok(real != NULL, "installed list loads");
	if (real == NULL)
		return;
	ok(dmarc_psl_rules(real) > 5000, "installed list: %zu rules",
	    dmarc_psl_rules(real));
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		out[0] = '\0';
		dmarc_org_domain(real, t[i].in, out, sizeof(out));
		is_str(out, t[i].want, "installed list: org_domain('%s')", t[i].in);
	}
	dmarc_psl_free(real);
}

#define NOSP DMARC_POLICY_UNSET
#define NONE DMARC_POLICY_NONE
#define QUAR DMARC_POLICY_QUARANTINE
#define REJ DMARC_POLICY_REJECT

static void
test_parse(void)
{
	static const struct {
		const char *txt;
		int rc;
		enum dmarc_policy p, sp, np;
		int pct;
		size_t nrua;
		const char *msg;        /* in err (rc -1) or warning (rc 0) */
	} t[] = {
		{ "v=DMARC1; p=none", 0, NONE, NOSP, NOSP, 100, 0, "" },
		{ "v=DMARC1;p=reject", 0, REJ, NOSP, NOSP, 100, 0, "" },
		{ "v=DMARC1; p=quarantine;", 0, QUAR, NOSP, NOSP, 100, 0, "" },
		{ "  v = DMARC1 ;  p = reject ; ", 0, REJ, NOSP, NOSP, 100, 0, "" },
		{ "v=DMARC1;\tp=reject;\tsp=none", 0, REJ, NONE, NOSP, 100, 0, "" },
		{ "V=DMARC1; P=Reject; SP=QUARANTINE", 0, REJ, QUAR, NOSP, 100, 0, "" },
		{ "v=DMARC1;; p=none;;", 0, NONE, NOSP, NOSP, 100, 0, "" },
		{ "v=DMARC1; np=reject; p=none", 0, NONE, NOSP, REJ, 100, 0, "" },
		/* not DMARC1 at the front */
		{ "p=none; v=DMARC1", -1, 0, 0, 0, 0, 0, "must be the first tag" },
		{ "p=none", -1, 0, 0, 0, 0, 0, "must start with v=DMARC1" },
		{ "", -1, 0, 0, 0, 0, 0, "must start with v=DMARC1" },
		{ "v=dmarc1; p=none", -1, 0, 0, 0, 0, 0, "exactly DMARC1" },
		{ "v=DMARC1 p=none", -1, 0, 0, 0, 0, 0, "followed by ';'" },
		{ "v=DMARC2; p=none", -1, 0, 0, 0, 0, 0, "must be DMARC1" },
		{ "v=DMARC1x; p=none", -1, 0, 0, 0, 0, 0, "must be DMARC1" },
		{ "v=spf1 -all", -1, 0, 0, 0, 0, 0, "not a DMARC record (v=spf1 -all)" },
		/* p and sp, with and without a valid rua (RFC 7489 6.6.3) */
		{ "v=DMARC1", -1, 0, 0, 0, 0, 0, "no p= tag" },
		{ "v=DMARC1; p=bogus", -1, 0, 0, 0, 0, 0, "p=bogus: write p=none" },
		{ "v=DMARC1; p=", -1, 0, 0, 0, 0, 0, "p=: write" },
		{ "v=DMARC1; p=no\x01ne", -1, 0, 0, 0, 0, 0, "p=no?ne" },
		{ "v=DMARC1; p=bogus; rua=mailto:d@example.com", 0, NONE, NOSP,
		    NOSP, 100, 1, "p=bogus is not none, quarantine or reject; treated as p=none" },
		{ "v=DMARC1; rua=mailto:d@example.com", 0, NONE, NOSP, NOSP, 100,
		    1, "no p= tag; treated as p=none" },
		{ "v=DMARC1; p=bogus; rua=mailto:nobody", -1, 0, 0, 0, 0, 0,
		    "p=bogus" },
		{ "v=DMARC1; p=reject; sp=bogus", -1, 0, 0, 0, 0, 0, "sp=bogus" },
		{ "v=DMARC1; p=reject; sp=bogus; np=reject; rua=mailto:a@b.example",
		    0, NONE, NOSP, NOSP, 100, 1, "sp=bogus is not" },
		{ "v=DMARC1; p=reject; np=bogus", 0, REJ, NOSP, NOSP, 100, 0,
		    "np=bogus" },
		/* duplicates */
		{ "v=DMARC1; p=none; p=reject", -1, 0, 0, 0, 0, 0,
		    "p= appears twice" },
		{ "v=DMARC1; p=none; v=DMARC1", -1, 0, 0, 0, 0, 0,
		    "v= appears twice" },
		{ "v=DMARC1; p=none; RUA=mailto:a@x.example; rua=mailto:b@x.example",
		    -1, 0, 0, 0, 0, 0, "rua= appears twice" },
		/* pct and friends fall back to defaults (RFC 7489 6.3) */
		{ "v=DMARC1; p=none; pct=0", 0, NONE, NOSP, NOSP, 0, 0, "" },
		{ "v=DMARC1; p=none; pct=100", 0, NONE, NOSP, NOSP, 100, 0, "" },
		{ "v=DMARC1; p=none; pct=101", 0, NONE, NOSP, NOSP, 100, 0, "pct=101" },
		{ "v=DMARC1; p=none; pct=-1", 0, NONE, NOSP, NOSP, 100, 0, "pct=-1" },
		{ "v=DMARC1; p=none; pct=0050", 0, NONE, NOSP, NOSP, 100, 0, "pct=" },
		{ "v=DMARC1; p=none; pct=", 0, NONE, NOSP, NOSP, 100, 0, "pct=" },
		{ "v=DMARC1; p=none; adkim=x", 0, NONE, NOSP, NOSP, 100, 0,
		    "adkim=x is not r or s" },
		{ "v=DMARC1; p=none; ri=99999999999", 0, NONE, NOSP, NOSP, 100, 0,
		    "ri=" },
		{ "v=DMARC1; p=none; fo=2", 0, NONE, NOSP, NOSP, 100, 0, "fo=2" },
		{ "v=DMARC1; p=none; rf=a b", 0, NONE, NOSP, NOSP, 100, 0, "rf=" },
		/* unknown and malformed tags */
		{ "v=DMARC1; p=none; foo=bar", 0, NONE, NOSP, NOSP, 100, 0,
		    "unknown tag \"foo\"" },
		{ "v=DMARC1; p=none; t=y; psd=n", 0, NONE, NOSP, NOSP, 100, 0, "" },
		{ "v=DMARC1; p=none; junk", 0, NONE, NOSP, NOSP, 100, 0,
		    "\"junk\" is not tag=value" },
		/* URIs */
		{ "v=DMARC1; p=none; rua=mailto:a@x.example , mailto:b@x.example!10m",
		    0, NONE, NOSP, NOSP, 100, 2, "" },
		{ "v=DMARC1; p=none; rua=notauri,mailto:a@x.example", 0, NONE, NOSP,
		    NOSP, 100, 1, "rua: \"notauri\" is not a URI" },
		{ "v=DMARC1; p=none; rua=mailto:a@x.example,", 0, NONE, NOSP,
		    NOSP, 100, 1, "rua: \"\" is not a URI" },
		{ "v=DMARC1; p=none; rua=m:1@x,m:2@x,m:3@x,m:4@x,m:5@x,m:6@x,"
		    "m:7@x,m:8@x,m:9@x", 0, NONE, NOSP, NOSP, 100, 8,
		    "only the first 8" },
	};
	char err[DMARC_ERR_MAX];
	struct dmarc_record rec;

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		int rc;

		err[0] = '\0';
		rc = dmarc_parse(t[i].txt, &rec, err, sizeof(err));
		is_int(rc, t[i].rc, "parse('%s') rc", t[i].txt);
		if (rc == -1) {
			if (!ok(strstr(err, t[i].msg) != NULL,
			    "parse('%s') err: %s", t[i].txt, err))
				printf("#   want \"%s\"\n", t[i].msg);
			continue;
		}
		if (rc != 0)
			continue;
		is_int(rec.p, t[i].p, "parse('%s') p", t[i].txt);
		is_int(rec.sp, t[i].sp, "parse('%s') sp", t[i].txt);
		is_int(rec.np, t[i].np, "parse('%s') np", t[i].txt);
		is_int(rec.pct, t[i].pct, "parse('%s') pct", t[i].txt);
		is_int((long long)rec.nrua, (long long)t[i].nrua,
		    "parse('%s') nrua", t[i].txt);
		if (t[i].msg[0] == '\0')
			is_str(rec.warning, "", "parse('%s') no warning",
			    t[i].txt);
		else if (!ok(strstr(rec.warning, t[i].msg) != NULL,
		    "parse('%s') warning: %s", t[i].txt, rec.warning))
			printf("#   want \"%s\"\n", t[i].msg);
	}
}

static void
test_parse_all_tags(void)
{
	struct dmarc_record rec;
	char err[DMARC_ERR_MAX], *big;

	is_int(dmarc_parse("v=DMARC1; p=quarantine; sp=reject; np=none; "
	    "adkim=s; aspf=S; pct=50; rua=mailto:a@example.com,"
	    "mailto:b@example.net!10m; ruf=mailto:f@example.com; fo=1 : D; "
	    "ri=3600; rf=afrf", &rec, err, sizeof(err)), 0, "all tags");
	is_int(rec.p, QUAR, "all tags: p");
	is_int(rec.sp, REJ, "all tags: sp");
	is_int(rec.np, NONE, "all tags: np");
	is_int(rec.adkim_strict, 1, "all tags: adkim");
	is_int(rec.aspf_strict, 1, "all tags: aspf");
	is_int(rec.pct, 50, "all tags: pct");
	is_int((long long)rec.nrua, 2, "all tags: nrua");
	is_str(rec.rua[0], "mailto:a@example.com", "all tags: rua[0]");
	is_str(rec.rua[1], "mailto:b@example.net!10m", "all tags: rua[1]");
	is_int((long long)rec.nruf, 1, "all tags: nruf");
	is_str(rec.ruf[0], "mailto:f@example.com", "all tags: ruf[0]");
	is_str(rec.fo, "1:d", "all tags: fo");
	is_int((long long)rec.ri, 3600, "all tags: ri");
	is_str(rec.rf, "afrf", "all tags: rf");
	is_int(rec.p_fallback, 0, "all tags: no fallback");
	is_str(rec.warning, "", "all tags: no warning");

	is_int(dmarc_parse("v=DMARC1; p=none", &rec, err, sizeof(err)), 0,
	    "defaults");
	ok(rec.adkim_strict == 0 && rec.aspf_strict == 0 && rec.pct == 100 &&
	    rec.ri == 86400 && strcmp(rec.fo, "0") == 0 &&
	    strcmp(rec.rf, "afrf") == 0 && rec.nrua == 0 && rec.nruf == 0,
	    "defaults: r, r, 100, 86400, 0, afrf");
	is_int(dmarc_parse("v=DMARC1; p=bogus; rua=mailto:d@example.com",
	    &rec, err, sizeof(err)), 0, "fallback");
	is_int(rec.p_fallback, 1, "fallback: flagged");

	/* Longer than DMARC_RECORD_MAX. */
	big = xmalloc(DMARC_RECORD_MAX + 2);
	memset(big, ' ', DMARC_RECORD_MAX + 1);
	memcpy(big, "v=DMARC1; p=none;", 17);
	big[DMARC_RECORD_MAX + 1] = '\0';
	is_int(dmarc_parse(big, &rec, err, sizeof(err)), -1, "too long");
	ok(strstr(err, "at most") != NULL, "too long: %s", err);
	big[DMARC_RECORD_MAX] = '\0';
	is_int(dmarc_parse(big, &rec, err, sizeof(err)), 0, "longest accepted");
	free(big);
	/* NULL err buffer is allowed. */
	is_int(dmarc_parse("p=none", &rec, NULL, 0), -1, "NULL err");
}

static void
test_select(void)
{
	static const char *const spf_and_dmarc[] = { "v=spf1 -all", "v=DMARC1; p=reject" };
	static const char *const spf_only[] = { "v=spf1 -all", "google-site-verification=x" };
	static const char *const two[] = { "v=DMARC1; p=none", "v=DMARC1; p=reject" };
	static const char *const bad[] = { "v=spf1 -all", "v=DMARC1; p=bogus" };
	static const char *const lower[] = { "v=dmarc1; p=none" };
	static const char *const nosemi[] = { "v=DMARC1 p=none" };
	static const char *const withnull[] = { NULL, "v=DMARC1;p=quarantine" };
	static const char *const dmarc2[] = { "v=spf1 -all", " V = Dmarc2; p=none" };
	static const struct {
		const char *name;
		const char *const *txts;
		size_t n;
		enum dmarc_select_rc rc;
		enum dmarc_policy p;
		const char *msg;
	} t[] = {
		{ "spf and dmarc", spf_and_dmarc, 2, DMARC_SELECT_OK, REJ, "" },
		{ "nothing", NULL, 0, DMARC_SELECT_NONE, 0, "no TXT record" },
		{ "spf only", spf_only, 2, DMARC_SELECT_NONE, 0, "no TXT record" },
		{ "two records", two, 2, DMARC_SELECT_MULTIPLE, 0, "2 TXT records" },
		{ "one invalid", bad, 2, DMARC_SELECT_INVALID, 0, "p=bogus" },
		{ "lower-case version", lower, 1, DMARC_SELECT_NONE, 0,
		    "exactly DMARC1" },
		{ "no ';' after version", nosemi, 1, DMARC_SELECT_NONE, 0,
		    "followed by ';'" },
		{ "NULL entry", withnull, 2, DMARC_SELECT_OK, QUAR, "" },
		{ "DMARC2", dmarc2, 2, DMARC_SELECT_NONE, 0,
		    "v=Dmarc2: the version must be DMARC1" },
	};
	struct dmarc_record rec;
	char err[DMARC_ERR_MAX];

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		enum dmarc_select_rc rc;

		err[0] = '\0';
		rc = dmarc_select(t[i].txts, t[i].n, &rec, err, sizeof(err));
		is_int(rc, t[i].rc, "select %s: rc", t[i].name);
		if (rc == DMARC_SELECT_OK)
			is_int(rec.p, t[i].p, "select %s: p", t[i].name);
		else
			ok(strstr(err, t[i].msg) != NULL, "select %s: %s",
			    t[i].name, err);
	}
}

static void
test_aligned(void)
{
	static const struct {
		const char *from, *auth;
		int strict, want, want_fallback;
	} t[] = {
		{ "example.com", "example.com", 1, 1, 1 },
		{ "example.com", "mail.example.com", 1, 0, 0 },
		{ "example.com", "mail.example.com", 0, 1, 1 },
		{ "mail.example.com", "example.com", 0, 1, 1 },
		{ "a.example.com", "b.example.com", 0, 1, 0 }, /* siblings */
		{ "example.com", "example.net", 0, 0, 0 },
		{ "example.com", "badexample.com", 0, 0, 0 },
		{ "bank.co.uk", "evil.co.uk", 0, 0, 0 },
		{ "bank.co.uk", "co.uk", 0, 0, 1 },
		{ "alice.github.io", "bob.github.io", 0, 0, 0 },
		{ "www.alice.github.io", "alice.github.io", 0, 1, 1 },
		{ "Example.COM.", "example.com", 1, 1, 1 },
		{ "EXAMPLE.com", "mail.Example.Com.", 0, 1, 1 },
		{ "example..com", "example.com", 0, 0, 0 },
		{ "example.com", "", 0, 0, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		is_int(dmarc_aligned(t[i].from, t[i].auth, t[i].strict, psl),
		    t[i].want, "aligned('%s', '%s', %s)", t[i].from, t[i].auth,
		    t[i].strict ? "strict" : "relaxed");
		is_int(dmarc_aligned(t[i].from, t[i].auth, t[i].strict, NULL),
		    t[i].want_fallback, "fallback aligned('%s', '%s', %s)",
		    t[i].from, t[i].auth, t[i].strict ? "strict" : "relaxed");
	}
	is_int(dmarc_aligned(NULL, "example.com", 0, psl), 0, "NULL from");
}

static void
test_evaluate(void)
{
	static const char *const d_mail[] = { "other.org", "mail.example.com" };
	static const char *const d_other[] = { "other.org" };
	static const char *const d_apex[] = { "example.com" };
	static const struct {
		const char *name, *txt, *from, *rec_domain;
		const char *const *dkim;
		size_t ndkim;
		const char *spf;
		int nx;
		enum dmarc_result result;
		int aligned;
		const char *dkim_domain, *ar;
	} t[] = {
		{ "no record", NULL, "example.com", NULL, d_mail, 2, "example.com",
		    0, DMARC_NONE, 0, NULL, "dmarc=none header.from=example.com" },
		{ "pass via dkim", "v=DMARC1; p=reject", "example.com", NULL,
		    d_mail, 2, NULL, 0, DMARC_PASS, DMARC_ALIGNED_DKIM,
		    "mail.example.com", "dmarc=pass (p=reject) header.from=example.com" },
		{ "strict dkim fails, spf passes", "v=DMARC1; p=reject; adkim=s",
		    "example.com", "example.com", d_mail, 2, "example.com", 0,
		    DMARC_PASS, DMARC_ALIGNED_SPF, NULL,
		    "dmarc=pass (p=reject) header.from=example.com" },
		{ "pass via spf relaxed", "v=DMARC1; p=quarantine", "example.com",
		    NULL, NULL, 0, "bounce.example.com", 0, DMARC_PASS,
		    DMARC_ALIGNED_SPF, NULL,
		    "dmarc=pass (p=quarantine) header.from=example.com" },
		{ "strict spf", "v=DMARC1; p=quarantine; aspf=s", "example.com",
		    NULL, NULL, 0, "bounce.example.com", 0, DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=quarantine) header.from=example.com" },
		{ "both", "v=DMARC1; p=none", "Example.COM", NULL, d_apex, 1,
		    "example.com", 0, DMARC_PASS,
		    DMARC_ALIGNED_DKIM | DMARC_ALIGNED_SPF, "example.com",
		    "dmarc=pass (p=none) header.from=example.com" },
		{ "fail", "v=DMARC1; p=reject", "example.com", NULL, d_other, 1,
		    "other.org", 0, DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=reject) header.from=example.com" },
		{ "subdomain uses sp", "v=DMARC1; p=reject; sp=quarantine",
		    "a.example.com", "example.com", d_other, 1, NULL, 0,
		    DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=reject sp=quarantine) header.from=a.example.com" },
		{ "subdomain without sp uses p", "v=DMARC1; p=reject",
		    "a.example.com", "example.com", d_other, 1, NULL, 0,
		    DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=reject) header.from=a.example.com" },
		{ "own record ignores sp", "v=DMARC1; p=reject; sp=none",
		    "a.example.com", "A.Example.com.", d_other, 1, NULL, 0,
		    DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=reject) header.from=a.example.com" },
		{ "nonexistent uses np", "v=DMARC1; p=none; sp=quarantine; np=reject",
		    "nx.example.com", "example.com", NULL, 0, NULL, 1,
		    DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=none np=reject) header.from=nx.example.com" },
		{ "nonexistent without np uses sp", "v=DMARC1; p=none; sp=quarantine",
		    "nx.example.com", "example.com", NULL, 0, NULL, 1,
		    DMARC_FAIL, 0, NULL,
		    "dmarc=fail (p=none sp=quarantine) header.from=nx.example.com" },
		{ "subdomain passes", "v=DMARC1; p=reject; sp=reject",
		    "a.example.com", "example.com", d_apex, 1, NULL, 0,
		    DMARC_PASS, DMARC_ALIGNED_DKIM, "example.com",
		    "dmarc=pass (p=reject sp=reject) header.from=a.example.com" },
	};
	static const enum dmarc_policy want_policy[] = {
		NOSP, REJ, REJ, QUAR, QUAR, NONE, REJ, QUAR, REJ, REJ, REJ, QUAR, REJ,
	};
	char err[DMARC_ERR_MAX], ar[256];

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct dmarc_record rec;
		struct dmarc_query q = {
			t[i].from, t[i].txt ? &rec : NULL, t[i].rec_domain,
			t[i].dkim, t[i].ndkim, t[i].spf, t[i].nx,
		};
		struct dmarc_verdict v;

		if (t[i].txt != NULL && dmarc_parse(t[i].txt, &rec, err,
		    sizeof(err)) < 0) {
			ok(0, "evaluate %s: %s", t[i].name, err);
			continue;
		}
		is_int(dmarc_evaluate(psl, &q, &v), t[i].result,
		    "evaluate %s: result", t[i].name);
		is_int(v.aligned, t[i].aligned, "evaluate %s: aligned", t[i].name);
		ok(t[i].dkim_domain ? v.dkim_domain != NULL &&
		    strcmp(v.dkim_domain, t[i].dkim_domain) == 0 :
		    v.dkim_domain == NULL, "evaluate %s: dkim domain", t[i].name);
		is_int(v.policy, want_policy[i], "evaluate %s: policy", t[i].name);
		dmarc_format_ar(&v, t[i].from, ar, sizeof(ar));
		is_str(ar, t[i].ar, "evaluate %s: A-R", t[i].name);
	}
	{
		struct dmarc_record rec;
		struct dmarc_query q = { "example.com", &rec, NULL, NULL, 0,
		    NULL, 0 };
		struct dmarc_verdict v;

		dmarc_parse("v=DMARC1; p=reject; pct=25", &rec, err, sizeof(err));
		dmarc_evaluate(psl, &q, &v);
		is_int(v.pct, 25, "evaluate: pct passed on");
		is_str(v.policy_tag, "p", "evaluate: policy tag");
	}
}

static void
test_format(void)
{
	struct dmarc_verdict v;
	char out[64];
	size_t n;

	memset(&v, 0, sizeof(v));
	v.result = DMARC_TEMPERROR;
	dmarc_format_ar(&v, "example.com", out, sizeof(out));
	is_str(out, "dmarc=temperror header.from=example.com", "A-R temperror");
	v.result = DMARC_PERMERROR;
	dmarc_format_ar(&v, "example.com.", out, sizeof(out));
	is_str(out, "dmarc=permerror header.from=example.com", "A-R permerror");
	v.result = DMARC_NONE;
	dmarc_format_ar(&v, "ex ample\"\\.com\x01", out, sizeof(out));
	is_str(out, "dmarc=none header.from=\"ex ample\\\"\\\\.com?\"",
	    "A-R odd From domain quoted");
	dmarc_format_ar(&v, NULL, out, sizeof(out));
	is_str(out, "dmarc=none", "A-R without From domain");
	n = dmarc_format_ar(&v, "example.com", out, 10);
	is_int((long long)n, 34, "A-R short buffer: needed length");
	is_str(out, "dmarc=non", "A-R short buffer: truncated");
	is_str(dmarc_policy_name(DMARC_POLICY_UNSET), "", "policy name unset");
	is_str(dmarc_result_name(DMARC_FAIL), "fail", "result name fail");
}

static void
test_suggest(void)
{
	static const struct { const char *domain, *rua; int rc; const char *want; } t[] = {
		{ "example.com", NULL, 0, "v=DMARC1; p=none; rua=mailto:dmarc@example.com" },
		{ "Example.COM.", "reports@example.net", 0,
		    "v=DMARC1; p=none; rua=mailto:reports@example.net" },
		{ "example.com", "mailto:d@example.com", 0,
		    "v=DMARC1; p=none; rua=mailto:d@example.com" },
		{ "example.com", "a,b@example.com", -1, NULL },
		{ "example.com", "a;b@example.com", -1, NULL },
		{ "example.com", "not an address", -1, NULL },
		{ "bad domain", NULL, -1, NULL },
	};
	char out[DMARC_RECORD_MAX];

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		int rc = dmarc_suggest(t[i].domain, t[i].rua, out, sizeof(out));

		is_int(rc, t[i].rc, "suggest('%s', '%s') rc", t[i].domain,
		    t[i].rua ? t[i].rua : "NULL");
		if (rc == 0) {
			struct dmarc_record rec;

			is_str(out, t[i].want, "suggest('%s')", t[i].domain);
			is_int(dmarc_parse(out, &rec, NULL, 0), 0,
			    "suggestion parses");
		}
	}
	is_int(dmarc_suggest("example.com", NULL, out, 20), -1,
	    "suggest: short buffer");
}

int
main(void)
{
	char dir[256], path[300];

	if (tap_tmpdir(dir, sizeof(dir), "test_dmarc") == NULL)
		return 99;
	test_psl_load(dir);
	if (psl != NULL) {
		test_org_domain();
		test_threads();
		test_aligned();
		test_evaluate();
	}
	test_org_fallback();
	test_psl_real();
	test_parse();
	test_parse_all_tags();
	test_select();
	test_format();
	test_suggest();
	dmarc_psl_free(psl);
	snprintf(path, sizeof(path), "%s/empty.dat", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/long.dat", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/psl.dat", dir);
	unlink(path);
	rmdir(dir);
	return done();
}
