/*
 * test_metrics - the counting calls and the exposition they render
 * (without a scheduler: no queue or upstream families), label escaping,
 * the histogram's cumulative buckets, the fixed label tables, and that
 * the atomic counters lose nothing when pool threads count at once.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf.h"
#include "metrics.h"
#include "server.h"
#include "tap.h"

#define THREADS 4
#define PER_THREAD 100000

/* render - the exposition as a NUL-terminated string (caller frees) */
static char *
render(struct server *srv)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	metrics_render(srv, b);
	n = evbuffer_get_length(b);
	s = malloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

/* has_line - text holds this exact line */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static void
test_escape(void)
{
	char buf[64];

	is_str(metrics_escape("plain", buf, sizeof(buf)), "plain", "plain text unchanged");
	is_str(metrics_escape("a\\b\"c\nd", buf, sizeof(buf)), "a\\\\b\\\"c\\nd",
	    "backslash, quote and newline escaped");
	is_str(metrics_escape("abcdef", buf, 4), "abc", "cut to the buffer");
	is_str(metrics_escape("ab\"", buf, 4), "ab", "an escape is never cut in half");
}

static void *
count_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_inc(METRICS_ARC_SEALS);
		metrics_dkim_signed("ed25519-sha256");
	}
	return NULL;
}

static void
test_render(void)
{
	struct conf c;
	struct conf_listen ls[2];
	struct server srv;
	pthread_t th[THREADS];
	char *out, want[128];

	memset(&c, 0, sizeof(c));
	memset(ls, 0, sizeof(ls));
	memset(&srv, 0, sizeof(srv));
	strcpy(ls[0].name, "submission");
	strcpy(ls[1].name, "we\"ird");
	c.listens = ls;
	c.nlistens = 2;
	srv.conf = &c;
	srv.nsessions = 3;
	srv.started = 1700000000;

	out = render(&srv);
	ok(has_line(out, "# TYPE outpost_connections_active gauge"), "TYPE line");
	ok(has_line(out, "outpost_connections_active 3"), "active sessions from the server");
	ok(has_line(out, "outpost_start_time_seconds 1700000000"), "start time");
	ok(has_line(out, "outpost_messages_received_total{listener=\"submission\"} 0"),
	    "every listener listed before any traffic");
	ok(has_line(out, "outpost_connections_total{listener=\"we\\\"ird\"} 0"),
	    "a listener name is escaped");
	ok(has_line(out, "outpost_commit_latency_seconds_count 0"), "empty histogram");
	ok(strstr(out, "outpost_queue_messages") == NULL, "no queue families without a scheduler");
	ok(strstr(out, "upstream=") == NULL, "no upstream families without a scheduler");
	free(out);

	metrics_connection("submission");
	metrics_connection("submission");
	metrics_received("submission", 0.003);
	metrics_received("submission", 0.2);
	metrics_received("submission", 60);         /* beyond the last bucket */
	metrics_received("elsewhere", -1);          /* clock step: counted as 0 */
	metrics_rejected(METRICS_REJ_AUTH_REQUIRED);
	metrics_rejected(METRICS_REJ_SUPPRESSED);
	metrics_rejected(METRICS_REJ_SUPPRESSED);
	metrics_rejected(METRICS_REJECTS);          /* out of range: ignored */
	metrics_inc(METRICS_AUTH_FAILURES);
	metrics_dkim_signed("rsa-sha256");
	metrics_dkim_signed("rsa-sha1");
	metrics_dkim_signed(NULL);
	metrics_tls(0, NULL);
	metrics_tls(1, NULL);
	metrics_delivered("isp", "sent");           /* no scheduler: not rendered */
	for (int i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, count_thread, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);

	out = render(&srv);
	ok(has_line(out, "outpost_connections_total{listener=\"submission\"} 2"), "connections");
	ok(has_line(out, "outpost_messages_received_total{listener=\"submission\"} 3"),
	    "received per listener");
	ok(has_line(out, "outpost_commit_latency_seconds_bucket{le=\"0.001\"} 1"),
	    "a negative latency lands in the first bucket");
	ok(has_line(out, "outpost_commit_latency_seconds_bucket{le=\"0.005\"} 2"),
	    "buckets are cumulative");
	ok(has_line(out, "outpost_commit_latency_seconds_bucket{le=\"0.25\"} 3"), "0.2 s");
	ok(has_line(out, "outpost_commit_latency_seconds_bucket{le=\"10\"} 3"),
	    "60 s is beyond the last finite bucket");
	ok(has_line(out, "outpost_commit_latency_seconds_bucket{le=\"+Inf\"} 4"),
	    "+Inf holds every observation");
	ok(has_line(out, "outpost_commit_latency_seconds_count 4"), "count");
	ok(strstr(out, "outpost_commit_latency_seconds_sum 60.203") != NULL, "sum");
	ok(has_line(out, "outpost_messages_rejected_total{reason=\"auth_required\"} 1"),
	    "auth_required");
	ok(has_line(out, "outpost_messages_rejected_total{reason=\"recipient_suppressed\"} 2"),
	    "recipient_suppressed");
	ok(has_line(out, "outpost_messages_rejected_total{reason=\"shutting_down\"} 0"),
	    "every reason listed, zero or not");
	ok(has_line(out, "outpost_auth_failures_total 1"), "AUTH failures");
	ok(has_line(out, "outpost_dkim_signatures_total{algorithm=\"rsa-sha256\"} 1"), "rsa");
	ok(has_line(out, "outpost_dkim_signatures_total{algorithm=\"other\"} 2"),
	    "unknown algorithms are \"other\", never the given string");
	snprintf(want, sizeof(want), "outpost_dkim_signatures_total{algorithm=\"ed25519-sha256\"}"
	    " %d", THREADS * PER_THREAD);
	ok(has_line(out, want), "no increment lost across threads (dkim)");
	snprintf(want, sizeof(want), "outpost_arc_seals_total %d", THREADS * PER_THREAD);
	ok(has_line(out, want), "no increment lost across threads (arc)");
	ok(has_line(out, "outpost_tls_sessions_total{direction=\"in\",version=\"other\"} 1"),
	    "TLS in without a session: other");
	ok(has_line(out, "outpost_tls_sessions_total{direction=\"out\",version=\"other\"} 1"),
	    "TLS out");
	ok(strstr(out, "rsa-sha1") == NULL && strstr(out, "elsewhere") == NULL,
	    "names outside the config and the tables never become labels");
	free(out);
}

int
main(void)
{
	test_escape();
	test_render();
	return done();
}
