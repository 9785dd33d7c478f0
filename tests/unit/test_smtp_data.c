/*
 * test_smtp_data - the DATA scanner: end of data only at CRLF.CRLF, dot
 * unstuffing, bare CR/LF and NUL noted, the size cap, what follows the
 * end left for the next command, and the same result however the input
 * is cut into chunks (RELIABILITY S1, S3).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"
#include "tap.h"
#include "util.h"

struct result {
	int end;
	size_t consumed;
	char *msg;
	size_t len;
	int bare, nul, big;
};

/* scan - feed in pieces of `step` bytes (0: all at once) */
static struct result
scan(const char *in, size_t n, size_t max, size_t step)
{
	struct smtp_data d;
	struct result r;
	size_t off = 0;

	memset(&r, 0, sizeof(r));
	smtp_data_init(&d, max);
	while (off < n && !r.end) {
		size_t piece = step == 0 || n - off < step ? n - off : step;
		off += smtp_data_feed(&d, in + off, piece, &r.end);
	}
	r.consumed = off;
	r.bare = d.bare;
	r.nul = d.nul;
	r.big = d.big;
	r.msg = smtp_data_take(&d, &r.len);
	smtp_data_free(&d);
	return r;
}

#define S(lit) lit, sizeof(lit) - 1

static void
test_table(void)
{
	static const struct {
		const char *in;
		size_t n;
		int end;
		const char *msg;        /* expected message when end */
		size_t msglen;
		int bare, nul;
		size_t consumed;        /* 0: all of it */
	} t[] = {
		{ S("a\r\n.\r\n"), 1, S("a\r\n"), 0, 0, 0 },
		{ S(".\r\n"), 1, S(""), 0, 0, 0 },
		{ S("..x\r\n.\r\n"), 1, S(".x\r\n"), 0, 0, 0 },
		{ S("...\r\n.\r\n"), 1, S("..\r\n"), 0, 0, 0 },
		{ S(".a\r\n..\r\n.\r\n"), 1, S("a\r\n.\r\n"), 0, 0, 0 },
		{ S("a\r\n.\r\nQUIT\r\n"), 1, S("a\r\n"), 0, 0, 6 },
		/* S1: none of these ends the data */
		{ S("a\n.\nMAIL FROM:<x@y>\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\n.\r\nMAIL FROM:<x@y>\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\r.\r\nMAIL FROM:<x@y>\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\r\n.\rMAIL FROM:<x@y>\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\r.\nMAIL\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\n.\rMAIL\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\r.\rMAIL\r\n"), 0, S(""), 1, 0, 0 },
		{ S("a\r\n\0.\r\nMAIL\r\n"), 0, S(""), 0, 1, 0 },
		/* ... and the real end after them still works */
		{ S("a\n.\nb\r\n.\r\n"), 1, S("a\n.\nb\r\n"), 1, 0, 0 },
		{ S("a\r\n.\rb\r\n.\r\n"), 1, S("a\r\n\rb\r\n"), 1, 0, 0 },
		{ S("a\r\n\0.\r\n.\r\n"), 1, S("a\r\n\0.\r\n"), 0, 1, 0 },
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct result r = scan(t[i].in, t[i].n, 1000, 0);
		is_int(r.end, t[i].end, "case %zu: end", i);
		is_int(r.bare, t[i].bare, "case %zu: bare CR/LF noted", i);
		is_int(r.nul, t[i].nul, "case %zu: NUL noted", i);
		if (t[i].end) {
			ok(r.len == t[i].msglen && memcmp(r.msg, t[i].msg, r.len) == 0,
			    "case %zu: message bytes", i);
			is_int((long long)r.consumed, (long long)(t[i].consumed ?
			    t[i].consumed : t[i].n), "case %zu: stops right after the end", i);
		} else {
			is_int((long long)r.consumed, (long long)t[i].n,
			    "case %zu: everything consumed, still in DATA", i);
		}
		free(r.msg);
	}
}

/* test_chunking - every split of the input gives the same result */
static void
test_chunking(void)
{
	static const char in[] = "From: a@b\r\n\r\n..dot\r\nx\ry\n.\r\n\0z\r\n.\r\nNEXT";
	size_t n = sizeof(in) - 1;
	struct result whole = scan(in, n, 1000, 0);
	int same = 1;

	ok(whole.end && whole.bare && whole.nul, "reference scan ends and notes bare and NUL");
	for (size_t step = 1; step <= n; step++) {
		struct result r = scan(in, n, 1000, step);
		if (r.end != whole.end || r.len != whole.len || r.consumed != whole.consumed ||
		    memcmp(r.msg, whole.msg, r.len) != 0 || r.bare != whole.bare ||
		    r.nul != whole.nul)
			same = 0;
		free(r.msg);
	}
	ok(same, "identical result for every chunk size 1..%zu", n);
	is_int((long long)whole.consumed, (long long)(n - 4), "NEXT is left for the command reader");
	free(whole.msg);
}

/* test_size - the copy stops at max, the scan goes on to the real end */
static void
test_size(void)
{
	size_t n = 100000;
	char *in = xmalloc(n + 6);
	struct result r;

	memset(in, 'x', n);
	memcpy(in + n, "\r\n.\r\n", 5);
	r = scan(in, n + 5, 1000, 4096);
	ok(r.end, "oversized message: the end is still found");
	ok(r.big, "oversized message noted");
	ok(r.len <= 1000, "no more than max bytes kept (%zu)", r.len);
	free(r.msg);
	r = scan(in + n - 998, 998 + 5, 1000, 0);
	ok(r.end && !r.big && r.len == 1000, "exactly max bytes is not too big");
	free(r.msg);
	free(in);
}

int
main(void)
{
	test_table();
	test_chunking();
	test_size();
	return done();
}
