/*
 * test_throttle - rate specs, token buckets, rolling-day limits and their
 * persistence, the spike guard, domain pacing, adaptive backoff, per-user
 * limits and the retry schedule, all on a fake clock (no sleeping).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "throttle.h"
#include "tap.h"

/* A slot- and second-aligned fake epoch (6,000,000 slots of 300 s). */
#define T0 1800000000.0

static long long
us(double s)
{
	double v = s * 1e6;

	return (long long)(v >= 0 ? v + 0.5 : v - 0.5);
}

static struct throttle_config
config(void)
{
	struct throttle_config c;

	memset(&c, 0, sizeof(c));
	throttle_params_default(&c.params);
	return c;
}

static void
test_parse(void)
{
	static const struct {
		const char *in;
		unsigned long n;
		long period;
	} good[] = {
		{ "10/second", 10, 1 }, { "20/minute", 20, 60 },
		{ "250/hour", 250, 3600 }, { "5/s", 5, 1 }, { "5/sec", 5, 1 },
		{ "5/m", 5, 60 }, { "5/min", 5, 60 }, { "5/h", 5, 3600 },
		{ " 7 / Minute ", 7, 60 }, { "10000/HOUR", 10000, 3600 },
	};
	static const char *bad[] = {
		"", "x", "10", "10/day", "10/", "/minute", "-1/second",
		"1.5/second", "10/minutes", "ten/minute", "10 per minute",
	};
	struct throttle_rate r;
	struct throttle_domain_rate *dr;
	size_t i, n;
	char err[256];

	for (i = 0; i < ARRAY_LEN(good); i++) {
		memset(&r, 0, sizeof(r));
		is_int(throttle_parse_rate(good[i].in, &r, err, sizeof(err)), 0,
		    "parse '%s'", good[i].in);
		ok(r.n == good[i].n && r.period == good[i].period,
		    "'%s' -> %lu/%lds", good[i].in, r.n, r.period);
	}
	for (i = 0; i < ARRAY_LEN(bad); i++)
		is_int(throttle_parse_rate(bad[i], &r, err, sizeof(err)), -1,
		    "reject '%s'", bad[i]);
	throttle_parse_rate("10/day", &r, err, sizeof(err));
	is_str(err, "expected N/second, N/minute or N/hour, got '10/day'",
	    "error text names the forms and the value");
	is_int(throttle_parse_rate("0/second", &r, err, sizeof(err)), -1,
	    "reject 0/second");
	ok(strstr(err, "from 1 to") != NULL, "zero rate says why: %s", err);
	is_int(throttle_parse_rate("99999999999/s", &r, err, sizeof(err)), -1,
	    "reject an absurd rate");
	is_int(throttle_parse_rate("3/s", &r, NULL, 0), 0, "err may be NULL");

	r.n = 10; r.period = 1;
	is_int(us(throttle_rate_burst(&r)), us(10), "10/second bursts 10");
	r.n = 20; r.period = 60;
	is_int(us(throttle_rate_burst(&r)), us(1), "20/minute bursts 1");
	r.n = 600; r.period = 60;
	is_int(us(throttle_rate_burst(&r)), us(10), "600/minute bursts 10");

	is_int(throttle_parse_domain_rates("gmail.com:20/minute, Yahoo.COM : 10/m",
	    &dr, &n, err, sizeof(err)), 0, "domain_rate list parses");
	is_int(n, 2, "two domains");
	if (n == 2) {
		is_str(dr[0].domain, "gmail.com", "first domain");
		ok(dr[0].rate.n == 20 && dr[0].rate.period == 60, "gmail 20/min");
		is_str(dr[1].domain, "yahoo.com", "second domain lower-cased");
		ok(dr[1].rate.n == 10 && dr[1].rate.period == 60, "yahoo 10/min");
	}
	free(dr);
	is_int(throttle_parse_domain_rates("  ", &dr, &n, err, sizeof(err)), 0,
	    "empty list is fine");
	ok(dr == NULL && n == 0, "empty list gives nothing");
	is_int(throttle_parse_domain_rates("gmail.com", &dr, &n, err,
	    sizeof(err)), -1, "domain without rate rejected");
	is_str(err, "domain_rate: expected domain:N/unit, got 'gmail.com'",
	    "missing-rate error text");
	is_int(throttle_parse_domain_rates("a.org:1/s, gmail.com:20/day", &dr,
	    &n, err, sizeof(err)), -1, "bad rate in list rejected");
	is_str(err, "domain_rate gmail.com: expected N/second, N/minute or "
	    "N/hour, got '20/day'", "bad-rate error names the domain");
	ok(dr == NULL && n == 0, "nothing returned on error");
	is_int(throttle_parse_domain_rates("a.org:1/s,A.org:2/s", &dr, &n, err,
	    sizeof(err)), -1, "duplicate domain rejected");
	is_int(throttle_parse_domain_rates("a b:1/s", &dr, &n, err,
	    sizeof(err)), -1, "bad domain rejected");
	is_int(throttle_parse_domain_rates("a.org:1/s,,b.org:1/s", &dr, &n, err,
	    sizeof(err)), -1, "empty entry rejected");
}

static void
test_bucket(void)
{
	struct throttle_bucket b;
	double now, w;
	int i, sent, allowed = 0;

	throttle_bucket_init(&b, 10, 10, 0);
	for (i = 0; i < 10; i++)
		if (throttle_bucket_take(&b, 1, 0) == 0)
			allowed++;
	is_int(allowed, 10, "10/second: 10 allowed at t=0");
	w = throttle_bucket_take(&b, 1, 0);
	is_int(us(w), 100000, "11th waits 0.1 s");
	is_int(us(throttle_bucket_take(&b, 1, 0.05)), 50000,
	    "refusal consumed nothing: half-way waits 0.05 s");
	is_int(us(throttle_bucket_take(&b, 1, 0.1)), 0, "allowed at t=0.1");
	is_int(us(throttle_bucket_take(&b, 1, 0.1)), 100000,
	    "and the next waits again");

	/* 20/minute, burst 1, for three simulated minutes, event-driven. */
	throttle_bucket_init(&b, 20.0 / 60, 1, 0);
	now = 0;
	sent = 0;
	for (i = 0; i < 1000 && now <= 180 + 1e-9; i++) {
		w = throttle_bucket_take(&b, 1, now);
		if (w == 0)
			sent++;
		else
			now += w;
	}
	is_int(sent, 61, "20/minute over 3 minutes: 60 + burst 1");
	/* Same with a coarse poll every 0.7 s. */
	throttle_bucket_init(&b, 20.0 / 60, 1, 0);
	sent = 0;
	for (i = 0; i <= 257; i++)      /* 0 .. 179.9 s */
		if (throttle_bucket_take(&b, 1, i * 0.7) == 0)
			sent++;
	/* Polling late loses up to a poll per token, never adds any. */
	ok(sent >= 180 / 3.7 && sent <= 61, "polled pacing: 49 to 61 (%d)",
	    sent);

	/* A request above the capacity passes when full, then owes. */
	throttle_bucket_init(&b, 10, 10, 0);
	is_int(us(throttle_bucket_take(&b, 15, 0)), 0, "15 of 10 when full");
	is_int(us(throttle_bucket_wait(&b, 1, 0)), 600000,
	    "then 1 waits 0.6 s (debt of 5)");
	/* Clock stepping back does not mint tokens. */
	throttle_bucket_init(&b, 1, 1, 100);
	throttle_bucket_take(&b, 1, 100);
	is_int(us(throttle_bucket_wait(&b, 1, 50)), 1000000,
	    "clock going back: still a full second");
	/* Unlimited bucket. */
	throttle_bucket_init(&b, 0, 1, 0);
	is_int(us(throttle_bucket_take(&b, 1000, 0)), 0, "rate 0 = unlimited");
	/* Lower the rate: capacity follows. */
	throttle_bucket_init(&b, 10, 10, 0);
	throttle_bucket_set_rate(&b, 5, 0);
	allowed = 0;
	for (i = 0; i < 20; i++)
		if (throttle_bucket_take(&b, 1, 0) == 0)
			allowed++;
	is_int(allowed, 5, "halved bucket holds 5");
}

static void
test_daily(void)
{
	struct throttle_config c = config();
	struct throttle *t, *t2;
	struct throttle_daily *d = malloc(sizeof(*d));
	struct throttle_status st;
	const char *dom[4] = { "a.org", "a.org", "b.org", "c.org" };
	int i, sent = 0;

	c.daily_limit = 100;
	t = throttle_new(&c, T0);
	for (i = 0; i < 150; i++) {
		if (throttle_when(t, NULL, 1, T0 + i * 0.5) != 0)
			break;
		throttle_commit(t, NULL, 1, T0 + i * 0.5);
		sent++;
	}
	is_int(sent, 100, "daily_limit 100 holds at 100");
	is_int(us(throttle_when(t, NULL, 1, T0 + 60)), us(T0 + 86700),
	    "released when the first slot leaves the day (24 h 5 min)");
	ok(throttle_when(t, NULL, 1, T0 + 43200) > 0, "still held at 12 h");
	ok(throttle_when(t, NULL, 1, T0 + 86699) > 0, "still held at 86699 s");
	is_int(us(throttle_when(t, NULL, 1, T0 + 86700)), 0,
	    "free once the window moved");
	throttle_state(t, T0 + 100, &st);
	is_int(st.day_msgs, 100, "status counts 100 today");
	is_int(st.day_limit, 100, "status limit 100");

	/* Round trip through export/import. */
	throttle_daily_export(t, T0 + 100, d);
	is_int(d->nslots, 1, "one non-empty slot exported");
	is_int(d->slots[0].start, (long long)T0, "slot start exported");
	is_int(d->slots[0].msgs, 100, "slot count exported");
	t2 = throttle_new(&c, T0 + 100);
	throttle_daily_import(t2, d, T0 + 100);
	throttle_state(t2, T0 + 100, &st);
	is_int(st.day_msgs, 100, "imported counters survive a restart");
	is_int(us(throttle_when(t2, NULL, 1, T0 + 100)), us(T0 + 86700),
	    "imported counters hold the limit the same way");
	throttle_daily_import(t2, d, T0 + 86700);
	throttle_state(t2, T0 + 86700, &st);
	is_int(st.day_msgs, 0, "import drops slots out of the day");
	throttle_free(t2);
	throttle_free(t);

	/* Recipients per day. */
	c = config();
	c.daily_rcpt_limit = 10;
	t = throttle_new(&c, T0);
	throttle_commit(t, dom, 4, T0);
	throttle_commit(t, dom, 4, T0 + 1);
	ok(throttle_when(t, dom, 4, T0 + 2) > 0, "4 more recipients held (8/10)");
	is_int(us(throttle_when(t, dom, 2, T0 + 2)), 0, "2 more fit");
	throttle_state(t, T0 + 2, &st);
	is_int(st.day_rcpts, 8, "status counts recipients");
	throttle_free(t);
	free(d);
}

static void
test_growth(void)
{
	struct throttle_config c = config();
	struct throttle *t;
	struct throttle_daily *d = calloc(1, sizeof(*d));
	struct throttle_daily *e = calloc(1, sizeof(*e));
	struct throttle_status st;
	int64_t today = (int64_t)(T0 / 86400);
	int i, sent;
	double now;

	c.max_daily_growth = 2.0;
	c.growth_seed = 500;
	for (i = 1; i <= 7; i++) {
		d->days[d->ndays].day = today - i;
		d->days[d->ndays++].msgs = 1000;
	}
	d->first_day = today - 7;
	t = throttle_new(&c, T0);
	throttle_daily_import(t, d, T0);
	for (sent = 0; sent < 5000; sent++) {
		if (throttle_when(t, NULL, 1, T0) != 0)
			break;
		throttle_commit(t, NULL, 1, T0);
	}
	is_int(sent, 2000, "history 1000/day, growth 2.0: today capped at 2000");
	throttle_state(t, T0, &st);
	is_int(st.growth_cap, 2000, "status growth cap");
	is_int(st.day_limit, 2000, "effective day limit is the cap");
	throttle_daily_export(t, T0, e);
	is_int(e->ndays, 8, "7 days of history plus today exported");
	is_int(e->first_day, today - 7, "first day exported");
	throttle_free(t);

	/* No history: the seed. */
	t = throttle_new(&c, T0);
	for (sent = 0; sent < 5000; sent++) {
		if (throttle_when(t, NULL, 1, T0) != 0)
			break;
		throttle_commit(t, NULL, 1, T0);
	}
	is_int(sent, 500, "no history: the seed (500)");
	throttle_free(t);

	/* A quiet week counts as quiet days; the seed is the least cap. */
	memset(d, 0, sizeof(*d));
	d->days[0].day = today - 1;
	d->days[0].msgs = 7000;
	d->ndays = 1;
	d->first_day = today - 7;
	t = throttle_new(&c, T0);
	throttle_daily_import(t, d, T0);
	throttle_state(t, T0, &st);
	is_int(st.growth_cap, 2000, "7000 over 7 days averages 1000 -> 2000");
	d->days[0].msgs = 70;
	throttle_daily_import(t, d, T0);
	throttle_state(t, T0, &st);
	is_int(st.growth_cap, 500, "a low average never caps below the seed");
	throttle_free(t);

	/* A daily_limit below the cap wins. */
	c.daily_limit = 1500;
	t = throttle_new(&c, T0);
	d->days[0].msgs = 7000;
	throttle_daily_import(t, d, T0);
	throttle_state(t, T0, &st);
	is_int(st.day_limit, 1500, "daily_limit below the cap wins");
	throttle_free(t);

	/* History builds from commits as days pass. */
	c = config();
	c.max_daily_growth = 2.0;
	c.growth_seed = 1;
	now = (double)today * 86400;
	t = throttle_new(&c, now);
	for (i = 0; i < 3; i++) {
		for (sent = 0; sent < 10; sent++)
			throttle_commit(t, NULL, 1, now + i * 86400.0 + sent);
	}
	throttle_state(t, now + 3 * 86400.0, &st);
	is_int(st.growth_cap, 20, "three days of 10 -> cap 20 on the fourth");
	throttle_free(t);
	free(d);
	free(e);
}

static void
test_domains(void)
{
	struct throttle_config c = config();
	struct throttle_domain_rate *dr;
	struct throttle *t;
	size_t n;
	const char *g[1] = { "gmail.com" }, *y[1] = { "yahoo.com" };
	const char *gu[1] = { "GMAIL.com" }, *o[1] = { "other.org" };
	const char *gy[3] = { "yahoo.com", "gmail.com", "x.net" };
	double now, w;
	int i, ng = 0, ny = 0;

	ok(throttle_parse_domain_rates("gmail.com:20/minute, yahoo.com:10/minute",
	    &dr, &n, NULL, 0) == 0, "domain rates parse");
	c.domain_rates = dr;
	c.ndomain_rates = n;
	t = throttle_new(&c, T0);
	free(dr);               /* throttle_new copied them */
	is_int(us(throttle_when(t, g, 1, T0)), 0, "gmail may go");
	throttle_commit(t, g, 1, T0);
	is_int(us(throttle_when(t, g, 1, T0)), us(T0 + 3), "next gmail at +3 s");
	is_int(us(throttle_when(t, gu, 1, T0)), us(T0 + 3),
	    "domain match ignores case");
	is_int(us(throttle_when(t, y, 1, T0)), 0, "yahoo independent of gmail");
	is_int(us(throttle_when(t, o, 1, T0)), 0, "unlisted domain not paced");
	is_int(us(throttle_when(t, gy, 3, T0)), us(T0 + 3),
	    "mixed message waits for its slowest domain");
	is_int(us(throttle_when(t, NULL, 3, T0)), 0, "no domains given: no pacing");
	throttle_free(t);

	ok(throttle_parse_domain_rates("gmail.com:20/minute, yahoo.com:10/minute",
	    &dr, &n, NULL, 0) == 0, "domain rates parse again");
	c.domain_rates = dr;
	c.ndomain_rates = n;
	t = throttle_new(&c, T0);
	free(dr);
	/* One minute, both domains queued, event-driven clock. */
	now = T0;
	for (i = 0; i < 1000 && now <= T0 + 60; i++) {
		double wg = throttle_when(t, g, 1, now);
		double wy = throttle_when(t, y, 1, now);

		if (wg == 0) {
			throttle_commit(t, g, 1, now);
			ng++;
		}
		if (wy == 0) {
			throttle_commit(t, y, 1, now);
			ny++;
		}
		if (wg != 0 && wy != 0) {
			w = wg < wy ? wg : wy;
			now = w;
		}
	}
	is_int(ng, 21, "gmail: 20/minute + burst 1 in 60 s");
	is_int(ny, 11, "yahoo: 10/minute + burst 1 in 60 s");
	throttle_free(t);
}

static void
test_adaptive(void)
{
	struct throttle_config c = config();
	struct throttle *t;
	struct throttle_status st;
	static const long cds[] = { 60, 120, 240, 480, 960, 1920, 3600, 3600 };
	double now, until;
	size_t i;
	int k;

	c.rate.n = 10;
	c.rate.period = 1;
	t = throttle_new(&c, T0);
	until = throttle_on_throttled(t, "421 4.7.0 Too many connections", T0);
	is_int(us(until), us(T0 + 30), "first event suspends 30 s");
	throttle_state(t, T0 + 1, &st);
	is_int(us(st.rate_configured), us(10), "status: configured 10/s");
	is_int(us(st.rate_current), us(5), "rate halved to 5/s");
	is_int(us(st.suspended_until), us(T0 + 30), "status: suspended until");
	is_str(st.reason, "421 4.7.0 Too many connections", "status: reason");
	is_int(st.cooldown_level, 0, "status: cool-down level 0");
	is_int(us(throttle_when(t, NULL, 1, T0 + 1)), us(T0 + 30),
	    "nothing starts while suspended");
	until = throttle_on_throttled(t, "451 4.7.650 later", T0 + 5);
	is_int(us(until), us(T0 + 30), "event during suspension: same end");
	throttle_state(t, T0 + 5, &st);
	is_int(us(st.rate_current), us(5), "and no second halving");
	is_int(st.throttle_events, 2, "but it is counted");
	is_str(st.reason, "451 4.7.650 later", "and its reason kept");
	throttle_state(t, T0 + 30, &st);
	is_int(us(st.suspended_until), 0, "suspension over at its end");
	is_int(us(throttle_when(t, NULL, 1, T0 + 30)), 0, "may send again");

	/* Repeats within the window double the cool-down up to the cap. */
	now = T0 + 30;
	for (i = 0; i < ARRAY_LEN(cds); i++) {
		until = throttle_on_throttled(t, "421 4.7.0 slow down", now);
		is_int((long long)(until - now), cds[i], "repeat %zu cools %lds",
		    i + 1, cds[i]);
		now = until;
	}
	for (i = 0; i < 5; i++)
		now = throttle_on_throttled(t, "421 4.7.0 slow down", now);
	throttle_state(t, now, &st);
	is_int(us(st.rate_current * 60), us(1), "floor 1/minute respected");
	is_int(st.cooldown_level, 7, "level stops growing at the cap");
	is_int(us(st.cooldown), us(3600), "status: cool-down 1 h");
	/* Quiet for longer than the window: back to 30 s. */
	now += 7200;
	until = throttle_on_throttled(t, "421", now);
	is_int((long long)(until - now), 30, "after a quiet hour: 30 s again");
	throttle_free(t);

	/* Recovery: +25% of the configured rate per 20 successes. */
	t = throttle_new(&c, T0);
	throttle_on_throttled(t, "421", T0);
	now = T0 + 30;
	for (k = 0; k < 19; k++)
		throttle_on_success(t, now);
	throttle_state(t, now, &st);
	is_int(us(st.rate_current), us(5), "19 successes: still 5/s");
	is_int(st.success_streak, 19, "status: streak 19");
	throttle_on_success(t, now);
	throttle_state(t, now, &st);
	is_int(us(st.rate_current), us(7.5), "20th success: 7.5/s");
	for (k = 0; k < 20; k++)
		throttle_on_success(t, now);
	throttle_state(t, now, &st);
	ok(st.rate_current == 10.0, "40 successes: exactly 10/s");
	for (k = 0; k < 200; k++)
		throttle_on_success(t, now);
	throttle_state(t, now, &st);
	ok(st.rate_current == 10.0, "never beyond the configured rate");
	/* From the floor up, step by step. */
	for (k = 0; k < 12; k++)
		now = throttle_on_throttled(t, "421", now);
	throttle_state(t, now, &st);
	is_int(us(st.rate_current * 60), us(1), "down to the floor");
	for (k = 0; k < 3 * 20; k++)
		throttle_on_success(t, now);
	throttle_state(t, now, &st);
	is_int(us(st.rate_current), us(1.0 / 60 + 7.5), "three steps up");
	for (k = 0; k < 20; k++)
		throttle_on_success(t, now);
	throttle_state(t, now, &st);
	ok(st.rate_current == 10.0, "fourth step lands on exactly 10/s");
	throttle_free(t);

	/* A configurable floor. */
	c.params.floor.n = 6;
	c.params.floor.period = 60;
	t = throttle_new(&c, T0);
	now = T0;
	for (k = 0; k < 10; k++)
		now = throttle_on_throttled(t, "421", now);
	throttle_state(t, now, &st);
	is_int(us(st.rate_current), us(0.1), "floor 6/minute respected");
	throttle_free(t);

	/* The halved rate paces messages after the suspension. */
	c = config();
	c.rate.n = 10;
	c.rate.period = 1;
	t = throttle_new(&c, T0);
	throttle_on_throttled(t, "421", T0);
	now = T0 + 30;
	for (k = 0; k < 5; k++) {
		ok(throttle_when(t, NULL, 1, now) == 0, "halved: message %d", k);
		throttle_commit(t, NULL, 1, now);
	}
	is_int(us(throttle_when(t, NULL, 1, now)), us(now + 0.2),
	    "6th waits 1/5 s");
	throttle_free(t);

	/* Recipients per second, scaled down with the message rate. */
	c = config();
	c.recipient_rate.n = 10;
	c.recipient_rate.period = 1;
	c.rate.n = 100;
	c.rate.period = 1;
	t = throttle_new(&c, T0);
	throttle_commit(t, NULL, 4, T0);
	throttle_commit(t, NULL, 4, T0);
	is_int(us(throttle_when(t, NULL, 4, T0)), us(T0 + 0.2),
	    "recipient_rate 10/s: 4 more after 8 wait 0.2 s");
	is_int(us(throttle_when(t, NULL, 2, T0)), 0, "2 more fit now");
	throttle_on_throttled(t, "421", T0);
	now = T0 + 30;
	is_int(us(throttle_when(t, NULL, 5, now)), 0,
	    "after the halving 5 recipients fit (burst 5)");
	throttle_commit(t, NULL, 5, now);
	is_int(us(throttle_when(t, NULL, 1, now)), us(now + 0.2),
	    "and refill at 5 recipients/s");
	throttle_free(t);

	/* No configured rate: learn the refused rate, then lift the limit. */
	c = config();
	t = throttle_new(&c, T0);
	for (k = 0; k < 11; k++)
		throttle_commit(t, NULL, 1, T0 + k * 0.1);
	throttle_on_throttled(t, "421 4.7.0 rate limit", T0 + 1.1);
	throttle_state(t, T0 + 1.1, &st);
	is_int(us(st.rate_configured), 0, "unconfigured rate stays 0");
	is_int(us(st.rate_current), us(5), "learned 10/s, halved to 5/s");
	for (k = 0; k < 40; k++)
		throttle_on_success(t, T0 + 40);
	throttle_state(t, T0 + 40, &st);
	ok(st.rate_current > 9.99999 && st.rate_current < 10.00001,
	    "recovered to the learned 10/s, not beyond (%f)", st.rate_current);
	throttle_on_success(t, T0 + 1.1 + 3600);
	throttle_state(t, T0 + 1.1 + 3600, &st);
	ok(st.rate_current > 9.99999 && st.rate_current < 10.00001,
	    "still the learned ceiling within cooldown_window (%f)", st.rate_current);
	throttle_on_throttled(t, "421 4.7.0 rate limit", T0 + 1.1 + 3000);
	throttle_state(t, T0 + 1.1 + 3000, &st);
	ok(st.rate_current > 4.49999 && st.rate_current < 4.50001,
	    "refused again at the learned 10/s: ceiling 9/s, halved to 4.5/s (%f)",
	    st.rate_current);
	for (k = 0; k < 60; k++)
		throttle_on_success(t, T0 + 1.1 + 3100);
	throttle_state(t, T0 + 1.1 + 3100, &st);
	ok(st.rate_current > 8.99999 && st.rate_current < 9.00001,
	    "recovery stops at the lowered ceiling (%f)", st.rate_current);
	throttle_on_success(t, T0 + 1.1 + 3000 + 3601);
	throttle_state(t, T0 + 1.1 + 3000 + 3601, &st);
	is_int(us(st.rate_current), 0, "a quiet cooldown_window later: unlimited again");
	throttle_free(t);

	/* The refused rate is the recent burst, not a minute's average. */
	c = config();
	t = throttle_new(&c, T0);
	throttle_commit(t, NULL, 1, T0);
	for (k = 0; k < 20; k++)
		throttle_commit(t, NULL, 1, T0 + 50 + k * 0.05);
	throttle_on_throttled(t, "421 4.7.0 rate limit", T0 + 51);
	throttle_state(t, T0 + 51, &st);
	is_int(us(st.rate_current), us(10), "learned 20/s from the last second, halved to 10/s");
	throttle_free(t);

	/* Recovery steps take the cool-down escalation back down. */
	c = config();
	c.rate.n = 10;
	c.rate.period = 1;
	t = throttle_new(&c, T0);
	throttle_on_throttled(t, "421", T0);
	throttle_on_throttled(t, "421", T0 + 31);
	throttle_state(t, T0 + 31, &st);
	is_int(st.cooldown_level, 1, "a repeat doubles the cool-down (level 1)");
	for (k = 0; k < 20; k++)
		throttle_on_success(t, T0 + 100);
	throttle_state(t, T0 + 100, &st);
	is_int(st.cooldown_level, 0, "a recovery step lowers the level again");
	throttle_free(t);
}

static void
test_status(void)
{
	struct throttle_config c = config();
	struct throttle *t;
	struct throttle_status st;

	c.rate.n = 250;
	c.rate.period = 3600;
	c.daily_limit = 2000;
	c.daily_rcpt_limit = 10000;
	t = throttle_new(&c, T0);
	throttle_state(t, T0, &st);
	is_int(us(st.rate_configured * 3600), us(250), "configured 250/hour");
	ok(st.rate_current == st.rate_configured, "current = configured");
	is_int(us(st.suspended_until), 0, "not suspended");
	is_str(st.reason, "", "no reason yet");
	is_int(st.day_limit, 2000, "day limit");
	is_int(st.day_rcpt_limit, 10000, "day recipient limit");
	is_int(st.growth_cap, 0, "no spike guard");
	is_int(st.throttle_events, 0, "no events");
	throttle_commit(t, NULL, 3, T0);
	throttle_on_throttled(t, "421 4.7.0\r\n\x01junk", T0 + 1);
	throttle_state(t, T0 + 2, &st);
	is_str(st.reason, "421 4.7.0???junk", "reason made printable");
	is_int(st.day_msgs, 1, "today 1 message");
	is_int(st.day_rcpts, 3, "today 3 recipients");
	is_int(us(st.cooldown), us(30), "cool-down 30 s");
	throttle_free(t);
}

static void
test_users(void)
{
	struct throttle_user_config uc;
	struct throttle_users *tbl;
	char name[16];
	int alert, i, allowed = 0;

	memset(&uc, 0, sizeof(uc));
	uc.user_rate.n = 10;
	uc.user_rate.period = 1;
	tbl = throttle_users_new(&uc);
	for (i = 0; i < 10; i++)
		allowed += throttle_user_check(tbl, "alice", 1, T0, &alert);
	is_int(allowed, 10, "user_rate 10/s: 10 recipients at once");
	is_int(throttle_user_check(tbl, "alice", 1, T0, &alert), 0,
	    "11th refused (451 4.7.1)");
	is_int(alert, 1, "first refusal alerts");
	is_int(throttle_user_check(tbl, "alice", 1, T0, &alert), 0,
	    "12th refused");
	is_int(alert, 0, "second refusal does not alert again");
	is_int(throttle_user_check(tbl, "bob", 1, T0, &alert), 1,
	    "bob has his own limit");
	is_int(throttle_user_check(tbl, "alice", 1, T0 + 0.1, &alert), 1,
	    "alice again after 0.1 s");
	is_int(throttle_users_count(tbl), 2, "two users tracked");
	throttle_users_free(tbl);

	memset(&uc, 0, sizeof(uc));
	uc.user_daily_limit = 20;
	tbl = throttle_users_new(&uc);
	allowed = 0;
	for (i = 0; i < 19; i++)
		allowed += throttle_user_check(tbl, "mallory", 1, T0 + i, &alert);
	is_int(allowed, 19, "19 of 20 a day");
	is_int(throttle_user_check(tbl, "mallory", 2, T0 + 20, &alert), 0,
	    "2 more would exceed 20");
	is_int(alert, 1, "alert once");
	is_int(throttle_user_check(tbl, "mallory", 1, T0 + 21, &alert), 1,
	    "the 20th fits");
	is_int(throttle_user_check(tbl, "mallory", 1, T0 + 22, &alert), 0,
	    "the 21st does not");
	is_int(alert, 0, "no second alert in the window");
	is_int(throttle_user_check(tbl, "mallory", 1, T0 + 3600 * 12, &alert), 0,
	    "still refused 12 h later");
	is_int(alert, 0, "still no second alert");
	is_int(throttle_user_check(tbl, "mallory", 1, T0 + 90000, &alert), 1,
	    "allowed again after the day (25 h)");
	for (i = 0; i < 19; i++)
		throttle_user_check(tbl, "mallory", 1, T0 + 90001, &alert);
	is_int(throttle_user_check(tbl, "mallory", 1, T0 + 90002, &alert), 0,
	    "over the limit in the next window");
	is_int(alert, 1, "alerts again in a new window");
	throttle_users_free(tbl);

	/* Bounded table: the least recently seen goes first. */
	memset(&uc, 0, sizeof(uc));
	uc.user_daily_limit = 1;
	uc.max_users = 4;
	tbl = throttle_users_new(&uc);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "u%d", i);
		throttle_user_check(tbl, name, 1, T0 + i, &alert);
	}
	is_int(throttle_users_count(tbl), 4, "4 users");
	throttle_user_check(tbl, "u4", 1, T0 + 10, &alert);
	is_int(throttle_users_count(tbl), 4, "table stays at max_users");
	is_int(throttle_user_check(tbl, "u0", 1, T0 + 11, &alert), 1,
	    "evicted u0 starts afresh");
	is_int(throttle_user_check(tbl, "u3", 1, T0 + 12, &alert), 0,
	    "u3 kept its count");
	is_int(throttle_users_expire(tbl, T0 + 100), 0, "nobody idle yet");
	is_int(throttle_users_expire(tbl, T0 + 100000), 4,
	    "idle entries expire after a day");
	is_int(throttle_users_count(tbl), 0, "table empty");
	throttle_users_free(tbl);
}

static void
test_retry(void)
{
	static const long steps[] = { 60, 300, 900 };
	static const long big[] = { 36000 };
	static const double js[] = { 0, 0.25, 0.5, 0.75, 1 };
	long base = 900, d;
	int a, bad = 0;
	size_t j;

	is_int(throttle_retry_delay(steps, 3, 0, 0.9), 60, "step 1 exact");
	is_int(throttle_retry_delay(steps, 3, 1, 0.1), 300, "step 2 exact");
	is_int(throttle_retry_delay(steps, 3, 2, 1.0), 900, "step 3 exact");
	is_int(throttle_retry_delay(steps, 3, -4, 0.5), 60, "negative attempt");
	is_int(throttle_retry_delay(steps, 3, 3, 0.5), 1800, "then x2");
	is_int(throttle_retry_delay(steps, 3, 4, 0.5), 3600, "x4");
	is_int(throttle_retry_delay(steps, 3, 5, 0.5), 7200, "x8");
	is_int(throttle_retry_delay(steps, 3, 6, 0.5), 14400, "capped at 4 h");
	is_int(throttle_retry_delay(steps, 3, 1000000, 0.5), 14400,
	    "huge attempt stays capped");
	is_int(throttle_retry_delay(steps, 3, 3, 0), 1440, "jitter -20%%");
	is_int(throttle_retry_delay(steps, 3, 3, 1), 2160, "jitter +20%%");
	is_int(throttle_retry_delay(steps, 3, 9, 1), 14400,
	    "jitter never above the cap");
	is_int(throttle_retry_delay(steps, 3, 9, 0), 11520, "jitter below cap");
	is_int(throttle_retry_delay(steps, 3, 3, 7), 2160, "jitter input clamped");
	is_int(throttle_retry_delay(NULL, 0, 0, 0.5), 60, "no steps: 60 s");
	is_int(throttle_retry_delay(NULL, 0, 2, 0.5), 240, "no steps: x2 each");
	is_int(throttle_retry_delay(big, 1, 3, 0.5), 36000,
	    "a listed step above 4 h becomes the cap");
	for (a = 3; a < 40; a++) {
		base = base * 2 > THROTTLE_RETRY_CAP ? THROTTLE_RETRY_CAP :
		    base * 2;
		for (j = 0; j < ARRAY_LEN(js); j++) {
			d = throttle_retry_delay(steps, 3, a, js[j]);
			if (d < base * 8 / 10 || d > base * 12 / 10 ||
			    d > THROTTLE_RETRY_CAP)
				bad++;
		}
	}
	is_int(bad, 0, "jitter within +-20%% and under the cap, attempts 3..39");
}

int
main(void)
{
	test_parse();
	test_bucket();
	test_daily();
	test_growth();
	test_domains();
	test_adaptive();
	test_status();
	test_users();
	test_retry();
	return done();
}
