/*
 * metrics - Prometheus text exposition (metrics.h has the API, the
 * families are listed in docs/METRICS.md).
 *
 * The counters are process-wide statics: they exist before the HTTP side
 * starts and whether or not it ever does, so counting is one call with
 * no handle. Unlabelled counters are C11 atomics (relaxed: each is an
 * independent tally, nothing is ordered by them). The labelled ones are
 * touched on the loop thread only, like the scrape that reads them.
 * Per-name tables (listeners, upstreams) are fixed arrays of config names
 * (METRICS_NAMES_MAX each); a name beyond that is not counted.
 *
 * The HTTP side is libevent's evhttp on the daemon's event base: GET (or
 * HEAD) /metrics -> 200 "text/plain; version=0.0.4", any other path 404,
 * any other method 405. Request headers and body are bounded and a
 * connection idle for METRICS_TIMEOUT is closed. The body is rendered
 * whole per request; it is small (a few lines per upstream and listener)
 * and the queue gauges walk the in-memory queue once, as status does.
 *
 * Trust: requests are untrusted but only their path and method are read;
 * nothing they carry reaches the output.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "control.h"
#include "log.h"
#include "http.h"
#include "metrics.h"
#include "scheduler.h"
#include "server.h"
#include "util.h"

#define METRICS_PATH "/metrics"
#define METRICS_HEADERS_MAX 8192      /* request line and headers, bytes */
#define METRICS_BODY_MAX 1024         /* a GET has none */
#define METRICS_TIMEOUT 10            /* seconds per connection step */
#define METRICS_NAMES_MAX 256         /* listeners / upstreams counted */
#define METRICS_LABEL_MAX (CONF_NAME_MAX * 2 + 1)
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct server *srv;
	struct evhttp *http;
};

/* ---- the counters ------------------------------------------------------ */

static atomic_ulong metrics_counters[METRICS_COUNTERS];
static atomic_ulong metrics_rejects[METRICS_REJECTS];

static const char *const metrics_reject_names[METRICS_REJECTS] = {
	[METRICS_REJ_AUTH_REQUIRED] = "auth_required",
	[METRICS_REJ_SENDER_NOT_OWNED] = "sender_not_owned",
	[METRICS_REJ_MESSAGE_TOO_BIG] = "message_too_big",
	[METRICS_REJ_TOO_MANY_RCPTS] = "too_many_recipients",
	[METRICS_REJ_SUPPRESSED] = "recipient_suppressed",
	[METRICS_REJ_RATE_LIMITED] = "rate_limited",
	[METRICS_REJ_SYNTAX] = "syntax",
	[METRICS_REJ_BARE_LINE_END] = "bare_line_ending",
	[METRICS_REJ_NUL] = "nul_character",
	[METRICS_REJ_INVALID_MESSAGE] = "invalid_message",
	[METRICS_REJ_FORWARD] = "forward_refused",
	[METRICS_REJ_UNSIGNED] = "unsigned",
	[METRICS_REJ_DOMAIN_CHECK] = "domain_check_failing",
	[METRICS_REJ_LOCAL_ERROR] = "local_error",
	[METRICS_REJ_SHUTDOWN] = "shutting_down",
	[METRICS_REJ_UNSUBSCRIBED] = "unsubscribed",
	[METRICS_REJ_UNSUBSCRIBE_INVALID] = "unsubscribe_address_invalid",
	[METRICS_REJ_BULK_UNSUB] = "bulk_without_unsubscribe",
};

/* How a bulk message's recipients can unsubscribe (bulk.h) */
static const char *const metrics_bulk_kinds[] = { "one-click", "sender", "none" };
#define METRICS_BULK_KINDS (sizeof(metrics_bulk_kinds) / sizeof(metrics_bulk_kinds[0]))
static atomic_ulong metrics_bulk_count[METRICS_BULK_KINDS];

/* DKIM algorithms as dkim_key_alg() names them; the last is the rest. */
static const char *const metrics_dkim_algs[] = { "rsa-sha256", "ed25519-sha256", "other" };
#define METRICS_DKIM_ALGS (sizeof(metrics_dkim_algs) / sizeof(metrics_dkim_algs[0]))
static atomic_ulong metrics_dkim[METRICS_DKIM_ALGS];

/* TLS versions as SSL_get_version() names them; the last is the rest. */
static const char *const metrics_tls_versions[] = {
	"TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3", "other",
};
#define METRICS_TLS_VERSIONS (sizeof(metrics_tls_versions) / sizeof(metrics_tls_versions[0]))
static unsigned long metrics_tls_count[2][METRICS_TLS_VERSIONS];

/* Commit latency: final dot to durable in queue.db, seconds. */
static const double metrics_commit_le[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define METRICS_COMMIT_BUCKETS (sizeof(metrics_commit_le) / sizeof(metrics_commit_le[0]))
static unsigned long metrics_commit_bucket[METRICS_COMMIT_BUCKETS]; /* not cumulative */
static unsigned long metrics_commit_count;
static double metrics_commit_sum;

/* Counters per config name. */
enum { METRICS_L_CONNECTIONS, METRICS_L_RECEIVED };
enum { METRICS_U_SENT, METRICS_U_DEFERRED, METRICS_U_BOUNCED };
#define METRICS_NAMED_KINDS 3       /* the larger of the two sets above */

struct metrics_named {
	char name[CONF_NAME_MAX];
	unsigned long v[METRICS_NAMED_KINDS];
};

struct metrics_table {
	struct metrics_named e[METRICS_NAMES_MAX];
	size_t n;
};

static struct metrics_table metrics_listeners, metrics_upstreams;

/* metrics_named_find - name's entry, added if create; NULL if absent or
 * the table is full */
static struct metrics_named *
metrics_named_find(struct metrics_table *t, const char *name, int create)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->e[i].name, name) == 0)
			return &t->e[i];
	if (!create || t->n == METRICS_NAMES_MAX)
		return NULL;
	util_strlcpy(t->e[t->n].name, name, sizeof(t->e[t->n].name));
	return &t->e[t->n++];
}

/* metrics_named_get - the count of kind for name; 0 if never counted */
static unsigned long
metrics_named_get(struct metrics_table *t, const char *name, int kind)
{
	struct metrics_named *e = metrics_named_find(t, name, 0);

	return e ? e->v[kind] : 0;
}

void
metrics_inc(enum metrics_counter c)
{
	if ((unsigned)c < METRICS_COUNTERS)
		atomic_fetch_add_explicit(&metrics_counters[c], 1, memory_order_relaxed);
}

void
metrics_rejected(enum metrics_reject why)
{
	if ((unsigned)why < METRICS_REJECTS)
		atomic_fetch_add_explicit(&metrics_rejects[why], 1, memory_order_relaxed);
}

/* metrics_count_named - one more in counts[] at name's place in names[]
 * (n of them, the last standing for every other name) */
static void
metrics_count_named(const char *const *names, size_t n, atomic_ulong *counts,
    const char *name)
{
	size_t i;

	for (i = 0; i < n - 1; i++)
		if (name != NULL && strcmp(name, names[i]) == 0)
			break;
	atomic_fetch_add_explicit(&counts[i], 1, memory_order_relaxed);
}

void
metrics_dkim_signed(const char *alg)
{
	metrics_count_named(metrics_dkim_algs, METRICS_DKIM_ALGS, metrics_dkim, alg);
}

void
metrics_bulk(const char *unsubscribe)
{
	metrics_count_named(metrics_bulk_kinds, METRICS_BULK_KINDS, metrics_bulk_count,
	    unsubscribe);
}

void
metrics_connection(const char *listener)
{
	struct metrics_named *e = metrics_named_find(&metrics_listeners, listener, 1);

	if (e)
		e->v[METRICS_L_CONNECTIONS]++;
}

void
metrics_received(const char *listener, double secs)
{
	struct metrics_named *e = metrics_named_find(&metrics_listeners, listener, 1);
	size_t i;

	if (e)
		e->v[METRICS_L_RECEIVED]++;
	if (secs < 0)
		secs = 0;
	for (i = 0; i < METRICS_COMMIT_BUCKETS; i++)
		if (secs <= metrics_commit_le[i]) {
			metrics_commit_bucket[i]++;
			break;
		}
	metrics_commit_count++;     /* beyond the last bucket: +Inf only */
	metrics_commit_sum += secs;
}

void
metrics_delivered(const char *upstream, const char *status)
{
	struct metrics_named *e = metrics_named_find(&metrics_upstreams, upstream, 1);

	if (e == NULL)
		return;
	if (strcmp(status, "sent") == 0)
		e->v[METRICS_U_SENT]++;
	else if (strcmp(status, "bounced") == 0)
		e->v[METRICS_U_BOUNCED]++;
	else
		e->v[METRICS_U_DEFERRED]++;
}

void
metrics_tls(int out, const struct ssl_st *ssl)
{
	const char *v = ssl ? SSL_get_version(ssl) : NULL;
	size_t i;

	for (i = 0; i < METRICS_TLS_VERSIONS - 1; i++)
		if (v != NULL && strcmp(v, metrics_tls_versions[i]) == 0)
			break;
	metrics_tls_count[out ? 1 : 0][i]++;
}

/* ---- the exposition ---------------------------------------------------- */

/* metrics_escape - see metrics.h */
const char *
metrics_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return out;
	for (; *in; in++) {
		const char *rep = *in == '\\' ? "\\\\" : *in == '"' ? "\\\"" :
		    *in == '\n' ? "\\n" : NULL;
		size_t n = rep ? 2 : 1;

		if (o + n >= len)
			break;
		if (rep)
			memcpy(out + o, rep, 2);
		else
			out[o] = *in;
		o += n;
	}
	out[o] = '\0';
	return out;
}

/* metrics_family - the # HELP and # TYPE lines of one family */
static void
metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* metrics_per_listener - a counter family by [listen] section */
static void
metrics_per_listener(struct evbuffer *out, const struct conf *c, const char *name,
    const char *help, int which)
{
	char l[METRICS_LABEL_MAX];

	metrics_family(out, name, "counter", help);
	for (size_t i = 0; c && i < c->nlistens; i++)
		evbuffer_add_printf(out, "%s{listener=\"%s\"} %lu\n", name,
		    metrics_escape(c->listens[i].name, l, sizeof(l)),
		    metrics_named_get(&metrics_listeners, c->listens[i].name, which));
}

/* metrics_labeled - a counter family with one label over a fixed table */
static void
metrics_labeled(struct evbuffer *out, const char *name, const char *help,
    const char *label, const char *const *values, atomic_ulong *counts, size_t n)
{
	metrics_family(out, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%s{%s=\"%s\"} %lu\n", name, label, values[i],
		    atomic_load_explicit(&counts[i], memory_order_relaxed));
}

/* metrics_scalar - a family of one unlabelled sample */
static void
metrics_scalar(struct evbuffer *out, const char *name, const char *type, const char *help,
    double v)
{
	metrics_family(out, name, type, help);
	evbuffer_add_printf(out, "%s %.10g\n", name, v);
}

/* metrics_render_sessions - connections, acceptance, refusals, AUTH, TLS */
static void
metrics_render_sessions(struct server *srv, struct evbuffer *out)
{
	const struct conf *c = srv->conf;

	metrics_scalar(out, "outpost_connections_active", "gauge",
	    "Open submission sessions, all listeners.", (double)srv->nsessions);
	metrics_per_listener(out, c, "outpost_connections_total",
	    "Submission connections accepted, per [listen] section.", METRICS_L_CONNECTIONS);
	metrics_scalar(out, "outpost_connections_refused_total", "counter",
	    "Connections refused with 421 at accept (max_connections, per IP or in all).",
	    (double)atomic_load_explicit(&metrics_counters[METRICS_CONN_REFUSED],
	    memory_order_relaxed));
	metrics_per_listener(out, c, "outpost_messages_received_total",
	    "Messages committed to the queue (250 sent), per [listen] section.",
	    METRICS_L_RECEIVED);
	metrics_labeled(out, "outpost_messages_rejected_total",
	    "Refused MAIL, RCPT or messages, by reason (one per refusal).", "reason",
	    metrics_reject_names, metrics_rejects, METRICS_REJECTS);
	metrics_labeled(out, "outpost_messages_bulk_total",
	    "Bulk messages accepted, by how their recipients can unsubscribe "
	    "(one-click: outpost's per-recipient copies; sender: the sender's own "
	    "List-Unsubscribe; none).", "unsubscribe", metrics_bulk_kinds,
	    metrics_bulk_count, METRICS_BULK_KINDS);
	metrics_scalar(out, "outpost_auth_failures_total", "counter",
	    "AUTH attempts with invalid credentials.",
	    (double)atomic_load_explicit(&metrics_counters[METRICS_AUTH_FAILURES],
	    memory_order_relaxed));
	metrics_scalar(out, "outpost_auth_successes_total", "counter",
	    "Successful AUTH exchanges.",
	    (double)atomic_load_explicit(&metrics_counters[METRICS_AUTH_SUCCESSES],
	    memory_order_relaxed));
	metrics_family(out, "outpost_tls_sessions_total", "counter",
	    "TLS handshakes completed: in from clients, out to upstreams, by protocol version.");
	for (int d = 0; d < 2; d++)
		for (size_t i = 0; i < METRICS_TLS_VERSIONS; i++)
			evbuffer_add_printf(out, "outpost_tls_sessions_total{direction=\"%s\","
			    "version=\"%s\"} %lu\n", d ? "out" : "in", metrics_tls_versions[i],
			    metrics_tls_count[d][i]);
}

/* metrics_render_signing - DKIM, ARC, commit latency */
static void
metrics_render_signing(struct evbuffer *out)
{
	unsigned long cum = 0;

	metrics_labeled(out, "outpost_dkim_signatures_total",
	    "DKIM-Signature fields made, by algorithm (submitted mail, DSNs, alerts).",
	    "algorithm", metrics_dkim_algs, metrics_dkim, METRICS_DKIM_ALGS);
	metrics_scalar(out, "outpost_arc_seals_total", "counter",
	    "ARC sets (RFC 8617) added to forwarded mail.",
	    (double)atomic_load_explicit(&metrics_counters[METRICS_ARC_SEALS],
	    memory_order_relaxed));
	metrics_family(out, "outpost_commit_latency_seconds", "histogram",
	    "From a message's final dot to its durable commit in queue.db (checks, "
	    "signing, group commit): the wait before the client's 250.");
	for (size_t i = 0; i < METRICS_COMMIT_BUCKETS; i++) {
		cum += metrics_commit_bucket[i];
		evbuffer_add_printf(out, "outpost_commit_latency_seconds_bucket{le=\"%g\"} %lu\n",
		    metrics_commit_le[i], cum);
	}
	evbuffer_add_printf(out, "outpost_commit_latency_seconds_bucket{le=\"+Inf\"} %lu\n"
	    "outpost_commit_latency_seconds_sum %.9g\n"
	    "outpost_commit_latency_seconds_count %lu\n", metrics_commit_count,
	    metrics_commit_sum, metrics_commit_count);
}

/* Queue gauges: messages per state, and how many are older than each of
 * metrics_age_over[] (the oldest alone says too little about a backlog). */
static const long metrics_age_over[] = { 60, 300, 900, 3600, 14400, 86400 };
#define METRICS_AGES (sizeof(metrics_age_over) / sizeof(metrics_age_over[0]))
enum { METRICS_Q_QUEUED, METRICS_Q_DEFERRED, METRICS_Q_DELIVERING, METRICS_Q_HELD,
	METRICS_Q_STATES };
static const char *const metrics_q_states[METRICS_Q_STATES] = {
	"queued", "deferred", "delivering", "held",
};

struct metrics_queue {
	time_t now;
	unsigned long state[METRICS_Q_STATES];
	unsigned long older[METRICS_AGES];
};

/* metrics_queue_msg - scheduler_queue_each's visitor */
static void
metrics_queue_msg(const struct scheduler_msg_view *v, void *arg)
{
	struct metrics_queue *q = arg;

	q->state[v->held ? METRICS_Q_HELD : v->in_flight ? METRICS_Q_DELIVERING :
	    v->tried ? METRICS_Q_DEFERRED : METRICS_Q_QUEUED]++;
	for (size_t i = 0; i < METRICS_AGES; i++)
		if (q->now - v->received_at > metrics_age_over[i])
			q->older[i]++;
}

/* metrics_render_queue - the queue in memory */
static void
metrics_render_queue(struct server *srv, struct evbuffer *out)
{
	struct scheduler_queue_status qs;
	struct metrics_queue q;

	memset(&q, 0, sizeof(q));
	q.now = util_now();
	scheduler_queue_each(srv->sched, metrics_queue_msg, &q);
	scheduler_queue_status(srv->sched, &qs);
	metrics_family(out, "outpost_queue_messages", "gauge",
	    "Messages in the queue with pending recipients, by state: queued (never "
	    "tried), deferred (tried), delivering (being read or sent), held.");
	for (size_t i = 0; i < METRICS_Q_STATES; i++)
		evbuffer_add_printf(out, "outpost_queue_messages{state=\"%s\"} %lu\n",
		    metrics_q_states[i], q.state[i]);
	metrics_scalar(out, "outpost_queue_recipients", "gauge",
	    "Pending recipients in the queue.", (double)qs.rcpts);
	metrics_scalar(out, "outpost_queue_oldest_age_seconds", "gauge",
	    "Age of the oldest queued message; 0 when the queue is empty.",
	    qs.oldest ? (double)(q.now - qs.oldest) : 0.0);
	metrics_family(out, "outpost_queue_messages_older_than", "gauge",
	    "Queued messages received more than `seconds` ago.");
	for (size_t i = 0; i < METRICS_AGES; i++)
		evbuffer_add_printf(out, "outpost_queue_messages_older_than{seconds=\"%ld\"} %lu\n",
		    metrics_age_over[i], q.older[i]);
}

/* One per-upstream family: its name, type, help, and how to get a value. */
enum { METRICS_UP_SENT, METRICS_UP_DEFERRED, METRICS_UP_BOUNCED, METRICS_UP_THROTTLED,
	METRICS_UP_UP, METRICS_UP_RATE, METRICS_UP_RATE_CONF, METRICS_UP_CONNS,
	METRICS_UP_WAITING };

static const struct {
	const char *name, *type, *help;
	int what;
} metrics_up_families[] = {
	{ "outpost_messages_sent_total", "counter",
	  "Recipients delivered (2xx) through the upstream.", METRICS_UP_SENT },
	{ "outpost_messages_deferred_total", "counter",
	  "Recipient attempts deferred (4xx, throttling, unreachable) at the upstream.",
	  METRICS_UP_DEFERRED },
	{ "outpost_messages_bounced_total", "counter",
	  "Recipients bounced (5xx, or max_lifetime reached) at the upstream.",
	  METRICS_UP_BOUNCED },
	{ "outpost_upstream_throttle_events_total", "counter",
	  "Throttling answers (421, 4.7.x rate texts, sending quotas), once per job.",
	  METRICS_UP_THROTTLED },
	{ "outpost_upstream_up", "gauge",
	  "1 unless the upstream is down (unreachable, avoided for down_time).",
	  METRICS_UP_UP },
	{ "outpost_upstream_rate", "gauge",
	  "Messages per second the throttle allows now; 0 = unlimited.", METRICS_UP_RATE },
	{ "outpost_upstream_rate_configured", "gauge",
	  "The upstream's configured rate in messages per second; 0 = unlimited.",
	  METRICS_UP_RATE_CONF },
	{ "outpost_upstream_connections", "gauge",
	  "Connections busy with a delivery.", METRICS_UP_CONNS },
	{ "outpost_upstream_waiting_messages", "gauge",
	  "Due messages held back by the upstream's throttle or connection limit.",
	  METRICS_UP_WAITING },
};

/* metrics_up_value - one family's value for one upstream */
static double
metrics_up_value(int what, const struct scheduler_up_status *st)
{
	const char *name = st->cu->name;

	switch (what) {
	case METRICS_UP_SENT:
		return (double)metrics_named_get(&metrics_upstreams, name, METRICS_U_SENT);
	case METRICS_UP_DEFERRED:
		return (double)metrics_named_get(&metrics_upstreams, name, METRICS_U_DEFERRED);
	case METRICS_UP_BOUNCED:
		return (double)metrics_named_get(&metrics_upstreams, name, METRICS_U_BOUNCED);
	case METRICS_UP_THROTTLED:
		return (double)st->thr.throttle_events;
	case METRICS_UP_UP:
		return st->down_until > 0 ? 0 : 1;
	case METRICS_UP_RATE:
		return st->thr.rate_current > 0 ? st->thr.rate_current : 0;
	case METRICS_UP_RATE_CONF:
		return st->thr.rate_configured > 0 ? st->thr.rate_configured : 0;
	case METRICS_UP_CONNS:
		return (double)st->jobs;
	default:
		return (double)st->waiting;
	}
}

/* metrics_render_upstreams - per [upstream]: outcomes, health, pace */
static void
metrics_render_upstreams(struct server *srv, struct evbuffer *out)
{
	static const char *const states[] = { "up", "down", "suspended" };
	size_t n = scheduler_nupstreams(srv->sched);
	struct scheduler_up_status *st = xcalloc(n ? n : 1, sizeof(*st));
	char l[METRICS_LABEL_MAX];
	double now = (double)util_now();

	for (size_t i = 0; i < n; i++)
		scheduler_upstream_status(srv->sched, i, &st[i]);
	for (size_t f = 0; f < ARRAY_LEN(metrics_up_families); f++) {
		metrics_family(out, metrics_up_families[f].name, metrics_up_families[f].type,
		    metrics_up_families[f].help);
		for (size_t i = 0; i < n; i++)
			evbuffer_add_printf(out, "%s{upstream=\"%s\"} %.10g\n",
			    metrics_up_families[f].name, metrics_escape(st[i].cu->name, l,
			    sizeof(l)), metrics_up_value(metrics_up_families[f].what, &st[i]));
	}
	metrics_family(out, "outpost_upstream_state", "gauge",
	    "1 for the upstream's current state (as outpostctl status shows it), else 0.");
	for (size_t i = 0; i < n; i++) {
		const char *cur = control_up_state(&st[i], now);

		metrics_escape(st[i].cu->name, l, sizeof(l));
		for (size_t k = 0; k < ARRAY_LEN(states); k++)
			evbuffer_add_printf(out, "outpost_upstream_state{upstream=\"%s\","
			    "state=\"%s\"} %d\n", l, states[k], strcmp(cur, states[k]) == 0);
	}
	free(st);
}

/* metrics_render - see metrics.h */
void
metrics_render(struct server *srv, struct evbuffer *out)
{
	metrics_family(out, "outpost_build_info", "gauge",
	    "Always 1; the version is in the label.");
	evbuffer_add_printf(out, "outpost_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	metrics_scalar(out, "outpost_start_time_seconds", "gauge",
	    "When the daemon started, seconds since the epoch.", (double)srv->started);
	metrics_render_sessions(srv, out);
	metrics_render_signing(out);
	if (srv->sched != NULL) {
		metrics_render_queue(srv, out);
		metrics_render_upstreams(srv, out);
	}
}

/* ---- HTTP -------------------------------------------------------------- */

/* metrics_request - every request: GET /metrics, else 404 or 405 */
static void
metrics_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
	struct evbuffer *body;

	if (path == NULL || strcmp(path, METRICS_PATH) != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		/* not evhttp_send_error: it would drop the Allow header */
		evhttp_add_header(hdrs, "Allow", "GET, HEAD");
		evhttp_add_header(hdrs, "Content-Type", "text/plain; charset=utf-8");
		evbuffer_add_printf(body, "method not allowed: GET or HEAD " METRICS_PATH "\n");
		evhttp_send_reply(req, HTTP_BADMETHOD, "Method Not Allowed", body);
		evbuffer_free(body);
		return;
	}
	metrics_render(m->srv, body);
	evhttp_add_header(hdrs, "Content-Type", METRICS_CONTENT_TYPE);
	evhttp_add_header(hdrs, "Cache-Control", "no-store");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* metrics_start - see metrics.h */
struct metrics *
metrics_start(struct server *srv, char *err, size_t errlen)
{
	const char *listen = srv->conf->server.metrics_listen;
	struct metrics *m;

	if (errlen > 0)
		err[0] = '\0';
	if (strcmp(listen, "no") == 0)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->srv = srv;
	m->http = http_listen(srv->base, listen, METRICS_HEADERS_MAX, METRICS_BODY_MAX,
	    METRICS_TIMEOUT, metrics_request, m, err, errlen);
	if (m->http == NULL) {
		free(m);
		return NULL;
	}
	log_info("metrics on http://%s%s", listen, METRICS_PATH);
	return m;
}

/* metrics_stop - see metrics.h */
void
metrics_stop(struct metrics *m)
{
	if (m == NULL)
		return;
	evhttp_free(m->http);
	free(m);
}
