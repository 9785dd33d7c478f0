/*
 * tls - OpenSSL contexts and helpers. See tls.h.
 *
 * Server contexts load one certificate chain and key per listener.
 * Client contexts verify against the system store (or ca_file) unless
 * tls_verify = no was said explicitly; the peer name is checked with
 * SSL_set1_host (RFC 6125) and sent as SNI.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

const char *
tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		util_strlcpy(buf, "unknown TLS error", len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* tls_common - protocol floor and options shared by both sides */
static void
tls_common(SSL_CTX *ctx)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* No renegotiation: a client could use it to burn CPU. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

SSL_CTX *
tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char ebuf[256];

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_error(ebuf, sizeof(ebuf)));
		return NULL;
	}
	tls_common(ctx);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(err, errlen, "cert %s: %s", cert, tls_error(ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "key %s: %s", key, tls_error(ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "key %s does not match cert %s", key, cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *
tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char ebuf[256];

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_error(ebuf, sizeof(ebuf)));
		return NULL;
	}
	tls_common(ctx);
	if (verify) {
		int r = (ca_file && *ca_file) ?
		    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
		    SSL_CTX_set_default_verify_paths(ctx);
		if (r != 1) {
			snprintf(err, errlen, "ca_file %s: %s", ca_file && *ca_file ?
			    ca_file : "(system)", tls_error(ebuf, sizeof(ebuf)));
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

int
tls_client_prepare(SSL *ssl, const char *name, int verify)
{
	unsigned char ip[16];
	int is_ip;

	if (name == NULL || *name == '\0')
		return 0;
	is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	/* SNI only for names, never for IP literals (RFC 6066 3). */
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, name);
	if (!verify)
		return 0;
	if (is_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
	if (SSL_set1_host(ssl, name) != 1)
		return -1;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return 0;
}

void
tls_describe(const SSL *ssl, char *buf, size_t len)
{
	snprintf(buf, len, "%s %s", SSL_get_version(ssl),
	    SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
}
