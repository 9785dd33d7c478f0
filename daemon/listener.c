/*
 * listener - listening sockets for one [listen NAME] section.
 *
 * The address may name one IP, a host name (every address it resolves
 * to at start is bound), or "*" (0.0.0.0 and [::], the v6 socket with
 * IPV6_V6ONLY so both can coexist). Accepted connections are counted
 * globally and per client IP, across all listeners; over either cap the
 * client gets one 421 4.7.0 line and is closed (RELIABILITY S14), before
 * any session state is allocated.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/listener.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "smtp_session.h"
#include "tls.h"
#include "util.h"

#define LISTENER_SOCKETS_MAX 8
#define LISTENER_IP_BUCKETS 1024

struct listener {
	struct server *srv;
	const struct conf_listen *cl;
	SSL_CTX *ssl_ctx;
	struct evconnlistener *evl[LISTENER_SOCKETS_MAX];
	int nevl;
};

/* Connections per client IP, shared by every listener of the process. */
struct ip_count {
	char ip[IP_STR_MAX];
	int n;
	struct ip_count *next;
};
static struct ip_count *ip_table[LISTENER_IP_BUCKETS];

static unsigned
ip_hash(const char *ip)
{
	unsigned h = 2166136261u;   /* FNV-1a */

	for (; *ip; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % LISTENER_IP_BUCKETS;
}

static struct ip_count *
ip_lookup(const char *ip, int create)
{
	unsigned h = ip_hash(ip);
	struct ip_count *e;

	for (e = ip_table[h]; e; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	if (!create)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	util_strlcpy(e->ip, ip, sizeof(e->ip));
	e->next = ip_table[h];
	ip_table[h] = e;
	return e;
}

void
listener_release_ip(struct listener *l, const char *ip)
{
	unsigned h = ip_hash(ip);
	struct ip_count **pp, *e;

	for (pp = &ip_table[h]; (e = *pp) != NULL; pp = &e->next) {
		if (strcmp(e->ip, ip) != 0)
			continue;
		if (--e->n <= 0) {
			*pp = e->next;
			free(e);
		}
		return;
	}
}

/* listener_accept - a new client: enforce the caps, start a session */
static void
listener_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listener *l = arg;
	const struct conf_server *cs = &l->srv->conf->server;
	struct ip_count *e;
	char ip[IP_STR_MAX];

	util_sockaddr_ip(sa, ip, sizeof(ip));
	if (l->srv->stopping) {
		smtp_session_refuse(l->srv, fd, "Service shutting down");
		return;
	}
	if (l->srv->nsessions >= cs->max_connections) {
		log_warn("connect from [%s] refused: %d connections (max_connections)", ip,
		    l->srv->nsessions);
		smtp_session_refuse(l->srv, fd, "Too many connections");
		return;
	}
	e = ip_lookup(ip, 1);
	if (e->n >= cs->max_connections_per_ip) {
		log_warn("connect from [%s] refused: %d connections from this address "
		    "(max_connections_per_ip)", ip, e->n);
		if (e->n == 0)
			listener_release_ip(l, ip);
		smtp_session_refuse(l->srv, fd, "Too many connections from your address");
		return;
	}
	e->n++;
	smtp_session_start(l->srv, l, l->cl, l->ssl_ctx, fd, sa, (socklen_t)salen);
}

static void
listener_error(struct evconnlistener *evl, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep running, the next accept may work. */
	log_err("accept: %s", evutil_socket_error_to_string(e));
}

/* listener_bind - one listening socket for one address */
static int
listener_bind(struct listener *l, const struct sockaddr *sa, socklen_t salen,
    char *err, size_t errlen)
{
	int fd, on = 1;
	char ip[IP_STR_MAX];
	struct evconnlistener *evl;

	util_sockaddr_ip(sa, ip, sizeof(ip));
	if (l->nevl >= LISTENER_SOCKETS_MAX) {
		snprintf(err, errlen, "listen %s: too many addresses", l->cl->name);
		return -1;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", l->cl->name, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, sa, salen) < 0 || listen(fd, 511) < 0) {
		snprintf(err, errlen, "listen %s: cannot listen on [%s]:%d: %s", l->cl->name, ip,
		    l->cl->port, strerror(errno));
		close(fd);
		return -1;
	}
	evl = evconnlistener_new(l->srv->base, listener_accept, l,
	    LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (evl == NULL) {
		snprintf(err, errlen, "listen %s: evconnlistener_new failed", l->cl->name);
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(evl, listener_error);
	l->evl[l->nevl++] = evl;
	log_info("listening on [%s]:%d (%s, tls=%s, auth=%s)", ip, l->cl->port, l->cl->name,
	    l->cl->tls == CONF_TLS_NONE ? "none" : l->cl->tls == CONF_TLS_STARTTLS ?
	    "starttls" : "implicit", l->cl->auth == CONF_AUTH_REQUIRED ? "required" : "optional");
	return 0;
}

struct listener *
listener_new(struct server *srv, const struct conf_listen *cl, char *err, size_t errlen)
{
	struct listener *l = xcalloc(1, sizeof(*l));
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	const char *host = cl->host;
	int r;

	l->srv = srv;
	l->cl = cl;
	if (cl->tls != CONF_TLS_NONE) {
		l->ssl_ctx = tls_server_ctx(cl->cert, cl->key, err, errlen);
		if (l->ssl_ctx == NULL)
			goto fail;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	hints.ai_family = AF_UNSPEC;
	if (host[0] == '\0' || strcmp(host, "*") == 0)
		host = NULL;        /* every address, v4 and v6 */
	snprintf(port, sizeof(port), "%d", cl->port);
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "listen %s: %s: %s", cl->name, host ? host : "*",
		    gai_strerror(r));
		goto fail;
	}
	for (ai = res; ai; ai = ai->ai_next)
		if (listener_bind(l, ai->ai_addr, ai->ai_addrlen, err, errlen) < 0)
			goto fail;
	freeaddrinfo(res);
	return l;
fail:
	if (res)
		freeaddrinfo(res);
	listener_free(l);
	return NULL;
}

void
listener_disable(struct listener *l)
{
	for (int i = 0; i < l->nevl; i++)
		evconnlistener_disable(l->evl[i]);
}

void
listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	for (int i = 0; i < l->nevl; i++)
		evconnlistener_free(l->evl[i]);
	if (l->ssl_ctx)
		SSL_CTX_free(l->ssl_ctx);
	free(l);
}
