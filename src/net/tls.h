/*
 * tls.h — the server's OpenSSL context and the self-signed first-run pair.
 * The per-connection TLS (memory BIOs) lives in conn.c.
 */
#ifndef RTMD_NET_TLS_H
#define RTMD_NET_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A TLS 1.2+ server context with this certificate chain and key, HTTP/1.1
 * only (no ALPN h2), small idle buffers. NULL with a message in err. */
SSL_CTX *rtmd_tls_server_ctx(const char *cert_path, const char *key_path, char *err, size_t errlen);

/* The server context of cfg: tls_cert and tls_key, or the self-signed pair
 * in data_dir (made when missing). NULL with the error logged. Used at
 * start and on each reload (certificates renewed in place are read again). */
struct rtmd_config;
SSL_CTX *rtmd_tls_ctx_from_config(const struct rtmd_config *cfg);

/* Writes a self-signed P-256 certificate (CN=rtmd, SAN localhost, 127.0.0.1,
 * ::1; valid 825 days) and its key (mode 0600). 0, or -1 with err set. */
int rtmd_tls_make_self_signed(const char *cert_path, const char *key_path, char *err,
                              size_t errlen);

#endif
