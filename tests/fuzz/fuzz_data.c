/*
 * fuzz_data - the DATA scanner (smtp_data.h): only CRLF.CRLF ends the
 * data; bare CR/LF, NUL and oversize are noted, never acted on early.
 *
 * The first input byte chooses the size limit and a chunk length; the
 * rest is the client's stream. It is scanned twice: in one piece and in
 * chunks. smtp_data.h promises the result does not depend on the split,
 * so both scans must consume the same bytes, find the same end, and give
 * the same message and flags.
 *
 * Further invariants: the message never exceeds the limit; a clean end
 * means the consumed input ends in CRLF.CRLF.
 */
#include "config.h"

#include "fuzz.h"
#include "smtp_data.h"

struct scan {
	size_t consumed;
	int end;
	char *msg;
	size_t len;
	int bare, nul, big;
};

static void
scan(const char *p, size_t n, size_t max, size_t chunk, struct scan *r)
{
	struct smtp_data d;

	smtp_data_init(&d, max);
	r->consumed = 0;
	r->end = 0;
	while (r->consumed < n && !r->end) {
		size_t want = n - r->consumed < chunk ? n - r->consumed : chunk;
		char *piece = fuzz_dup((const uint8_t *)p + r->consumed, want, 0);
		size_t used = smtp_data_feed(&d, piece, want, &r->end);

		free(piece);
		FUZZ_CHECK(used <= want);
		FUZZ_CHECK(used == want || r->end);
		r->consumed += used;
	}
	r->bare = d.bare;
	r->nul = d.nul;
	r->big = d.big;
	r->msg = smtp_data_take(&d, &r->len);
	smtp_data_free(&d);
	FUZZ_CHECK(r->msg != NULL && r->msg[r->len] == '\0');
	FUZZ_CHECK(r->len <= max);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scan whole, pieces;
	size_t max, chunk;
	const char *p;

	if (size < 1)
		return 0;
	max = (data[0] & 0x0f) == 0 ? 1 << 20 : (size_t)(data[0] & 0x0f) * 7;
	chunk = 1 + (data[0] >> 4);
	p = (const char *)data + 1;
	size--;
	scan(p, size, max, size ? size : 1, &whole);
	scan(p, size, max, chunk, &pieces);
	FUZZ_CHECK(whole.consumed == pieces.consumed);
	FUZZ_CHECK(whole.end == pieces.end);
	FUZZ_CHECK(whole.bare == pieces.bare && whole.nul == pieces.nul && whole.big == pieces.big);
	FUZZ_CHECK(whole.len == pieces.len && memcmp(whole.msg, pieces.msg, whole.len) == 0);
	if (whole.end) {
		FUZZ_CHECK(whole.consumed >= 3);
		FUZZ_CHECK(memcmp(p + whole.consumed - 3, ".\r\n", 3) == 0);
		FUZZ_CHECK(whole.consumed == 3 || (whole.consumed >= 5 &&
		    memcmp(p + whole.consumed - 5, "\r\n", 2) == 0));
	}
	if (!whole.big)
		FUZZ_CHECK(memchr(whole.msg, '\0', whole.len) == NULL || whole.nul);
	free(whole.msg);
	free(pieces.msg);
	return 0;
}
