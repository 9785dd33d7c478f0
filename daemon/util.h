/*
 * util - allocation wrappers that never return NULL, bounded string
 * helpers, parsing of sizes/durations/host:port, and queue ids.
 *
 * Nothing here touches the event loop; everything is safe to call from any
 * thread (the queue id generator uses OpenSSL's thread-safe RAND_bytes).
 */
#ifndef OUTPOST_UTIL_H
#define OUTPOST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Queue ids: 12 upper-case hex digits, e.g. 3F2A1B09C4D7. */
#define QUEUE_ID_LEN 12
/* RFC 5321 4.5.3.1: path 256 octets; we keep a little slack for the <>. */
#define ADDR_MAX 256
/* host names and "host:port" / "[v6]:port" strings. */
#define HOST_MAX 256
/* text form of an IP address, v6 included. */
#define IP_STR_MAX 64

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Copy with truncation; always NUL-terminates when size > 0. Returns
 * strlen(src) like BSD strlcpy, so truncation is `ret >= size`. */
size_t util_strlcpy(char *dst, const char *src, size_t size);
/* s as a JSON string with its quotes (RFC 8259 7): '"' and '\\'
 * escaped, control characters as \u00XX, other bytes as they are (pass
 * untrusted text through log_esc first). Truncated at a character
 * boundary to fit len (at least 3); returns out. */
char *util_json_str(const char *s, char *out, size_t len);
size_t util_strlcat(char *dst, const char *src, size_t size);
/* ASCII lower-casing in place; returns s. */
char *util_strlower(char *s);
/* Trim ASCII white space at both ends in place; returns the start. */
char *util_strtrim(char *s);
/* Case-insensitive ASCII comparison helpers. */
int util_strcaseeq(const char *a, const char *b);
int util_strncaseprefix(const char *s, const char *prefix);

/* "25M", "512k", "1048576", "2G" -> bytes. Returns 0 or -1. */
int util_parse_size(const char *s, size_t *out);
/* "30s", "5m", "1h", "5d", "90" (seconds) -> seconds. Returns 0 or -1. */
int util_parse_duration(const char *s, long *out);
/* "host:port", "[v6]:port", "1.2.3.4:25"; host may be "*" or empty.
 * Returns 0 or -1. */
int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
/* Text form of a socket address without the port ("192.0.2.1", "::1"). */
const char *util_sockaddr_ip(const struct sockaddr *sa, char *buf, size_t len);
int util_sockaddr_port(const struct sockaddr *sa);

/* Domain part of an address (after the last '@'), or "" if none. */
const char *util_addr_domain(const char *addr);

/* New random queue id into buf (QUEUE_ID_LEN + 1 bytes). */
void util_queue_id(char *buf);
/* 1 if s looks like a queue id: QUEUE_ID_LEN hex digits (either case). */
int util_queue_id_valid(const char *s);

/* Wall clock in seconds, and monotonic milliseconds for durations. */
time_t util_now(void);
int64_t util_mono_ms(void);

/* RFC 5322 date-time for `t` in local time: "Sun, 22 Nov 2026 16:41:12 +0000". */
void util_rfc5322_date(time_t t, char *buf, size_t len);

/* Read a whole small file (secrets, keys) into a NUL-terminated buffer;
 * trailing CR/LF stripped. Returns NULL with errno set. */
char *util_read_file(const char *path, size_t max, size_t *len);

/* Base64 through OpenSSL EVP. encode: returns malloc'd string.
 * decode: strict (rejects bad characters and bad padding); returns bytes
 * written or -1. out must hold 3 * (strlen(in) / 4) + 1 bytes. */
char *util_b64_encode(const unsigned char *in, size_t len);
int util_b64_decode(const char *in, unsigned char *out, size_t outlen);

/* vsnprintf into an error buffer; nothing when err is NULL or errlen 0. */
void util_seterr(char *err, size_t errlen, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Wipe memory that held a secret, in a way the compiler keeps. */
void util_wipe(void *p, size_t n);

#endif
