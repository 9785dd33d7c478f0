/*
 * test_smtp_data - the DATA scanner: end of data only at CRLF.CRLF, dot
 * unstuffing, bare CR/LF and NUL noted, the size cap, what follows the
 * end left for the next command, and the same result however the input
 * is cut into chunks (RELIABILITY S1, S3).
 */
#include "config.h"

#include <stdio.h>
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

/* ref_scan - the scanner one byte at a time, as the state table in
 * smtp_data.c's header says: the oracle for the span-copying fast path */
static struct result
ref_scan(const char *in, size_t n, size_t max)
{
	enum { BOL, MID, CR, DOT, DOTCR } st = BOL;
	struct result r;
	size_t cap = n + 2;

	memset(&r, 0, sizeof(r));
	r.msg = xmalloc(cap);
#define REF_PUT(c) do { if (!r.big) { if (r.len >= max) r.big = 1; \
	else r.msg[r.len++] = (c); } } while (0)
	for (size_t i = 0; i < n && !r.end; i++) {
		char ch = in[i];
again:
		switch (st) {
		case BOL:
			if (ch == '.') { st = DOT; break; }
			st = MID;
			goto again;
		case MID:
			if (ch == '\r') { st = CR; break; }
			if (ch == '\n') r.bare = 1;
			else if (ch == '\0') r.nul = 1;
			REF_PUT(ch);
			break;
		case CR:
			if (ch == '\n') { REF_PUT('\r'); REF_PUT('\n'); st = BOL; break; }
			r.bare = 1;
			REF_PUT('\r');
			st = MID;
			goto again;
		case DOT:
			if (ch == '\r') { st = DOTCR; break; }
			st = MID;
			goto again;
		case DOTCR:
			if (ch == '\n') { r.end = 1; r.consumed = i + 1; break; }
			r.bare = 1;
			REF_PUT('\r');
			st = MID;
			goto again;
		}
	}
#undef REF_PUT
	if (!r.end)
		r.consumed = n;
	return r;
}

/* test_random - random inputs rich in CR, LF, NUL and dots, random size
 * caps and chunkings, against the byte-at-a-time oracle */
static void
test_random(void)
{
	static const char alphabet[] = "aaaaaaaab.\r\n\r\n\0";
	unsigned long seed = 12345;
	int bad = 0;

	for (int iter = 0; iter < 20000 && bad < 5; iter++) {
		char in[300];
		size_t n, max, step;
		struct result a, b;

		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		n = (seed >> 33) % sizeof(in);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			in[i] = alphabet[(seed >> 33) % (sizeof(alphabet) - 1)];
		}
		max = 1 + (seed >> 20) % 320;
		step = (seed >> 40) % 17;
		a = scan(in, n, max, step);
		b = ref_scan(in, n, max);
		if (a.end != b.end || a.consumed != b.consumed || a.len != b.len ||
		    memcmp(a.msg, b.msg, a.len) != 0 || a.bare != b.bare ||
		    a.nul != b.nul || a.big != b.big) {
			fprintf(stderr, "# iteration %d: n=%zu max=%zu step=%zu: end %d/%d consumed %zu/%zu "
			    "len %zu/%zu bare %d/%d nul %d/%d big %d/%d", iter, n, max, step,
			    a.end, b.end, a.consumed, b.consumed, a.len, b.len, a.bare, b.bare,
			    a.nul, b.nul, a.big, b.big);
			fputc('\n', stderr);
			bad++;
		}
		free(a.msg);
		free(b.msg);
	}
	ok(bad == 0, "20000 random inputs scan as the byte-at-a-time oracle does");
}

int
main(void)
{
	test_table();
	test_chunking();
	test_size();
	test_random();
	return done();
}
