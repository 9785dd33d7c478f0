/*
 * smtp_data - the DATA phase's byte scanner (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Feeds on whatever chunks the network delivers and copies the message
 * out, dot-unstuffed. Only CRLF "." CRLF ends the data. A bare CR or LF,
 * a NUL, or more than `max` bytes does not stop the scan (the client is
 * still sending; its tail must never be read as commands): it is noted,
 * the copy stops growing past `max`, and the session answers once the
 * real end has arrived (SMTP smuggling, CVE-2023-51764). The result does
 * not depend on how the input was split into chunks.
 *
 * Pure: no event loop, no I/O; fuzzed and unit-tested alone.
 */
#ifndef OUTPOST_SMTP_DATA_H
#define OUTPOST_SMTP_DATA_H

#include <stddef.h>

enum smtp_data_state { SMTP_DATA_BOL, SMTP_DATA_MID, SMTP_DATA_CR, SMTP_DATA_DOT,
	SMTP_DATA_DOTCR };

struct smtp_data {
	enum smtp_data_state state;
	size_t max;                 /* bytes of message kept at most */
	char *buf;                  /* the message so far, unstuffed */
	size_t len, cap;
	int bare;                   /* a CR or LF not part of CRLF */
	int nul;                    /* a NUL byte */
	int big;                    /* more than max bytes */
};

void smtp_data_init(struct smtp_data *d, size_t max);
/* Scan p[0..n); returns the bytes consumed. *end is set to 1 when the
 * final CRLF "." CRLF was consumed: what follows belongs to the next
 * command and is left unconsumed. */
size_t smtp_data_feed(struct smtp_data *d, const char *p, size_t n, int *end);
/* The message (NUL-terminated, *len without the NUL), owned by the
 * caller; d is empty afterwards. */
char *smtp_data_take(struct smtp_data *d, size_t *len);
void smtp_data_free(struct smtp_data *d);

#endif
