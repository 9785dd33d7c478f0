/*
 * unsub_http - the one-click unsubscribe endpoint (RFC 8058) outpost
 * serves itself on [unsubscribe] listen, plain HTTP behind the office's
 * HTTPS reverse proxy (issue 10).
 *
 *   GET|HEAD /u/TOKEN  200: a page naming the address and the sender,
 *                      with a button that POSTs; unsubscribes nobody
 *                      (link scanners fetch every link in a message)
 *   POST /u/TOKEN      with List-Unsubscribe=One-Click in the body
 *                      (urlencoded or multipart/form-data): the recipient
 *                      is unsubscribed from that sender, 200 once it is
 *                      on disk; again: 200, nothing new
 *   a token that is malformed, unknown, not matching its ledger row or
 *   expired, or a POST without the body: 400, always the same words
 *   other paths 404, other methods 405
 *
 * API: unsub_http_start (NULL with err[0] == '\0' when listen is "no")
 * and unsub_http_stop, on the loop thread; unsub_http_form_ok, the body
 * check, is a pure function for the unit tests.
 *
 * Trust: everything a client sends is untrusted. The token is checked
 * for its form before it reaches the ledger (a bound parameter), and
 * against its MAC after; what the page shows comes from the ledger and
 * is HTML-escaped; request headers and bodies are bounded.
 */
#ifndef OUTPOST_UNSUB_HTTP_H
#define OUTPOST_UNSUB_HTTP_H

#include <stddef.h>

struct server;
struct unsub_http;

#define UNSUB_HTTP_BODY_MAX 1024      /* a POST body, bytes (RFC 8058 needs ~30) */

struct unsub_http *unsub_http_start(struct server *srv, char *err, size_t errlen);
/* Answer the POSTs still waiting for the store (their unsubscribes are
 * queued and written by store_close), then stop listening. */
void unsub_http_stop(struct unsub_http *u);
/* 1 if body (len bytes, not NUL-terminated) of Content-Type ctype (NULL
 * if none was sent: taken as urlencoded) holds the field
 * List-Unsubscribe=One-Click (RFC 8058 3.1), else 0. */
int unsub_http_form_ok(const char *ctype, const char *body, size_t len);
/* The ledger row of token when it is a valid, unexpired token whose MAC
 * matches that row: 1 with *r filled, 0 if it is not, -1 if the ledger
 * cannot be read. Also for the mailto: unsubscribes (smtp_session.c). */
struct store_unsub_row;
int unsub_http_token(struct unsub_http *u, const char *token, struct store_unsub_row *r);

#endif
