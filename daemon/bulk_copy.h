/*
 * bulk_copy - one recipient's copy of a bulk message with its own
 * RFC 8058 one-click unsubscribe:
 *
 *   List-Unsubscribe: <URL/u/TOKEN>, <mailto:unsubscribe+TOKEN@DOMAIN>
 *   List-Unsubscribe-Post: List-Unsubscribe=One-Click
 *   Precedence: bulk                       (when the message has none)
 *
 * on top of the prepared message, then DKIM-signed for the From: domain
 * (dkim_sign over-signs both List-Unsubscribe fields, so no second one
 * can be added after signing; RFC 8058 3.3 wants them signed).
 *
 * API: bulk_copy_headers (pure), bulk_copy_make (pure but for the clock
 * in t=; runs in the signer pool, one RSA signature per key and copy).
 *
 * Input: the message as message_prepare made it (CRLF, not yet signed);
 * URL from the config; sender and recipient as the session accepted them
 * (no CR, LF or angle brackets: smtp_parse refuses those).
 */
#ifndef OUTPOST_BULK_COPY_H
#define OUTPOST_BULK_COPY_H

#include <stddef.h>
#include <time.h>

#include "dkim_sign.h"
#include "unsub_token.h"
#include "util.h"

#define BULK_COPY_HDR_MAX 2048  /* the fields added: URL <= 512, domain <= 255 */
#define BULK_COPY_FOLD 78       /* RFC 5322 2.1.1 SHOULD */

struct bulk_copy_params {
	const struct unsub_key *key;
	const char *url;            /* [unsubscribe] url; a trailing '/' is dropped */
	const char *domain;         /* the From: domain: mailto and signatures */
	const char *list;           /* List-Id's id, else the From: domain */
	const char *sender;         /* envelope sender, as in the token */
	time_t expires;             /* of every token */
	int add_precedence;         /* the message has no Precedence: */
	const struct dkim_signer *signer; /* NULL: copies go unsigned */
	const struct dkim_domain *dkim;   /* the From: domain's keys, or NULL */
};

struct bulk_copy {
	char token[UNSUB_TOKEN_LEN + 1];
	char *data;                 /* malloc'd: signatures, our fields, msg */
	size_t len;
	char dkim_log[DKIM_SIGN_LOG_MAX];
};

/* The fields above for token, CRLF-terminated and folded at 78 columns
 * where a line would be longer, into buf; their length, or 0 if they
 * do not fit. */
size_t bulk_copy_headers(const struct bulk_copy_params *p, const char *token, char *buf,
    size_t buflen);
/* rcpt's copy of msg into c (c->data malloc'd): 0, or -1 with a reason in
 * err (a field too long for a token, or signing failed). */
int bulk_copy_make(const struct bulk_copy_params *p, const char *msg, size_t len,
    const char *rcpt, struct bulk_copy *c, char *err, size_t errlen);

#endif
