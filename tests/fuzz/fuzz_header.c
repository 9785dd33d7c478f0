/*
 * fuzz_header - message_prepare (message.h): the header parse, the RFC
 * 5322 checks (one From: with one mailbox, single-instance headers, line
 * and header-section limits) and the fixes (Bcc: removed, Date:,
 * Message-ID: and Received: added).
 *
 * message_prepare's input is what the DATA scanner passes on: every line
 * ends in CRLF, no bare CR or LF, no NUL. The harness maps any input into
 * that space: LF ends a line, CR is dropped, NUL becomes a space, and a
 * missing last line end is added. The first input byte picks a small
 * header-size limit now and then, so that path is reached too.
 *
 * Invariants: success gives a message whose lines all end in CRLF, with
 * a header section of the reported length ending in the blank line;
 * failure gives a complete SMTP reply.
 */
#include "config.h"

#include "fuzz.h"
#include "message.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct message_params p = {
		.hostname = "relay.fuzz.example", .helo = "client.fuzz.example",
		.client_ip = "192.0.2.7", .protocol = "ESMTPSA",
		.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384", .queue_id = "4FUZZ0000001",
		.rcpt_for = "rcpt@fuzz.example", .now = 1700000000,
		.max_header_size = 256 * 1024,
	};
	struct message_info info;
	char err[512];
	char *in, *out = NULL;
	size_t n = 0, outlen = 0;

	if (size > 0 && data[0] == 0x01) {
		p.max_header_size = 64;
		p.rcpt_for = NULL;
		p.tls = NULL;
	}
	in = malloc(size * 2 + 2);
	if (in == NULL)
		abort();
	for (size_t i = 0; i < size; i++) {
		if (data[i] == '\r')
			continue;
		if (data[i] == '\n') {
			in[n++] = '\r';
			in[n++] = '\n';
		} else {
			in[n++] = data[i] ? (char)data[i] : ' ';
		}
	}
	if (n > 0 && in[n - 1] != '\n') {
		in[n++] = '\r';
		in[n++] = '\n';
	}
	/* Exactly n bytes readable: realloc to size. */
	in = realloc(in, n ? n : 1);
	memset(&info, 0x55, sizeof(info));
	err[0] = '\0';
	if (message_prepare(in, n, &p, &info, &out, &outlen, err, sizeof(err)) == 0) {
		FUZZ_CHECK(out != NULL && outlen >= 2);
		FUZZ_CHECK(info.header_len <= outlen && info.header_len >= 2);
		FUZZ_CHECK(memcmp(out + info.header_len - 2, "\r\n", 2) == 0);
		FUZZ_CHECK(memcmp(out + outlen - 2, "\r\n", 2) == 0);
		for (size_t i = 0; i < outlen; i++) {
			if (out[i] == '\n')
				FUZZ_CHECK(i > 0 && out[i - 1] == '\r');
			if (out[i] == '\r')
				FUZZ_CHECK(i + 1 < outlen && out[i + 1] == '\n');
		}
		FUZZ_CHECK(memchr(info.from_addr, '\0', sizeof(info.from_addr)) != NULL);
		FUZZ_CHECK(memchr(info.message_id, '\0', sizeof(info.message_id)) != NULL);
		free(out);
	} else {
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && fuzz_is_reply(err));
	}
	free(in);
	return 0;
}
