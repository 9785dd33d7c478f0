/*
 * unsub_http - the RFC 8058 one-click unsubscribe endpoint. See
 * unsub_http.h for what it answers.
 *
 * libevent's evhttp on the daemon's event base, like metrics.c: request
 * headers and bodies bounded (UNSUB_HTTP_HEADERS_MAX, UNSUB_HTTP_BODY_MAX:
 * evhttp answers 413 beyond), and a connection idle for
 * UNSUB_HTTP_TIMEOUT closed. A token is verified in three steps: its
 * form (26 base32 characters), its row in the ledger (store.h: read on
 * a read-only connection of this module's own, a point lookup by the
 * primary key), and its MAC over that row's sender, recipient, list and
 * expiry under state_dir/unsubscribe.key (unsub_token.h). Every failure
 * gets the same 400, so the answer tells a prober nothing.
 *
 * A POST puts the unsubscribe in memory at once (the next RCPT from that
 * sender is refused) and answers once the store has written it
 * (store_unsub_add), so a 200 means it survives a crash. If the
 * connection goes first, libevent frees the request at our reply. At
 * shutdown the POSTs still waiting are answered at once: store_close
 * writes what was queued.
 *
 * The ledger's expired rows are deleted at start and every day.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "conf.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "unsub.h"
#include "unsub_http.h"
#include "unsub_token.h"
#include "util.h"

#define UNSUB_HTTP_PREFIX "/u/"
#define UNSUB_HTTP_HEADERS_MAX 8192   /* request line and headers, bytes */
#define UNSUB_HTTP_TIMEOUT 10         /* seconds per connection step */
#define UNSUB_HTTP_EXPIRE_EVERY 86400 /* the ledger's expired rows go */
#define UNSUB_HTTP_FIELD "List-Unsubscribe"
#define UNSUB_HTTP_VALUE "One-Click"
#define UNSUB_HTTP_BAD "This unsubscribe link is not valid.\n"
/* Nothing from elsewhere, no script; the form posts to this page only. */
#define UNSUB_HTTP_CSP "default-src 'none'; form-action 'self'"

/* A POST waiting for its unsubscribe to reach the disk. */
struct unsub_pending {
	struct server *srv;
	struct unsub_http *u;       /* NULL once the endpoint stopped */
	struct evhttp_request *req; /* NULL once answered */
	char sender[UNSUB_FIELD_MAX], rcpt[UNSUB_FIELD_MAX], list[UNSUB_FIELD_MAX];
	struct unsub_pending *next;
};

struct unsub_http {
	struct server *srv;
	struct evhttp *http;
	struct store *ro;           /* read-only queue.db: the ledger */
	const struct unsub_key *key; /* srv->unsub_key (main.c) */
	struct event *expire;
	struct unsub_pending *pending;
};

/* ---- the POST body (RFC 8058 3.1) ------------------------------------- */

/* unsub_http_hex - one hex digit's value, or -1 */
static int
unsub_http_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* unsub_http_urldecode - s[0..n) decoded (+ is a space) into out; -1 if
 * it does not fit or a %-escape is broken */
static int
unsub_http_urldecode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= n || (hi = unsub_http_hex(s[i + 1])) < 0 ||
			    (lo = unsub_http_hex(s[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* unsub_http_urlencoded_ok - a=b&c=d with List-Unsubscribe=One-Click */
static int
unsub_http_urlencoded_ok(const char *body, size_t len)
{
	char k[64], v[64];
	size_t i = 0;

	while (i <= len) {
		size_t end = i, eq;

		while (end < len && body[end] != '&')
			end++;
		for (eq = i; eq < end && body[eq] != '='; eq++)
			;
		if (eq < end && unsub_http_urldecode(body + i, eq - i, k, sizeof(k)) == 0 &&
		    unsub_http_urldecode(body + eq + 1, end - eq - 1, v, sizeof(v)) == 0 &&
		    strcmp(k, UNSUB_HTTP_FIELD) == 0 && strcmp(v, UNSUB_HTTP_VALUE) == 0)
			return 1;
		i = end + 1;
	}
	return 0;
}

/* unsub_http_memmem - the first n-byte needle in hay[0..len), or NULL */
static const char *
unsub_http_memmem(const char *hay, size_t len, const char *needle, size_t n)
{
	if (n == 0 || n > len)
		return NULL;
	for (size_t i = 0; i + n <= len; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
			return hay + i;
	return NULL;
}

/* unsub_http_boundary - the boundary parameter of a multipart
 * Content-Type into out; -1 if none or too long (RFC 2046 5.1.1: 70) */
static int
unsub_http_boundary(const char *ctype, char *out, size_t outlen)
{
	const char *p = ctype;
	size_t n;

	while ((p = strchr(p, ';')) != NULL) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			p++;
			n = strcspn(p, "\"");
		} else {
			n = strcspn(p, "; \t");
		}
		if (n == 0 || n > 70 || n >= outlen)
			return -1;
		memcpy(out, p, n);
		out[n] = '\0';
		return 0;
	}
	return -1;
}

/* unsub_http_multipart_ok - a form-data part named List-Unsubscribe
 * whose content is One-Click */
static int
unsub_http_multipart_ok(const char *ctype, const char *body, size_t len)
{
	char b[80], delim[84];
	const char *p, *end = body + len;
	size_t dl;

	if (unsub_http_boundary(ctype, b, sizeof(b)) < 0)
		return 0;
	dl = (size_t)snprintf(delim, sizeof(delim), "--%s", b);
	p = unsub_http_memmem(body, len, delim, dl);
	while (p != NULL) {
		const char *hdr = p + dl, *hend, *next, *val;
		size_t vlen;

		if (end - hdr < 2 || memcmp(hdr, "\r\n", 2) != 0)
			return 0;       /* "--" after it: the last one */
		hdr += 2;
		if ((hend = unsub_http_memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4)) == NULL)
			return 0;
		val = hend + 4;
		if ((next = unsub_http_memmem(val, (size_t)(end - val), delim, dl)) == NULL)
			return 0;
		vlen = (size_t)(next - val);
		if (vlen >= 2 && memcmp(next - 2, "\r\n", 2) == 0)
			vlen -= 2;
		/* the name as a quoted parameter of Content-Disposition
		 * (RFC 7578 4.2); the headers are short, bounded by the body */
		if ((unsub_http_memmem(hdr, (size_t)(hend - hdr),
		    "name=\"" UNSUB_HTTP_FIELD "\"", strlen(UNSUB_HTTP_FIELD) + 7) != NULL ||
		    unsub_http_memmem(hdr, (size_t)(hend - hdr) + 1,
		    "name=" UNSUB_HTTP_FIELD "\r", strlen(UNSUB_HTTP_FIELD) + 6) != NULL) &&
		    vlen == strlen(UNSUB_HTTP_VALUE) && memcmp(val, UNSUB_HTTP_VALUE, vlen) == 0)
			return 1;
		p = next;
	}
	return 0;
}

/* unsub_http_form_ok - see unsub_http.h */
int
unsub_http_form_ok(const char *ctype, const char *body, size_t len)
{
	if (len > UNSUB_HTTP_BODY_MAX)
		return 0;
	if (ctype != NULL && strncasecmp(ctype, "multipart/form-data", 19) == 0)
		return unsub_http_multipart_ok(ctype, body, len);
	if (ctype == NULL || strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)
		return unsub_http_urlencoded_ok(body, len);
	return 0;
}

/* ---- answers -------------------------------------------------------------- */

/* unsub_http_html - s with & < > " ' escaped onto body */
static void
unsub_http_html(struct evbuffer *body, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': evbuffer_add_printf(body, "&amp;"); break;
		case '<': evbuffer_add_printf(body, "&lt;"); break;
		case '>': evbuffer_add_printf(body, "&gt;"); break;
		case '"': evbuffer_add_printf(body, "&quot;"); break;
		case '\'': evbuffer_add_printf(body, "&#39;"); break;
		default:
			if ((unsigned char)*s < 0x20 || *s == 0x7f)
				evbuffer_add_printf(body, "?");
			else
				evbuffer_add(body, s, 1);
		}
	}
}

/* unsub_http_reply - send code with body (may be NULL) and the headers
 * every answer carries */
static void
unsub_http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *ctype, struct evbuffer *body)
{
	struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);

	evhttp_add_header(hdrs, "Content-Type", ctype);
	evhttp_add_header(hdrs, "Cache-Control", "no-store");
	evhttp_add_header(hdrs, "X-Robots-Tag", "noindex");
	evhttp_add_header(hdrs, "Content-Security-Policy", UNSUB_HTTP_CSP);
	evhttp_add_header(hdrs, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(hdrs, "Referrer-Policy", "no-referrer");
	evhttp_send_reply(req, code, reason, body);
}

/* unsub_http_text - a short plain-text answer */
static void
unsub_http_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add(body, text, strlen(text));
	unsub_http_reply(req, code, reason, "text/plain; charset=utf-8", body);
	evbuffer_free(body);
}

/* unsub_http_page - the HTML page: the question (GET) or the answer */
static void
unsub_http_page(struct evhttp_request *req, const struct store_unsub_row *r, int done)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evbuffer_add_printf(body, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
	    "<title>Unsubscribe</title></head>\n<body>\n<h1>%s</h1>\n<p>",
	    done ? "You are unsubscribed" : "Unsubscribe");
	evbuffer_add_printf(body, "%s", done ? "<strong>" : "Stop mail to <strong>");
	unsub_http_html(body, r->rcpt);
	evbuffer_add_printf(body, "%s", done ?
	    "</strong> will no longer receive mail from <strong>" : "</strong> from <strong>");
	unsub_http_html(body, r->sender);
	evbuffer_add_printf(body, "</strong>");
	if (r->list[0]) {
		evbuffer_add_printf(body, " (list ");
		unsub_http_html(body, r->list);
		evbuffer_add_printf(body, ")");
	}
	evbuffer_add_printf(body, "%s", done ? ".</p>\n" : "?</p>\n"
	    "<form method=\"post\"><input type=\"hidden\" name=\"" UNSUB_HTTP_FIELD
	    "\" value=\"" UNSUB_HTTP_VALUE "\"><button type=\"submit\">Unsubscribe</button>"
	    "</form>\n");
	evbuffer_add_printf(body, "</body></html>\n");
	unsub_http_reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", body);
	evbuffer_free(body);
}

/* unsub_http_done_page - a pending POST's confirmation, once */
static void
unsub_http_done_page(struct unsub_pending *p)
{
	struct store_unsub_row r;

	if (p->req == NULL)
		return;
	memset(&r, 0, sizeof(r));
	memcpy(r.sender, p->sender, sizeof(r.sender));
	memcpy(r.rcpt, p->rcpt, sizeof(r.rcpt));
	memcpy(r.list, p->list, sizeof(r.list));
	unsub_http_page(p->req, &r, 1);
	p->req = NULL;
}

/* ---- the requests ------------------------------------------------------ */

/* unsub_http_token - see unsub_http.h */
int
unsub_http_token(struct unsub_http *u, const char *path, struct store_unsub_row *r)
{
	char token[UNSUB_TOKEN_LEN + 1];
	int found;

	if (strlen(path) != UNSUB_TOKEN_LEN ||
	    strspn(path, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ234567") !=
	    UNSUB_TOKEN_LEN)
		return 0;
	util_strlcpy(token, path, sizeof(token));
	util_strlower(token);
	if ((found = store_unsub_token_find(u->ro, token, r)) <= 0)
		return found;
	return unsub_token_check(u->key, token, r->sender, r->rcpt, r->list, util_now()) ==
	    UNSUB_OK && r->expires >= util_now() ? 1 : 0;
}

/* unsub_http_log - the one line per unsubscribe */
static void
unsub_http_log(const struct unsub_pending *p, const char *how)
{
	char r[UNSUB_FIELD_MAX * 4], s[UNSUB_FIELD_MAX * 4], l[UNSUB_FIELD_MAX * 4];

	log_info("unsubscribe: <%s> from <%s> (list %s) via %s", log_esc(p->rcpt, r, sizeof(r)),
	    log_esc(p->sender, s, sizeof(s)), log_esc(p->list[0] ? p->list : "-", l,
	    sizeof(l)), how);
}

/* unsub_http_unlink - take p off u's pending list */
static void
unsub_http_unlink(struct unsub_http *u, struct unsub_pending *p)
{
	for (struct unsub_pending **pp = &u->pending; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	}
}

/* unsub_http_stored - store callback on the loop: answer the POST */
static void
unsub_http_stored(int err, void *arg)
{
	struct unsub_pending *p = arg;

	if (p->u != NULL)
		unsub_http_unlink(p->u, p);
	if (err != STORE_OK) {
		log_err("unsubscribe: <%s>: not saved (store error %d)", p->rcpt, err);
		unsub_remove(p->srv->unsubs, p->sender, p->rcpt);
		if (p->req != NULL)
			unsub_http_text(p->req, 503, "Service Unavailable",
			    "The unsubscribe could not be saved; try again later.\n");
	} else {
		/* again: a reload since the POST read the table without it */
		unsub_add(p->srv->unsubs, p->sender, p->rcpt, p->list, util_now());
		unsub_http_log(p, "one-click");
		unsub_http_done_page(p);
	}
	free(p);
}

/* unsub_http_post - the one-click unsubscribe itself */
static void
unsub_http_post(struct unsub_http *u, struct evhttp_request *req,
    const struct store_unsub_row *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ctype = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	char body[UNSUB_HTTP_BODY_MAX];
	size_t len = evbuffer_get_length(in);
	struct unsub_pending *p;

	if (len > sizeof(body) || evbuffer_copyout(in, body, len) != (ev_ssize_t)len ||
	    !unsub_http_form_ok(ctype, body, len)) {
		unsub_http_text(req, HTTP_BADREQUEST, "Bad Request", UNSUB_HTTP_BAD);
		return;
	}
	switch (unsub_add(u->srv->unsubs, r->sender, r->rcpt, r->list, util_now())) {
	case 0:                 /* already: the same answer, nothing new */
		unsub_http_page(req, r, 1);
		return;
	case -1:
		log_err("unsubscribe: the set is full; not recorded");
		unsub_http_text(req, 503, "Service Unavailable",
		    "The unsubscribe could not be saved; try again later.\n");
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->srv = u->srv;
	p->u = u;
	p->req = req;
	memcpy(p->sender, r->sender, sizeof(p->sender));
	memcpy(p->rcpt, r->rcpt, sizeof(p->rcpt));
	memcpy(p->list, r->list, sizeof(p->list));
	p->next = u->pending;
	u->pending = p;
	store_unsub_add(u->srv->store, r->sender, r->rcpt, r->list, util_now(),
	    unsub_http_stored, p);
}

/* unsub_http_request - every request */
static void
unsub_http_request(struct evhttp_request *req, void *arg)
{
	struct unsub_http *u = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct store_unsub_row r;
	int v;

	if (path == NULL || strncmp(path, UNSUB_HTTP_PREFIX, strlen(UNSUB_HTTP_PREFIX)) != 0) {
		unsub_http_text(req, HTTP_NOTFOUND, "Not Found", "Not found.\n");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD && cmd != EVHTTP_REQ_POST) {
		/* not evhttp_send_error: it would drop the Allow header */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
		    "GET, HEAD, POST");
		unsub_http_text(req, HTTP_BADMETHOD, "Method Not Allowed",
		    "Method not allowed.\n");
		return;
	}
	memset(&r, 0, sizeof(r));
	if ((v = unsub_http_token(u, path + strlen(UNSUB_HTTP_PREFIX), &r)) < 0) {
		unsub_http_text(req, 503, "Service Unavailable", "Try again later.\n");
		return;
	}
	if (v == 0) {
		unsub_http_text(req, HTTP_BADREQUEST, "Bad Request", UNSUB_HTTP_BAD);
		return;
	}
	if (cmd == EVHTTP_REQ_POST)
		unsub_http_post(u, req, &r);
	else
		unsub_http_page(req, &r, 0);
}

/* unsub_http_expire_tick - the ledger's expired rows go, daily */
static void
unsub_http_expire_tick(evutil_socket_t fd, short what, void *arg)
{
	struct unsub_http *u = arg;

	(void)fd;
	(void)what;
	store_unsub_tokens_expire(u->srv->store);
}

/* unsub_http_free - everything but the pending POSTs */
static void
unsub_http_free(struct unsub_http *u)
{
	if (u->http)
		evhttp_free(u->http);
	if (u->expire)
		event_free(u->expire);
	store_close(u->ro);
	free(u);
}

/* unsub_http_start - see unsub_http.h */
struct unsub_http *
unsub_http_start(struct server *srv, char *err, size_t errlen)
{
	const char *listen = srv->conf->unsub.listen;
	const struct timeval daily = { UNSUB_HTTP_EXPIRE_EVERY, 0 };
	char path[PATH_MAX + 32], why[PATH_MAX + 256];
	struct unsub_http *u;

	if (errlen > 0)
		err[0] = '\0';
	if (strcmp(listen, "no") == 0)
		return NULL;
	if (srv->unsub_key == NULL) {
		snprintf(err, errlen, "no unsubscribe key loaded");
		return NULL;
	}
	u = xcalloc(1, sizeof(*u));
	u->srv = srv;
	u->key = srv->unsub_key;
	snprintf(path, sizeof(path), "%s/queue.db", srv->conf->server.state_dir);
	if ((u->ro = store_open(path, 1, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "%s", why);
		unsub_http_free(u);
		return NULL;
	}
	if ((u->expire = event_new(srv->base, -1, EV_PERSIST, unsub_http_expire_tick,
	    u)) == NULL) {
		snprintf(err, errlen, "event_new failed");
		unsub_http_free(u);
		return NULL;
	}
	u->http = http_listen(srv->base, listen, UNSUB_HTTP_HEADERS_MAX, UNSUB_HTTP_BODY_MAX,
	    UNSUB_HTTP_TIMEOUT, unsub_http_request, u, err, errlen);
	if (u->http == NULL) {
		unsub_http_free(u);
		return NULL;
	}
	store_unsub_tokens_expire(srv->store);
	evtimer_add(u->expire, &daily);
	log_info("unsubscribe endpoint on http://%s" UNSUB_HTTP_PREFIX, listen);
	return u;
}

/* unsub_http_stop - see unsub_http.h */
void
unsub_http_stop(struct unsub_http *u)
{
	if (u == NULL)
		return;
	/* The unsubscribes are queued: store_close writes them. */
	for (struct unsub_pending *p = u->pending; p; p = p->next) {
		unsub_http_done_page(p);
		p->u = NULL;
	}
	u->pending = NULL;
	unsub_http_free(u);
}
