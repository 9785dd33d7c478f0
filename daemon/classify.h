/*
 * classify - sort an upstream SMTP reply into what the delivery engine
 * must do with it: deliver, retry, slow down, or bounce (and then whether
 * to suppress the recipient or alert the admin).
 *
 * API: classify_reply() for a parsed reply (code, RFC 3463 enhanced code,
 * text), classify_diagnostic() for a stored "smtp; 550 5.1.1 ..." string,
 * then the predicates classify_is_permanent/suppresses/alerts and the
 * human strings classify_name/describe/advice.
 *
 * Trust: the reply text comes from the upstream and is untrusted; it is
 * read with an explicit length (NUL bytes and 8-bit bytes are just bytes),
 * at most CLASSIFY_TEXT_MAX of it is looked at, and nothing of it is
 * copied into the strings returned here. Pure functions, thread-safe.
 */
#ifndef OUTPOST_CLASSIFY_H
#define OUTPOST_CLASSIFY_H

#include <stddef.h>

/* Only this much reply text is searched for patterns (the reply parser
 * keeps 512 bytes; a diagnostic string is a little longer). */
#define CLASSIFY_TEXT_MAX 2048
/* A buffer of this size always holds classify_advice()'s sentence for a
 * domain of up to 255 octets. */
#define CLASSIFY_ADVICE_MAX 768

enum classify_class {
	CLASSIFY_OK = 0,                   /* 2xx */
	CLASSIFY_TEMPORARY,                /* plain 4xx: retry on schedule */
	CLASSIFY_THROTTLE,                 /* slow the upstream down, retry */
	CLASSIFY_BAD_MAILBOX,              /* 5.1.1 and friends: bounce, suppress */
	CLASSIFY_MAILBOX_FULL_OR_DISABLED, /* 5.2.x */
	CLASSIFY_POLICY_AUTH,              /* SPF/DKIM/DMARC: bounce, alert */
	CLASSIFY_BLOCKLIST,                /* IP/domain listed: bounce, alert */
	CLASSIFY_CONTENT,                  /* spam/virus verdict on the content */
	CLASSIFY_TOO_BIG,                  /* 5.3.4, 552 size */
	CLASSIFY_OTHER_PERMANENT           /* any other 5xx */
};
#define CLASSIFY_NCLASSES (CLASSIFY_OTHER_PERMANENT + 1)

/* Classify one reply. code: the 3-digit reply code; enh: "5.1.1" or ""/NULL
 * when the reply carried none (an enhanced code whose class digit does not
 * match the reply code's is ignored, RFC 3463 2); text: the reply text
 * without code and enhanced code, textlen bytes (may be NULL/0).
 * A code outside 200..599, or 1xx/3xx where a final answer was expected,
 * is CLASSIFY_TEMPORARY: a malformed reply must never bounce mail. */
enum classify_class classify_reply(int code, const char *enh, const char *text, size_t textlen);

/* Classify a stored diagnostic such as "smtp; 550 5.1.1 <a@b>: no such
 * user" or "550-5.1.1 The email account..." (NUL-terminated). Returns
 * CLASSIFY_OTHER_PERMANENT when no reply code can be found and status (an
 * RFC 3464 status such as "5.1.1", may be NULL) is 5.x.x, else
 * CLASSIFY_TEMPORARY. */
enum classify_class classify_diagnostic(const char *diag, const char *status);

/* 1 for the classes that end delivery to the recipient (a bounce). */
int classify_is_permanent(enum classify_class c);
/* 1 only for CLASSIFY_BAD_MAILBOX: the address goes on the suppression
 * list. Policy and blocklist failures are the sender's problem, never the
 * recipient's. */
int classify_suppresses(enum classify_class c);
/* 1 for CLASSIFY_POLICY_AUTH and CLASSIFY_BLOCKLIST: the admin must fix
 * DNS or reputation, so an alert goes to postmaster. */
int classify_alerts(enum classify_class c);

/* Short stable name for logs and the suppression list: "ok", "temporary",
 * "throttle", "bad-mailbox", "mailbox-full", "policy-auth", "blocklist",
 * "content", "too-big", "other-permanent". */
const char *classify_name(enum classify_class c);
/* One sentence saying what happened, for people ("the recipient address
 * does not exist at the receiving system"). */
const char *classify_describe(enum classify_class c);
/* One sentence saying what to do. domain is the sending domain the advice
 * is about (only characters valid in a host name are kept; NULL or "":
 * "your domain"). E.g. for CLASSIFY_POLICY_AUTH: "SPF/DKIM/DMARC failed
 * for example.com; run outpostctl check dns example.com". Always
 * NUL-terminates buf (truncating if short); returns buf. */
const char *classify_advice(enum classify_class c, const char *domain, char *buf, size_t len);

#endif
