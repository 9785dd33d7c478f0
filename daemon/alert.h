/*
 * alert - admin alerts to [server] postmaster by mail, at most one mail
 * per cause per window (an hour in the daemon) plus a digest.
 *
 * alert_raise(a, cause, summary, details, advice) always logs one line
 * "ALERT cause: summary" at error level. The first raise of a cause (or
 * the first after a quiet window) is mailed at once; later raises within
 * the window are only counted, and when the window ends ONE digest mail
 * says "cause X happened N more times since HH:MM; last: ..." with the
 * last raise's details and advice. The digest opens a new window; a
 * window that ends with nothing counted forgets the cause.
 *
 * Mails go out through inject_message with the null sender <> (an alert
 * cannot bounce back into another alert), From: "outpost
 * <MAILER-DAEMON@hostname>", built by bounce_alert_build, DKIM-signed
 * with the hostname's keys when it has any.
 *
 * Bounded memory: at most max_causes causes are tracked (256 by default);
 * a new one beyond that drops the oldest with a log line, and the text
 * kept per cause is capped. At alert_free (shutdown) the digests still
 * pending are logged, not mailed.
 *
 * Loop thread only; the digest timer lives on srv->base.
 */
#ifndef OUTPOST_ALERT_H
#define OUTPOST_ALERT_H

#include <stddef.h>

struct server;
struct alert;

#define ALERT_WINDOW_DEFAULT 3600   /* seconds: one mail per cause per hour */
#define ALERT_CAUSES_DEFAULT 256
#define ALERT_CAUSE_MAX 128         /* cause keys are cut to this */
#define ALERT_TEXT_MAX 2048         /* summary/details/advice kept per cause */

/* window in seconds, max_causes; 0 for the defaults. */
struct alert *alert_new(struct server *srv, long window, size_t max_causes);
/* Logs the digests still pending; mails nothing. NULL is fine. */
void alert_free(struct alert *a);

/* cause: a short stable key ("upstream-auth:main"); summary: one line;
 * details and advice may be NULL. Text may be untrusted (upstream
 * replies): logged escaped, mailed cleaned by bounce.c. */
/* a may be NULL: then only the log line. */
void alert_raise(struct alert *a, const char *cause, const char *summary,
    const char *details, const char *advice);

/* Causes tracked now (for status and tests). */
size_t alert_tracked(const struct alert *a);

#endif
