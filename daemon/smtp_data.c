/*
 * smtp_data - the DATA byte scanner. See smtp_data.h.
 *
 * States, relative to the start of a line: BOL (a line starts), MID
 * (inside a line), CR (a CR was seen, LF expected), DOT (a line started
 * with '.'), DOTCR ("." then CR: the end if LF follows). Only CRLF moves
 * to BOL, so a "." after a bare LF is an ordinary character and never
 * ends the data.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"
#include "util.h"

#define SMTP_DATA_CHUNK 16384

void
smtp_data_init(struct smtp_data *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->state = SMTP_DATA_BOL;
	d->max = max;
}

/* smtp_data_put - keep one byte, unless the message is already too big */
static void
smtp_data_put(struct smtp_data *d, char c)
{
	if (d->big)
		return;
	if (d->len >= d->max) {
		d->big = 1;
		return;
	}
	if (d->len + 1 >= d->cap) {
		size_t cap = d->cap ? d->cap * 2 : SMTP_DATA_CHUNK;
		if (cap > d->max + 1)
			cap = d->max + 1;
		if (cap < d->len + 2)
			cap = d->len + 2;
		d->buf = xrealloc(d->buf, cap);
		d->cap = cap;
	}
	d->buf[d->len++] = c;
}

/* smtp_data_put_span - keep k bytes of one line's middle (no CR in
 * them), as far as max allows: the same as k calls of smtp_data_put */
static void
smtp_data_put_span(struct smtp_data *d, const char *s, size_t k)
{
	size_t room;

	if (d->big || k == 0)
		return;
	room = d->max - d->len;
	if (k > room) {
		k = room;
		d->big = 1;
	}
	if (d->len + k + 1 >= d->cap) {
		size_t cap = d->cap ? d->cap : SMTP_DATA_CHUNK;
		while (cap < d->len + k + 2)
			cap *= 2;
		if (cap > d->max + 1)
			cap = d->max + 1;
		if (cap < d->len + k + 2)
			cap = d->len + k + 2;
		d->buf = xrealloc(d->buf, cap);
		d->cap = cap;
	}
	memcpy(d->buf + d->len, s, k);
	d->len += k;
}

size_t
smtp_data_feed(struct smtp_data *d, const char *p, size_t n, int *end)
{
	size_t i;

	*end = 0;
	for (i = 0; i < n; i++) {
		char ch = p[i];

		if (d->state == SMTP_DATA_MID && ch != '\r') {
			/* Inside a line only CR changes the state: take the
			 * whole run up to the next CR at once. */
			const char *cr = memchr(p + i, '\r', n - i);
			size_t k = (cr ? (size_t)(cr - p) : n) - i;

			if (memchr(p + i, '\n', k) != NULL)
				d->bare = 1;
			if (memchr(p + i, '\0', k) != NULL)
				d->nul = 1;
			smtp_data_put_span(d, p + i, k);
			i += k;
			if (i == n)
				break;
			ch = p[i];
		}
again:
		switch (d->state) {
		case SMTP_DATA_BOL:
			if (ch == '.') {
				d->state = SMTP_DATA_DOT;
				break;
			}
			d->state = SMTP_DATA_MID;
			goto again;
		case SMTP_DATA_MID:
			if (ch == '\r') {
				d->state = SMTP_DATA_CR;
				break;
			}
			if (ch == '\n')
				d->bare = 1;
			else if (ch == '\0')
				d->nul = 1;
			smtp_data_put(d, ch);
			break;
		case SMTP_DATA_CR:
			if (ch == '\n') {
				smtp_data_put(d, '\r');
				smtp_data_put(d, '\n');
				d->state = SMTP_DATA_BOL;
				break;
			}
			d->bare = 1;            /* CR not followed by LF */
			smtp_data_put(d, '\r');
			d->state = SMTP_DATA_MID;
			goto again;
		case SMTP_DATA_DOT:
			if (ch == '\r') {
				d->state = SMTP_DATA_DOTCR;
				break;
			}
			/* dot-unstuffing (4.5.2): the leading dot is dropped */
			d->state = SMTP_DATA_MID;
			goto again;
		case SMTP_DATA_DOTCR:
			if (ch == '\n') {
				*end = 1;
				return i + 1;
			}
			d->bare = 1;            /* "." CR and something else */
			smtp_data_put(d, '\r');
			d->state = SMTP_DATA_MID;
			goto again;
		}
	}
	return i;
}

char *
smtp_data_take(struct smtp_data *d, size_t *len)
{
	char *b = d->buf ? d->buf : xmalloc(1);

	b[d->len] = '\0';
	*len = d->len;
	d->buf = NULL;
	d->len = d->cap = 0;
	return b;
}

void
smtp_data_free(struct smtp_data *d)
{
	free(d->buf);
	d->buf = NULL;
	d->len = d->cap = 0;
}
