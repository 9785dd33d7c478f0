/*
 * listener - listening sockets for one [listen NAME] section.
 *
 * The address may name one IP, a host name (every address it resolves
 * to at start is bound), or "*" (0.0.0.0 and [::], the v6 socket with
 * IPV6_V6ONLY so both can coexist). Accepted connections are counted
 * globally and per client IP, across all listeners; over either cap the
 * client gets one 421 4.7.0 line and is closed (RELIABILITY S14), before
 * any session state is allocated.
 *
 * Sockets are bound in listener_new (while the daemon may still be root,
 * before it drops to [server] user) but only listen in listener_start,
 * once the queue is loaded and the control socket exists: a client that
 * can connect can also be served. Under socket activation (outpost.socket)
 * the service manager passes listening sockets (sd_listen_fds); each is
 * matched by address and port to the [listen] section it belongs to, and
 * a section with passed sockets binds nothing itself.
 *
 * A reload hands an unchanged section (same name, address, port and TLS
 * mode) its new settings and a new TLS context (listener_reconfigure):
 * a renewed certificate serves new connections, open sessions keep the
 * context they hold a reference to.
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
#include <systemd/sd-daemon.h>

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "server.h"
#include "smtp_session.h"
#include "tls.h"
#include "util.h"

#define LISTENER_SOCKETS_MAX 8
#define LISTENER_IP_BUCKETS 1024

#define LISTENER_BACKLOG 511
#define LISTENER_PASSED_MAX 64

struct listener {
	struct server *srv;
	const struct conf_listen *cl;
	SSL_CTX *ssl_ctx;
	int fds[LISTENER_SOCKETS_MAX];  /* bound; listening once started */
	int passed[LISTENER_SOCKETS_MAX]; /* fd came from the service manager */
	int nfds;
	struct evconnlistener *evl[LISTENER_SOCKETS_MAX];
	int nevl;
};

/* Sockets passed by the service manager (LISTEN_FDS), claimed by the
 * sections they match; -1 once claimed. */
static int passed_fds[LISTENER_PASSED_MAX];
static int npassed;

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

/* listener_add_fd - remember one socket of this section */
static int
listener_add_fd(struct listener *l, int fd, int passed, char *err, size_t errlen)
{
	if (l->nfds >= LISTENER_SOCKETS_MAX) {
		snprintf(err, errlen, "listen %s: too many addresses", l->cl->name);
		return -1;
	}
	l->passed[l->nfds] = passed;
	l->fds[l->nfds++] = fd;
	return 0;
}

/* listener_bind - one socket bound to one address, not yet listening */
static int
listener_bind(struct listener *l, const struct sockaddr *sa, socklen_t salen,
    char *err, size_t errlen)
{
	int fd, on = 1;
	char ip[IP_STR_MAX];

	util_sockaddr_ip(sa, ip, sizeof(ip));
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", l->cl->name, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, sa, salen) < 0) {
		snprintf(err, errlen, "listen %s: cannot listen on [%s]:%d: %s", l->cl->name, ip,
		    l->cl->port, strerror(errno));
		close(fd);
		return -1;
	}
	if (listener_add_fd(l, fd, 0, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	return 0;
}

/* listener_activation - take the sockets the service manager passed
 * (LISTEN_FDS, LISTEN_PID); the environment is cleared so children do
 * not inherit them. Returns how many, or -1 after err. */
int
listener_activation(char *err, size_t errlen)
{
	int n = sd_listen_fds(1);

	if (n < 0) {
		snprintf(err, errlen, "socket activation: %s", strerror(-n));
		return -1;
	}
	if (n > LISTENER_PASSED_MAX) {
		snprintf(err, errlen, "socket activation: %d sockets passed, at most %d", n,
		    LISTENER_PASSED_MAX);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			snprintf(err, errlen, "socket activation: descriptor %d is not a listening"
			    " stream socket (outpost.socket must use ListenStream=)", fd);
			return -1;
		}
		evutil_make_socket_nonblocking(fd);
		evutil_make_socket_closeonexec(fd);
		passed_fds[npassed++] = fd;
	}
	return n;
}

/* passed_matches - is the passed socket fd one of section cl's? Same
 * port, and the same address unless the section listens everywhere. */
static int
passed_matches(int fd, const struct conf_listen *cl)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct addrinfo hints, *res = NULL, *ai;
	char port[16], ip[IP_STR_MAX], aip[IP_STR_MAX];
	int match = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
	    util_sockaddr_port((struct sockaddr *)&ss) != cl->port)
		return 0;
	if (cl->host[0] == '\0' || strcmp(cl->host, "*") == 0)
		return 1;
	util_sockaddr_ip((struct sockaddr *)&ss, ip, sizeof(ip));
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", cl->port);
	if (getaddrinfo(cl->host, port, &hints, &res) != 0)
		return 0;
	for (ai = res; ai && !match; ai = ai->ai_next)
		match = strcmp(util_sockaddr_ip(ai->ai_addr, aip, sizeof(aip)), ip) == 0;
	freeaddrinfo(res);
	return match;
}

/* listener_claim_passed - the passed sockets of this section */
static int
listener_claim_passed(struct listener *l, char *err, size_t errlen)
{
	int n = 0;

	for (int i = 0; i < npassed; i++) {
		if (passed_fds[i] < 0 || !passed_matches(passed_fds[i], l->cl))
			continue;
		if (listener_add_fd(l, passed_fds[i], 1, err, errlen) < 0)
			return -1;
		passed_fds[i] = -1;
		n++;
	}
	return n;
}

/* listener_activation_unclaimed - a passed socket no section wants is a
 * configuration mistake (outpost.socket and [listen] disagree) */
int
listener_activation_unclaimed(char *err, size_t errlen)
{
	for (int i = 0; i < npassed; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char ip[IP_STR_MAX] = "?";

		if (passed_fds[i] < 0)
			continue;
		if (getsockname(passed_fds[i], (struct sockaddr *)&ss, &len) == 0)
			util_sockaddr_ip((struct sockaddr *)&ss, ip, sizeof(ip));
		snprintf(err, errlen, "socket activation: the socket on [%s]:%d matches no"
		    " [listen] section's address", ip, util_sockaddr_port((struct sockaddr *)&ss));
		return -1;
	}
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
	if ((r = listener_claim_passed(l, err, errlen)) < 0)
		goto fail;
	if (r > 0)
		return l;
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

/* listener_start - listen and accept on the loop */
int
listener_start(struct listener *l, char *err, size_t errlen)
{
	for (int i = l->nevl; i < l->nfds; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		char ip[IP_STR_MAX] = "?";
		struct evconnlistener *evl;

		if (getsockname(l->fds[i], (struct sockaddr *)&ss, &len) == 0)
			util_sockaddr_ip((struct sockaddr *)&ss, ip, sizeof(ip));
		if (!l->passed[i] && listen(l->fds[i], LISTENER_BACKLOG) < 0) {
			snprintf(err, errlen, "listen %s: cannot listen on [%s]:%d: %s", l->cl->name,
			    ip, l->cl->port, strerror(errno));
			return -1;
		}
		/* backlog 0: the socket listens already */
		evl = evconnlistener_new(l->srv->base, listener_accept, l,
		    LEV_OPT_CLOSE_ON_FREE, 0, l->fds[i]);
		if (evl == NULL) {
			snprintf(err, errlen, "listen %s: evconnlistener_new failed", l->cl->name);
			return -1;
		}
		evconnlistener_set_error_cb(evl, listener_error);
		l->evl[l->nevl++] = evl;
		log_info("listening on [%s]:%d (%s, tls=%s, auth=%s%s)", ip, l->cl->port,
		    l->cl->name, l->cl->tls == CONF_TLS_NONE ? "none" :
		    l->cl->tls == CONF_TLS_STARTTLS ? "starttls" : "implicit",
		    l->cl->auth == CONF_AUTH_REQUIRED ? "required" : "optional",
		    l->passed[i] ? ", socket activated" : "");
	}
	return 0;
}

const struct conf_listen *
listener_conf(const struct listener *l)
{
	return l->cl;
}

/* listener_reconfigure - new sessions get cl's settings and ctx (which
 * the listener now owns); the old context goes once the sessions that
 * hold it are gone (OpenSSL counts the references). */
void
listener_reconfigure(struct listener *l, const struct conf_listen *cl, SSL_CTX *ctx)
{
	if (l->ssl_ctx)
		SSL_CTX_free(l->ssl_ctx);
	l->ssl_ctx = ctx;
	l->cl = cl;
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
		evconnlistener_free(l->evl[i]);   /* closes fds[i] */
	for (int i = l->nevl; i < l->nfds; i++)
		close(l->fds[i]);
	if (l->ssl_ctx)
		SSL_CTX_free(l->ssl_ctx);
	free(l);
}
