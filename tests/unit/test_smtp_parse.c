/*
 * test_smtp_parse - table-driven tests of daemon/smtp_parse.c: verbs,
 * address syntax, MAIL/RCPT paths and parameters, xtext, HELO, and the
 * upstream reply parser, hostile inputs of RELIABILITY.md S6/S7/S8/C8
 * included.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "tap.h"

/* starts - s begins with prefix (a reply against its expected code) */
static int
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
test_verbs(void)
{
	static const struct {
		const char *line;
		enum smtp_verb v;
		const char *args;
	} t[] = {
		{ "EHLO client.example", SMTP_VERB_EHLO, "client.example" },
		{ "ehlo client.example", SMTP_VERB_EHLO, "client.example" },
		{ "HeLo x", SMTP_VERB_HELO, "x" },
		{ "MAIL FROM:<a@b>", SMTP_VERB_MAIL, "FROM:<a@b>" },
		{ "rcpt   TO:<a@b>", SMTP_VERB_RCPT, "TO:<a@b>" },
		{ "DATA", SMTP_VERB_DATA, "" },
		{ "rset", SMTP_VERB_RSET, "" },
		{ "NOOP hello", SMTP_VERB_NOOP, "hello" },
		{ "QUIT", SMTP_VERB_QUIT, "" },
		{ "VRFY root", SMTP_VERB_VRFY, "root" },
		{ "EXPN list", SMTP_VERB_EXPN, "list" },
		{ "HELP", SMTP_VERB_HELP, "" },
		{ "StartTLS", SMTP_VERB_STARTTLS, "" },
		{ "AUTH PLAIN AGFAAGI=", SMTP_VERB_AUTH, "PLAIN AGFAAGI=" },
		{ "BDAT 100 LAST", SMTP_VERB_BDAT, "100 LAST" },
		{ "MAILX FROM:<a@b>", SMTP_VERB_UNKNOWN, "FROM:<a@b>" },
		{ "MAI", SMTP_VERB_UNKNOWN, "" },
		{ "", SMTP_VERB_UNKNOWN, "" },
		{ "STARTTLSSTARTTLSSTARTTLS x", SMTP_VERB_UNKNOWN, "x" },
		{ "GET / HTTP/1.0", SMTP_VERB_UNKNOWN, "/ HTTP/1.0" },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		const char *args = NULL;
		is_int(smtp_parse_verb(t[i].line, &args), t[i].v, "verb of \"%s\"", t[i].line);
		is_str(args, t[i].args, "args of \"%s\"", t[i].line);
	}
	is_str(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS", "verb name STARTTLS");
	is_str(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN", "verb name UNKNOWN");
}

static void
test_addr_valid(void)
{
	char big_local[80], big_label[80], big_dom[300], big_addr[300];
	static const struct {
		const char *addr;
		int utf8, valid;
	} t[] = {
		{ "a@b.example", 0, 1 },
		{ "first.last@sub.example.org", 0, 1 },
		{ "user+tag@example.com", 0, 1 },
		{ "!#$%&'*+-/=?^_`{|}~@example.com", 0, 1 },
		{ "user%dom@example.com", 0, 1 },       /* S8: '%' is a character */
		{ "dom!user@example.com", 0, 1 },       /* S8: '!' too */
		{ "${run{/bin/true}}@x", 0, 1 },        /* S6: atext, stored verbatim */
		{ "\"|id\"@x", 0, 1 },                  /* S6: quoted local part */
		{ "\"user@dom\"@x.example", 0, 1 },
		{ "\"a b\"@x.example", 0, 1 },
		{ "\"a\\\"b\"@x.example", 0, 1 },
		{ "\"\"@x.example", 0, 1 },
		{ "a@localhost", 0, 1 },
		{ "a@[192.0.2.1]", 0, 1 },
		{ "a@[IPv6:2001:db8::1]", 0, 1 },
		{ "a@[ipv6:::1]", 0, 1 },
		{ "a@x-y.example", 0, 1 },
		{ "a@1.2.3.example", 0, 1 },
		{ "", 0, 0 },
		{ "a", 0, 0 },
		{ "@b.example", 0, 0 },
		{ "a@", 0, 0 },
		{ ";sleep 5;", 0, 0 },                  /* S6 */
		{ "a@b@c", 0, 0 },                      /* S8 */
		{ "user@dom@[192.0.2.1]", 0, 0 },       /* S8 */
		{ "\"user@dom\"", 0, 0 },               /* S8: no domain */
		{ ".a@b.example", 0, 0 },
		{ "a.@b.example", 0, 0 },
		{ "a..b@b.example", 0, 0 },
		{ "a b@b.example", 0, 0 },
		{ "a(b)@b.example", 0, 0 },
		{ "a,b@b.example", 0, 0 },
		{ "a@b..example", 0, 0 },
		{ "a@.b.example", 0, 0 },
		{ "a@b.example.", 0, 0 },
		{ "a@-b.example", 0, 0 },
		{ "a@b-.example", 0, 0 },
		{ "a@b_c.example", 0, 0 },
		{ "a@[192.0.2.256]", 0, 0 },
		{ "a@[192.0.2]", 0, 0 },
		{ "a@[IPv6:2001:db8::g]", 0, 0 },
		{ "a@[IPv6:192.0.2.1]", 0, 0 },
		{ "a@[2001:db8::1]", 0, 0 },
		{ "a@[]", 0, 0 },
		{ "a@[192.0.2.1", 0, 0 },
		{ "a@[tag:content]", 0, 0 },
		{ "\"a@b.example", 0, 0 },
		{ "\"a\rb\"@x.example", 0, 0 },
		{ "a\rX:1@x", 0, 0 },                   /* S7 */
		{ "a\n@x", 0, 0 },
		{ "a\t@x", 0, 0 },
		{ "a\x7f@x", 0, 0 },
		{ "\"a\\\rb\"@x.example", 0, 0 },
		{ "j\xc3\xb6rg@example.com", 0, 0 },   /* UTF-8 without SMTPUTF8 */
		{ "j\xc3\xb6rg@example.com", 1, 1 },
		{ "user@b\xc3\xbcro.example", 1, 1 },
		{ "\"j\xc3\xb6 rg\"@example.com", 1, 1 },
		{ "j\xc3@example.com", 1, 0 },          /* truncated sequence */
		{ "j\xc0\xafrg@example.com", 1, 0 },    /* overlong '/' */
		{ "j\xed\xa0\x80@example.com", 1, 0 },  /* surrogate */
		{ "j\xf4\x90\x80\x80@example.com", 1, 0 }, /* > U+10FFFF */
		{ "j\xff@example.com", 1, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		is_int(smtp_addr_valid(t[i].addr, t[i].utf8), t[i].valid,
		    "addr_valid #%zu (utf8=%d) %s", i, t[i].utf8, t[i].valid ? "valid" : "invalid");

	/* Length limits: local part 64, label 63, domain 255, path 256. */
	memset(big_local, 'l', 64);
	snprintf(big_local + 64, sizeof(big_local) - 64, "@x.example");
	is_int(smtp_addr_valid(big_local, 0), 1, "64-octet local part");
	memset(big_local, 'l', 65);
	snprintf(big_local + 65, sizeof(big_local) - 65, "@x.example");
	is_int(smtp_addr_valid(big_local, 0), 0, "65-octet local part");
	memset(big_label, 'd', 63);
	snprintf(big_label, sizeof(big_label), "a@");
	memset(big_label + 2, 'd', 63);
	snprintf(big_label + 65, sizeof(big_label) - 65, ".ex");
	is_int(smtp_addr_valid(big_label, 0), 1, "63-octet label");
	memset(big_label + 2, 'd', 64);
	snprintf(big_label + 66, sizeof(big_label) - 66, ".ex");
	is_int(smtp_addr_valid(big_label, 0), 0, "64-octet label");
	/* 4 labels of 63 + 3 dots = 255: fine for the domain, but with
	 * "a@" the path is 259 > 256. */
	snprintf(big_dom, sizeof(big_dom), "a@");
	for (int k = 0; k < 4; k++) {
		memset(big_dom + strlen(big_dom), 'd', 63);
		big_dom[2 + 64 * k + 63] = '\0';
		if (k < 3)
			strcat(big_dom, ".");
	}
	is_int((int)strlen(big_dom), 2 + 255, "built a 255-octet domain");
	is_int(smtp_addr_valid(big_dom, 0), 0, "path over 256 octets refused");
	/* 254 octets in all: the longest path that fits <...> in 256. */
	snprintf(big_addr, sizeof(big_addr), "%.60s@%.63s.%.63s.%.63s", big_dom + 2,
	    big_dom + 2, big_dom + 2, big_dom + 2);
	big_addr[254] = '\0';
	ok(big_addr[253] != '.', "254-octet address ends in a label");
	is_int(smtp_addr_valid(big_addr, 0), 1, "254-octet address accepted");
}

struct mail_case {
	const char *args;
	int rc;
	const char *want;   /* the address on success, the reply prefix on error */
};

static void
test_mail_paths(void)
{
	static const struct mail_case t[] = {
		{ "FROM:<a@b.example>", 0, "a@b.example" },
		{ "from:<a@b.example>", 0, "a@b.example" },
		{ "From: <a@b.example>", 0, "a@b.example" },
		{ "FROM:   <a@b.example>", 0, "a@b.example" },
		{ "FROM:<>", 0, "" },
		{ "FROM:<> SIZE=100", 0, "" },
		{ "FROM:<@relay.example:a@b.example>", 0, "a@b.example" },
		{ "FROM:<@r1.example,@r2.example:a@b.example>", 0, "a@b.example" },
		{ "FROM:<@[IPv6:2001:db8::1]:a@b.example>", 0, "a@b.example" },
		{ "FROM:<\"a>b\"@b.example>", 0, "\"a>b\"@b.example" },
		{ "FROM:<${run{/bin/true}}@x>", 0, "${run{/bin/true}}@x" },
		{ "FROM:<;sleep 5;>", -1, "501 5.1.7" },
		{ "FROM:<a@b@c>", -1, "501 5.1.7" },
		{ "FROM:<\"user@dom\">", -1, "501 5.1.7" },
		{ "FROM:<@r1.example:>", -1, "501 5.1.7" },
		{ "FROM:<@r1.example a@b.example>", -1, "501 5.5.4" },
		{ "FROM:<@r1..example:a@b.example>", -1, "501 5.5.4" },
		{ "FROM:<@r1.example,r2:a@b.example>", -1, "501 5.5.4" },
		{ "FROM:a@b.example", -1, "501 5.5.4" },
		{ "FROM:<a@b.example", -1, "501 5.5.4" },
		{ "FROM:<\"a@b.example>", -1, "501 5.5.4" },
		{ "FROM:<a@b.example>x", -1, "501 5.5.4" },
		{ "FROM <a@b.example>", -1, "501 5.5.4" },
		{ "TO:<a@b.example>", -1, "501 5.5.4" },
		{ "", -1, "501 5.5.4" },
		{ "FROM:", -1, "501 5.5.4" },
		{ "FROM:<a\rX:1@x>", -1, "500 5.5.2" },   /* S7 */
		{ "FROM:<a@x>\r\nRCPT TO:<b@y>", -1, "500 5.5.2" },
		{ "FROM:<a@x> SIZE=1\x01", -1, "500 5.5.2" },
		{ "FROM:<a@x>\t", -1, "500 5.5.2" },
		{ "FROM:<j\xc3\xb6rg@example.com>", -1, "501 5.1.7" },
		{ "FROM:<j\xc3\xb6rg@example.com> SMTPUTF8", 0, "j\xc3\xb6rg@example.com" },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct smtp_mail m;
		char err[SMTP_ERR_MAX] = "";
		int rc = smtp_parse_mail(t[i].args, &m, err, sizeof(err));

		is_int(rc, t[i].rc, "MAIL #%zu rc", i);
		if (t[i].rc == 0)
			is_str(m.addr, t[i].want, "MAIL #%zu address", i);
		else if (!ok(starts(err, t[i].want), "MAIL #%zu reply %s", i, t[i].want))
			printf("#   got \"%s\"\n", err);
	}

	/* A path of 256 octets passes, 257 does not. */
	{
		char args[400], addr[300];
		struct smtp_mail m;
		char err[SMTP_ERR_MAX];

		memset(addr, 'x', 60);
		snprintf(addr + 60, sizeof(addr) - 60, "@");
		for (int k = 0; k < 3; k++) {
			memset(addr + strlen(addr), 'd', 62);
			addr[61 + 63 * k + 62] = '\0';
			strcat(addr, ".");
		}
		while (strlen(addr) < 254)
			strcat(addr, "e");
		snprintf(args, sizeof(args), "FROM:<%s>", addr);
		is_int(smtp_parse_mail(args, &m, err, sizeof(err)), 0, "MAIL 256-octet path");
		strcat(addr, "e");
		snprintf(args, sizeof(args), "FROM:<%s>", addr);
		is_int(smtp_parse_mail(args, &m, err, sizeof(err)), -1, "MAIL 257-octet path");
	}
}

static void
test_mail_params(void)
{
	struct smtp_mail m;
	char err[SMTP_ERR_MAX];

	is_int(smtp_parse_mail("FROM:<a@b.example> SIZE=12345 BODY=8BITMIME SMTPUTF8 "
	    "RET=HDRS ENVID=QQ+2B1 AUTH=u+2Bx@b.example", &m, err, sizeof(err)), 0, "all MAIL params");
	ok(m.has_size && m.size == 12345, "SIZE=12345");
	is_int(m.body, SMTP_BODY_8BITMIME, "BODY=8BITMIME");
	is_int(m.smtputf8, 1, "SMTPUTF8");
	is_int(m.ret, SMTP_RET_HDRS, "RET=HDRS");
	is_str(m.envid, "QQ+1", "ENVID decoded");
	is_str(m.auth, "u+x@b.example", "AUTH= decoded");

	is_int(smtp_parse_mail("FROM:<a@b.example>", &m, err, sizeof(err)), 0, "no params");
	ok(!m.has_size && m.size == 0 && m.body == SMTP_BODY_7BIT && !m.smtputf8 &&
	    m.ret == SMTP_RET_UNSET && m.envid[0] == '\0' && m.auth[0] == '\0', "defaults");

	is_int(smtp_parse_mail("FROM:<a@b.example>  size=7  body=7bit  ret=full", &m, err,
	    sizeof(err)), 0, "lower-case params, extra spaces");
	ok(m.size == 7 && m.body == SMTP_BODY_7BIT && m.ret == SMTP_RET_FULL, "lower-case values");

	is_int(smtp_parse_mail("FROM:<a@b.example> AUTH=<>", &m, err, sizeof(err)), 0, "AUTH=<>");
	is_str(m.auth, "<>", "AUTH=<> kept as <>");

	is_int(smtp_parse_mail("FROM:<a@b.example> SIZE=99999999999999999999", &m, err,
	    sizeof(err)), 0, "20-digit SIZE saturates");
	ok(m.size == SIZE_MAX, "SIZE saturated to SIZE_MAX");

	static const struct {
		const char *args;
		const char *reply;
	} bad[] = {
		{ "FROM:<a@b.example> SIZE=", "501 5.5.4" },
		{ "FROM:<a@b.example> SIZE", "501 5.5.4" },
		{ "FROM:<a@b.example> SIZE=12a", "501 5.5.4" },
		{ "FROM:<a@b.example> SIZE=-1", "501 5.5.4" },
		{ "FROM:<a@b.example> SIZE=123456789012345678901", "501 5.5.4" },
		{ "FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4" },
		{ "FROM:<a@b.example> BODY=BINARYMIME", "501 5.5.4" },
		{ "FROM:<a@b.example> BODY", "501 5.5.4" },
		{ "FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4" },
		{ "FROM:<a@b.example> RET=ALL", "501 5.5.4" },
		{ "FROM:<a@b.example> ENVID=a+0D+0AX:1", "501 5.5.4" },   /* S7 */
		{ "FROM:<a@b.example> ENVID=a+00", "501 5.5.4" },
		{ "FROM:<a@b.example> ENVID=a+2", "501 5.5.4" },
		{ "FROM:<a@b.example> ENVID=a+2b", "501 5.5.4" },
		{ "FROM:<a@b.example> ENVID=a=b", "501 5.5.4" },
		{ "FROM:<a@b.example> AUTH=a+0D+0A@b.example", "501 5.5.4" },  /* S7 */
		{ "FROM:<a@b.example> AUTH=nobody", "501 5.5.4" },
		{ "FROM:<a@b.example> AUTH=", "501 5.5.4" },
		{ "FROM:<a@b.example> =1", "501 5.5.4" },
		{ "FROM:<a@b.example> -X=1", "501 5.5.4" },
		{ "FROM:<a@b.example> X_Y=1", "501 5.5.4" },
		{ "FROM:<a@b.example> SIZE=1\xc3\xa9", "501 5.5.4" },
		{ "FROM:<a@b.example> XFOO=1", "555 5.5.4" },
		{ "FROM:<a@b.example> NOTIFY=NEVER", "555 5.5.4" },   /* RCPT only */
		{ "FROM:<a@b.example> ORCPT=rfc822;a@b", "555 5.5.4" },
		{ "FROM:<a@b.example> BINARY", "555 5.5.4" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int rc = smtp_parse_mail(bad[i].args, &m, err, sizeof(err));
		is_int(rc, -1, "bad MAIL param #%zu rc", i);
		if (!ok(rc == -1 && starts(err, bad[i].reply), "bad MAIL param #%zu reply %s", i,
		    bad[i].reply))
			printf("#   got \"%s\"\n", err);
	}

	/* ENVID is bounded at 100 octets (RFC 3461 4.4). */
	{
		char args[300];
		snprintf(args, sizeof(args), "FROM:<a@b.example> ENVID=%0100d", 0);
		is_int(smtp_parse_mail(args, &m, err, sizeof(err)), 0, "100-octet ENVID");
		is_int((int)strlen(m.envid), 100, "ENVID kept whole");
		snprintf(args, sizeof(args), "FROM:<a@b.example> ENVID=%0101d", 0);
		is_int(smtp_parse_mail(args, &m, err, sizeof(err)), -1, "101-octet ENVID");
	}
	/* A tiny err buffer is never overrun. */
	{
		char tiny[8];
		memset(tiny, 'Z', sizeof(tiny));
		is_int(smtp_parse_mail("FROM:<;>", &m, tiny, sizeof(tiny)), -1, "tiny err rc");
		is_int((int)strlen(tiny), 7, "tiny err truncated and terminated");
	}
}

static void
test_rcpt(void)
{
	static const struct mail_case t[] = {
		{ "TO:<b@c.example>", 0, "b@c.example" },
		{ "to: <b@c.example>", 0, "b@c.example" },
		{ "TO:<postmaster>", 0, "postmaster" },
		{ "TO:<PostMaster>", 0, "postmaster" },
		{ "TO:<Postmaster@c.example>", 0, "Postmaster@c.example" },
		{ "TO:<@[192.0.2.1]:user@dom.example>", 0, "user@dom.example" },  /* S8, dropped */
		{ "TO:<user%dom@[192.0.2.1]>", 0, "user%dom@[192.0.2.1]" },       /* S8, verbatim */
		{ "TO:<\"|id\"@x>", 0, "\"|id\"@x" },                             /* S6 */
		{ "TO:<>", -1, "501 5.1.3" },
		{ "TO:<postmaster> ", 0, "postmaster" },
		{ "TO:<\"user@dom\">", -1, "501 5.1.3" },                          /* S8 */
		{ "TO:<user@dom@[192.0.2.1]>", -1, "501 5.1.3" },                  /* S8 */
		{ "TO:<dom!user>", -1, "501 5.1.3" },                              /* S8 */
		{ "TO:<;sleep 5;>", -1, "501 5.1.3" },
		{ "TO:<@r.example:>", -1, "501 5.1.3" },
		{ "TO:b@c.example", -1, "501 5.5.4" },
		{ "FROM:<b@c.example>", -1, "501 5.5.4" },
		{ "TO:<b@c.example> XFOO", -1, "555 5.5.4" },
		{ "TO:<b@c.example> SIZE=10", -1, "555 5.5.4" },   /* MAIL only */
		{ "TO:<b\0@c.example>", -1, "501 5.5.4" },         /* NUL cuts the string */
		{ "TO:<b\x1b@c.example>", -1, "500 5.5.2" },
		{ "TO:<j\xc3\xb6rg@example.com>", -1, "501 5.1.3" },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct smtp_rcpt r;
		char err[SMTP_ERR_MAX] = "";
		int rc = smtp_parse_rcpt(t[i].args, 0, &r, err, sizeof(err));

		is_int(rc, t[i].rc, "RCPT #%zu rc", i);
		if (t[i].rc == 0)
			is_str(r.addr, t[i].want, "RCPT #%zu address", i);
		else if (!ok(starts(err, t[i].want), "RCPT #%zu reply %s", i, t[i].want))
			printf("#   got \"%s\"\n", err);
	}

	struct smtp_rcpt r;
	char err[SMTP_ERR_MAX];

	is_int(smtp_parse_rcpt("TO:<j\xc3\xb6rg@example.com>", 1, &r, err, sizeof(err)), 0,
	    "RCPT UTF-8 with SMTPUTF8");
	is_int(smtp_parse_rcpt("TO:<b@c.example> NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=rfc822;b+2Bx@c.example", 0, &r, err, sizeof(err)), 0, "NOTIFY + ORCPT");
	is_int(r.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY, "NOTIFY bits");
	is_str(r.orcpt, "rfc822;b+x@c.example", "ORCPT decoded");
	is_int(smtp_parse_rcpt("TO:<b@c.example> notify=never", 0, &r, err, sizeof(err)), 0,
	    "NOTIFY=never");
	is_int(r.notify, SMTP_NOTIFY_NEVER, "NOTIFY=NEVER bit");
	is_int(smtp_parse_rcpt("TO:<b@c.example>", 0, &r, err, sizeof(err)), 0, "plain RCPT");
	ok(r.notify == 0 && r.orcpt[0] == '\0', "RCPT defaults");

	static const char *const bad[] = {
		"TO:<b@c.example> NOTIFY=NEVER,SUCCESS",
		"TO:<b@c.example> NOTIFY=SUCCESS,SUCCESS",
		"TO:<b@c.example> NOTIFY=",
		"TO:<b@c.example> NOTIFY=SUCCESS,",
		"TO:<b@c.example> NOTIFY=ALWAYS",
		"TO:<b@c.example> NOTIFY=DELAY NOTIFY=DELAY",
		"TO:<b@c.example> ORCPT=rfc822;b+0D+0AX-Injected:+201@c.example",   /* S7 */
		"TO:<b@c.example> ORCPT=rfc822;",
		"TO:<b@c.example> ORCPT=;b@c.example",
		"TO:<b@c.example> ORCPT=b@c.example",
		"TO:<b@c.example> ORCPT=rfc 822;b@c.example",
		"TO:<b@c.example> ORCPT=rfc822;b@c.example ORCPT=rfc822;b@c.example",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int rc = smtp_parse_rcpt(bad[i], 0, &r, err, sizeof(err));
		ok(rc == -1 && starts(err, "501 5.5.4"), "bad RCPT param #%zu -> 501 5.5.4", i);
	}
}

static void
test_xtext(void)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "abc", "abc" },
		{ "a+2Bb", "a+b" },
		{ "+3D", "=" },
		{ "+20", " " },
		{ "+7E", "~" },
		{ "", "" },
	};
	static const char *const bad[] = {
		"+0D+0A", "a+0Db", "+00", "+1F", "+7F", "+80", "+FF", "a b", "a=b",
		"+", "+2", "+2g", "+2b", "+G0", "\x01", "\x7f", "\xc3\xa9",
	};
	char buf[64];

	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		is_int(smtp_xtext_decode(good[i].in, buf, sizeof(buf)), 0, "xtext decode \"%s\"",
		    good[i].in);
		is_str(buf, good[i].out, "xtext decoded \"%s\"", good[i].in);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		is_int(smtp_xtext_decode(bad[i], buf, sizeof(buf)), -1, "xtext refuses bad #%zu", i);
	is_int(smtp_xtext_decode("abcd", buf, 4), -1, "xtext decode does not fit");
	is_int(smtp_xtext_decode("abc", buf, 4), 0, "xtext decode fits exactly");

	is_int(smtp_xtext_encode("a+b=c d", buf, sizeof(buf)), 0, "xtext encode");
	is_str(buf, "a+2Bb+3Dc+20d", "xtext encoded");
	is_int(smtp_xtext_encode("\r\n\xff", buf, sizeof(buf)), 0, "xtext encode controls");
	is_str(buf, "+0D+0A+FF", "controls hex-escaped");
	is_int(smtp_xtext_encode("++", buf, 6), -1, "xtext encode does not fit");
	is_int(smtp_xtext_encode("++", buf, 7), 0, "xtext encode fits exactly");
	{
		char round[64];
		smtp_xtext_encode("rfc822 a+b=c@d", buf, sizeof(buf));
		is_int(smtp_xtext_decode(buf, round, sizeof(round)), 0, "round trip decode");
		is_str(round, "rfc822 a+b=c@d", "round trip equal");
	}
}

static void
test_helo(void)
{
	char big[300];
	static const struct {
		const char *arg;
		int valid;
	} t[] = {
		{ "client.example", 1 },
		{ "[192.0.2.1]", 1 },
		{ "localhost", 1 },
		{ "", 0 },
		{ "a b", 0 },
		{ "h\rX:1", 0 },   /* S7 */
		{ "h\n", 0 },
		{ "h\t", 0 },
		{ "h\x7f", 0 },
		{ "h\xc3\xa9", 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		is_int(smtp_helo_valid(t[i].arg), t[i].valid, "helo #%zu", i);
	is_int(smtp_helo_valid(NULL), 0, "helo NULL");
	memset(big, 'h', 255);
	big[255] = '\0';
	is_int(smtp_helo_valid(big), 1, "255-octet helo");
	big[255] = 'h';
	big[256] = '\0';
	is_int(smtp_helo_valid(big), 0, "256-octet helo");
}

/* feed - feed a C string line to a reply */
static int
feed(struct smtp_reply *r, const char *line)
{
	return smtp_reply_feed(r, line, strlen(line));
}

static void
test_reply(void)
{
	struct smtp_reply r;
	char buf[SMTP_REPLY_TEXT_MAX + 64];

	smtp_reply_init(&r);
	is_int(feed(&r, "250 2.0.0 Ok: queued as X"), 1, "one-line reply complete");
	is_int(r.code, 250, "code 250");
	is_str(r.enh, "2.0.0", "enhanced code");
	is_str(r.text, "Ok: queued as X", "text without the enhanced code");
	smtp_reply_format(&r, buf, sizeof(buf));
	is_str(buf, "250 2.0.0 Ok: queued as X", "formatted, enh not doubled");

	smtp_reply_init(&r);
	is_int(feed(&r, "250-mx.example Hello"), 0, "EHLO line 1 continues");
	is_int(feed(&r, "250-PIPELINING"), 0, "EHLO line 2 continues");
	is_int(feed(&r, "250-SIZE 10240000"), 0, "EHLO line 3 continues");
	is_int(feed(&r, "250 STARTTLS"), 1, "EHLO last line");
	is_int(r.nlines, 4, "4 lines");
	is_str(r.text, "mx.example Hello PIPELINING SIZE 10240000 STARTTLS", "lines joined");
	is_str(r.enh, "", "no enhanced code");
	smtp_reply_format(&r, buf, sizeof(buf));
	is_str(buf, "250 mx.example Hello PIPELINING SIZE 10240000 STARTTLS", "formatted without enh");
	is_int(feed(&r, "250 again"), -1, "feeding after the last line");

	smtp_reply_init(&r);
	is_int(feed(&r, "550-5.7.1 Rejected for policy"), 0, "multi-line 550");
	is_int(feed(&r, "550 5.7.1 see https://example/x"), 1, "multi-line 550 end");
	is_str(r.enh, "5.7.1", "550 enh");
	is_str(r.text, "Rejected for policy see https://example/x", "repeated enh stripped");

	smtp_reply_init(&r);
	is_int(feed(&r, "250"), 1, "bare 250 is a last line");
	smtp_reply_format(&r, buf, sizeof(buf));
	is_str(buf, "250", "bare 250 formatted");

	smtp_reply_init(&r);
	is_int(feed(&r, "354 End data with <CR><LF>.<CR><LF>"), 1, "354");
	is_str(r.enh, "", "3xx has no enhanced code");

	smtp_reply_init(&r);
	is_int(feed(&r, "421 4.7.0 Try later"), 1, "421");
	is_str(r.enh, "4.7.0", "421 enh");
	smtp_reply_init(&r);
	is_int(feed(&r, "550 4.7.0 mismatched class"), 1, "class mismatch reply ok");
	is_str(r.enh, "", "enh class must match the code");
	is_str(r.text, "4.7.0 mismatched class", "mismatched enh kept as text");
	smtp_reply_init(&r);
	feed(&r, "554 5.1234.1 x");
	is_str(r.enh, "", "4-digit subject is not an enhanced code");
	smtp_reply_init(&r);
	feed(&r, "554 5.123.123");
	is_str(r.enh, "5.123.123", "3-digit subject and detail");
	smtp_reply_init(&r);
	feed(&r, "554 5.1.1x bad");
	is_str(r.enh, "", "enh must end at a space");
	smtp_reply_init(&r);
	feed(&r, "554 3.1.1 bad");
	is_str(r.enh, "", "class 3 is not an enh class");

	static const char *const bad[] = {
		"", "25", "abc", "2500 x", "250x", "650 no", "150 no", "260 no", "2a0 x",
		" 250 x", "250\tx",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		smtp_reply_init(&r);
		is_int(feed(&r, bad[i]), -1, "malformed reply #%zu", i);
	}

	smtp_reply_init(&r);
	feed(&r, "250-first");
	is_int(feed(&r, "251 other code"), -1, "code changed between lines");

	/* C8: endless continuation lines. */
	smtp_reply_init(&r);
	{
		int rc = 0, n = 0;
		while (rc == 0 && n < 1000) {
			rc = feed(&r, "250-more");
			n++;
		}
		is_int(rc, -1, "endless 250- refused");
		is_int(n, SMTP_REPLY_LINES_MAX + 1, "refused at line 65");
		ok(strlen(r.text) < SMTP_REPLY_TEXT_MAX, "text bounded");
	}
	smtp_reply_init(&r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		feed(&r, "250-x");
	is_int(feed(&r, "250 x"), 1, "exactly 64 lines accepted");

	/* C8: a 2 MB reply line is cut, never overflows. */
	{
		size_t n = 2 * 1024 * 1024;
		char *big = malloc(n);

		memcpy(big, "550 5.0.0 ", 10);
		memset(big + 10, 'A', n - 10);
		smtp_reply_init(&r);
		is_int(smtp_reply_feed(&r, big, n), 1, "2 MB line parsed");
		is_int((int)strlen(r.text), SMTP_REPLY_TEXT_MAX - 1, "text truncated to the bound");
		is_str(r.enh, "5.0.0", "enh of the 2 MB line");
		smtp_reply_format(&r, buf, 32);
		is_int((int)strlen(buf), 31, "format truncates to its buffer");
		free(big);
	}

	/* Control characters and NULs from upstream never reach the text. */
	smtp_reply_init(&r);
	is_int(smtp_reply_feed(&r, "550 bad\r\nX-Evil: 1\0z\x1b", 21), 1, "reply with controls");
	is_str(r.text, "bad??X-Evil: 1?z?", "controls replaced by '?'");
}

int
main(void)
{
	test_verbs();
	test_addr_valid();
	test_mail_paths();
	test_mail_params();
	test_rcpt();
	test_xtext();
	test_helo();
	test_reply();
	return done();
}
