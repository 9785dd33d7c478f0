/*
 * alert - rate-limited postmaster alerts with an hourly digest (alert.h).
 *
 * Per cause: the time of the last mail, the end of its window, and the
 * raises counted since (with the text of the last one). One timer on the
 * loop wakes at the earliest window end; there it mails the digests due
 * and forgets causes whose window passed quietly. Causes live in an array
 * in order of creation, so the oldest is the one dropped at the cap.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "alert.h"
#include "bounce.h"
#include "conf.h"
#include "inject.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "util.h"

struct alert_cause {
	char key[ALERT_CAUSE_MAX];
	time_t mailed_at;           /* last mail: the window's start */
	time_t window_end;
	unsigned long pending;      /* raises since mailed_at, not mailed */
	char *summary, *details, *advice;   /* of the last counted raise */
};

struct alert {
	struct server *srv;
	long window;
	size_t max;
	struct alert_cause **causes;    /* oldest first */
	size_t n;
	struct event *timer;
};

/* alert_dup - bounded copy of optional text */
static char *
alert_dup(const char *s)
{
	return s ? xstrndup(s, ALERT_TEXT_MAX) : NULL;
}

/* alert_forget_text - the last raise's text */
static void
alert_forget_text(struct alert_cause *c)
{
	free(c->summary);
	free(c->details);
	free(c->advice);
	c->summary = c->details = c->advice = NULL;
}

/* alert_hhmm - "14:05" in local time */
static void
alert_hhmm(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%H:%M", &tm) == 0)
		util_strlcpy(buf, "??:??", len);
}

/* alert_injected - on the loop: only failures need a word */
static void
alert_injected(int err, const char *qid, void *arg)
{
	if (err != STORE_OK)
		log_err("%s: postmaster alert not queued (error %d)", qid, err);
}

/* alert_mail - build the alert and queue it to postmaster from <> */
static void
alert_mail(struct alert *a, const char *subject, const char *details, const char *advice)
{
	const struct conf *c = a->srv->conf;
	struct bounce_alert_params p;
	const char *rcpt[1];
	char *out, err[BOUNCE_ERR_MAX];
	size_t outlen;

	if (c->server.postmaster[0] == '\0') {
		log_warn("alert: no postmaster address; alert not mailed");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.hostname = c->server.hostname;
	p.from_display = "outpost";
	p.to = c->server.postmaster;
	p.cause = subject;
	p.details = details;
	p.advice = advice;
	p.now = util_now();
	if (bounce_alert_build(&p, &out, &outlen, err, sizeof(err)) != 0) {
		log_err("alert: cannot build the mail: %s", err);
		return;
	}
	rcpt[0] = c->server.postmaster;
	inject_message(a->srv, "", rcpt, 1, out, outlen, INJECT_ORIGIN_ALERT,
	    alert_injected, NULL);
}

/* alert_mail_first - the mail for the first raise of a window */
static void
alert_mail_first(struct alert *a, const char *key, const char *summary,
    const char *details, const char *advice)
{
	char *text = xasprintf("Cause: %s\n%s\n%s", key, summary, details ? details : "");

	alert_mail(a, summary, text, advice);
	free(text);
}

/* alert_mail_digest - the one mail for what was counted in a window */
static void
alert_mail_digest(struct alert *a, struct alert_cause *c)
{
	char since[16], *subject, *text;
	const char *last = c->summary ? c->summary : "";

	alert_hhmm(c->mailed_at, since, sizeof(since));
	subject = xasprintf("%s (%lu more)", last, c->pending);
	text = xasprintf("cause %s happened %lu more time%s since %s; last: %s\n%s",
	    c->key, c->pending, c->pending == 1 ? "" : "s", since, last,
	    c->details ? c->details : "");
	alert_mail(a, subject, text, c->advice);
	free(subject);
	free(text);
}

/* alert_cause_free - one cause, logging what it leaves unmailed */
static void
alert_cause_free(struct alert_cause *c, const char *why)
{
	char since[16], esc[ALERT_TEXT_MAX];

	if (c->pending > 0) {
		alert_hhmm(c->mailed_at, since, sizeof(since));
		log_warn("ALERT %s: %lu more since %s not mailed (%s); last: %s", c->key,
		    c->pending, since, why, log_esc(c->summary ? c->summary : "", esc,
		    sizeof(esc)));
	}
	alert_forget_text(c);
	free(c);
}

/* alert_remove - drop causes[i], keeping the order */
static void
alert_remove(struct alert *a, size_t i)
{
	memmove(&a->causes[i], &a->causes[i + 1], (a->n - i - 1) * sizeof(*a->causes));
	a->n--;
}

/* alert_arm - wake at the earliest window end */
static void
alert_arm(struct alert *a)
{
	time_t now = util_now(), next = 0;
	struct timeval tv = { 0, 0 };

	evtimer_del(a->timer);
	for (size_t i = 0; i < a->n; i++)
		if (next == 0 || a->causes[i]->window_end < next)
			next = a->causes[i]->window_end;
	if (next == 0)
		return;
	if (next > now)
		tv.tv_sec = next - now;
	evtimer_add(a->timer, &tv);
}

/* alert_tick - window ends: digests out, quiet causes forgotten */
static void
alert_tick(evutil_socket_t fd, short what, void *arg)
{
	struct alert *a = arg;
	time_t now = util_now();

	for (size_t i = 0; i < a->n;) {
		struct alert_cause *c = a->causes[i];

		if (c->window_end > now) {
			i++;
			continue;
		}
		if (c->pending == 0) {
			alert_remove(a, i);
			alert_cause_free(c, "window over");
			continue;
		}
		alert_mail_digest(a, c);
		c->pending = 0;
		alert_forget_text(c);
		c->mailed_at = now;
		c->window_end = now + a->window;
		i++;
	}
	alert_arm(a);
}

/* alert_find - the tracked cause with this key, or NULL */
static struct alert_cause *
alert_find(struct alert *a, const char *key)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->causes[i]->key, key) == 0)
			return a->causes[i];
	return NULL;
}

/* alert_new - see alert.h */
struct alert *
alert_new(struct server *srv, long window, size_t max_causes)
{
	struct alert *a = xcalloc(1, sizeof(*a));

	a->srv = srv;
	a->window = window > 0 ? window : ALERT_WINDOW_DEFAULT;
	a->max = max_causes > 0 ? max_causes : ALERT_CAUSES_DEFAULT;
	a->causes = xcalloc(a->max, sizeof(*a->causes));
	a->timer = evtimer_new(srv->base, alert_tick, a);
	if (a->timer == NULL)
		fatalx("alert: evtimer_new");
	return a;
}

/* alert_free - see alert.h */
void
alert_free(struct alert *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; i < a->n; i++)
		alert_cause_free(a->causes[i], "shutdown");
	event_free(a->timer);
	free(a->causes);
	free(a);
}

/* alert_raise - see alert.h */
void
alert_raise(struct alert *a, const char *cause, const char *summary,
    const char *details, const char *advice)
{
	char key[ALERT_CAUSE_MAX], esc1[ALERT_CAUSE_MAX * 4], esc2[ALERT_TEXT_MAX];
	struct alert_cause *c;
	time_t now = util_now();

	/* Keys are stored escaped: they reach log lines and mail text. */
	log_esc(cause ? cause : "unspecified", esc1, sizeof(esc1));
	util_strlcpy(key, esc1, sizeof(key));
	summary = summary ? summary : "";
	log_err("ALERT %s: %s", key, log_esc(summary, esc2, sizeof(esc2)));
	if (a == NULL)
		return;             /* no mailer (tools, unit tests): the log line */

	c = alert_find(a, key);
	if (c != NULL && (now < c->window_end || c->pending > 0)) {
		/* Mailed this window already: count it for the digest. */
		c->pending++;
		alert_forget_text(c);
		c->summary = alert_dup(summary);
		c->details = alert_dup(details);
		c->advice = alert_dup(advice);
		return;
	}
	if (c == NULL) {
		if (a->n == a->max) {
			struct alert_cause *old = a->causes[0];

			log_warn("alert: more than %zu causes tracked; forgetting %s", a->max,
			    old->key);
			alert_remove(a, 0);
			alert_cause_free(old, "dropped at the cause limit");
		}
		c = xcalloc(1, sizeof(*c));
		util_strlcpy(c->key, key, sizeof(c->key));
		a->causes[a->n++] = c;
	}
	c->mailed_at = now;
	c->window_end = now + a->window;
	c->pending = 0;
	alert_mail_first(a, key, summary, details, advice);
	alert_arm(a);
}

/* alert_tracked - see alert.h */
size_t
alert_tracked(const struct alert *a)
{
	return a->n;
}
