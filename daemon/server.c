/*
 * server - helpers over the daemon's shared state (server.h): the
 * reference-counted DKIM key set, and reloading the configuration (new
 * sessions take it; what the listening addresses, upstreams, queue and
 * threads were built from waits for a restart), the users file, the DKIM
 * keys, the listeners' TLS certificates and settings, and the suppression
 * list that outpostctl edits in queue.db.
 *
 * Everything here runs on the loop thread.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "auth.h"
#include "conf.h"
#include "dkim_key.h"
#include "dkim_sign.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "store.h"
#include "suppress.h"
#include "unsub.h"
#include "tls.h"
#include "util.h"

/* server_upstream_differs - any setting of an [upstream] section (the
 * secret and the per-domain rates compared by value, not by pointer) */
static int
server_upstream_differs(const struct conf_upstream *a, const struct conf_upstream *b)
{
	struct conf_upstream x, y;

	if ((a->password == NULL) != (b->password == NULL) ||
	    (a->password != NULL && strcmp(a->password, b->password) != 0))
		return 1;
	if (a->ndomain_rates != b->ndomain_rates || (a->ndomain_rates > 0 &&
	    memcmp(a->domain_rates, b->domain_rates,
	    a->ndomain_rates * sizeof(*a->domain_rates)) != 0))
		return 1;
	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	x.password = y.password = NULL;
	x.domain_rates = y.domain_rates = NULL;
	x.line = y.line = 0;
	return memcmp(&x, &y, sizeof(x)) != 0;
}

/* server_restart_only - settings the running threads, sockets and queue
 * were built from keep their running values in the new config, so
 * nothing disagrees with them; each one that differs is logged once.
 * Returns how many differed. */
static int
server_restart_only(struct conf *nc, const struct conf *oc)
{
	struct conf_server *n = &nc->server;
	const struct conf_server *o = &oc->server;
	int changed = 0;

#define KEEP_STR(f, what) do { if (strcmp(n->f, o->f) != 0) { \
	log_warn("reload: %s changed; takes effect at the next start", what); changed++; \
	util_strlcpy(n->f, o->f, sizeof(n->f)); } } while (0)
#define KEEP_VAL(f, what) do { if (memcmp(&n->f, &o->f, sizeof(n->f)) != 0) { \
	log_warn("reload: %s changed; takes effect at the next start", what); changed++; \
	n->f = o->f; } } while (0)
	KEEP_STR(state_dir, "[server] state_dir");
	KEEP_STR(dns_server, "[server] dns_server");
	KEEP_STR(default_upstream, "[server] default_upstream");
	KEEP_VAL(signer_threads, "[server] signer_threads");
	KEEP_VAL(check_interval, "[server] check_interval");
	KEEP_VAL(user_rate, "[server] user_rate");
	KEEP_VAL(user_daily_limit, "[server] user_daily_limit");
	KEEP_VAL(auth_penalty_window, "[server] auth_penalty_window");
	KEEP_VAL(debug, "[server] log_level");
	KEEP_STR(user, "[server] user");
	KEEP_STR(metrics_listen, "[server] metrics_listen");
#undef KEEP_STR
#undef KEEP_VAL
	/* Listening sockets stay bound where they are: a section whose
	 * address or TLS mode changed, or a new or removed one, waits for a
	 * restart (server_listen_find says which sections a reload updates). */
	for (size_t i = 0; i < nc->nlistens; i++) {
		const struct conf_listen *a = &nc->listens[i], *b = NULL;

		for (size_t j = 0; j < oc->nlistens && b == NULL; j++)
			if (strcmp(oc->listens[j].name, a->name) == 0)
				b = &oc->listens[j];
		if (b == NULL || strcmp(a->host, b->host) != 0 || a->port != b->port ||
		    a->tls != b->tls) {
			log_warn("reload: [listen %s] %s; takes effect at the next start", a->name,
			    b == NULL ? "is new" : "address or tls changed");
			changed++;
		}
	}
	for (size_t j = 0; j < oc->nlistens; j++) {
		int found = 0;

		for (size_t i = 0; i < nc->nlistens && !found; i++)
			found = strcmp(oc->listens[j].name, nc->listens[i].name) == 0;
		if (!found) {
			log_warn("reload: [listen %s] removed; still listening until the next start",
			    oc->listens[j].name);
			changed++;
		}
	}
	if (nc->nupstreams != oc->nupstreams)
		changed++, log_warn("reload: [upstream] sections changed; take effect at the next"
		    " start");
	for (size_t i = 0; i < nc->nupstreams && i < oc->nupstreams; i++) {
		if (server_upstream_differs(&nc->upstreams[i], &oc->upstreams[i])) {
			log_warn("reload: [upstream %s] changed; takes effect at the next start",
			    nc->upstreams[i].name);
			changed++;
		}
	}
	if (memcmp(&nc->queue, &oc->queue, sizeof(nc->queue)) != 0) {
		log_warn("reload: [queue] changed; takes effect at the next start");
		changed++;
	}
	return changed;
}

/* server_retire - the replaced config stays allocated until exit:
 * sessions, pool jobs and the scheduler still point into it */
static void
server_retire(struct server *srv, struct conf *old)
{
	srv->retired = xreallocarray(srv->retired, srv->nretired + 1, sizeof(*srv->retired));
	srv->retired[srv->nretired++] = old;
}

/* server_retired_free - at exit */
void
server_retired_free(struct server *srv)
{
	for (size_t i = 0; i < srv->nretired; i++)
		conf_free(srv->retired[i]);
	free(srv->retired);
	srv->retired = NULL;
	srv->nretired = 0;
}

/* server_dkim_hold - a reference to the current keys for one job */
struct server_dkim *
server_dkim_hold(struct server *srv)
{
	srv->dkim->refs++;
	return srv->dkim;
}

/* server_dkim_drop - free a key set nobody uses any more */
static void
server_dkim_drop(struct server *srv, struct server_dkim *d)
{
	if (d->refs > 0 || d == srv->dkim)
		return;
	dkim_sign_free(d->signer);
	free(d);
}

void
server_dkim_release(struct server *srv, struct server_dkim *d)
{
	d->refs--;
	server_dkim_drop(srv, d);
}

/* server_dkim_load - keys of conf as a new set; NULL after reporting */
struct server_dkim *
server_dkim_load(const struct conf *c, FILE *errs)
{
	struct dkim_keyset *ks;
	struct server_dkim *d;
	char err[256];
	int nerr = 0;

	ks = dkim_key_load(c, errs, &nerr);
	if (nerr > 0) {
		dkim_key_free(ks);
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	if ((d->signer = dkim_sign_new(ks, err, sizeof(err))) == NULL) {
		fprintf(errs, "%s: DKIM: %s\n", c->path, err);
		free(d);
		return NULL;
	}
	return d;
}

/* server_dkim_install - make d the current set; the old one goes when
 * its last job is done */
void
server_dkim_install(struct server *srv, struct server_dkim *d)
{
	struct server_dkim *old = srv->dkim;

	srv->dkim = d;
	if (old)
		server_dkim_drop(srv, old);
}

/* server_suppress_reload - read the suppressions table again into a new
 * set, swapped in only if the read succeeded. The store thread owns the
 * daemon's connection, so this opens queue.db read-only for the moment. */
int
server_suppress_reload(struct server *srv)
{
	char path[PATH_MAX + 16], err[512];
	struct store *ro;
	struct suppress *set;
	struct unsub *unsubs;
	int rc;

	snprintf(path, sizeof(path), "%s/queue.db", srv->conf->server.state_dir);
	if ((ro = store_open(path, 1, err, sizeof(err))) == NULL) {
		log_err("reload: suppression list: %s; keeping the running one", err);
		return -1;
	}
	set = suppress_new(SUPPRESS_MAX_DEFAULT);
	rc = suppress_load(set, ro);
	unsubs = unsub_new(UNSUB_MAX_DEFAULT);
	if (rc == 0 && (rc = unsub_load(unsubs, ro)) < 0)
		log_err("reload: unsubscribes unreadable; keeping the running ones");
	store_close(ro);
	if (rc < 0) {
		log_err("reload: suppression list unreadable; keeping the running one");
		suppress_free(set);
		unsub_free(unsubs);
		return -1;
	}
	suppress_free(srv->suppress);
	srv->suppress = set;
	/* Also what outpostctl suppress remove --sender took out; an
	 * unsubscribe in memory but not yet on disk comes back with its
	 * commit (unsub_http and smtp_session add it again then). */
	unsub_free(srv->unsubs);
	srv->unsubs = unsubs;
	log_info("reload: %zu suppressed addresses, %zu unsubscribes", suppress_count(set),
	    unsub_count(unsubs));
	return 0;
}

static int server_reload_config(struct server *srv, char *report, size_t reportlen);

/* server_listen_find - the section of c a running listener takes at a
 * reload: same name, address, port and TLS mode; else NULL */
static const struct conf_listen *
server_listen_find(const struct conf *c, const struct conf_listen *running)
{
	for (size_t i = 0; i < c->nlistens; i++) {
		const struct conf_listen *n = &c->listens[i];

		if (strcmp(n->name, running->name) == 0 && strcmp(n->host, running->host) == 0 &&
		    n->port == running->port && n->tls == running->tls)
			return n;
	}
	return NULL;
}

/* server_tls_load - every running listener's certificate and key from
 * the new config, into ctxs[] (NULL where none); -1 after reporting */
static int
server_tls_load(struct server *srv, const struct conf *c, SSL_CTX **ctxs, FILE *errs)
{
	char err[512];
	int nerr = 0;

	for (size_t i = 0; i < srv->nlisteners; i++) {
		const struct conf_listen *n = server_listen_find(c,
		    listener_conf(srv->listeners[i]));

		ctxs[i] = NULL;
		if (n == NULL || n->tls == CONF_TLS_NONE)
			continue;
		if ((ctxs[i] = tls_server_ctx(n->cert, n->key, err, sizeof(err))) == NULL) {
			fprintf(errs, "%s:%d: [listen %s]: %s\n", c->path, n->line, n->name, err);
			nerr++;
		}
	}
	return nerr ? -1 : 0;
}

/* server_reload - SIGHUP: read the config, the users file and the DKIM
 * keys again. Everything is loaded first; on any error nothing changes
 * and the running set stays. Returns 0 or -1. systemd hears RELOADING=1
 * before and READY=1 after, also when the new configuration is refused
 * and the old one goes on. */
int
server_reload(struct server *srv, char *report, size_t reportlen)
{
	int rc;

	notify_reloading();
	rc = server_reload_config(srv, report, reportlen);
	notify_ready(rc == 0 ? "configuration reloaded" :
	    "reload refused (see the log); running configuration kept");
	return rc;
}

/* server_reload_config - the reload itself */
static int
server_reload_config(struct server *srv, char *report, size_t reportlen)
{
	struct conf *c = NULL;
	struct auth_db *users = NULL;
	struct server_dkim *d = NULL;
	SSL_CTX **ctxs = xcalloc(srv->nlisteners + 1, sizeof(*ctxs));
	char *buf = NULL;
	size_t buflen = 0;
	FILE *errs = open_memstream(&buf, &buflen);
	int nerr = 0, rc = -1, restart;

	if (errs == NULL)
		return -1;
	if (srv->suppress != NULL)
		(void)server_suppress_reload(srv);
	if (conf_load(srv->conf->path, errs, &c) != 0)
		goto out;
	if (c->server.users_file[0])
		users = auth_load(c->server.users_file, errs, &nerr);
	else
		users = auth_empty();
	if (users == NULL)
		goto out;
	if ((d = server_dkim_load(c, errs)) == NULL)
		goto out;
	if (server_tls_load(srv, c, ctxs, errs) < 0)
		goto out;
	rc = 0;
out:
	fclose(errs);
	if (report != NULL && reportlen > 0)
		report[0] = '\0';
	if (buf && *buf) {
		/* one log line per reported problem; the first errors for the
		 * caller, "; "-joined */
		size_t o = 0;

		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			log_warn("reload: %s", line);
			if (report != NULL && o < reportlen && strstr(line, ": warning: ") == NULL)
				o += (size_t)snprintf(report + o, reportlen - o, "%s%s", o ? "; " : "",
				    line);
		}
	}
	free(buf);
	if (rc < 0) {
		log_err("reload: %s has errors; keeping the running configuration, users, DKIM keys"
		    " and certificates", srv->conf->path);
		for (size_t i = 0; i < srv->nlisteners; i++)
			if (ctxs[i])
				SSL_CTX_free(ctxs[i]);
		free(ctxs);
		if (d != NULL) {
			dkim_sign_free(d->signer);
			free(d);
		}
		auth_free(users);
		conf_free(c);
		return -1;
	}
	/* Listeners serve new connections with their new section and
	 * certificate; open sessions keep what they started with. */
	for (size_t i = 0; i < srv->nlisteners; i++) {
		const struct conf_listen *n = server_listen_find(c,
		    listener_conf(srv->listeners[i]));

		if (n != NULL)
			listener_reconfigure(srv->listeners[i], n, ctxs[i]);
	}
	free(ctxs);
	auth_free(srv->users);
	srv->users = users;
	server_dkim_install(srv, d);
	/* New sessions take the new config; what only a restart changes
	 * keeps its running value. */
	restart = server_restart_only(c, srv->conf);
	server_retire(srv, srv->conf);
	srv->conf = c;
	c = NULL;
	log_info("reload: %zu users, DKIM keys for %zu domains", users->nusers,
	    dkim_sign_keys(d->signer)->ndomains);
	if (report != NULL)
		snprintf(report, reportlen, "config, %zu users, DKIM keys for %zu domains, %zu"
		    " suppressed addresses, %zu unsubscribes%s", users->nusers,
		    dkim_sign_keys(d->signer)->ndomains, suppress_count(srv->suppress),
		    unsub_count(srv->unsubs), restart ? "; some changes need a restart (see"
		    " the log)" : "");
	return 0;
}
