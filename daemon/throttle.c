/*
 * throttle - outbound pacing, see throttle.h.
 *
 * Providers cap submission (messages or recipients per second, hour, day)
 * and answer bursts with 421 / 4.7.x; an account that keeps hammering is
 * blocked. So each upstream gets token buckets for its rates, rolling-day
 * counters, a spike guard tied to the recent daily volume, and an adaptive
 * rate that halves on a throttling reply and climbs back on success
 * streaks. Every constraint only relaxes as time passes without commits,
 * so the latest of their individual release times is the exact earliest
 * time at which all of them hold: throttle_when returns that.
 *
 * Pure code: the caller supplies the clock, the persistence and the RNG.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "throttle.h"
#include "util.h"

/* Float slack: a token due within a microsecond counts as there (doubles
 * near 1.8e9 s resolve about 0.24 us), and a level this close to zero is
 * zero. */
#define TIME_EPS 1e-6
#define EPS 1e-9
/* Adaptive learning of an unconfigured rate keeps a minute of sends and
 * measures the last OBSERVE_SEC seconds that had any: the burst the
 * upstream refused, not an average diluted by a suspension. */
#define RECENT_SEC 60
#define OBSERVE_SEC 10
#define USER_SLOT_SEC 3600
#define USER_SLOTS (THROTTLE_DAY_SEC / USER_SLOT_SEC + 1)
#define USER_MAX_DEFAULT 4096
/* A rate above this is a typo, not a provider limit. */
#define RATE_N_MAX 1000000000UL

static double
dmax(double a, double b)
{
	return a > b ? a : b;
}

static double
dmin(double a, double b)
{
	return a < b ? a : b;
}

/* floor(now / sec) without libm. */
static int64_t
slot_index(double now, long sec)
{
	int64_t q = (int64_t)(now / (double)sec);

	if ((double)q * (double)sec > now)
		q--;
	return q;
}

static size_t
ring_pos(int64_t idx, size_t n)
{
	int64_t m = idx % (int64_t)n;

	return (size_t)(m < 0 ? m + (int64_t)n : m);
}

/* ---- rate specs ------------------------------------------------------- */

static const struct {
	const char *name;
	long period;
} units[] = {
	{ "second", 1 }, { "sec", 1 }, { "s", 1 },
	{ "minute", 60 }, { "min", 60 }, { "m", 60 },
	{ "hour", 3600 }, { "h", 3600 },
};

static int
unit_eq(const char *u, size_t ulen, const char *name)
{
	size_t i;

	if (strlen(name) != ulen)
		return 0;
	for (i = 0; i < ulen; i++)
		if (tolower((unsigned char)u[i]) != name[i])
			return 0;
	return 1;
}

/* throttle_parse_rate - "20/minute" -> {20, 60} */
int
throttle_parse_rate(const char *s, struct throttle_rate *out, char *err,
    size_t errlen)
{
	const char *p = s, *u, *e;
	unsigned long n = 0;
	int digits = 0;
	size_t i, ulen;

	while (*p == ' ' || *p == '\t')
		p++;
	while (isdigit((unsigned char)*p)) {
		if (n > RATE_N_MAX)
			break;
		n = n * 10 + (unsigned long)(*p - '0');
		digits++;
		p++;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (digits == 0 || *p != '/')
		goto bad;
	if (n == 0 || n > RATE_N_MAX) {
		util_seterr(err, errlen, "rate must be a whole number from 1 to %lu,"
		    " got '%.64s'", RATE_N_MAX, s);
		return -1;
	}
	u = ++p;
	while (*u == ' ' || *u == '\t')
		u++;
	e = u + strlen(u);
	while (e > u && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	ulen = (size_t)(e - u);
	for (i = 0; i < ARRAY_LEN(units); i++) {
		if (unit_eq(u, ulen, units[i].name)) {
			out->n = n;
			out->period = units[i].period;
			return 0;
		}
	}
bad:
	util_seterr(err, errlen, "expected N/second, N/minute or N/hour, got '%.64s'",
	    s);
	return -1;
}

double
throttle_rate_per_sec(const struct throttle_rate *r)
{
	if (r->n == 0 || r->period <= 0)
		return 0;
	return (double)r->n / (double)r->period;
}

double
throttle_rate_burst(const struct throttle_rate *r)
{
	return dmax(1.0, throttle_rate_per_sec(r));
}

static int
domain_ok(const char *d)
{
	if (*d == '\0' || *d == '.' || *d == '-')
		return 0;
	for (; *d; d++)
		if (!isalnum((unsigned char)*d) && *d != '.' && *d != '-')
			return 0;
	return 1;
}

/* throttle_parse_domain_rates - "gmail.com:20/minute, yahoo.com:10/minute" */
int
throttle_parse_domain_rates(const char *s, struct throttle_domain_rate **out,
    size_t *n, char *err, size_t errlen)
{
	struct throttle_domain_rate *v = NULL;
	char *copy, *item, *next, *colon, *dom;
	size_t cnt = 0, i;
	char rerr[160];

	*out = NULL;
	*n = 0;
	copy = xstrdup(s);
	if (*util_strtrim(copy) == '\0') {
		free(copy);
		return 0;
	}
	for (item = copy; item != NULL; item = next) {
		next = strchr(item, ',');
		if (next != NULL)
			*next++ = '\0';
		item = util_strtrim(item);
		colon = strchr(item, ':');
		if (colon == NULL) {
			util_seterr(err, errlen, "domain_rate: expected domain:N/unit,"
			    " got '%.64s'", item);
			goto fail;
		}
		*colon = '\0';
		dom = util_strlower(util_strtrim(item));
		if (!domain_ok(dom) || strlen(dom) >= HOST_MAX) {
			util_seterr(err, errlen, "domain_rate: bad domain '%.64s'",
			    dom);
			goto fail;
		}
		for (i = 0; i < cnt; i++) {
			if (strcmp(v[i].domain, dom) == 0) {
				util_seterr(err, errlen, "domain_rate: %.64s given"
				    " twice", dom);
				goto fail;
			}
		}
		v = xreallocarray(v, cnt + 1, sizeof(*v));
		util_strlcpy(v[cnt].domain, dom, sizeof(v[cnt].domain));
		if (throttle_parse_rate(colon + 1, &v[cnt].rate, rerr,
		    sizeof(rerr)) == -1) {
			util_seterr(err, errlen, "domain_rate %.64s: %s", dom, rerr);
			goto fail;
		}
		cnt++;
	}
	free(copy);
	*out = v;
	*n = cnt;
	return 0;
fail:
	free(copy);
	free(v);
	return -1;
}

/* ---- token bucket ----------------------------------------------------- */

void
throttle_bucket_init(struct throttle_bucket *b, double rate, double burst,
    double now)
{
	b->rate = rate;
	b->burst = dmax(1.0, burst);
	b->tokens = b->burst;
	b->last = now;
}

static void
bucket_refill(struct throttle_bucket *b, double now)
{
	if (now > b->last) {
		b->tokens = dmin(b->burst, b->tokens + (now - b->last) * b->rate);
		b->last = now;
	}
}

void
throttle_bucket_set_rate(struct throttle_bucket *b, double rate, double now)
{
	bucket_refill(b, now);
	b->rate = rate;
	b->burst = dmax(1.0, rate);
	b->tokens = dmin(b->tokens, b->burst);
}

double
throttle_bucket_wait(struct throttle_bucket *b, double n, double now)
{
	double need;

	if (b->rate <= 0)
		return 0;
	bucket_refill(b, now);
	need = dmin(n, b->burst);
	if ((need - b->tokens) / b->rate <= TIME_EPS)
		return 0;
	return (need - b->tokens) / b->rate;
}

/* Consume unconditionally (a commit the caller already decided on). */
static void
bucket_consume(struct throttle_bucket *b, double n, double now)
{
	if (b->rate <= 0)
		return;
	bucket_refill(b, now);
	b->tokens -= n;
	if (b->tokens > -EPS && b->tokens < EPS)
		b->tokens = 0;
}

double
throttle_bucket_take(struct throttle_bucket *b, double n, double now)
{
	double w = throttle_bucket_wait(b, n, now);

	if (w > 0)
		return w;
	bucket_consume(b, n, now);
	return 0;
}

/* ---- rolling windows --------------------------------------------------- */

/* n slots of slot_sec seconds with two counters each; a slot counts while
 * its index is within n - 1 of the current one (see THROTTLE_SLOTS). */
struct wslot {
	int64_t idx;
	unsigned long c[2];
};

struct window {
	long slot_sec;
	size_t n;
	struct wslot *s;
};

static void
win_init(struct window *w, long slot_sec, size_t n)
{
	size_t i;

	w->slot_sec = slot_sec;
	w->n = n;
	w->s = xcalloc(n, sizeof(*w->s));
	for (i = 0; i < n; i++)
		w->s[i].idx = INT64_MIN;
}

static int
win_live(const struct window *w, const struct wslot *ws, int64_t cur)
{
	return ws->idx != INT64_MIN && ws->idx <= cur &&
	    ws->idx > cur - (int64_t)w->n;
}

static void
win_add_idx(struct window *w, int64_t idx, unsigned long a, unsigned long b)
{
	struct wslot *ws = &w->s[ring_pos(idx, w->n)];

	if (ws->idx != idx) {
		ws->idx = idx;
		ws->c[0] = ws->c[1] = 0;
	}
	ws->c[0] += a;
	ws->c[1] += b;
}

static unsigned long
win_sum(const struct window *w, int k, double now)
{
	int64_t cur = slot_index(now, w->slot_sec);
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < w->n; i++)
		if (win_live(w, &w->s[i], cur))
			sum += w->s[i].c[k];
	return sum;
}

/* Time at which at least `excess` of counter k will have left the window. */
static double
win_release(const struct window *w, int k, unsigned long excess, double now)
{
	int64_t cur = slot_index(now, w->slot_sec), idx;
	unsigned long acc = 0;
	const struct wslot *ws;

	for (idx = cur - (int64_t)w->n + 1; idx <= cur; idx++) {
		ws = &w->s[ring_pos(idx, w->n)];
		if (ws->idx != idx)
			continue;
		acc += ws->c[k];
		if (acc >= excess)
			return (double)(idx + (int64_t)w->n) * (double)w->slot_sec;
	}
	return (double)(cur + (int64_t)w->n) * (double)w->slot_sec;
}

/* 0 if `more` fits under `limit`, else when it will. A request larger
 * than the limit itself goes through once the window is empty: holding it
 * forever would help nobody. */
static double
win_when(const struct window *w, int k, unsigned long limit,
    unsigned long more, double now)
{
	unsigned long used;

	if (limit == 0)
		return 0;
	used = win_sum(w, k, now);
	if (used == 0 || used + more <= limit)
		return 0;
	if (more > limit)
		return win_release(w, k, used, now);
	return win_release(w, k, used + more - limit, now);
}

/* ---- per-upstream controller ------------------------------------------ */

struct dom_bucket {
	struct throttle_domain_rate r;
	struct throttle_bucket b;
};

struct throttle {
	struct throttle_config cfg;
	struct dom_bucket *doms;
	size_t ndoms;
	struct throttle_bucket msg, rcpt;
	double base;            /* full message rate/s; 0 = none known */
	double cur;             /* allowed message rate/s; 0 = unlimited */
	double rcpt_base;

	struct window day;      /* c[0] messages, c[1] recipients */
	struct throttle_day hist[THROTTLE_HISTORY_DAYS + 1];
	int64_t first_day;

	unsigned long recent[RECENT_SEC];
	int64_t recent_sec[RECENT_SEC];

	double suspended_until, last_event, cooldown;
	int have_event, level;
	char reason[THROTTLE_REASON_MAX];
	unsigned long events;
	unsigned streak;
};

void
throttle_params_default(struct throttle_params *p)
{
	p->backoff_factor = 0.5;
	p->floor.n = 1;
	p->floor.period = 60;
	p->cooldown_initial = 30;
	p->cooldown_max = 3600;
	p->cooldown_window = 3600;
	p->success_streak = 20;
	p->recover_step = 0.25;
}

static int64_t
day_of(double now)
{
	return slot_index(now, THROTTLE_DAY_SEC);
}

struct throttle *
throttle_new(const struct throttle_config *cfg, double now)
{
	struct throttle *t = xcalloc(1, sizeof(*t));
	struct throttle_params *p;
	size_t i;

	t->cfg = *cfg;
	t->cfg.domain_rates = NULL;
	p = &t->cfg.params;
	/* Fill knobs left at zero, keep sane ranges. */
	if (p->backoff_factor <= 0 || p->backoff_factor >= 1)
		p->backoff_factor = 0.5;
	if (p->floor.n == 0 || p->floor.period <= 0) {
		p->floor.n = 1;
		p->floor.period = 60;
	}
	if (p->cooldown_initial <= 0)
		p->cooldown_initial = 30;
	if (p->cooldown_max < p->cooldown_initial)
		p->cooldown_max = dmax(3600, p->cooldown_initial);
	if (p->cooldown_window <= 0)
		p->cooldown_window = 3600;
	if (p->success_streak == 0)
		p->success_streak = 20;
	if (p->recover_step <= 0 || p->recover_step > 1)
		p->recover_step = 0.25;

	t->base = t->cur = throttle_rate_per_sec(&cfg->rate);
	t->rcpt_base = throttle_rate_per_sec(&cfg->recipient_rate);
	throttle_bucket_init(&t->msg, t->base, throttle_rate_burst(&cfg->rate),
	    now);
	throttle_bucket_init(&t->rcpt, t->rcpt_base,
	    throttle_rate_burst(&cfg->recipient_rate), now);
	if (cfg->ndomain_rates > 0) {
		t->ndoms = cfg->ndomain_rates;
		t->doms = xcalloc(t->ndoms, sizeof(*t->doms));
		for (i = 0; i < t->ndoms; i++) {
			t->doms[i].r = cfg->domain_rates[i];
			throttle_bucket_init(&t->doms[i].b,
			    throttle_rate_per_sec(&t->doms[i].r.rate),
			    throttle_rate_burst(&t->doms[i].r.rate), now);
		}
	}
	win_init(&t->day, THROTTLE_SLOT_SEC, THROTTLE_SLOTS);
	for (i = 0; i < ARRAY_LEN(t->hist); i++)
		t->hist[i].day = -1;
	t->first_day = -1;
	for (i = 0; i < RECENT_SEC; i++)
		t->recent_sec[i] = INT64_MIN;
	return t;
}

void
throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	free(t->doms);
	free(t->day.s);
	free(t);
}

static unsigned long
hist_get(const struct throttle *t, int64_t day)
{
	const struct throttle_day *h = &t->hist[ring_pos(day, ARRAY_LEN(t->hist))];

	return h->day == day ? h->msgs : 0;
}

static void
hist_add(struct throttle *t, int64_t day, unsigned long msgs)
{
	struct throttle_day *h = &t->hist[ring_pos(day, ARRAY_LEN(t->hist))];

	if (h->day != day) {
		h->day = day;
		h->msgs = 0;
	}
	h->msgs += msgs;
	if (t->first_day < 0 || day < t->first_day)
		t->first_day = day;
}

/* Spike guard: growth x the average of the completed days among the last
 * seven (days before the first one seen are not history), never below
 * the seed. 0 when the guard is off. */
static unsigned long
growth_cap(const struct throttle *t, double now)
{
	int64_t today = day_of(now), ndays, j;
	double sum = 0, cap;

	if (t->cfg.max_daily_growth <= 0)
		return 0;
	ndays = t->first_day < 0 ? 0 : today - t->first_day;
	if (ndays > THROTTLE_HISTORY_DAYS)
		ndays = THROTTLE_HISTORY_DAYS;
	if (ndays <= 0)
		return t->cfg.growth_seed > 0 ? t->cfg.growth_seed : 1;
	for (j = 1; j <= ndays; j++)
		sum += (double)hist_get(t, today - j);
	cap = t->cfg.max_daily_growth * sum / (double)ndays;
	if (cap < (double)t->cfg.growth_seed)
		cap = (double)t->cfg.growth_seed;
	return cap < 1 ? 1 : (unsigned long)cap;
}

static unsigned long
day_limit(const struct throttle *t, double now)
{
	unsigned long lim = t->cfg.daily_limit, cap = growth_cap(t, now);

	if (cap > 0 && (lim == 0 || cap < lim))
		lim = cap;
	return lim;
}

static size_t
count_domain(const char *const *doms, size_t n, const char *want)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (doms[i] != NULL && util_strcaseeq(doms[i], want))
			c++;
	return c;
}

static void unlearn(struct throttle *t, double now);

double
throttle_when(struct throttle *t, const char *const *rcpt_domains,
    size_t nrcpt, double now)
{
	double wake = now, w;
	size_t i, c;

	unlearn(t, now);
	if (t->suspended_until > now)
		wake = t->suspended_until;
	w = throttle_bucket_wait(&t->msg, 1, now);
	wake = dmax(wake, now + w);
	w = throttle_bucket_wait(&t->rcpt, (double)nrcpt, now);
	wake = dmax(wake, now + w);
	for (i = 0; rcpt_domains != NULL && i < t->ndoms; i++) {
		c = count_domain(rcpt_domains, nrcpt, t->doms[i].r.domain);
		if (c == 0)
			continue;
		w = throttle_bucket_wait(&t->doms[i].b, (double)c, now);
		wake = dmax(wake, now + w);
	}
	wake = dmax(wake, win_when(&t->day, 0, day_limit(t, now), 1, now));
	wake = dmax(wake, win_when(&t->day, 1, t->cfg.daily_rcpt_limit,
	    (unsigned long)nrcpt, now));
	return wake > now ? wake : 0;
}

void
throttle_commit(struct throttle *t, const char *const *rcpt_domains,
    size_t nrcpt, double now)
{
	int64_t sec = slot_index(now, 1);
	size_t i, c, pos = ring_pos(sec, RECENT_SEC);

	bucket_consume(&t->msg, 1, now);
	bucket_consume(&t->rcpt, (double)nrcpt, now);
	for (i = 0; rcpt_domains != NULL && i < t->ndoms; i++) {
		c = count_domain(rcpt_domains, nrcpt, t->doms[i].r.domain);
		if (c > 0)
			bucket_consume(&t->doms[i].b, (double)c, now);
	}
	win_add_idx(&t->day, slot_index(now, THROTTLE_SLOT_SEC), 1,
	    (unsigned long)nrcpt);
	hist_add(t, day_of(now), 1);
	if (t->recent_sec[pos] != sec) {
		t->recent_sec[pos] = sec;
		t->recent[pos] = 0;
	}
	t->recent[pos]++;
}

/* Messages per second actually sent lately: what the upstream just
 * refused when no rate is configured. */
static double
observed_rate(const struct throttle *t, double now)
{
	int64_t cur = slot_index(now, 1), oldest = cur;
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < RECENT_SEC; i++) {
		if (t->recent_sec[i] > cur - OBSERVE_SEC &&
		    t->recent_sec[i] <= cur && t->recent[i] > 0) {
			sum += t->recent[i];
			if (t->recent_sec[i] < oldest)
				oldest = t->recent_sec[i];
		}
	}
	return (double)sum / dmax(1.0, now - (double)oldest);
}

/* Apply t->cur to the buckets; recipients scale with messages. */
static void
apply_rate(struct throttle *t, double now)
{
	double scale = t->base > 0 && t->cur > 0 ? t->cur / t->base : 1;

	if (t->cur == 0) {
		throttle_bucket_set_rate(&t->msg, 0, now);
		throttle_bucket_set_rate(&t->rcpt, t->rcpt_base, now);
		return;
	}
	if (t->msg.rate == 0)           /* learned limit: start full */
		throttle_bucket_init(&t->msg, t->cur, t->cur, now);
	else
		throttle_bucket_set_rate(&t->msg, t->cur, now);
	if (t->rcpt_base > 0)
		throttle_bucket_set_rate(&t->rcpt, t->rcpt_base * scale, now);
}

static void
keep_reason(struct throttle *t, const char *reason)
{
	size_t i;

	for (i = 0; reason != NULL && reason[i] != '\0' &&
	    i + 1 < sizeof(t->reason); i++) {
		unsigned char c = (unsigned char)reason[i];

		t->reason[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	t->reason[i] = '\0';
}

double
throttle_on_throttled(struct throttle *t, const char *reason, double now)
{
	const struct throttle_params *p = &t->cfg.params;
	double floor = throttle_rate_per_sec(&p->floor), cd;
	int i;

	keep_reason(t, reason);
	t->events++;
	if (t->suspended_until > now)
		return t->suspended_until;

	if (t->cur == 0) {
		/* No configured rate: learn the one the upstream refused. */
		t->base = dmax(floor, observed_rate(t, now));
		t->cur = t->base;
	} else if (t->cfg.rate.n == 0 && t->cur >= t->base) {
		/* Refused again at the learned ceiling: the limit is below
		 * it; settle 10% lower so the rate converges under it. */
		t->base = dmax(floor, t->base * 0.9);
		t->cur = t->base;
	}
	t->cur = dmin(t->base, dmax(floor, t->cur * p->backoff_factor));
	apply_rate(t, now);
	t->streak = 0;

	if (t->have_event && now - t->last_event <= p->cooldown_window)
		t->level++;
	else
		t->level = 0;
	cd = p->cooldown_initial;
	for (i = 0; i < t->level && cd < p->cooldown_max; i++)
		cd *= 2;
	if (cd >= p->cooldown_max) {
		cd = p->cooldown_max;
		t->level = i;    /* stop counting once at the cap */
	}
	t->cooldown = cd;
	t->have_event = 1;
	t->last_event = now;
	t->suspended_until = now + cd;
	return t->suspended_until;
}

void
throttle_on_success(struct throttle *t, double now)
{
	const struct throttle_params *p = &t->cfg.params;

	unlearn(t, now);
	t->streak++;
	if (t->cur == 0 || t->cur >= t->base) {
		if (t->streak >= p->success_streak)
			t->streak = 0;
		return;
	}
	if (t->streak < p->success_streak)
		return;
	t->streak = 0;
	t->cur = dmin(t->base, t->cur + p->recover_step * t->base);
	/* Each step back up also takes one doubling off the next cool-down,
	 * so an upstream probed now and then does not escalate to the cap. */
	if (t->level > 0)
		t->level--;
	apply_rate(t, now);
}

/* unlearn - an unconfigured upstream quiet for a whole cooldown_window
 * since its last throttling answer is unlimited again; until then the
 * learned rate is its ceiling (jumping back to unlimited at once only
 * hits the same wall with the next burst). */
static void
unlearn(struct throttle *t, double now)
{
	if (t->cfg.rate.n == 0 && t->base > 0 && t->have_event &&
	    now - t->last_event > t->cfg.params.cooldown_window &&
	    t->suspended_until <= now) {
		t->cur = 0;
		t->base = 0;
		t->level = 0;
		apply_rate(t, now);
	}
}

void
throttle_state(struct throttle *t, double now, struct throttle_status *st)
{
	memset(st, 0, sizeof(*st));
	st->rate_configured = throttle_rate_per_sec(&t->cfg.rate);
	st->rate_current = t->cur;
	st->suspended_until = t->suspended_until > now ? t->suspended_until : 0;
	util_strlcpy(st->reason, t->reason, sizeof(st->reason));
	st->day_msgs = win_sum(&t->day, 0, now);
	st->day_rcpts = win_sum(&t->day, 1, now);
	st->day_limit = day_limit(t, now);
	st->day_rcpt_limit = t->cfg.daily_rcpt_limit;
	st->growth_cap = growth_cap(t, now);
	st->cooldown_level = t->level;
	st->cooldown = t->cooldown;
	st->throttle_events = t->events;
	st->success_streak = t->streak;
}

/* ---- persistence of the day counters ---------------------------------- */

void
throttle_daily_export(struct throttle *t, double now,
    struct throttle_daily *out)
{
	int64_t cur = slot_index(now, THROTTLE_SLOT_SEC), today = day_of(now);
	int64_t idx;
	const struct wslot *ws;
	size_t i;

	memset(out, 0, sizeof(*out));
	for (idx = cur - (int64_t)t->day.n + 1; idx <= cur; idx++) {
		ws = &t->day.s[ring_pos(idx, t->day.n)];
		if (ws->idx != idx || (ws->c[0] == 0 && ws->c[1] == 0))
			continue;
		out->slots[out->nslots].start = idx * THROTTLE_SLOT_SEC;
		out->slots[out->nslots].msgs = ws->c[0];
		out->slots[out->nslots].rcpts = ws->c[1];
		out->nslots++;
	}
	for (i = 0; i < ARRAY_LEN(t->hist); i++) {
		if (t->hist[i].day < 0 || t->hist[i].day > today ||
		    t->hist[i].day < today - THROTTLE_HISTORY_DAYS)
			continue;
		out->days[out->ndays++] = t->hist[i];
	}
	out->first_day = t->first_day;
}

void
throttle_daily_import(struct throttle *t, const struct throttle_daily *in,
    double now)
{
	int64_t cur = slot_index(now, THROTTLE_SLOT_SEC), today = day_of(now);
	int64_t idx, first = -1;
	size_t i;

	for (i = 0; i < t->day.n; i++) {
		t->day.s[i].idx = INT64_MIN;
		t->day.s[i].c[0] = t->day.s[i].c[1] = 0;
	}
	for (i = 0; i < in->nslots && i < ARRAY_LEN(in->slots); i++) {
		idx = in->slots[i].start / THROTTLE_SLOT_SEC;
		if (in->slots[i].start < 0 || idx > cur ||
		    idx <= cur - (int64_t)t->day.n)
			continue;
		win_add_idx(&t->day, idx, in->slots[i].msgs, in->slots[i].rcpts);
	}
	for (i = 0; i < ARRAY_LEN(t->hist); i++)
		t->hist[i].day = -1;
	t->first_day = -1;
	for (i = 0; i < in->ndays && i < ARRAY_LEN(in->days); i++) {
		if (in->days[i].day < 0 || in->days[i].day > today ||
		    in->days[i].day < today - THROTTLE_HISTORY_DAYS)
			continue;
		hist_add(t, in->days[i].day, in->days[i].msgs);
		if (first < 0 || in->days[i].day < first)
			first = in->days[i].day;
	}
	/* A first day older than the kept history still says "the days
	 * between were quiet", which lowers the average as it should. */
	if (in->first_day >= 0 && in->first_day <= today &&
	    (first < 0 || in->first_day < first))
		first = in->first_day;
	t->first_day = first;
}

/* ---- per-user limits --------------------------------------------------- */

struct throttle_user {
	struct throttle_user *next;
	char *name;
	struct throttle_bucket b;
	struct window w;        /* c[0] recipients */
	double last_seen;
	double alerted_at;
	int alerted;
};

struct throttle_users {
	struct throttle_user_config cfg;
	struct throttle_user **tab;
	size_t nbuckets, count;
};

struct throttle_users *
throttle_users_new(const struct throttle_user_config *c)
{
	struct throttle_users *tbl = xcalloc(1, sizeof(*tbl));

	tbl->cfg = *c;
	if (tbl->cfg.alert_window <= 0)
		tbl->cfg.alert_window = THROTTLE_DAY_SEC;
	if (tbl->cfg.max_users == 0)
		tbl->cfg.max_users = USER_MAX_DEFAULT;
	tbl->nbuckets = 16;
	while (tbl->nbuckets < tbl->cfg.max_users)
		tbl->nbuckets *= 2;
	tbl->tab = xcalloc(tbl->nbuckets, sizeof(*tbl->tab));
	return tbl;
}

static void
user_free(struct throttle_user *u)
{
	free(u->name);
	free(u->w.s);
	free(u);
}

void
throttle_users_free(struct throttle_users *tbl)
{
	struct throttle_user *u, *next;
	size_t i;

	if (tbl == NULL)
		return;
	for (i = 0; i < tbl->nbuckets; i++)
		for (u = tbl->tab[i]; u != NULL; u = next) {
			next = u->next;
			user_free(u);
		}
	free(tbl->tab);
	free(tbl);
}

static size_t
user_hash(const struct throttle_users *tbl, const char *s)
{
	uint32_t h = 2166136261u;       /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h & (tbl->nbuckets - 1);
}

static void
user_unlink(struct throttle_users *tbl, struct throttle_user *victim)
{
	struct throttle_user **pp = &tbl->tab[user_hash(tbl, victim->name)];

	while (*pp != victim)
		pp = &(*pp)->next;
	*pp = victim->next;
	user_free(victim);
	tbl->count--;
}

/* Idle this long, an entry's window is empty, its bucket full and its
 * alert window over: it equals a fresh one. */
static double
user_idle(const struct throttle_users *tbl)
{
	return dmax(THROTTLE_DAY_SEC + USER_SLOT_SEC, tbl->cfg.alert_window);
}

size_t
throttle_users_expire(struct throttle_users *tbl, double now)
{
	struct throttle_user **pp, *u;
	size_t i, dropped = 0;

	for (i = 0; i < tbl->nbuckets; i++) {
		pp = &tbl->tab[i];
		while ((u = *pp) != NULL) {
			if (now - u->last_seen >= user_idle(tbl)) {
				*pp = u->next;
				user_free(u);
				tbl->count--;
				dropped++;
			} else
				pp = &u->next;
		}
	}
	return dropped;
}

size_t
throttle_users_count(const struct throttle_users *tbl)
{
	return tbl->count;
}

static struct throttle_user *
user_get(struct throttle_users *tbl, const char *name, double now)
{
	struct throttle_user *u, *lru = NULL;
	size_t h = user_hash(tbl, name), i;

	for (u = tbl->tab[h]; u != NULL; u = u->next)
		if (strcmp(u->name, name) == 0)
			return u;
	if (tbl->count >= tbl->cfg.max_users &&
	    throttle_users_expire(tbl, now) == 0) {
		/* Full of active users: forget the least recently seen. */
		for (i = 0; i < tbl->nbuckets; i++)
			for (u = tbl->tab[i]; u != NULL; u = u->next)
				if (lru == NULL || u->last_seen < lru->last_seen)
					lru = u;
		if (lru != NULL)
			user_unlink(tbl, lru);
	}
	u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	throttle_bucket_init(&u->b, throttle_rate_per_sec(&tbl->cfg.user_rate),
	    throttle_rate_burst(&tbl->cfg.user_rate), now);
	win_init(&u->w, USER_SLOT_SEC, USER_SLOTS);
	u->last_seen = now;
	u->next = tbl->tab[h];
	tbl->tab[h] = u;
	tbl->count++;
	return u;
}

int
throttle_user_check(struct throttle_users *tbl, const char *user,
    unsigned nrcpt, double now, int *alert)
{
	struct throttle_user *u = user_get(tbl, user, now);
	int over = 0;

	*alert = 0;
	u->last_seen = now;
	if (throttle_bucket_wait(&u->b, nrcpt, now) > 0)
		over = 1;
	else if (tbl->cfg.user_daily_limit > 0 &&
	    win_sum(&u->w, 0, now) + nrcpt > tbl->cfg.user_daily_limit)
		over = 1;
	if (over) {
		if (!u->alerted || now - u->alerted_at >= tbl->cfg.alert_window) {
			u->alerted = 1;
			u->alerted_at = now;
			*alert = 1;
		}
		return 0;
	}
	bucket_consume(&u->b, nrcpt, now);
	win_add_idx(&u->w, slot_index(now, USER_SLOT_SEC), nrcpt, 0);
	return 1;
}

/* ---- retry schedule ---------------------------------------------------- */

long
throttle_retry_delay(const long *steps, size_t nsteps, int attempt,
    double jitter_unit)
{
	double d, cap;
	long last;
	int k;

	if (attempt < 0)
		attempt = 0;
	if ((size_t)attempt < nsteps)
		return steps[attempt];
	last = nsteps > 0 && steps[nsteps - 1] > 0 ? steps[nsteps - 1] :
	    THROTTLE_RETRY_BASE;
	k = nsteps > 0 ? attempt - (int)nsteps + 1 : attempt;
	cap = (double)(last > THROTTLE_RETRY_CAP ? last : THROTTLE_RETRY_CAP);
	d = (double)last;
	while (k-- > 0 && d < cap)
		d *= 2;
	if (d > cap)
		d = cap;
	if (!(jitter_unit >= 0))        /* NaN too */
		jitter_unit = 0;
	if (jitter_unit > 1)
		jitter_unit = 1;
	d *= 0.8 + 0.4 * jitter_unit;
	if (d > cap)
		d = cap;
	return (long)(d + 0.5);
}
