/*
 * tls.h — the server's OpenSSL context and the self-signed first-run pair.
 * The per-connection TLS (memory BIOs) lives in conn.c.
 */
#ifndef RTMD_NET_TLS_H
#define RTMD_NET_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

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

/*
 * Session tickets (tickets.c). TLS 1.3 (and 1.2) stateless tickets sealed
 * with rtmd's own keys: a new key every period_s seconds of the wall clock
 * (tls_ticket_rotate_s), the previous one still accepted, so a ticket
 * resumes during the period it was issued in and the next. No 0-RTT.
 * period_s 0: no tickets at all. One key ring per process (the loop
 * thread's), kept across reloads.
 */
#define RTMD_TLS_TICKET_KEY_LEN 80 /* name 16 | AES-256 key 32 | HMAC-SHA256 key 32 */

/* Sets the period; before the first rtmd_tls_server_ctx(). */
void rtmd_tls_tickets_init(uint32_t period_s);

/* Puts the ticket settings on a new server context (rtmd_tls_server_ctx
 * does). */
void rtmd_tls_tickets_apply(SSL_CTX *ctx);

/*
 * Asks a store shared by several nodes for the key of period epoch: the one
 * already kept there, or the proposal, which then becomes it (kept a few
 * periods). Calls back once, later (store rules); negative: no callback.
 */
typedef void (*rtmd_tls_ticket_key_cb)(void *arg, int status, uint64_t epoch, const uint8_t *key,
                                       size_t len);
typedef int (*rtmd_tls_ticket_fetch_fn)(void *ctx, uint64_t epoch, uint32_t period_s,
                                        const uint8_t *proposal, size_t len,
                                        rtmd_tls_ticket_key_cb cb, void *arg);

/* Starts rotating on loop (a timer at each period's start and middle).
 * fetch NULL: the keys are this process's own (random, in memory). */
void rtmd_tls_tickets_start(uv_loop_t *loop, rtmd_tls_ticket_fetch_fn fetch, void *ctx);
/* Stops rotating and asking the store (at shutdown, before the store closes). */
void rtmd_tls_tickets_stop(void);

#endif
