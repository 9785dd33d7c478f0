/*
 * fuzz_reply - the upstream reply parser (smtp_reply_feed: multi-line,
 * RFC 2034 enhanced codes, bounded text) and what is done with a parsed
 * reply: smtp_reply_format for the log and classify_reply for the
 * delivery decision.
 *
 * The input is a stream of upstream lines. As upstream_conn.c gets them
 * from evbuffer_readln, each line is NUL-terminated after its length and
 * may hold NULs inside. A finished or malformed reply starts a new one.
 *
 * Invariants: a complete reply has a code in 200..559 and NUL-terminated
 * enhanced code and text; the formatted line is NUL-terminated within
 * its buffer, also a short one.
 */
#include "config.h"

#include "classify.h"
#include "fuzz.h"
#include "smtp_parse.h"

static void
finish(const struct smtp_reply *r)
{
	char buf[SMTP_REPLY_TEXT_MAX + 64], tiny[5];

	FUZZ_CHECK(r->code >= 200 && r->code <= 559);
	FUZZ_CHECK(memchr(r->enh, '\0', sizeof(r->enh)) != NULL);
	FUZZ_CHECK(memchr(r->text, '\0', sizeof(r->text)) != NULL);
	smtp_reply_format(r, buf, sizeof(buf));
	FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)) != NULL);
	smtp_reply_format(r, tiny, sizeof(tiny));
	FUZZ_CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
	FUZZ_CHECK(classify_reply(r->code, r->enh, r->text, strlen(r->text)) < CLASSIFY_NCLASSES);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	size_t start = 0;

	smtp_reply_init(&r);
	while (start < size) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - data) : size, len = end - start;
		char *line;
		int rc;

		if (len > 0 && data[end - 1] == '\r')
			len--;
		line = fuzz_dup(data + start, len, 1);
		rc = smtp_reply_feed(&r, line, len);
		free(line);
		FUZZ_CHECK(rc >= -1 && rc <= 1);
		if (rc == 1)
			finish(&r);
		if (rc != 0)
			smtp_reply_init(&r);
		start = end + 1;
	}
	return 0;
}
