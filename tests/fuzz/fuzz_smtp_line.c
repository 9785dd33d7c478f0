/*
 * fuzz_smtp_line - one SMTP command line through the server-side parsers
 * (smtp_parse.h): the verb split, MAIL/RCPT paths with their ESMTP
 * parameters, the HELO argument, and xtext both ways.
 *
 * The input is one line as the session hands it over: CRLF cut, no CR,
 * LF or NUL inside, at most SMTP_LINE_MAX - 2 octets (smtp_session.c
 * session_line() guarantees that; other inputs are ignored).
 *
 * Invariants: a refusal is a complete reply line; an accepted path is a
 * valid mailbox (or <> for MAIL, <Postmaster> for RCPT); an xtext that decodes encodes back to
 * something that decodes to the same text.
 */
#include "config.h"

#include <strings.h>

#include "fuzz.h"
#include "smtp_parse.h"

static void
check_xtext(const char *in)
{
	char dec[SMTP_LINE_MAX], enc[SMTP_LINE_MAX * 3], again[SMTP_LINE_MAX];

	if (smtp_xtext_decode(in, dec, sizeof(dec)) != 0)
		return;
	FUZZ_CHECK(strlen(dec) < sizeof(dec));
	if (smtp_xtext_encode(dec, enc, sizeof(enc)) != 0)
		return;
	FUZZ_CHECK(smtp_xtext_decode(enc, again, sizeof(again)) == 0);
	FUZZ_CHECK(strcmp(dec, again) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_mail mail;
	struct smtp_rcpt rcpt;
	char err[SMTP_ERR_MAX];
	const char *args;
	enum smtp_verb v;
	char *line;

	if (size > SMTP_LINE_MAX - 2 || memchr(data, '\r', size) || memchr(data, '\n', size) ||
	    memchr(data, '\0', size))
		return 0;
	line = fuzz_dup(data, size, 1);
	v = smtp_parse_verb(line, &args);
	FUZZ_CHECK(args != NULL && args >= line && args <= line + size);
	FUZZ_CHECK(smtp_verb_name(v) != NULL);

	memset(&mail, 0x55, sizeof(mail));
	err[0] = '\0';
	if (smtp_parse_mail(args, &mail, err, sizeof(err)) == 0) {
		FUZZ_CHECK(memchr(mail.addr, '\0', sizeof(mail.addr)) != NULL);
		FUZZ_CHECK(memchr(mail.envid, '\0', sizeof(mail.envid)) != NULL);
		FUZZ_CHECK(memchr(mail.auth, '\0', sizeof(mail.auth)) != NULL);
		FUZZ_CHECK(mail.addr[0] == '\0' || smtp_addr_valid(mail.addr, mail.smtputf8));
		/* smtp_parse.h: printable ASCII (an xtext "+20" space is
		 * kept; DSNs write it as a header value) */
		for (const char *p = mail.envid; *p; p++)
			FUZZ_CHECK(*p >= ' ' && *p < 0x7f);
	} else {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && fuzz_is_reply(err));
	}
	for (int utf8 = 0; utf8 < 2; utf8++) {
		memset(&rcpt, 0x55, sizeof(rcpt));
		if (smtp_parse_rcpt(args, utf8, &rcpt, err, sizeof(err)) == 0) {
			FUZZ_CHECK(memchr(rcpt.addr, '\0', sizeof(rcpt.addr)) != NULL);
			FUZZ_CHECK(memchr(rcpt.orcpt, '\0', sizeof(rcpt.orcpt)) != NULL);
			/* RFC 5321 4.1.1.3: <Postmaster> needs no domain */
			FUZZ_CHECK(smtp_addr_valid(rcpt.addr, utf8) ||
			    strcasecmp(rcpt.addr, "postmaster") == 0);
			FUZZ_CHECK(strpbrk(rcpt.orcpt, "\r\n") == NULL);
		} else {
			FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && fuzz_is_reply(err));
		}
	}
	if (smtp_helo_valid(args))
		FUZZ_CHECK(strpbrk(args, " \t") == NULL);
	check_xtext(args);
	free(line);
	return 0;
}
