/*
 * domcheck - the periodic self-check of every [domain] (domcheck.h).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "conf.h"
#include "domcheck.h"
#include "log.h"
#include "loopq.h"
#include "selfcheck.h"
#include "server.h"
#include "util.h"

struct domcheck {
	struct server *srv;
	const struct conf *conf;
	struct domcheck_result *res;    /* one per conf->domains[i] */
	size_t n;
	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stopping;
};

/* One domain's result on its way to the loop. */
struct domcheck_post {
	struct domcheck *dc;
	size_t idx;
	struct domcheck_result r;
};

/* domcheck_apply - on the loop: keep the newest result */
static void
domcheck_apply(void *arg)
{
	struct domcheck_post *p = arg;

	p->dc->res[p->idx] = p->r;
	free(p);
}

/* domcheck_line - text for one log line: line breaks (a multi-line DNS
 * record in a fix) become spaces, the rest is escaped (TXT records come
 * from the Internet) */
static const char *
domcheck_line(const char *text, char *buf, size_t len)
{
	char flat[SELFCHECK_FIX_MAX];
	size_t o = 0;

	for (; *text && o + 1 < sizeof(flat); text++) {
		if (*text == '\n' || *text == '\r' || *text == '\t') {
			if (o > 0 && flat[o - 1] != ' ')
				flat[o++] = ' ';
		} else if (*text != ' ' || (o > 0 && flat[o - 1] != ' ')) {
			flat[o++] = *text;
		}
	}
	flat[o] = '\0';
	return log_esc(flat, buf, len);
}

/* domcheck_one - check one domain, log what fails, summarise */
static void
domcheck_one(struct domcheck *dc, size_t idx, struct domcheck_result *out)
{
	const char *name = dc->conf->domains[idx].name;
	struct selfcheck_report r;
	char err[256], t[SELFCHECK_TEXT_MAX * 4 + 1], fx[SELFCHECK_FIX_MAX * 4 + 1];

	memset(out, 0, sizeof(*out));
	memset(&r, 0, sizeof(r));
	out->at = util_now();
	if (selfcheck_dns(dc->conf, name, &r, err, sizeof(err)) < 0) {
		log_warn("selfcheck %s: could not run: %s", name, err);
		out->nwarn = 1;
		return;
	}
	for (size_t i = 0; i < r.n; i++) {
		const struct selfcheck_finding *f = &r.f[i];

		if (f->level == SELFCHECK_FAIL) {
			out->nfail++;
			if (strcmp(f->check, "spf") == 0)
				out->spf_fail = 1;
			else if (strcmp(f->check, "dkim") == 0)
				out->dkim_fail = 1;
			if (out->first_fail[0] == '\0')
				snprintf(out->first_fail, sizeof(out->first_fail), "%.15s: %.400s",
				    f->check, f->text);
			log_warn("selfcheck %s: FAIL %s: %s; fix: %s", name, f->check,
			    domcheck_line(f->text, t, sizeof(t)), domcheck_line(f->fix, fx, sizeof(fx)));
		} else if (f->level == SELFCHECK_WARN) {
			out->nwarn++;
			log_info("selfcheck %s: WARN %s: %s", name, f->check,
			    domcheck_line(f->text, t, sizeof(t)));
		} else {
			out->nok++;
		}
	}
	log_info("selfcheck %s: %d OK, %d WARN, %d FAIL%s", name, out->nok, out->nwarn,
	    out->nfail, out->nfail ? " (outpostctl check dns for the fixes)" : "");
	selfcheck_report_free(&r);
}

/* domcheck_main - every domain, then wait check_interval (or stop) */
static void *
domcheck_main(void *arg)
{
	struct domcheck *dc = arg;
	struct timespec until;

	pthread_mutex_lock(&dc->lock);
	while (!dc->stopping) {
		for (size_t i = 0; i < dc->n && !dc->stopping; i++) {
			struct domcheck_post *p = xcalloc(1, sizeof(*p));

			pthread_mutex_unlock(&dc->lock);
			p->dc = dc;
			p->idx = i;
			domcheck_one(dc, i, &p->r);
			loopq_post(dc->srv->loopq, domcheck_apply, p);
			pthread_mutex_lock(&dc->lock);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += dc->conf->server.check_interval;
		while (!dc->stopping &&
		    pthread_cond_timedwait(&dc->cond, &dc->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&dc->lock);
	return NULL;
}

/* domcheck_new - results table, and the thread when checks are on */
struct domcheck *
domcheck_new(struct server *srv)
{
	struct domcheck *dc = xcalloc(1, sizeof(*dc));

	dc->srv = srv;
	dc->conf = srv->conf;
	dc->n = srv->conf->ndomains;
	dc->res = xcalloc(dc->n ? dc->n : 1, sizeof(*dc->res));
	pthread_mutex_init(&dc->lock, NULL);
	pthread_cond_init(&dc->cond, NULL);
	if (srv->conf->server.check_interval > 0 && dc->n > 0) {
		if (pthread_create(&dc->thread, NULL, domcheck_main, dc) != 0)
			fatal("domcheck: pthread_create");
		dc->running = 1;
	}
	return dc;
}

/* domcheck_stop - stop the thread (before loopq_free: it posts there) */
void
domcheck_stop(struct domcheck *dc)
{
	if (dc == NULL)
		return;
	if (dc->running) {
		pthread_mutex_lock(&dc->lock);
		dc->stopping = 1;
		pthread_cond_signal(&dc->cond);
		pthread_mutex_unlock(&dc->lock);
		pthread_join(dc->thread, NULL);
		dc->running = 0;
	}
}

/* domcheck_free - the memory, after loopq_free: a result still queued
 * then was dropped with the queue, never applied to freed memory */
void
domcheck_free(struct domcheck *dc)
{
	if (dc == NULL)
		return;
	domcheck_stop(dc);
	pthread_mutex_destroy(&dc->lock);
	pthread_cond_destroy(&dc->cond);
	free(dc->res);
	free(dc);
}

/* domcheck_find - index of domain in the table, or -1 */
static long
domcheck_find(const struct domcheck *dc, const char *domain)
{
	for (size_t i = 0; i < dc->n; i++)
		if (strcasecmp(dc->conf->domains[i].name, domain) == 0)
			return (long)i;
	return -1;
}

/* domcheck_get - the last result, or NULL */
const struct domcheck_result *
domcheck_get(const struct domcheck *dc, const char *domain)
{
	long i = dc ? domcheck_find(dc, domain) : -1;

	return i < 0 || dc->res[i].at == 0 ? NULL : &dc->res[i];
}

/* domcheck_refuses - refuse_when_failing and both SPF and DKIM FAIL */
int
domcheck_refuses(const struct domcheck *dc, const char *domain, char *why, size_t len)
{
	long i = dc ? domcheck_find(dc, domain) : -1;

	if (i < 0 || !dc->conf->domains[i].refuse_when_failing || dc->res[i].at == 0 ||
	    !dc->res[i].spf_fail || !dc->res[i].dkim_fail)
		return 0;
	snprintf(why, len, "451 4.7.26 %.200s fails SPF and DKIM; receivers would reject"
	    " this mail. Fix the DNS records (outpostctl check dns %.200s)", domain, domain);
	return 1;
}

/* domcheck_status - the last result per domain */
void
domcheck_status(const struct domcheck *dc, struct evbuffer *out, int json)
{
	char esc[DOMCHECK_TEXT_MAX * 4 + 1], j1[HOST_MAX * 2 + 8], j2[sizeof(esc) * 2 + 8];

	if (json)
		evbuffer_add_printf(out, "[");
	for (size_t i = 0; dc && i < dc->n; i++) {
		const struct domcheck_result *r = &dc->res[i];
		const char *name = dc->conf->domains[i].name;

		log_esc(r->first_fail, esc, sizeof(esc));
		if (json) {
			evbuffer_add_printf(out, "%s{\"domain\": %s, \"checked_at\": %lld, \"ok\": %d,"
			    " \"warn\": %d, \"fail\": %d, \"first_fail\": %s, \"refusing\": %s}",
			    i ? ", " : "", util_json_str(name, j1, sizeof(j1)), (long long)r->at,
			    r->nok, r->nwarn, r->nfail, util_json_str(esc, j2, sizeof(j2)),
			    dc->conf->domains[i].refuse_when_failing && r->spf_fail && r->dkim_fail ?
			    "true" : "false");
		} else if (r->at == 0) {
			evbuffer_add_printf(out, "  %s: not checked yet%s\n", name,
			    dc->running ? "" : " (check_interval = 0)");
		} else {
			evbuffer_add_printf(out, "  %s: %d OK, %d WARN, %d FAIL%s%s\n", name, r->nok,
			    r->nwarn, r->nfail, r->nfail ? "; first: " : "", r->nfail ? esc : "");
		}
	}
	if (json)
		evbuffer_add_printf(out, "]");
}
