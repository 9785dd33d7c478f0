/*
 * fuzz_address - the address parsers: smtp_addr_valid (RFC 5321 mailbox,
 * with and without SMTPUTF8) and message_parse_mailbox (the From:/Sender:
 * mailbox-list value, RFC 5322 3.4), which reads exactly len octets of a
 * header value that is not NUL-terminated.
 *
 * Invariants: the extracted address is NUL-terminated within its buffer,
 * holds no CR, LF or NUL, and nothing is copied when -1 is returned.
 */
#include "config.h"

#include "fuzz.h"
#include "message.h"
#include "smtp_parse.h"
#include "util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char addr[ADDR_MAX + 1], small[8];
	char *value, *str;
	int n;

	value = fuzz_dup(data, size, 0);
	memset(addr, 0x55, sizeof(addr));
	n = message_parse_mailbox(value, size, addr, sizeof(addr));
	FUZZ_CHECK(n >= -1);
	if (n > 0) {
		FUZZ_CHECK(memchr(addr, '\0', sizeof(addr)) != NULL);
		FUZZ_CHECK(strpbrk(addr, "\r\n") == NULL);
	}
	/* A buffer too small for most addresses must be handled too. */
	n = message_parse_mailbox(value, size, small, sizeof(small));
	if (n > 0)
		FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	free(value);

	str = fuzz_dup(data, size, 1);
	(void)smtp_addr_valid(str, 0);
	if (smtp_addr_valid(str, 0))
		FUZZ_CHECK(smtp_addr_valid(str, 1));
	free(str);
	return 0;
}
