/*
 * smtp_parse - pure parsers for the SMTP protocol, both directions.
 *
 * Server side: the command verb, MAIL/RCPT paths and ESMTP parameters
 * (RFC 5321 4.1.2, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8,
 * RFC 3461 DSN parameters, RFC 4954 AUTH=). Client side: upstream replies,
 * multi-line and enhanced status codes (RFC 2034, RFC 3463).
 *
 * Input is untrusted and NUL-terminated; the caller has already cut the
 * CRLF and checked the line length and the absence of bare CR/LF. These
 * functions know nothing of the event loop and take all limits from the
 * header, so they are unit-tested and fuzzed alone.
 *
 * On error the parsers fill a complete reply ("501 5.5.4 ...") into err.
 */
#ifndef OUTPOST_SMTP_PARSE_H
#define OUTPOST_SMTP_PARSE_H

#include <stddef.h>
#include "util.h"

#define SMTP_LINE_MAX 512       /* RFC 5321 4.5.3.1.4, CRLF included */
#define SMTP_TEXT_LINE_MAX 1000 /* RFC 5321 4.5.3.1.6, CRLF included */
#define SMTP_REPLY_TEXT_MAX 512 /* kept text of one (multi-line) reply */
#define SMTP_REPLY_LINES_MAX 64 /* more continuation lines: malformed */
#define SMTP_ERR_MAX 256

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_QUIT,
	SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_HELP, SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH, SMTP_VERB_BDAT,
	SMTP_VERB_COUNT
};

/* Split "VERB args": returns the verb (case-insensitive; UNKNOWN if not
 * recognised) and points *args at the first non-space after it (or ""). */
enum smtp_verb smtp_parse_verb(const char *line, const char **args);
const char *smtp_verb_name(enum smtp_verb v);

enum smtp_body { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_UNSET = 0, SMTP_RET_FULL, SMTP_RET_HDRS };
#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8
#define SMTP_ENVID_MAX 100      /* RFC 3461 4.4 */
#define SMTP_ORCPT_MAX 500

struct smtp_mail {
	char addr[ADDR_MAX + 1];    /* "" for the null sender <> */
	size_t size;                /* SIZE=, 0 if absent */
	int has_size;
	enum smtp_body body;
	int smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* xtext-decoded, printable ASCII only */
	char auth[ADDR_MAX + 1];    /* AUTH= value decoded, "" if absent */
};

struct smtp_rcpt {
	char addr[ADDR_MAX + 1];
	int notify;                 /* SMTP_NOTIFY_* bits, 0 if absent */
	char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;addr" decoded, "" if absent */
};

/* args is what follows "MAIL" / "RCPT" (i.e. "FROM:<a@b> SIZE=10").
 * allow_utf8: accept non-ASCII in the address (SMTPUTF8 was given; for
 * RCPT pass the MAIL's smtputf8). Source routes (@a,@b:u@d) are accepted
 * and dropped (RFC 5321 4.1.1.3 / C). Returns 0 or -1 with err filled:
 * 501 5.5.4 syntax, 501 5.1.7 bad sender, 501 5.1.3 bad recipient,
 * 555 5.5.4 unknown parameter, 500 5.5.2 control characters. */
int smtp_parse_mail(const char *args, struct smtp_mail *out, char *err, size_t errlen);
int smtp_parse_rcpt(const char *args, int allow_utf8, struct smtp_rcpt *out, char *err, size_t errlen);

/* Mailbox syntax (RFC 5321 4.1.2): dot-atom or quoted local part, '@',
 * a domain name (LDH labels) or an address literal [v4] / [IPv6:...].
 * Returns 1 if valid. utf8: allow UTF-8 (RFC 6531) in both parts. */
int smtp_addr_valid(const char *addr, int utf8);

/* xtext (RFC 3461 4): "+2B" escapes; rejects +0D, +0A, +00 and other
 * controls. Returns 0 or -1. */
int smtp_xtext_decode(const char *in, char *out, size_t outlen);
/* Encode for sending upstream; returns 0 or -1 if it does not fit. */
int smtp_xtext_encode(const char *in, char *out, size_t outlen);

/* HELO/EHLO argument: a domain or address literal, printable ASCII, no
 * spaces. Returns 1 if acceptable. */
int smtp_helo_valid(const char *arg);

/* Upstream replies. Feed each line (CRLF already cut) of one reply; the
 * parser keeps code, enhanced code and the text, bounded. */
struct smtp_reply {
	int code;                   /* 3 digits, 0 until the first line */
	char enh[16];               /* "4.7.0" if present, else "" */
	char text[SMTP_REPLY_TEXT_MAX]; /* lines joined with ' ', bounded */
	int nlines;
	int done;                   /* last line seen */
};
void smtp_reply_init(struct smtp_reply *r);
/* Returns 1 when the reply is complete, 0 if more lines follow, -1 if
 * malformed (non-numeric code, code changed between lines, too many
 * lines). */
int smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);
/* "250 2.0.0 Ok: queued as X" for logs, bounded. */
void smtp_reply_format(const struct smtp_reply *r, char *buf, size_t len);

#endif
