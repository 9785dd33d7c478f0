/*
 * fuzz_classify - DSN/bounce classification (classify.h): classify_reply
 * with any code, enhanced code and reply text (explicit length, NULs and
 * 8-bit bytes included), classify_diagnostic on a stored diagnostic and
 * status, and the human strings.
 *
 * Input layout: two bytes of reply code (any int in -32768..32767), then
 * the enhanced code up to the first NUL, then the text. The same input,
 * NUL-terminated, is also the diagnostic string.
 *
 * Invariants: results are valid classes; a code outside 500..599 never
 * bounces (a malformed reply must not lose mail); classify_advice always
 * NUL-terminates within the buffer it got.
 */
#include "config.h"

#include "classify.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char advice[CLASSIFY_ADVICE_MAX], small[17];
	enum classify_class c, d;
	const uint8_t *nul;
	char *enh, *text, *diag, *domain;
	size_t elen, tlen;
	int code;

	if (size < 2)
		return 0;
	code = (int16_t)(data[0] | data[1] << 8);
	nul = memchr(data + 2, '\0', size - 2);
	elen = nul ? (size_t)(nul - data - 2) : size - 2;
	enh = fuzz_dup(data + 2, elen, 1);
	tlen = nul ? size - 2 - elen - 1 : 0;
	text = fuzz_dup(nul ? nul + 1 : data + size, tlen, 0);

	c = classify_reply(code, enh, text, tlen);
	FUZZ_CHECK(c < CLASSIFY_NCLASSES);
	if (code < 500 || code > 599)
		FUZZ_CHECK(!classify_is_permanent(c));
	FUZZ_CHECK(classify_reply(code, NULL, NULL, 0) < CLASSIFY_NCLASSES);

	diag = fuzz_dup(data, size, 1);
	d = classify_diagnostic(diag, enh);
	FUZZ_CHECK(d < CLASSIFY_NCLASSES);
	FUZZ_CHECK(classify_diagnostic(diag, NULL) < CLASSIFY_NCLASSES);

	FUZZ_CHECK(classify_name(c) != NULL && classify_describe(c) != NULL);
	(void)classify_suppresses(c);
	(void)classify_alerts(c);
	domain = strlen(enh) > 300 ? enh + strlen(enh) - 300 : enh;
	FUZZ_CHECK(classify_advice(c, domain, advice, sizeof(advice)) == advice);
	FUZZ_CHECK(memchr(advice, '\0', sizeof(advice)) != NULL);
	classify_advice(d, diag, small, 1 + data[0] % sizeof(small));
	FUZZ_CHECK(memchr(small, '\0', 1 + data[0] % sizeof(small)) != NULL);
	free(diag);
	free(text);
	free(enh);
	return 0;
}
