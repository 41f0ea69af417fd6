/*
 * tickets.c — TLS session ticket keys (see tls.h): one key per period of
 * the wall clock, the previous period's kept to decrypt, shared through the
 * store when it can share them.
 *
 * A key is 80 bytes: a 16-byte name (sent in the clear in each ticket), a
 * 32-byte AES-256-CBC key and a 32-byte HMAC-SHA256 key, as OpenSSL's own
 * ticket format wants them. The key of period e is used to issue tickets
 * during e; tickets are accepted when their key's period is e - 1, e or
 * e + 1 (a node whose clock runs a little ahead), found by name.
 *
 * Shared keys (the redis backend): the first node to ask for period e's key
 * stores its own random proposal, every other node gets that one back
 * (SET NX GET), so all nodes issue and accept the same keys. Until the
 * store has answered for the period in use, a key made locally issues the
 * tickets (they then resume on this node only); both stay accepted. The
 * next period's key is asked for half a period ahead.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "core/log.h"
#include "core/loop.h"
#include "net/tls.h"

#define SLOTS 8 /* (local, shared) x (e - 1, e, e + 1), and room for a late answer */

struct ticket_key {
    bool used;
    bool shared; /* from the store (every node has it) */
    uint64_t epoch;
    uint8_t key[RTMD_TLS_TICKET_KEY_LEN]; /* name | AES key | HMAC key */
};

static struct {
    uint32_t period_s; /* 0: no tickets */
    struct ticket_key slots[SLOTS];
    uv_timer_t timer;
    bool timer_on;
    rtmd_tls_ticket_fetch_fn fetch;
    void *fetch_ctx;
    uint64_t asked[2]; /* the epochs asked of the store, not yet answered (0: none) */
} tk;

static uint64_t epoch_now(void)
{
    return rtmd_now_ms() / 1000 / tk.period_s;
}

/* Forgets the keys of periods before e - 1. */
static void prune(uint64_t e)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (tk.slots[i].used && tk.slots[i].epoch + 1 < e)
            tk.slots[i].used = false;
}

/* The slot for a new key of epoch e: a free one, else the oldest. */
static struct ticket_key *free_slot(void)
{
    struct ticket_key *oldest = &tk.slots[0];
    for (size_t i = 0; i < SLOTS; i++) {
        if (!tk.slots[i].used)
            return &tk.slots[i];
        if (tk.slots[i].epoch < oldest->epoch)
            oldest = &tk.slots[i];
    }
    return oldest;
}

/* The key that issues tickets in epoch e: the shared one if known, else a
 * local one (made now if there is none). */
static struct ticket_key *issuing_key(uint64_t e)
{
    struct ticket_key *local = NULL;
    for (size_t i = 0; i < SLOTS; i++) {
        struct ticket_key *k = &tk.slots[i];
        if (k->used && k->epoch == e) {
            if (k->shared)
                return k;
            local = k;
        }
    }
    if (local)
        return local;
    prune(e);
    local = free_slot();
    *local = (struct ticket_key){.used = true, .epoch = e};
    if (RAND_bytes(local->key, sizeof(local->key)) != 1) {
        local->used = false;
        return NULL;
    }
    return local;
}

static struct ticket_key *find_key(const unsigned char name[16], uint64_t e)
{
    for (size_t i = 0; i < SLOTS; i++) {
        struct ticket_key *k = &tk.slots[i];
        if (k->used && k->epoch + 1 >= e && k->epoch <= e + 1 && memcmp(k->key, name, 16) == 0)
            return k;
    }
    return NULL;
}

static int set_mac_key(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)(k->key + 48), 32);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0);
    params[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * enc 1 sets up a new ticket with the issuing key; enc 0 finds the key a
 * ticket names: 1 (use it), 2 (use it and issue a new ticket: the ticket's
 * key no longer issues), 0 (unknown or expired: full handshake), -1 (error). */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    uint64_t e = epoch_now();
    if (enc) {
        struct ticket_key *k = issuing_key(e);
        if (!k || RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k->key, 16);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->key + 16, iv) != 1 ||
            set_mac_key(hctx, k) < 0)
            return -1;
        return 1;
    }
    struct ticket_key *k = find_key(name, e);
    if (!k)
        return 0;
    if (set_mac_key(hctx, k) < 0 ||
        EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->key + 16, iv) != 1)
        return -1;
    return k == issuing_key(e) ? 1 : 2;
}

void rtmd_tls_tickets_init(uint32_t period_s)
{
    memset(&tk.slots, 0, sizeof(tk.slots));
    tk.period_s = period_s;
}

void rtmd_tls_tickets_apply(SSL_CTX *ctx)
{
    /* Stateless tickets carry the whole session: no server-side cache (it
     * would also cost a lock and an allocation per full handshake). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_max_early_data(ctx, 0); /* no 0-RTT */
    SSL_CTX_set_recv_max_early_data(ctx, 0);
    if (tk.period_s == 0) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
        return;
    }
    /* One ticket per handshake (OpenSSL sends two by default): a client
     * resumes one connection at a time, and each resumption brings a new
     * ticket. */
    SSL_CTX_set_num_tickets(ctx, 1);
    /* The ticket lifetime a client is told: it resumes at least until the
     * end of the next period. */
    SSL_CTX_set_timeout(ctx, (long)tk.period_s * 2);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
}

static void ask(uint64_t e);

static void on_fetched(void *arg, int status, uint64_t epoch, const uint8_t *key, size_t len)
{
    (void)arg;
    for (size_t i = 0; i < 2; i++)
        if (tk.asked[i] == epoch)
            tk.asked[i] = 0;
    if (tk.period_s == 0 || !tk.fetch)
        return; /* stopped */
    if (status < 0 || len != RTMD_TLS_TICKET_KEY_LEN) {
        rtmd_log_warn("tls", "the shared ticket key of period %llu: %s; this node's own is used",
                      (unsigned long long)epoch, status < 0 ? rtmd_strerror(status) : "bad size");
        return;
    }
    uint64_t e = epoch_now();
    if (epoch + 1 < e)
        return; /* too late to matter */
    for (size_t i = 0; i < SLOTS; i++)
        if (tk.slots[i].used && tk.slots[i].shared && tk.slots[i].epoch == epoch)
            return;
    prune(e);
    struct ticket_key *k = free_slot();
    *k = (struct ticket_key){.used = true, .shared = true, .epoch = epoch};
    memcpy(k->key, key, len);
}

static void ask(uint64_t e)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (tk.slots[i].used && tk.slots[i].shared && tk.slots[i].epoch == e)
            return;
    size_t free = 2;
    for (size_t i = 0; i < 2; i++) {
        if (tk.asked[i] == e)
            return;
        if (tk.asked[i] == 0)
            free = i;
    }
    if (free == 2)
        return; /* two asks in flight already; the timer asks again */
    uint8_t proposal[RTMD_TLS_TICKET_KEY_LEN];
    if (RAND_bytes(proposal, sizeof(proposal)) != 1)
        return;
    int r = tk.fetch(tk.fetch_ctx, e, tk.period_s, proposal, sizeof(proposal), on_fetched, NULL);
    if (r < 0)
        return;
    tk.asked[free] = e;
}

/* Runs at each period's start and middle: forgets old keys, makes the
 * current one, and asks the store for the current and the next. */
static void on_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = rtmd_now_ms(), period_ms = (uint64_t)tk.period_s * 1000;
    uint64_t e = now / period_ms;
    prune(e);
    if (tk.fetch) {
        ask(e);
        ask(e + 1);
    }
    issuing_key(e);
    uint64_t into = now % period_ms, half = period_ms / 2;
    uint64_t next = into < half ? half - into : period_ms - into;
    uv_timer_start(&tk.timer, on_timer, next + 1, 0);
}

void rtmd_tls_tickets_start(uv_loop_t *loop, rtmd_tls_ticket_fetch_fn fetch, void *ctx)
{
    if (tk.period_s == 0 || tk.timer_on)
        return;
    tk.fetch = fetch;
    tk.fetch_ctx = ctx;
    uv_timer_init(loop, &tk.timer);
    uv_unref((uv_handle_t *)&tk.timer);
    tk.timer_on = true;
    on_timer(&tk.timer);
}

void rtmd_tls_tickets_stop(void)
{
    tk.fetch = NULL;
    if (tk.timer_on) {
        tk.timer_on = false;
        uv_close((uv_handle_t *)&tk.timer, NULL);
    }
}
