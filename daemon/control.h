/*
 * control - the daemon's control socket: STATE_DIR/control, a Unix
 * stream socket of mode 0660, which outpostctl uses for what only the
 * running daemon knows (live status) or may change.
 *
 * Protocol, one request per connection: the client sends one line
 * "VERB [ARG...]" (at most CONTROL_LINE_MAX bytes, LF or CRLF ended);
 * the daemon answers "ok" LF and the text of the answer, or
 * "error: REASON" LF, then closes. Verbs are rows of one table:
 *   status [--json]    uptime, sessions, queue counts, and per upstream
 *                      its state, current and configured rate, suspension
 *                      and its reason, connections, and the rolling day's
 *                      volume against the daily limit
 *   queue hold|release|delete|retry ID...   (scheduler_admin), and
 *   queue retry --all  every id tried; failures in one "error:" line
 *   reload             users file, DKIM keys, suppression list
 *                      (server_reload); errors come back as file:line
 *
 * Trust: the peer's credentials (SO_PEERCRED) must be root, the daemon's
 * own user, or a member of its group (the socket mode lets only them
 * connect anyway; the check also holds where the mode is not honoured).
 * A request line that is too long, or slow (CONTROL_TIMEOUT), is refused.
 */
#ifndef OUTPOST_CONTROL_H
#define OUTPOST_CONTROL_H

#include <stddef.h>

struct server;
struct control;
struct scheduler_up_status;

#define CONTROL_NAME "control"         /* in state_dir */
#define CONTROL_LINE_MAX 1024
#define CONTROL_TIMEOUT 10             /* seconds for the request line */

/* Listen on path (a stale socket there is replaced). NULL with err. */
struct control *control_new(struct server *srv, const char *path, char *err,
    size_t errlen);
/* Close the socket, drop open requests, unlink the path. */
void control_free(struct control *c);
/* One line for systemd's STATUS=: queue counts and each upstream's state,
 * e.g. "12 messages queued (3 deferred, 0 held); upstreams: isp up". */
void control_status_line(struct server *srv, char *buf, size_t len);
/* An upstream's state as status shows it: "up", "down" (unreachable) or
 * "suspended" (throttled); now in seconds since the epoch. */
const char *control_up_state(const struct scheduler_up_status *st, double now);

#endif
