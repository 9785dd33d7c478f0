/*
 * http - see http.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/http.h>

#include "conf.h"
#include "http.h"
#include "util.h"

struct evhttp *
http_listen(struct event_base *base, const char *listen, size_t headers_max,
    size_t body_max, int timeout, void (*cb)(struct evhttp_request *, void *), void *arg,
    char *err, size_t errlen)
{
	char host[HOST_MAX];
	struct evhttp *http;
	int port;

	if (util_parse_hostport(listen, host, sizeof(host), &port) < 0 || port <= 0 ||
	    port > 65535) {
		snprintf(err, errlen, "not an address:port");
		return NULL;
	}
	if ((http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return NULL;
	}
	evhttp_set_max_headers_size(http, (ev_ssize_t)headers_max);
	evhttp_set_max_body_size(http, (ev_ssize_t)body_max);
	evhttp_set_timeout(http, timeout);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
	    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, cb, arg);
	errno = 0;
	if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) == NULL) {
		snprintf(err, errlen, "cannot listen: %s", errno ? strerror(errno) :
		    "bind failed");
		evhttp_free(http);
		return NULL;
	}
	return http;
}
