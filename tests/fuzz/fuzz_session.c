/*
 * fuzz_session - arbitrary client bytes through the real submission
 * server state machine (smtp_session.c, smtp_submit.c): the line
 * splitter and its bare CR/LF and length rules, the verb table and every
 * state change, pipelining, the DATA scanner, and the submission job
 * (message_prepare and the ownership checks in the signer pool).
 *
 * Set up once: an event base, a config loaded by conf_load from a memfd
 * (one plaintext listener, max_message_size 64k, the default
 * trusted_networks 127.0.0.0/8), a signer pool of one thread, and DKIM
 * with no keys under "unsigned = reject". Per input: a socketpair; one
 * end goes to smtp_session_start as a client from 127.0.0.1 (trusted, so
 * MAIL/RCPT/DATA work without AUTH); the harness writes the input into
 * the other end, reads and drops the replies, then shuts its side down
 * and pumps the loop until the session has freed itself.
 *
 * Bounded: AUTH needs TLS and TLS is not offered, so no SASL or handshake
 * wait is reachable; a message that passes every check is refused at
 * signing ("550 5.7.1 no DKIM key"), so nothing reaches the store or the
 * scheduler (tested by the integration suite instead). A session that
 * does not end within 10 s of the client's EOF is a finding (abort).
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "auth.h"
#include "conf.h"
#include "fuzz.h"
#include "log.h"
#include "loopq.h"
#include "server.h"
#include "signer.h"
#include "smtp_session.h"
#include "util.h"

#define SESSION_WAIT_MS 10000

static const char conf_text[] =
    "[server]\n"
    "hostname = relay.fuzz.example\n"
    "state_dir = /nonexistent/outpost-fuzz\n"
    "max_message_size = 64k\n"
    "max_recipients = 5\n"
    "max_header_size = 4k\n"
    "signer_threads = 1\n"
    "unsigned = reject\n"
    "[listen submission]\n"
    "address = 127.0.0.1:5870\n"
    "tls = none\n"
    "auth = optional\n";

static struct server srv;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[64];
	FILE *errs = stderr;
	int fd;

	fuzz_quiet_log();
	log_init(LOG_DEST_STDERR, 0, "fuzz_session");
	if (evthread_use_pthreads() != 0 || (srv.base = event_base_new()) == NULL)
		abort();
	if ((fd = memfd_create("fuzz_session_conf", 0)) < 0 ||
	    write(fd, conf_text, sizeof(conf_text) - 1) != (ssize_t)sizeof(conf_text) - 1)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (conf_load(path, errs, &srv.conf) != 0) {
		fputs("fuzz_session: the built-in config does not load\n", errs);
		abort();
	}
	close(fd);
	srv.dkim = server_dkim_load(srv.conf, errs);
	if (srv.dkim == NULL)
		abort();
	server_dkim_install(&srv, srv.dkim);
	srv.penalty = auth_penalty_new(64, srv.conf->server.auth_penalty_window);
	srv.loopq = loopq_new(srv.base);
	srv.signer = signer_new(srv.loopq, 1);
	srv.started = util_now();
	return 0;
}

/* pump - one turn of the loop; block up to 1 ms when idle was seen */
static void
pump(int block)
{
	struct timeval tv = { 0, 1000 };

	if (block) {
		event_base_loopexit(srv.base, &tv);
		event_base_loop(srv.base, EVLOOP_ONCE);
	} else {
		event_base_loop(srv.base, EVLOOP_NONBLOCK);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin;
	char sink[16384];
	size_t sent = 0;
	int sv[2], shut = 0, peer_open = 1;
	int64_t deadline = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		abort();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	smtp_session_start(&srv, NULL, &srv.conf->listens[0], NULL, sv[0],
	    (const struct sockaddr *)&sin, sizeof(sin));

	while (srv.nsessions > 0) {
		int progress = 0;
		ssize_t n;

		if (sent < size) {
			n = write(sv[1], data + sent, size - sent);
			if (n > 0) {
				sent += (size_t)n;
				progress = 1;
			}
		} else if (!shut) {
			shutdown(sv[1], SHUT_WR);
			shut = 1;
			deadline = util_mono_ms() + SESSION_WAIT_MS;
		}
		n = -1;
		while (peer_open && (n = read(sv[1], sink, sizeof(sink))) != 0) {
			if (n < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					peer_open = 0;
				break;
			}
			progress = 1;
		}
		if (n == 0)
			peer_open = 0;
		pump(!progress);
		if (shut && util_mono_ms() > deadline) {
			fprintf(stderr, "fuzz_session: session still open %d ms after the client's EOF\n",
			    SESSION_WAIT_MS);
			abort();
		}
	}
	close(sv[1]);
	return 0;
}
