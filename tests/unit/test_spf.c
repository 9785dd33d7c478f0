/*
 * test_spf - the pure parts of spf.c: reverse names back to addresses
 * (libspf2 asks its DNS layer for PTR by name), the answer status handed
 * to libspf2, result names; and spf_check's failure paths without a DNS
 * server (a refused port: temperror, quickly). The DNS-backed evaluations
 * are in tests/integration/test_check.py.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include "spf.h"
#include "tap.h"
#include "util.h"

/* ptr_is - name parses to the address want ("" = must not parse) */
static void
ptr_is(const char *name, const char *want)
{
	struct sockaddr_storage ss;
	char got[IP_STR_MAX] = "";

	if (spf_ptr_addr(name, &ss) == 0 &&
	    util_sockaddr_ip((struct sockaddr *)&ss, got, sizeof(got)) == NULL)
		strcpy(got, "?");
	is_str(got, want, "spf_ptr_addr(%s)", name);
}

int
main(void)
{
	struct spf_outcome o;
	char err[256];
	int64_t t0;

	ptr_is("7.113.0.203.in-addr.arpa", "203.0.113.7");
	ptr_is("7.113.0.203.IN-ADDR.ARPA.", "203.0.113.7");
	ptr_is("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	    "2001:db8::1");
	ptr_is("F.E.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	    "2001:db8::ef");
	ptr_is("113.0.203.in-addr.arpa", "");
	ptr_is("256.113.0.203.in-addr.arpa", "");
	ptr_is("x.113.0.203.in-addr.arpa", "");
	ptr_is("1234.113.0.203.in-addr.arpa", "");
	ptr_is("10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "");
	ptr_is("g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "");
	ptr_is("example.com", "");
	ptr_is("", "");

	is_int(spf_herrno(DNS_OK, 0, 2), NETDB_SUCCESS, "answer with records");
	is_int(spf_herrno(DNS_OK, 0, 0), NO_DATA, "answer without records: NO_DATA");
	is_int(spf_herrno(DNS_NOTFOUND, 1, 0), HOST_NOT_FOUND, "NXDOMAIN: HOST_NOT_FOUND");
	is_int(spf_herrno(DNS_NOTFOUND, 0, 0), NO_DATA, "no records of the type: NO_DATA");
	is_int(spf_herrno(DNS_TEMPFAIL, 0, 0), TRY_AGAIN, "SERVFAIL / timeout: TRY_AGAIN");
	is_int(spf_herrno(DNS_CANCELLED, 0, 0), TRY_AGAIN, "cancelled: TRY_AGAIN");

	is_str(spf_result_name(SPF_R_PASS), "pass", "name of pass");
	is_str(spf_result_name(SPF_R_SOFTFAIL), "softfail", "name of softfail");
	is_str(spf_result_name(SPF_R_PERMERROR), "permerror", "name of permerror");
	is_str(spf_result_name((enum spf_result)99), "none", "name of junk");

	ok(spf_check("127.0.0.1:1", "not-an-ip", "example.com", "h.example", &o, err,
	    sizeof(err)) == -1 && strstr(err, "not an IP address") != NULL,
	    "a bad address is an error (%s)", err);
	t0 = util_mono_ms();
	ok(spf_check("127.0.0.1:1", "203.0.113.7", "example.com", "h.example", &o, err,
	    sizeof(err)) == 0, "no DNS server: spf_check still answers");
	is_str(spf_result_name(o.result), "temperror", "no DNS server: temperror");
	ok(util_mono_ms() - t0 < 20000, "no DNS server: bounded (%lld ms)",
	    (long long)(util_mono_ms() - t0));
	ok(o.record[0] == '\0', "no DNS server: no record");
	ok(spf_check("127.0.0.1:1", "2001:db8::1", "example.com", "", &o, err,
	    sizeof(err)) == 0 && o.result == SPF_R_TEMPERROR, "IPv6 client: temperror too");
	return done();
}
