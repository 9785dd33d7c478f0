/*
 * lint - content checks a sender otherwise needs mail-tester for:
 * spam-trigger words (English, French, Spanish), an all-caps subject,
 * runs of exclamation marks, emoji overuse, HTML wider than 800 px,
 * script/iframe/object/form, content hidden with CSS, the image-to-text
 * ratio, a missing text/plain part, links whose text shows another
 * domain, attachments over 10 MB, Re:/Fwd: without In-Reply-To or
 * References, bulk-looking mail without List-Unsubscribe. A score out of
 * 10 with each finding explained.
 *
 * Pure: a message in memory in, a report out; no I/O but lint_print.
 */
#ifndef OUTPOST_LINT_H
#define OUTPOST_LINT_H

#include <stddef.h>
#include <stdio.h>

#define LINT_ID_MAX 32
#define LINT_TEXT_MAX 512

struct lint_finding {
	char id[LINT_ID_MAX];       /* stable: "spam-words", "caps-subject" ... */
	double penalty;             /* points taken off the 10 */
	char text[LINT_TEXT_MAX];   /* what was found and what to do */
};

struct lint_report {
	double score;               /* 10 minus the penalties, at least 0 */
	struct lint_finding *f;
	size_t n;
};

/* Check msg (RFC 5322, LF or CRLF line ends). 0, or -1 when it is not a
 * message at all (no header). */
int lint_message(const char *msg, size_t len, struct lint_report *r);
void lint_print(const struct lint_report *r, int json, FILE *out);
void lint_report_free(struct lint_report *r);

#endif
