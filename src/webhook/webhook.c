/*
 * webhook.c — webhook delivery over libcurl's multi-socket API on the loop.
 *
 * libcurl runs inside rtmd's libuv loop as curl's multi-uv example shows:
 * libcurl says which sockets to watch (on_socket: a uv_poll_t per socket)
 * and when to call it back (on_timer: one uv_timer_t); rtmd calls
 * curl_multi_socket_action() on readiness or timeout and reads finished
 * transfers with curl_multi_info_read(). Name resolution is libcurl's
 * threaded resolver (checked at start), TLS libcurl's own OpenSSL.
 *
 * Each webhook is a small state machine, one step in flight at a time:
 *   READ   one store op moves the webhook's durable position past the batch
 *          it finished (if any) and reads its next rows (at most batch_max);
 *   POST   the rows its `events` and `apps` select are one body, POSTed
 *          signed; rows it skips only move the position;
 *   WAIT   a failed POST waits its backoff, then POSTs the same body again
 *          (signed anew: the timestamp is the attempt's);
 * and after a 2xx (or a drop after retry_s, or a batch with nothing for it)
 * READ again, acknowledging it. With nothing to read the webhook is IDLE
 * until the store says events entered the outbox (notify). A store call
 * that failed is tried again after STORE_RETRY_MS.
 *
 * Memory: a webhook owns copies of its config (a reload replaces the
 * config's objects), its body and its easy handle; a removed webhook is
 * freed once its timer handle is closed.
 */
#include "webhook/webhook.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "webhook/sign.h"

#define MODULE "webhook"
/* A store call (read or ack) that failed is tried again this much later. */
#define STORE_RETRY_MS 1000
/* Bytes of a batch body at most: batch_max events of at most a few KiB. */
#define BODY_MAX (64u * 1024 * 1024)
/* With a store shared by nodes, events other nodes record do not notify
 * this one: an idle webhook reads again this often. */
#define POLL_MS 500
/* Bytes of a receiver's answer kept for the log (the rest is discarded). */
#define ANSWER_KEEP 256

enum hook_state { H_IDLE, H_READ, H_POST, H_WAIT, H_STOPPED };

struct hook {
    struct rtmd_webhooks *w;
    /* Copies of the config's webhook. */
    char *name, *url, *secret, *ca_file;
    uint32_t events;
    char **apps;
    size_t n_apps;
    uint32_t batch_max, timeout_ms, retry_s;

    enum hook_state state;
    bool again;      /* events entered the outbox during a step: read again after it */
    bool removed;    /* a reload removed it: freed once its timer is closed */
    bool store_busy; /* a store call is in flight (it calls back, even at close) */
    uv_timer_t timer;

    /* The batch in flight. */
    struct rtmd_buf body;
    size_t batch_n;        /* events in body */
    uint64_t batch_last;   /* outbox id of the batch's last row (selected or not) */
    uint64_t batch_oldest; /* ms of its oldest event, 0 with none */
    uint64_t first_try_ms; /* rtmd_now_ms() of its first POST */
    uint32_t attempts;     /* POSTs of it that failed */
    uint64_t position;     /* the durable position, once read */
    uint64_t ack;          /* the position the next read moves it to (0: none) */
    bool position_known;
    CURL *easy;
    struct curl_slist *headers;
    char error[CURL_ERROR_SIZE];
    char answer[ANSWER_KEEP];
    size_t answer_len;

    /* Metrics. */
    uint64_t pending; /* outbox rows after the position (newest - position) */
    uint64_t delivered, failed, posts, post_errors;
};

struct rtmd_webhooks {
    const struct rtmd_config *cfg;
    struct rtmd_store *store;
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t curl_timer;
    struct hook **hooks;
    size_t n_hooks;
    struct rtmd_buf scratch;
    bool stopping;
    int open_handles;       /* timers and polls not yet closed (stop waits for 0) */
    struct rtmd_list socks; /* the sockets watched for libcurl */
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

/* One socket libcurl asked to watch. */
struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct rtmd_webhooks *w;
    struct rtmd_list link; /* in w->socks while watched */
};

static void hook_read(struct hook *h);
static void hook_post(struct hook *h);
static void maybe_stopped(struct rtmd_webhooks *w);

/* ---- libcurl on the loop ------------------------------------------------ */

static void check_done(struct rtmd_webhooks *w);

static void on_handle_closed(uv_handle_t *handle)
{
    struct rtmd_webhooks *w = handle->data;
    if (handle->type == UV_POLL)
        rtmd_free(RTMD_CONTAINER_OF((uv_poll_t *)(void *)handle, struct sock, poll));
    w->open_handles--;
    maybe_stopped(w);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *k = RTMD_CONTAINER_OF(p, struct sock, poll);
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    struct rtmd_webhooks *w = k->w;
    curl_multi_socket_action(w->multi, k->fd, flags, &running);
    check_done(w);
}

static void sock_close(struct sock *k)
{
    rtmd_list_remove(&k->link);
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, on_handle_closed);
}

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct rtmd_webhooks *w = userp;
    struct sock *k = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (k) {
            sock_close(k);
            curl_multi_assign(w->multi, fd, NULL);
        }
        return 0;
    }
    if (w->stopping)
        return 0; /* curl_multi_cleanup() closing what it kept */
    if (!k) {
        k = rtmd_calloc(1, sizeof(*k));
        k->fd = fd;
        k->w = w;
        if (uv_poll_init_socket(w->loop, &k->poll, fd) != 0) {
            rtmd_free(k);
            return -1;
        }
        k->poll.data = w;
        w->open_handles++;
        rtmd_list_insert_tail(&w->socks, &k->link);
        curl_multi_assign(w->multi, fd, k);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&k->poll, events, on_poll);
    return 0;
}

static void on_curl_timer(uv_timer_t *t)
{
    struct rtmd_webhooks *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

static int on_timer_request(CURLM *multi, long timeout_ms, void *userp)
{
    struct rtmd_webhooks *w = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&w->curl_timer);
    else
        uv_timer_start(&w->curl_timer, on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* The receiver's answer: the start is kept for the log, the rest dropped. */
static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    struct hook *h = arg;
    size_t len = size * n;
    size_t keep = RTMD_MIN(len, sizeof(h->answer) - 1 - h->answer_len);
    memcpy(h->answer + h->answer_len, p, keep);
    h->answer_len += keep;
    return len;
}

/* ---- one webhook -------------------------------------------------------- */

static bool hook_wants(const struct hook *h, const struct rtmd_outbox_row *r)
{
    uint32_t bit = r->kind == RTMD_EVLOG_USER      ? RTMD_WEBHOOK_USER
                   : r->kind == RTMD_EVLOG_CHANNEL ? RTMD_WEBHOOK_CHANNEL
                                                   : RTMD_WEBHOOK_MESSAGE;
    if (!(h->events & bit))
        return false;
    if (h->n_apps == 0)
        return true;
    for (size_t i = 0; i < h->n_apps; i++)
        if (rtmd_str_eq_cstr(r->app, h->apps[i]))
            return true;
    return false;
}

/* Rows up to this id may leave the outbox: every webhook passed them (0
 * while some webhook's position is not known yet). */
static uint64_t prune_upto(const struct rtmd_webhooks *w, const struct hook *self)
{
    uint64_t low = UINT64_MAX;
    for (size_t i = 0; i < w->n_hooks; i++) {
        const struct hook *h = w->hooks[i];
        if (!h->position_known)
            return 0;
        low = RTMD_MIN(low, h == self ? RTMD_MAX(h->position, h->ack) : h->position);
    }
    return low == UINT64_MAX ? 0 : low;
}

static void on_hook_timer(uv_timer_t *t);

static void retry_later(struct hook *h, enum hook_state state, uint64_t ms)
{
    h->state = state;
    uv_timer_start(&h->timer, on_hook_timer, ms, 0);
}

static void hook_closed_now(struct hook *h);

/* The batch is done (delivered, dropped, or nothing in it for this
 * webhook): its last row is acknowledged with the next read, in the same
 * store op. */
static void batch_done(struct hook *h)
{
    h->ack = h->batch_last;
    h->batch_n = 0;
    h->batch_oldest = 0;
    h->attempts = 0;
    rtmd_buf_reset(&h->body);
    hook_read(h);
}

static void on_read(void *arg, int status, const struct rtmd_outbox_batch *b)
{
    struct hook *h = arg;
    h->store_busy = false;
    if (h->state == H_STOPPED) {
        hook_closed_now(h);
        return;
    }
    if (status != 0) {
        rtmd_log_warn(MODULE, "%s: reading the outbox failed: %s; again in %d ms", h->name,
                      rtmd_strerror(status), STORE_RETRY_MS);
        retry_later(h, H_READ, STORE_RETRY_MS);
        return;
    }
    h->ack = 0; /* applied by this op */
    h->position = b->position;
    h->position_known = true;
    h->pending = b->newest > b->position ? b->newest - b->position : 0;
    if (b->n == 0) {
        h->state = H_IDLE;
        if (h->again) {
            h->again = false;
            hook_read(h);
        } else if (rtmd_store_routes(h->w->store)) {
            retry_later(h, H_READ, POLL_MS);
        }
        return;
    }
    rtmd_buf_reset(&h->body);
    h->batch_n = 0;
    h->batch_oldest = 0;
    int rc = rtmd_buf_append_cstr(&h->body, "{\"events\":[");
    for (size_t i = 0; i < b->n && !rc; i++) {
        const struct rtmd_outbox_row *r = &b->rows[i];
        if (!hook_wants(h, r))
            continue;
        if (h->batch_n && (rc = rtmd_buf_append_byte(&h->body, ',')))
            break;
        char log = r->kind == RTMD_EVLOG_USER ? 'u' : r->kind == RTMD_EVLOG_CHANNEL ? 'c' : 'm';
        rc = rtmd_webhook_event(&h->body, r->app, log, r->seq, r->json, r->session);
        if (!h->batch_oldest)
            h->batch_oldest = r->ms;
        h->batch_n++;
    }
    if (!rc)
        rc = rtmd_buf_append_cstr(&h->body, "]}");
    h->batch_last = b->rows[b->n - 1].id;
    if (rc) {
        /* Cannot happen within BODY_MAX; never deliver half a batch. */
        rtmd_log_error(MODULE, "%s: batch body: %s; dropped %zu events", h->name, rtmd_strerror(rc),
                       h->batch_n);
        h->failed += h->batch_n;
        batch_done(h);
        return;
    }
    if (h->batch_n == 0) {
        batch_done(h); /* nothing this webhook wants: only the position moves */
        return;
    }
    h->first_try_ms = rtmd_now_ms();
    h->attempts = 0;
    hook_post(h);
}

static void hook_read(struct hook *h)
{
    if (h->w->stopping || h->removed)
        return;
    h->state = H_READ;
    h->again = false;
    uint64_t prune = h->ack ? prune_upto(h->w, h) : 0;
    int rc = rtmd_store_outbox_read(h->w->store, rtmd_str_cstr(h->name), h->ack, prune,
                                    h->batch_max, on_read, h);
    if (rc == 0) {
        h->store_busy = true;
    } else {
        rtmd_log_warn(MODULE, "%s: reading the outbox failed: %s", h->name, rtmd_strerror(rc));
        retry_later(h, H_READ, STORE_RETRY_MS);
    }
}

static void hook_post(struct hook *h)
{
    struct rtmd_webhooks *w = h->w;
    char sig[RTMD_WEBHOOK_SIG_MAX], line[RTMD_WEBHOOK_SIG_MAX + 32];
    uint64_t t = rtmd_now_ms() / 1000;
    int n = rtmd_webhook_sign(sig, rtmd_str_cstr(h->secret), t,
                              rtmd_str_make(h->body.data, h->body.len));
    if (n < 0) {
        rtmd_log_error(MODULE, "%s: signing failed", h->name);
        retry_later(h, H_WAIT, rtmd_webhook_backoff_ms(++h->attempts, 0));
        return;
    }
    curl_slist_free_all(h->headers);
    h->headers = NULL;
    snprintf(line, sizeof(line), "X-Rtmd-Signature: %s", sig);
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
    l = l ? curl_slist_append(l, line) : NULL;
    l = l ? curl_slist_append(l, "Expect:") : NULL; /* no 100-continue round trip */
    h->headers = l;
    if (!h->easy)
        h->easy = curl_easy_init();
    if (!h->easy || !h->headers) {
        rtmd_log_error(MODULE, "%s: out of memory for a POST", h->name);
        retry_later(h, H_WAIT, STORE_RETRY_MS);
        return;
    }
    CURL *e = h->easy;
    curl_easy_reset(e); /* every option anew (a reload may have changed them); connections stay */
    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body.data);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)h->body.len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (h->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file); /* else the system's CAs */
    curl_easy_setopt(e, CURLOPT_USERAGENT, "rtmd/" RTMD_VERSION);
    h->error[0] = '\0';
    h->answer_len = 0;
    h->state = H_POST;
    h->posts++;
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        rtmd_log_error(MODULE, "%s: cannot start a POST", h->name);
        retry_later(h, H_WAIT, rtmd_webhook_backoff_ms(++h->attempts, 0));
    }
}

/* A POST ended: result is libcurl's, code the HTTP status (0: none). */
static void hook_posted(struct hook *h, CURLcode result, long code)
{
    if (result == CURLE_OK && code >= 200 && code < 300) {
        h->delivered += h->batch_n;
        batch_done(h);
        return;
    }
    h->post_errors++;
    h->attempts++;
    h->answer[h->answer_len] = '\0';
    char why[CURL_ERROR_SIZE + 32];
    if (result != CURLE_OK)
        snprintf(why, sizeof(why), "%s", h->error[0] ? h->error : curl_easy_strerror(result));
    else
        snprintf(why, sizeof(why), "HTTP %ld", code);
    uint64_t now = rtmd_now_ms();
    if (now - h->first_try_ms >= (uint64_t)h->retry_s * 1000) {
        rtmd_log_error(MODULE, "%s: %zu events dropped after %u attempts in %" PRIu32 " s (%s)",
                       h->name, h->batch_n, h->attempts, h->retry_s, why);
        h->failed += h->batch_n;
        batch_done(h);
        return;
    }
    uint32_t random = 0;
    RAND_bytes((unsigned char *)&random, sizeof(random));
    uint64_t wait = rtmd_webhook_backoff_ms(h->attempts, random);
    rtmd_log_warn(MODULE, "%s: POST of %zu events failed (%s); attempt %u again in %" PRIu64 " ms",
                  h->name, h->batch_n, why, h->attempts + 1, wait);
    retry_later(h, H_WAIT, wait);
}

static void check_done(struct rtmd_webhooks *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode result = m->data.result;
        struct hook *h = NULL;
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&h);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_multi_remove_handle(w->multi, e);
        if (h && h->state == H_POST)
            hook_posted(h, result, code);
    }
}

static void on_hook_timer(uv_timer_t *t)
{
    struct hook *h = t->data;
    switch (h->state) {
    case H_READ: hook_read(h); break;
    case H_WAIT: hook_post(h); break;
    default: break;
    }
}

/* ---- the set of webhooks ------------------------------------------------ */

static void hook_configure(struct hook *h, const struct rtmd_webhook_config *c)
{
    rtmd_free(h->url);
    rtmd_free(h->secret);
    rtmd_free(h->ca_file);
    for (size_t i = 0; i < h->n_apps; i++)
        rtmd_free(h->apps[i]);
    rtmd_free(h->apps);
    h->url = rtmd_strdup(c->url);
    h->secret = rtmd_strdup(c->secret);
    h->ca_file = c->ca_file ? rtmd_strdup(c->ca_file) : NULL;
    h->events = c->events;
    h->n_apps = c->n_apps;
    h->apps = c->n_apps ? rtmd_calloc(c->n_apps, sizeof(*h->apps)) : NULL;
    for (size_t i = 0; i < c->n_apps; i++)
        h->apps[i] = rtmd_strdup(c->apps[i]);
    h->batch_max = RTMD_MIN(c->batch_max, (uint32_t)RTMD_OUTBOX_READ_MAX);
    h->timeout_ms = c->timeout_ms;
    h->retry_s = c->retry_s;
}

static struct hook *hook_new(struct rtmd_webhooks *w, const struct rtmd_webhook_config *c)
{
    struct hook *h = rtmd_calloc(1, sizeof(*h));
    h->w = w;
    h->name = rtmd_strdup(c->name);
    hook_configure(h, c);
    rtmd_buf_init(&h->body, BODY_MAX);
    uv_timer_init(w->loop, &h->timer);
    h->timer.data = h;
    w->open_handles++;
    return h;
}

static void on_hook_closed(uv_handle_t *handle)
{
    struct hook *h = handle->data;
    struct rtmd_webhooks *w = h->w;
    curl_slist_free_all(h->headers);
    if (h->easy)
        curl_easy_cleanup(h->easy);
    rtmd_buf_free(&h->body);
    rtmd_free(h->name);
    rtmd_free(h->url);
    rtmd_free(h->secret);
    rtmd_free(h->ca_file);
    for (size_t i = 0; i < h->n_apps; i++)
        rtmd_free(h->apps[i]);
    rtmd_free(h->apps);
    rtmd_free(h);
    w->open_handles--;
    maybe_stopped(w);
}

static void hook_closed_now(struct hook *h)
{
    uv_close((uv_handle_t *)&h->timer, on_hook_closed);
}

/* Abandons whatever h has in flight and closes it. A store call in flight
 * still calls back (the store answers every call, its close included), so
 * h is closed then, in that callback; else now. */
static void hook_close(struct hook *h)
{
    if (h->state == H_POST && h->easy)
        curl_multi_remove_handle(h->w->multi, h->easy);
    h->state = H_STOPPED;
    uv_timer_stop(&h->timer);
    if (!h->store_busy)
        hook_closed_now(h);
}

static uint32_t kinds_of(const struct rtmd_webhooks *w)
{
    uint32_t kinds = 0;
    for (size_t i = 0; i < w->n_hooks; i++) {
        if (w->hooks[i]->events & RTMD_WEBHOOK_USER)
            kinds |= 1u << RTMD_EVLOG_USER;
        if (w->hooks[i]->events & RTMD_WEBHOOK_CHANNEL)
            kinds |= 1u << RTMD_EVLOG_CHANNEL;
        if (w->hooks[i]->events & RTMD_WEBHOOK_MESSAGE)
            kinds |= 1u << RTMD_OUTBOX_MESSAGES;
    }
    return kinds;
}

static void on_outbox(void *ctx, uint64_t newest)
{
    struct rtmd_webhooks *w = ctx;
    for (size_t i = 0; i < w->n_hooks; i++) {
        struct hook *h = w->hooks[i];
        if (h->position_known && newest > h->position)
            h->pending = newest - h->position;
        if (h->state == H_IDLE)
            hook_read(h);
        else
            h->again = true;
    }
}

int rtmd_webhooks_start(struct rtmd_webhooks **out, const struct rtmd_config *cfg,
                        struct rtmd_store *store, uv_loop_t *loop)
{
    *out = NULL;
    if (cfg->n_webhooks && !rtmd_store_has_outbox(store))
        return -ENOTSUP;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -EIO;
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (!(v->features & CURL_VERSION_ASYNCHDNS))
        rtmd_log_warn(MODULE,
                      "libcurl %s resolves names synchronously: give webhook URLs "
                      "numeric addresses, or a name resolution may stall the loop",
                      v->version);
    struct rtmd_webhooks *w = rtmd_calloc(1, sizeof(*w));
    w->cfg = cfg;
    w->store = store;
    w->loop = loop;
    w->multi = curl_multi_init();
    if (!w->multi) {
        rtmd_free(w);
        curl_global_cleanup();
        return -ENOMEM;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer_request);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    rtmd_list_init(&w->socks);
    uv_timer_init(loop, &w->curl_timer);
    w->curl_timer.data = w;
    w->open_handles++;
    rtmd_buf_init(&w->scratch, BODY_MAX);
    rtmd_webhooks_reload(w);
    *out = w;
    return 0;
}

void rtmd_webhooks_reload(struct rtmd_webhooks *w)
{
    const struct rtmd_config *cfg = w->cfg;
    if (w->stopping)
        return;
    /* Remove the webhooks cfg no longer has. */
    size_t kept = 0;
    for (size_t i = 0; i < w->n_hooks; i++) {
        struct hook *h = w->hooks[i];
        bool found = false;
        for (size_t k = 0; k < cfg->n_webhooks && !found; k++)
            found = strcmp(cfg->webhooks[k]->name, h->name) == 0;
        if (found) {
            w->hooks[kept++] = h;
        } else {
            rtmd_log_info(MODULE, "%s removed", h->name);
            h->removed = true;
            hook_close(h);
        }
    }
    w->n_hooks = kept;
    /* Update the others, add the new ones. */
    if (cfg->n_webhooks)
        w->hooks = rtmd_realloc(w->hooks, cfg->n_webhooks * sizeof(*w->hooks));
    for (size_t k = 0; k < cfg->n_webhooks; k++) {
        const struct rtmd_webhook_config *c = cfg->webhooks[k];
        struct hook *h = NULL;
        for (size_t i = 0; i < w->n_hooks && !h; i++)
            if (strcmp(w->hooks[i]->name, c->name) == 0)
                h = w->hooks[i];
        if (h) {
            hook_configure(h, c);
            continue;
        }
        h = hook_new(w, c);
        w->hooks[w->n_hooks++] = h;
        rtmd_log_info(MODULE, "%s delivers to %s", h->name, h->url);
    }
    rtmd_store_outbox_watch(w->store, kinds_of(w), on_outbox, w);
    for (size_t i = 0; i < w->n_hooks; i++)
        if (w->hooks[i]->state == H_IDLE && !w->hooks[i]->position_known)
            hook_read(w->hooks[i]);
}

static void maybe_stopped(struct rtmd_webhooks *w)
{
    if (!w->stopping || w->open_handles > 0)
        return;
    curl_global_cleanup();
    rtmd_buf_free(&w->scratch);
    rtmd_free(w->hooks);
    void (*cb)(void *) = w->stop_cb;
    void *arg = w->stop_arg;
    rtmd_free(w);
    if (cb)
        cb(arg);
}

void rtmd_webhooks_stop(struct rtmd_webhooks *w, void (*cb)(void *arg), void *arg)
{
    w->stopping = true;
    w->stop_cb = cb;
    w->stop_arg = arg;
    rtmd_store_outbox_watch(w->store, kinds_of(w), NULL, NULL);
    for (size_t i = 0; i < w->n_hooks; i++)
        hook_close(w->hooks[i]); /* every easy handle is out of the multi now */
    w->n_hooks = 0;
    /* The sockets libcurl still has (kept-alive connections) stop being
     * watched before it closes them: no poll handle outlives its fd. */
    struct rtmd_list *n;
    while ((n = rtmd_list_first(&w->socks))) {
        struct sock *k = RTMD_CONTAINER_OF(n, struct sock, link);
        curl_multi_assign(w->multi, k->fd, NULL);
        sock_close(k);
    }
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    uv_timer_stop(&w->curl_timer);
    uv_close((uv_handle_t *)&w->curl_timer, on_handle_closed);
}

int rtmd_webhooks_write_metrics(const struct rtmd_webhooks *w, struct rtmd_buf *b)
{
    if (!w || w->n_hooks == 0)
        return 0;
    uint64_t now = rtmd_now_ms();
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"rtmd_webhook_pending", "gauge",
         "Outbox rows after the webhook's position (events it will skip by its events or apps "
         "included)."},
        {"rtmd_webhook_delivered_total", "counter", "Events a 2xx acknowledged."},
        {"rtmd_webhook_failed_total", "counter",
         "Events dropped after retry_s of failed attempts."},
        {"rtmd_webhook_oldest_pending_age_seconds", "gauge",
         "Age of the oldest event of the batch being delivered (0 with none)."},
        {"rtmd_webhook_posts_total", "counter", "POSTs made, retries included."},
        {"rtmd_webhook_post_errors_total", "counter",
         "POSTs that failed: no answer in timeout_ms, a connection error or a status not 2xx."},
    };
    int rc = 0;
    for (size_t k = 0; k < RTMD_ARRAY_SIZE(m) && !rc; k++) {
        rc = rtmd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
                             m[k].type);
        for (size_t i = 0; i < w->n_hooks && !rc; i++) {
            const struct hook *h = w->hooks[i];
            uint64_t v = 0;
            switch (k) {
            case 0: v = h->pending; break;
            case 1: v = h->delivered; break;
            case 2: v = h->failed; break;
            case 3:
                v = h->batch_n && h->batch_oldest && now > h->batch_oldest
                        ? (now - h->batch_oldest) / 1000
                        : 0;
                break;
            case 4: v = h->posts; break;
            default: v = h->post_errors; break;
            }
            rc = rtmd_buf_printf(b, "%s{webhook=\"%s\"} %" PRIu64 "\n", m[k].name, h->name, v);
        }
    }
    return rc;
}
