/*
 * test_selfcheck - the pure parts of selfcheck.c: the SPF record to
 * publish (addresses inserted before the all), block-list query names,
 * the text and JSON output, selfcheck_failed; argument errors; and a
 * whole check dns / check rbl against a refused DNS port, which must end
 * quickly with warnings rather than hang or crash. The DNS-backed checks
 * are in tests/integration/test_check.py.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "selfcheck.h"
#include "tap.h"
#include "util.h"

static const struct {
	const char *record;
	const char *ips[3];
	const char *want;
} suggest[] = {
	{ "v=spf1 ip4:198.51.100.1 -all", { "203.0.113.7" },
	  "v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 -all" },
	{ "", { "203.0.113.7" }, "v=spf1 ip4:203.0.113.7 -all" },
	{ NULL, { "2001:db8::1", "203.0.113.7" }, "v=spf1 ip6:2001:db8::1 ip4:203.0.113.7 -all" },
	{ "v=spf1 include:_spf.provider.example ~all", { "203.0.113.7", "203.0.113.8" },
	  "v=spf1 include:_spf.provider.example ip4:203.0.113.7 ip4:203.0.113.8 ~all" },
	{ "v=spf1 mx redirect=_spf.example.net", { "203.0.113.7" },
	  "v=spf1 mx ip4:203.0.113.7 redirect=_spf.example.net" },
	{ "v=spf1 a mx", { "203.0.113.7" }, "v=spf1 a mx ip4:203.0.113.7" },
	{ "V=SPF1 MX  ?ALL", { "203.0.113.7" }, "V=SPF1 MX ip4:203.0.113.7 ?ALL" },
	{ "v=spf1 -all", { "203.0.113.7", "203.0.113.7" }, "v=spf1 ip4:203.0.113.7 -all" },
	{ "v=spf1 a:mail.example.com exp=why.example.com -all", { "203.0.113.7" },
	  "v=spf1 a:mail.example.com ip4:203.0.113.7 exp=why.example.com -all" },
};

static const struct {
	const char *ip, *zone, *want;
} rbl[] = {
	{ "203.0.113.7", "zen.spamhaus.org", "7.113.0.203.zen.spamhaus.org" },
	{ "127.0.0.2", "bl.test", "2.0.0.127.bl.test" },
	{ "2001:db8::1", "bl.test",
	  "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test" },
};

static struct selfcheck_finding findings[] = {
	{ SELFCHECK_OK, "mx", "example.com MX 10 mx.example.com", "" },
	{ SELFCHECK_FAIL, "spf", "203.0.113.7 is not allowed by example.com's SPF"
	  " (v=spf1 \"q\" -all)", "publish example.com TXT \"v=spf1 ip4:203.0.113.7 -all\"" },
	{ SELFCHECK_FAIL, "dkim", "s1._domainkey.example.com: missing",
	  "publish this record:\ns1._domainkey.example.com. IN TXT ( \"v=DKIM1; p=AB\"\n\t\"CD\" )" },
};

/* capture - selfcheck_print into a string (caller frees) */
static char *
capture(const struct selfcheck_report *r, int json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	selfcheck_print(r, json, f);
	fclose(f);
	return buf;
}

/* dead_dns_conf - a config whose dns_server is a refused port */
static struct conf *
dead_dns_conf(void)
{
	char dir[256], path[300];
	struct conf *c = NULL;
	FILE *f;

	if (tap_tmpdir(dir, sizeof(dir), "test_selfcheck") == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/outpost.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		return NULL;
	fprintf(f, "[server]\nhostname = relay.test.example\nstate_dir = %s\n"
	    "dns_server = 127.0.0.1:1\nrbl = bl.test\n"
	    "[listen s]\naddress = 127.0.0.1:2525\ntls = none\n"
	    "[upstream main]\naddress = smtp.provider.test:587\negress_ip = 203.0.113.7\n"
	    "[domain example.com]\nupstream = main\n", dir);
	fclose(f);
	if (conf_load(path, stderr, &c) != 0)
		c = NULL;
	unlink(path);
	rmdir(dir);
	return c;
}

int
main(void)
{
	struct selfcheck_report r = { "example.com", findings, 1 };
	struct conf *c;
	char out[512], err[256], *s;
	int64_t t0;

	for (size_t i = 0; i < ARRAY_LEN(suggest); i++) {
		size_t n = 0;

		while (n < 3 && suggest[i].ips[n])
			n++;
		ok(selfcheck_spf_suggest(suggest[i].record, suggest[i].ips, n, out,
		    sizeof(out)) == 0, "suggest %zu: fits", i);
		is_str(out, suggest[i].want, "suggest for \"%s\"",
		    suggest[i].record ? suggest[i].record : "(none)");
	}
	ok(selfcheck_spf_suggest("v=spf1 -all", suggest[0].ips, 1, out, 12) == -1,
	    "suggest: a short buffer is -1");

	for (size_t i = 0; i < ARRAY_LEN(rbl); i++) {
		ok(selfcheck_rbl_name(rbl[i].ip, rbl[i].zone, out, sizeof(out)) == 0,
		    "rbl name of %s", rbl[i].ip);
		is_str(out, rbl[i].want, "rbl name of %s under %s", rbl[i].ip, rbl[i].zone);
	}
	ok(selfcheck_rbl_name("203.0.113", "bl.test", out, sizeof(out)) == -1, "rbl: bad ip");
	ok(selfcheck_rbl_name("203.0.113.7", "bl.test", out, 10) == -1, "rbl: short buffer");

	ok(!selfcheck_failed(&r), "only OK: not failed");
	s = capture(&r, 0);
	is_str(s, "OK   mx   example.com MX 10 mx.example.com\n"
	    "example.com: 0 FAIL, 0 WARN, 0 INFO, 1 OK\n", "text, one OK");
	free(s);
	r.n = ARRAY_LEN(findings);
	ok(selfcheck_failed(&r), "a FAIL: failed");
	s = capture(&r, 0);
	ok(strstr(s, "FAIL spf  203.0.113.7 is not allowed by example.com's SPF (v=spf1 \"q\" -all)\n"
	    "     fix: publish example.com TXT \"v=spf1 ip4:203.0.113.7 -all\"\n") != NULL,
	    "text: finding, then its fix indented");
	ok(strstr(s, "     fix: publish this record:\n"
	    "          s1._domainkey.example.com. IN TXT ( \"v=DKIM1; p=AB\"\n"
	    "          \t\"CD\" )\n") != NULL, "text: a fix's lines stay indented");
	ok(strstr(s, "example.com: 2 FAIL, 0 WARN, 0 INFO, 1 OK\n") != NULL, "text: summary");
	free(s);
	s = capture(&r, 1);
	ok(strncmp(s, "{\"subject\":\"example.com\",\"findings\":[{\"level\":\"OK\",\"check\":"
	    "\"mx\",\"text\":\"example.com MX 10 mx.example.com\",\"fix\":\"\"},", 108) == 0,
	    "json: subject and first finding");
	ok(strstr(s, "(v=spf1 \\\"q\\\" -all)") != NULL, "json: quotes escaped");
	ok(strstr(s, "record:\\u000as1._domainkey") != NULL, "json: newline escaped");
	ok(strstr(s, "],\"ok\":false}\n") != NULL, "json: ok false");
	free(s);

	memset(&r, 0, sizeof(r));
	ok(selfcheck_dns(NULL, "bad domain", &r, err, sizeof(err)) == -1 &&
	    strstr(err, "not a domain name"), "dns: bad domain (%s)", err);
	ok(selfcheck_dns(NULL, "", &r, err, sizeof(err)) == -1, "dns: empty domain");
	ok(selfcheck_rbl(NULL, "203.0.113", &r, err, sizeof(err)) == -1 &&
	    strstr(err, "not an IPv4 or IPv6 address"), "rbl: bad address (%s)", err);

	if ((c = dead_dns_conf()) == NULL) {
		ok(0, "config for the dead DNS server loads");
		return done();
	}
	t0 = util_mono_ms();
	ok(selfcheck_dns(c, "Example.COM.", &r, err, sizeof(err)) == 0, "dns, no DNS server: runs");
	ok(util_mono_ms() - t0 < 30000, "dns, no DNS server: bounded (%lld ms)",
	    (long long)(util_mono_ms() - t0));
	is_str(r.subject, "example.com", "dns: subject lower case, no trailing dot");
	for (size_t i = 0; i < r.n; i++)
		if (strcmp(r.f[i].check, "dkim") != 0)
			ok(r.f[i].level == SELFCHECK_WARN || r.f[i].level == SELFCHECK_INFO,
			    "dns, no DNS server: %s is no FAIL (%s)", r.f[i].check, r.f[i].text);
	selfcheck_report_free(&r);
	ok(selfcheck_rbl(c, NULL, &r, err, sizeof(err)) == 0, "rbl, no DNS server: runs");
	ok(r.n == 1 && r.f[0].level == SELFCHECK_WARN, "rbl, no DNS server: a warning (%s)",
	    r.n ? r.f[0].text : "none");
	selfcheck_report_free(&r);
	conf_free(c);
	return done();
}
