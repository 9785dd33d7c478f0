/*
 * tls - OpenSSL contexts for the listeners (server side) and the upstream
 * client, and a one-line description of a session for logs and Received:.
 * TLS 1.2 is the minimum both ways.
 */
#ifndef OUTPOST_TLS_H
#define OUTPOST_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* NULL with a reason in err ("cert.pem: No such file or directory"). */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
/* verify: require a valid chain (system store, or ca_file when set).
 * The peer name is set per connection with tls_client_prepare(). */
SSL_CTX *tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen);
/* SNI and host name verification for a new client SSL. */
int tls_client_prepare(SSL *ssl, const char *name, int verify);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" */
void tls_describe(const SSL *ssl, char *buf, size_t len);
/* Last OpenSSL error as text (and clears the queue). */
const char *tls_error(char *buf, size_t len);

#endif
