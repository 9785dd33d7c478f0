/*
 * main - outpostd: load the configuration, open the queue, start the
 * worker threads, the listeners and the scheduler, run the event loop.
 *
 *   outpostd [-c FILE] [-f] [-d]   run (-f: log to stderr, as under systemd;
 *                                  otherwise syslog; never forks)
 *   outpostd [-c FILE] -n          check the configuration and exit
 *
 * Startup order matters for "nothing accepted is ever lost": the queue is
 * opened and loaded before any listener accepts a connection. SIGTERM and
 * SIGINT stop gracefully: listeners close, idle sessions are closed, a
 * session waiting for its commit still gets its 250, deliveries in flight
 * finish (bounded by STOP_GRACE), then the store thread is drained.
 * SIGHUP reloads the configuration, the users file, the DKIM keys, the
 * TLS certificates and the suppression list (server_reload).
 *
 * Started as root, the daemon reads its keys and certificates and binds
 * its ports, then runs as [server] user (priv.c) before it opens the
 * queue or starts a thread; it never runs as root.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "alert.h"
#include "auth.h"
#include "bulk.h"
#include "conf.h"
#include "control.h"
#include "dkim_verify.h"
#include "dmarc.h"
#include "domcheck.h"
#include "dns.h"
#include "inject.h"
#include "listener.h"
#include "log.h"
#include "loopq.h"
#include "metrics.h"
#include "notify.h"
#include "priv.h"
#include "scheduler.h"
#include "throttle.h"
#include "server.h"
#include "signer.h"
#include "smtp_session.h"
#include "store.h"
#include "suppress.h"
#include "unsub.h"
#include "unsub_http.h"
#include "tls.h"
#include "unsub_token.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONF SYSCONFDIR "/outpost/outpost.conf"
#define STOP_GRACE 10           /* seconds to let sessions and deliveries finish */
#define MAIN_VERIFY_DNS_MS 2000   /* forwarded mail waits at most ~6 s for DNS */
#define MAIN_STATUS_EVERY 10      /* seconds between systemd STATUS= lines */

static struct server server;
static struct event *stop_timer;
static struct event *status_timer;
static const struct timeval status_every = { MAIN_STATUS_EVERY, 0 };
static int64_t stop_started;

static void
usage(FILE *f, int status)
{
	fprintf(f,
	    "usage: outpostd [-c FILE] [-f] [-d]   run the relay\n"
	    "       outpostd [-c FILE] -n          check the configuration\n"
	    "  -c FILE  configuration (default %s)\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -d       debug logging\n"
	    "  -h       this help\n", DEFAULT_CONF);
	exit(status);
}

/* main_stop_check - leave the loop once nothing is in flight */
static void
main_stop_check(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, 100 * 1000 };
	int64_t waited = util_mono_ms() - stop_started;

	/* A DSN or alert whose commit is under way is waited for too: its
	 * completion runs on the loop. */
	if ((server.nsessions == 0 && scheduler_inflight(server.sched) == 0 &&
	    inject_inflight() == 0) || waited > STOP_GRACE * 1000) {
		if (server.nsessions || scheduler_inflight(server.sched))
			log_warn("stopping with %d sessions and %zu deliveries still open "
			    "(deliveries will be retried)", server.nsessions,
			    scheduler_inflight(server.sched));
		event_base_loopbreak(server.base);
		return;
	}
	evtimer_add(stop_timer, &tv);
}

static void
main_signal(evutil_socket_t sig, short what, void *arg)
{
	struct timeval tv = { 0, 0 };

	if (server.stopping) {
		log_warn("second signal: stopping now");
		event_base_loopbreak(server.base);
		return;
	}
	log_info("signal %d: stopping", (int)sig);
	notify_stopping();
	server.stopping = 1;
	for (size_t i = 0; i < server.nlisteners; i++)
		listener_disable(server.listeners[i]);
	scheduler_stop(server.sched);
	smtp_session_shutdown(&server);
	stop_started = util_mono_ms();
	stop_timer = evtimer_new(server.base, main_stop_check, NULL);
	evtimer_add(stop_timer, &tv);
}

/* main_status_tick - systemd's STATUS= line, every MAIN_STATUS_EVERY s */
static void
main_status_tick(evutil_socket_t fd, short what, void *arg)
{
	char status[512];

	if (server.stopping)
		return;
	control_status_line(&server, status, sizeof(status));
	notify_status(status);
}

/* main_reload - SIGHUP (outpostctl reload): users file and DKIM keys */
static void
main_reload(evutil_socket_t sig, short what, void *arg)
{
	log_info("SIGHUP: reloading the configuration, users file, DKIM keys and suppression list");
	server_reload(&server, NULL, 0);
}

/* main_pidfile - STATE_DIR/outpostd.pid, so outpostctl can signal us */
static void
main_pidfile(int create)
{
	char path[PATH_MAX + 16];
	FILE *f;

	snprintf(path, sizeof(path), "%s/outpostd.pid", server.conf->server.state_dir);
	if (!create) {
		unlink(path);
		return;
	}
	if ((f = fopen(path, "w")) == NULL) {
		log_warn("%s: %s (outpostctl reload will not find us)", path, strerror(errno));
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

/* main_check_readable - what a reload reads again must be readable by
 * the user we run as now */
static void
main_check_readable(void)
{
	const struct conf *c = server.conf;

	priv_check_readable("configuration", c->path);
	priv_check_readable("users file", c->server.users_file);
	for (size_t i = 0; i < c->nlistens; i++) {
		priv_check_readable("certificate", c->listens[i].cert);
		priv_check_readable("TLS key", c->listens[i].key);
	}
	for (size_t i = 0; i < c->ndomains; i++)
		for (size_t k = 0; k < c->domains[i].ndkim_keys; k++)
			priv_check_readable("DKIM key", c->domains[i].dkim_keys[k].path);
}

/* main_unsub_key - the one-click unsubscribe key, loaded (or made on the
 * first start) when a [domain] has unsubscribe = yes or [unsubscribe]
 * listens; state_dir is the daemon's own by now */
static void
main_unsub_key(void)
{
	const struct conf *c = server.conf;
	char path[PATH_MAX + 32], err[512];
	int want = strcmp(c->unsub.listen, "no") != 0 && c->unsub.listen[0] != '\0', rc;

	for (size_t i = 0; i < c->ndomains; i++)
		want |= c->domains[i].unsubscribe;
	if (!want)
		return;
	snprintf(path, sizeof(path), "%s/" UNSUB_KEY_FILE, c->server.state_dir);
	server.unsub_key = xcalloc(1, sizeof(*server.unsub_key));
	if ((rc = unsub_key_load(path, server.unsub_key, err, sizeof(err))) < 0)
		fatalx("%s", err);
	if (rc == 1)
		log_info("made the one-click unsubscribe key %s", path);
}

/* main_state_dir - the queue lives here; private to the daemon (as root,
 * priv_state_dir made it and gave it away already) */
static int
main_state_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_err("state_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("state_dir %s: not a directory", dir);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *conf_path = DEFAULT_CONF;
	int foreground = 0, check = 0, debug = 0, ch, nerr = 0;
	char err[512], dbpath[PATH_MAX + 16], ctlpath[PATH_MAX + 16];
	struct dns_opts vopts;
	struct event *sigterm, *sigint, *sighup;
	struct server_dkim *dkim = NULL;
	struct priv_user pu;
	int as_root = geteuid() == 0;
	long loaded;

	if (argc > 1 && strcmp(argv[1], "--help") == 0)
		usage(stdout, 0);
	while ((ch = getopt(argc, argv, "c:dfhn")) != -1) {
		switch (ch) {
		case 'c': conf_path = optarg; break;
		case 'd': debug = 1; break;
		case 'f': foreground = 1; break;
		case 'h': usage(stdout, 0); break;
		case 'n': check = 1; break;
		default: usage(stderr, 2);
		}
	}
	if (optind != argc)
		usage(stderr, 2);

	if (conf_load(conf_path, stderr, &server.conf) != 0) {
		fprintf(stderr, "outpostd: %s: configuration has errors\n", conf_path);
		return 1;
	}
	if (server.conf->server.users_file[0]) {
		server.users = auth_load(server.conf->server.users_file, stderr, &nerr);
		if (server.users == NULL) {
			fprintf(stderr, "outpostd: %s: users file has errors\n",
			    server.conf->server.users_file);
			conf_free(server.conf);
			return 1;
		}
	} else {
		server.users = auth_empty();
	}
	/* Load every listener's certificate and key now: a key that does
	 * not match its certificate is only found by OpenSSL, and -n must
	 * find it too. */
	for (size_t i = 0; i < server.conf->nlistens; i++) {
		const struct conf_listen *cl = &server.conf->listens[i];
		SSL_CTX *ctx;
		if (cl->tls == CONF_TLS_NONE)
			continue;
		if ((ctx = tls_server_ctx(cl->cert, cl->key, err, sizeof(err))) == NULL) {
			fprintf(stderr, "%s:%d: [listen %s]: %s\n", server.conf->path, cl->line,
			    cl->name, err);
			nerr++;
		} else {
			SSL_CTX_free(ctx);
		}
	}
	/* DKIM keys: unreadable, too open, too weak keys stop us here. */
	if ((dkim = server_dkim_load(server.conf, stderr)) == NULL)
		nerr++;
	/* The account to run as must exist when root starts us. */
	if (geteuid() == 0 && priv_lookup(server.conf->server.user, &pu, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", server.conf->path, err);
		nerr++;
	}
	if (nerr) {
		fprintf(stderr, "outpostd: %s: configuration has errors\n", conf_path);
		if (dkim != NULL) {
			server_dkim_install(&server, dkim);
			server_dkim_install(&server, NULL);
		}
		auth_free(server.users);
		conf_free(server.conf);
		return 1;
	}
	if (check) {
		server_dkim_install(&server, dkim);
		server_dkim_install(&server, NULL);
		printf("%s: configuration ok (%zu listeners, %zu upstreams, %zu users)\n",
		    conf_path, server.conf->nlistens, server.conf->nupstreams,
		    server.users->nusers);
		auth_free(server.users);
		conf_free(server.conf);
		return 0;
	}

	/* Under systemd stderr goes to the journal already (JOURNAL_STREAM). */
	log_init(foreground || getenv("JOURNAL_STREAM") ? LOG_DEST_STDERR : LOG_DEST_SYSLOG,
	    debug || server.conf->server.debug, "outpostd");
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() != 0)
		fatalx("libevent without pthreads support");
	if ((server.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	server.started = util_now();
	server_dkim_install(&server, dkim);

	/* What needs root: the state directory handed to the account, the
	 * ports bound (or taken from systemd). Nothing listens yet. */
	if (as_root && priv_state_dir(server.conf->server.state_dir, &pu, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (listener_activation(err, sizeof(err)) < 0)
		fatalx("%s", err);
	server.listeners = xcalloc(server.conf->nlistens, sizeof(*server.listeners));
	for (size_t i = 0; i < server.conf->nlistens; i++) {
		struct listener *l = listener_new(&server, &server.conf->listens[i], err,
		    sizeof(err));
		if (l == NULL)
			fatalx("%s:%d: %s", server.conf->path, server.conf->listens[i].line, err);
		server.listeners[server.nlisteners++] = l;
	}
	if (listener_activation_unclaimed(err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (as_root) {
		if (priv_drop(&pu, err, sizeof(err)) < 0)
			fatalx("%s", err);
		log_info("running as user %s (uid %ld, gid %ld)", pu.name, (long)pu.uid,
		    (long)pu.gid);
	} else if (getpwuid(geteuid()) == NULL ||
	    strcmp(getpwuid(geteuid())->pw_name, server.conf->server.user) != 0) {
		log_info("started as uid %ld, not root: running as that user ([server] user"
		    " %s applies when started as root)", (long)geteuid(),
		    server.conf->server.user);
	}
	main_check_readable();

	server.penalty = auth_penalty_new(4096, server.conf->server.auth_penalty_window);
	if (server.conf->server.user_rate.n || server.conf->server.user_daily_limit) {
		struct throttle_user_config uc = {
			.user_rate = server.conf->server.user_rate,
			.user_daily_limit = server.conf->server.user_daily_limit,
		};
		server.user_limits = throttle_users_new(&uc);
	}
	server.loopq = loopq_new(server.base);
	server.signer = signer_new(server.loopq, server.conf->server.signer_threads);

	if (main_state_dir(server.conf->server.state_dir) < 0)
		return 1;
	main_unsub_key();
	server.bulk = bulk_new(0);
	snprintf(dbpath, sizeof(dbpath), "%s/queue.db", server.conf->server.state_dir);
	if ((server.store = store_open(dbpath, 0, err, sizeof(err))) == NULL)
		fatalx("queue %s: %s", dbpath, err);
	if ((server.dns = dns_new(server.base, server.conf->server.dns_server, err,
	    sizeof(err))) == NULL)
		fatalx("dns: %s", err);
	vopts.server = server.conf->server.dns_server;
	vopts.timeout_ms = MAIN_VERIFY_DNS_MS;
	vopts.tries = 2;
	if ((server.vdns = dns_new_opts(server.base, &vopts, err, sizeof(err))) == NULL)
		fatalx("dns: %s", err);
	if ((server.verifier = dkim_verify_new(err, sizeof(err))) == NULL)
		fatalx("DKIM verification: %s", err);
	/* Without the list, organizational domains are the last two labels
	 * (and relaxed alignment asks for a parent/child relation). */
	if ((server.psl = dmarc_psl_load(DMARC_PSL_PATH, err, sizeof(err))) == NULL)
		log_warn("%s (install the publicsuffix package)", err);
	if ((server.sched = scheduler_new(&server, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	/* The queue is loaded before the first connection is accepted. */
	if ((loaded = scheduler_load(server.sched)) < 0)
		fatalx("queue %s: cannot load", dbpath);
	server.suppress = suppress_new(SUPPRESS_MAX_DEFAULT);
	if (suppress_load(server.suppress, server.store) < 0)
		fatalx("queue %s: cannot load the suppression list", dbpath);
	server.unsubs = unsub_new(UNSUB_MAX_DEFAULT);
	if (unsub_load(server.unsubs, server.store) < 0)
		fatalx("queue %s: cannot load the unsubscribes", dbpath);
	if (store_start(server.store, server.loopq) < 0)
		fatalx("queue %s: cannot start the store thread", dbpath);
	server.alert = alert_new(&server, 0, 0);

	/* The control socket listens before any SMTP port does: whoever sees
	 * a port accept (a test, systemd, an admin) can talk to it at once.
	 * Requests are served only once the loop runs, with all in place. */
	snprintf(ctlpath, sizeof(ctlpath), "%s/" CONTROL_NAME, server.conf->server.state_dir);
	if ((server.control = control_new(&server, ctlpath, err, sizeof(err))) == NULL)
		fatalx("control socket: %s", err);
	server.metrics = metrics_start(&server, err, sizeof(err));
	if (server.metrics == NULL && err[0])
		fatalx("metrics_listen %s: %s", server.conf->server.metrics_listen, err);
	server.unsub_http = unsub_http_start(&server, err, sizeof(err));
	if (server.unsub_http == NULL && err[0])
		fatalx("[unsubscribe] listen %s: %s", server.conf->unsub.listen, err);
	for (size_t i = 0; i < server.nlisteners; i++)
		if (listener_start(server.listeners[i], err, sizeof(err)) < 0)
			fatalx("%s:%d: %s", server.conf->path, server.conf->listens[i].line, err);

	sigterm = evsignal_new(server.base, SIGTERM, main_signal, NULL);
	sigint = evsignal_new(server.base, SIGINT, main_signal, NULL);
	sighup = evsignal_new(server.base, SIGHUP, main_reload, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	server.domcheck = domcheck_new(&server);
	main_pidfile(1);
	log_info("outpostd %s started: %ld queued messages, %zu suppressed addresses,"
	    " %zu unsubscribes, %zu users, %d signer threads", PACKAGE_VERSION, loaded,
	    suppress_count(server.suppress), unsub_count(server.unsubs), server.users->nusers,
	    server.conf->server.signer_threads);

	{
		char status[512];

		control_status_line(&server, status, sizeof(status));
		notify_ready(status);
	}
	status_timer = event_new(server.base, -1, EV_PERSIST, main_status_tick, NULL);
	if (status_timer == NULL)
		fatalx("event_new failed");
	evtimer_add(status_timer, &status_every);

	event_base_dispatch(server.base);
	event_free(status_timer);

	domcheck_stop(server.domcheck);
	/* Forwarded mail still waiting for DNS is answered 421 now, while
	 * its session and listener exist. */
	dns_free(server.vdns);
	server.vdns = NULL;

	/* Shutdown: no new work; what is queued in the threads completes. */
	for (size_t i = 0; i < server.nlisteners; i++)
		listener_free(server.listeners[i]);
	free(server.listeners);
	control_free(server.control);
	server.control = NULL;
	metrics_stop(server.metrics);
	server.metrics = NULL;
	unsub_http_stop(server.unsub_http);
	server.unsub_http = NULL;
	alert_free(server.alert);
	server.alert = NULL;
	scheduler_free(server.sched);
	signer_free(server.signer);
	store_close(server.store);
	suppress_free(server.suppress);
	unsub_free(server.unsubs);
	loopq_free(server.loopq);
	domcheck_free(server.domcheck);
	dns_free(server.dns);
	dkim_verify_free(server.verifier);
	dmarc_psl_free(server.psl);
	if (stop_timer)
		event_free(stop_timer);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	server_dkim_install(&server, NULL);
	main_pidfile(0);
	event_base_free(server.base);
	auth_penalty_free(server.penalty);
	throttle_users_free(server.user_limits);
	bulk_free(server.bulk);
	if (server.unsub_key != NULL)
		OPENSSL_cleanse(server.unsub_key, sizeof(*server.unsub_key));
	free(server.unsub_key);
	auth_free(server.users);
	log_info("stopped");
	conf_free(server.conf);
	server_retired_free(&server);
	return 0;
}
