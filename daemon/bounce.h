/*
 * bounce - delivery status notifications (RFC 3464) and postmaster alerts,
 * built as complete message bytes (CRLF line ends) ready to be queued.
 *
 * A DSN is multipart/report; report-type=delivery-status (RFC 6522) with
 * three parts: a human-readable text/plain (what happened, per recipient
 * the reason and what to do, from classify), message/delivery-status
 * (Reporting-MTA, per recipient Final-Recipient, Action, Status, ...), and
 * the original: text/rfc822-headers, or message/rfc822 with RET=FULL.
 *
 * Bounce loops (RFC 3464 2, RFC 5321 4.5.5, RFC 3834): the caller sends
 * the DSN with the null reverse-path MAIL FROM:<>, and it carries
 * Auto-Submitted: auto-replied. A DSN is never built for a message whose
 * own envelope sender was null: bounce_build() refuses it with -1 and
 * "no DSN for a null-sender message (RFC 3464 2; send a postmaster alert
 * instead)"; the caller sends bounce_alert_build()'s alert instead.
 *
 * The result is always 7-bit clean with lines of at most 998 octets
 * (RFC 5322 2.1.1), so it needs no 8BITMIME upstream (only a UTF-8
 * envelope sender, RFC 6531, makes its To: header UTF-8 and needs SMTPUTF8):
 * untrusted text (diagnostics, the original's headers) has CR, LF, NUL
 * and other controls turned into spaces and 8-bit bytes into '?'; RET=FULL
 * is honoured only for a 7-bit original with short lines that fits the
 * size cap, otherwise its headers are returned (RFC 3461 4.3 lets the MTA
 * return less than the full message).
 *
 * Pure functions of their parameters (the boundary comes from OpenSSL's
 * RAND_bytes); thread-safe.
 */
#ifndef OUTPOST_BOUNCE_H
#define OUTPOST_BOUNCE_H

#include <stddef.h>
#include <time.h>

#define BOUNCE_LINE_MAX 998             /* RFC 5322 2.1.1, without CRLF */
#define BOUNCE_RETURN_MAX (256 * 1024)  /* default cap on the returned original */
#define BOUNCE_DIAG_MAX 1024            /* diagnostic text kept per recipient */
#define BOUNCE_RCPTS_MAX 1000           /* recipients in one DSN */
#define BOUNCE_ERR_MAX 256

enum bounce_kind {
	BOUNCE_FAILED = 0,      /* Action: failed, "Undelivered Mail ..." */
	BOUNCE_DELAYED          /* Action: delayed, "Delayed Mail ..." */
};

enum bounce_ret {
	BOUNCE_RET_UNSET = 0,   /* no RET= at MAIL: headers only */
	BOUNCE_RET_HDRS,
	BOUNCE_RET_FULL
};

struct bounce_rcpt {
	const char *final_rcpt;     /* address as delivered to, required */
	const char *orcpt;          /* ORCPT address, xtext-decoded, without
	                             * "rfc822;"; NULL if none was given */
	const char *action;         /* "failed"/"delayed"; NULL: from the kind */
	const char *status;         /* RFC 3463 code "5.1.1", "4.4.7"; required */
	const char *remote_mta;     /* host name of the upstream, or NULL */
	const char *diagnostic;     /* "550 5.1.1 ..." or "smtp; 550 ...", or NULL */
	time_t last_attempt;        /* 0: no Last-Attempt-Date */
	time_t will_retry_until;    /* delayed only; 0: none */
};

struct bounce_params {
	const char *hostname;       /* Reporting-MTA and Message-ID domain */
	const char *from_addr;      /* NULL: "MAILER-DAEMON@hostname" */
	const char *from_display;   /* NULL: "Mail Delivery System" */
	const char *sender;         /* original envelope sender: the DSN's To: */
	const char *orig;           /* original message bytes (CRLF), may be NULL */
	size_t orig_len;
	enum bounce_ret ret;
	size_t return_max;          /* cap on the returned original; 0: default */
	const char *envid;          /* ENVID, xtext-decoded, or NULL */
	time_t arrival;             /* 0: no Arrival-Date */
	const char *queue_id;       /* required */
	enum bounce_kind kind;
	const struct bounce_rcpt *rcpts;
	size_t nrcpts;
	time_t now;                 /* Date: and Message-ID */
};

/* Build a DSN. On success returns 0 and sets *out (malloc'd, NUL-terminated
 * for convenience) and *outlen. On failure returns -1 with a reason in err:
 * null envelope sender (see above), missing or unusable parameters. */
int bounce_build(const struct bounce_params *p, char **out, size_t *outlen,
    char *err, size_t errlen);

struct bounce_alert_params {
	const char *hostname;
	const char *from_addr;      /* NULL: "MAILER-DAEMON@hostname" */
	const char *from_display;   /* NULL: "Mail Delivery System" */
	const char *to;             /* [server] postmaster address, required */
	const char *cause;          /* short: "5.7.26 from example.com" */
	const char *details;        /* free text, may hold untrusted replies */
	const char *advice;         /* classify_advice(), or NULL */
	const char *queue_id;       /* related message, or NULL */
	time_t now;
};

/* Build a plain-text alert to postmaster: Subject "outpost alert: <cause>",
 * Auto-Submitted: auto-generated (RFC 3834 5). Same return convention. */
int bounce_alert_build(const struct bounce_alert_params *p, char **out,
    size_t *outlen, char *err, size_t errlen);

#endif
