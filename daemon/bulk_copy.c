/*
 * bulk_copy - per-recipient copies with one-click unsubscribe. See
 * bulk_copy.h.
 *
 * The fields go at the very top, above Received:, so the copy is the
 * prepared message with a few octets in front: the body and every field
 * the client wrote stay as they were. The list-unsubscribe line is
 * folded after its comma when it would pass 78 columns (a long URL); the
 * folding white space is outside the angle brackets, so the URIs stay
 * whole (RFC 2369 2).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bulk_copy.h"
#include "conf.h"
#include "dkim_sign.h"
#include "unsub_token.h"
#include "util.h"

/* bulk_copy_headers - List-Unsubscribe, -Post and perhaps Precedence */
size_t
bulk_copy_headers(const struct bulk_copy_params *p, const char *token, char *buf,
    size_t buflen)
{
	char web[CONF_URL_MAX + UNSUB_TOKEN_LEN + 8], mail[HOST_MAX + UNSUB_TOKEN_LEN + 32];
	size_t ulen = strlen(p->url);
	int n, w;

	while (ulen > 0 && p->url[ulen - 1] == '/')
		ulen--;
	w = snprintf(web, sizeof(web), "<%.*s/u/%s>", (int)ulen, p->url, token);
	n = snprintf(mail, sizeof(mail), "<mailto:unsubscribe+%s@%s>", token, p->domain);
	if (w < 0 || (size_t)w >= sizeof(web) || n < 0 || (size_t)n >= sizeof(mail))
		return 0;
	/* "List-Unsubscribe: " is 18 columns, ", " two more */
	n = snprintf(buf, buflen, "List-Unsubscribe: %s,%s%s\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n%s",
	    web, 18 + strlen(web) + 2 + strlen(mail) > BULK_COPY_FOLD ? "\r\n " : " ",
	    mail, p->add_precedence ? "Precedence: bulk\r\n" : "");
	if (n < 0 || (size_t)n >= buflen)
		return 0;
	return (size_t)n;
}

/* bulk_copy_make - token, fields, message, then DKIM */
int
bulk_copy_make(const struct bulk_copy_params *p, const char *msg, size_t len,
    const char *rcpt, struct bulk_copy *c, char *err, size_t errlen)
{
	char hdr[BULK_COPY_HDR_MAX], *copy;
	size_t hlen;

	memset(c, 0, sizeof(*c));
	if (unsub_token_make(p->key, p->sender, rcpt, p->list, p->expires, c->token) < 0) {
		snprintf(err, errlen, "address or list too long for an unsubscribe token");
		return -1;
	}
	if ((hlen = bulk_copy_headers(p, c->token, hdr, sizeof(hdr))) == 0) {
		snprintf(err, errlen, "List-Unsubscribe field too long");
		return -1;
	}
	copy = xmalloc(hlen + len + 1);
	memcpy(copy, hdr, hlen);
	memcpy(copy + hlen, msg, len);
	copy[hlen + len] = '\0';
	if (p->signer == NULL || p->dkim == NULL) {
		c->data = copy;
		c->len = hlen + len;
		return 0;
	}
	if (dkim_sign_message(p->signer, p->dkim, NULL, copy, hlen + len, &c->data, &c->len,
	    c->dkim_log, sizeof(c->dkim_log), err, errlen) < 0) {
		free(copy);
		return -1;
	}
	free(copy);
	return 0;
}
