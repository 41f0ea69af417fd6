/*
 * redis_msg.c — the redis backend's message history, offline messages and
 * history query handles (store.h), with the embedded store's semantics, on
 * the keys redis_lua.h lists. Every call is one Lua script on one app's keys
 * (one hash slot): one round trip, atomic (a page or a queue larger than a
 * reply may carry takes more: see the end).
 *
 * History. A message is stored once (m:ID); its ID goes, scored by its ms,
 * into the sorted sets the three filter shapes read:
 *   source only           hs:SRC                      one set
 *   source + destination  hp:SRC/DST (peer SRC→DST and channel SRC→DST)
 *   destination only      hr:DST (what DST received) + hc:DST (sent to
 *                         channel DST), merged on (ms, ID)
 * IDs count up per app and are fixed-width, so a set's order is (ms, then
 * arrival). hr:DST and hc:DST share no message: a channel message is not
 * added to hr: of a recipient named like its channel (hc: has it), which is
 * the embedded store's duplicate removal done at write time. A page is found
 * without walking what it skips: by rank in one set (ZCOUNT below lo, then
 * ZRANGE by rank); over two sets, by a binary search on ms of the sum of
 * their counts, then a merge of at most the page (plus the messages that
 * share the ms where the page starts). Counts are ZCOUNTs.
 *
 * A channel message to n recipients costs n ZADDs (hr:) at put, and n ZREMs
 * when it is pruned; its recipient list (mr:ID) is kept for the prune only.
 *
 * Retention, as the embedded store: a query shows ms >= now -
 * history_retention_s, or the cut-off the API pinned (q->min_ms), clamped
 * to what the prune keeps: messages leave Redis only 2 x
 * history_handle_ttl_s after they expired. Times come from this node's
 * clock (rtmd_now_ms(), passed to the scripts), not from Redis's, so every
 * node and every test agrees on what expired; nodes' clocks should agree to
 * well within history_handle_ttl_s. The prune (MSG_PRUNE) removes the
 * oldest messages of the app's timeline (hm) with their IDs in every set,
 * and the offline receivers whose every message expired, in steps of about
 * PRUNE_BUDGET keys touched, one step in flight at a time, app after app.
 * A pass starts at most every PRUNE_INTERVAL_MS, from any message call of
 * this node (and rtmd_redis_msg_prune()): the store's timers are redis.c's.
 * So while no node keeps or reads messages, what expired stays in Redis
 * (hidden), and nothing is added either. Several nodes pruning at once only
 * find less to do.
 *
 * Offline messages: per receiver o:UID (IDs by ms), oe:UID (by expiry),
 * ob:UID (the messages); oq (receivers by their latest expiry) lets the
 * prune drop a receiver whose every message expired. A put over the cap
 * removes the expired first, then the oldest (counted as dropped). A take
 * returns the unexpired oldest first and removes everything; past
 * REPLY_BYTES of messages it stops and the next step takes the rest.
 *
 * Query handles: q:HANDLE holds the query with Redis's own expiry (PX), so
 * any node can take it once.
 *
 * Deadlines. Every call that writes or consumes carries its deadline on
 * Redis's clock: a script that reaches Redis after it (a stalled server)
 * does nothing, so a call answered -ETIMEDOUT kept and consumed nothing.
 *
 * Replies are bounded: a query's messages come in pieces of REPLY_BYTES
 * (the rest as IDs, read by HISTORY_BODIES), as a take's do.
 */
#include <stdio.h>
#include <stdlib.h>

#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/loop.h"
#include "store/redis_internal.h"

#define MODULE            "store"
#define HISTORY_LIMIT_MAX 100
/* Message bytes one script returns, about (a message more at most): well
 * under the connection's bound on one reply. */
#define REPLY_BYTES ((size_t)16 << 20)
#define SCORE_MAX   9007199254740991ULL /* 2^53 - 1: the largest ms a score holds exactly */
/* A history query handle: 16 random bytes in base64url (22 characters). */
#define HANDLE_BYTES    16
#define HANDLE_LEN      22
#define HANDLE_ATTEMPTS 4
#define HANDLE_TTL_MAX  ((uint64_t)1 << 40)
/* Message IDs in replies: 14 hex digits. */
#define MSG_ID_MAX 20
/* A prune pass starts at most this often, from a message call of this node. */
#define PRUNE_INTERVAL_MS 60000
/* Keys one prune step touches, about (a channel message's recipients more at
 * most): a few milliseconds of Redis's time. */
#define PRUNE_BUDGET 2000

static struct redis_store *from_base(struct rtmd_store *s)
{
    return (struct redis_store *)s;
}

static void prune_maybe(struct redis_store *rs);

static size_t reply_bytes(const struct redis_store *rs)
{
    return rs->msg.reply_bytes ? rs->msg.reply_bytes : REPLY_BYTES;
}

/* ---- helpers ------------------------------------------------------------------------------- */

struct num {
    char s[24];
};

static struct rtmd_str num(struct num *n, uint64_t v)
{
    snprintf(n->s, sizeof(n->s), "%llu", (unsigned long long)v);
    return rtmd_str_cstr(n->s);
}

/* The deadline of a call made now, on Redis's clock. */
static struct rtmd_str redis_deadline(struct num *n, const struct redis_store *rs)
{
    snprintf(n->s, sizeof(n->s), "%lld",
             (long long)((int64_t)rtmd_redis_deadline(rs) + rs->offset_ms));
    return rtmd_str_cstr(n->s);
}

/* The status of a script's reply: 0; the call's own failure (-ETIMEDOUT
 * for a connection that failed before the call was written: it did not
 * run); -ENOSPC when Redis is out of memory (a script's first write fails,
 * and then nothing was written); RTMD_ESTORE for another error reply. */
static int reply_status(int status, const redisReply *r, const char *what)
{
    if (status < 0)
        return status == -ENOTCONN ? -ETIMEDOUT : status;
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    char quoted[160];
    bool oom = r->len >= 3 && memcmp(r->str, "OOM", 3) == 0;
    rtmd_log(oom ? RTMD_LOG_WARN : RTMD_LOG_ERROR, MODULE, "redis: %s failed: %s", what,
             rtmd_log_quote(quoted, sizeof(quoted), rtmd_str_make(r->str, r->len)));
    return oom ? -ENOSPC : RTMD_ESTORE;
}

/* Runs script on app a's keys; a Redis that cannot be reached is a
 * timeout (as for pulls): the call did nothing. */
static int run(struct redis_store *rs, struct app_rs *a, enum rtmd_redis_script script,
               const struct rtmd_str *args, int nargs, rtmd_redis_cb cb, void *arg)
{
    struct rtmd_str key = rtmd_redis_app_key(a);
    int r = rtmd_redis_script(rs, script, &key, 1, args, nargs, cb, arg);
    if (r == 0)
        prune_maybe(rs);
    return r == -ENOTCONN ? -ETIMEDOUT : r;
}

static struct app_rs *app_of(struct redis_store *rs, const struct rtmd_app *app, int *err)
{
    struct app_rs *a = rtmd_redis_app(rs, app);
    *err = rs->closing ? RTMD_ECLOSED : a ? 0 : -EINVAL;
    return *err ? NULL : a;
}

static bool payload_ok(const struct redis_store *rs, struct rtmd_str p)
{
    uint32_t max = rs->cfg->limits.max_payload;
    return p.p && p.len >= 1 && (max == 0 || p.len <= max);
}

static bool message_ok(const struct redis_store *rs, const struct rtmd_message *m)
{
    return m && (m->type == RTMD_MSG_PEER || m->type == RTMD_MSG_CHANNEL) &&
           rtmd_id_valid(m->src) && rtmd_id_valid(m->dst) && payload_ok(rs, m->payload);
}

/* A source, a destination or both; need_page: a limit of 1..100 too. */
static bool query_ok(const struct rtmd_history_query *q, bool need_page)
{
    if (!q || (!q->source.p && !q->destination.p))
        return false;
    if ((q->source.p && !rtmd_id_valid(q->source)) ||
        (q->destination.p && !rtmd_id_valid(q->destination)))
        return false;
    return !need_page || (q->limit >= 1 && q->limit <= HISTORY_LIMIT_MAX);
}

/* "a\nb\n..." → the next field of *rest (up to '\n', or all of it when
 * last); false when there is no '\n' left for a field that is not last. */
static bool next_field(struct rtmd_str *rest, bool last, struct rtmd_str *out)
{
    const char *nl = last ? NULL : memchr(rest->p, '\n', rest->len);
    if (!last && !nl)
        return false;
    size_t n = last ? rest->len : (size_t)(nl - rest->p);
    *out = rtmd_str_make(rest->p, n);
    rest->p += last ? n : n + 1;
    rest->len -= last ? n : n + 1;
    return true;
}

/* ---- messages handed back: owned copies ------------------------------------------------------
 */

/* Messages collected over one or more replies; each owns its bytes. */
struct rows {
    struct rtmd_message *v;
    char **mem;
    size_t n, cap;
};

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->mem[i]);
    free(r->v);
    free(r->mem);
    memset(r, 0, sizeof(*r));
}

static struct rtmd_str copy_to(char **at, struct rtmd_str v)
{
    memcpy(*at, v.p, v.len);
    struct rtmd_str out = rtmd_str_make(*at, v.len);
    *at += v.len;
    return out;
}

/* Sets *slot to a copy of m (its bytes in *mem). */
static void message_copy(struct rtmd_message *slot, char **mem, const struct rtmd_message *m)
{
    char *at = rtmd_malloc(m->src.len + m->dst.len + m->payload.len + 1);
    *mem = at;
    *slot = *m;
    slot->src = copy_to(&at, m->src);
    slot->dst = copy_to(&at, m->dst);
    slot->payload = copy_to(&at, m->payload);
}

static void rows_add(struct rows *r, const struct rtmd_message *m)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->v = rtmd_realloc(r->v, r->cap * sizeof(*r->v));
        r->mem = rtmd_realloc(r->mem, r->cap * sizeof(*r->mem));
    }
    message_copy(&r->v[r->n], &r->mem[r->n], m);
    r->n++;
}

/* "TYPE\nMS\nSRC\nDST\nPAYLOAD" (m:ID) → m, viewing s. */
static bool parse_history(struct rtmd_str s, struct rtmd_message *m)
{
    struct rtmd_str type, ms, src, dst, payload;
    if (!next_field(&s, false, &type) || !next_field(&s, false, &ms) ||
        !next_field(&s, false, &src) || !next_field(&s, false, &dst) ||
        !next_field(&s, true, &payload))
        return false;
    if (type.len != 1 || (type.p[0] != 'p' && type.p[0] != 'c') ||
        rtmd_str_to_u64(ms, UINT64_MAX, &m->ms) < 0 || !rtmd_id_valid(src) || !rtmd_id_valid(dst))
        return false;
    m->type = type.p[0] == 'p' ? RTMD_MSG_PEER : RTMD_MSG_CHANNEL;
    m->src = src;
    m->dst = dst;
    m->payload = payload;
    return true;
}

/* "EXPIRE\nMS\nSRC\nPAYLOAD" (ob:UID) → a peer message to uid, viewing s. */
static bool parse_offline(struct rtmd_str s, struct rtmd_str uid, struct rtmd_message *m)
{
    struct rtmd_str expire, ms, src, payload;
    uint64_t e;
    if (!next_field(&s, false, &expire) || !next_field(&s, false, &ms) ||
        !next_field(&s, false, &src) || !next_field(&s, true, &payload))
        return false;
    if (rtmd_str_to_u64(expire, UINT64_MAX, &e) < 0 ||
        rtmd_str_to_u64(ms, UINT64_MAX, &m->ms) < 0 || !rtmd_id_valid(src))
        return false;
    m->type = RTMD_MSG_PEER;
    m->src = src;
    m->dst = uid;
    m->payload = payload;
    return true;
}

/* ---- history_put ----------------------------------------------------------------------------- */

struct put_call {
    struct redis_store *rs;
    rtmd_store_cb cb;
    void *arg;
    bool offline;
};

static void on_put_reply(void *arg, int status, const redisReply *reply)
{
    struct put_call *c = arg;
    struct redis_store *rs = c->rs;
    status = reply_status(status, reply, c->offline ? "offline put" : "history put");
    long long n = 0;
    if (status == 0 && !rtmd_redis_reply_int(reply, &n))
        status = RTMD_ESTORE;
    if (status == 0 && n < 0)
        status = -ETIMEDOUT; /* it reached Redis after its deadline: nothing kept */
    if (status == 0 && c->offline) {
        rs->stats.offline_kept++;
        rs->stats.offline_dropped += (uint64_t)n;
    } else if (status == 0) {
        rs->stats.history_kept++;
    }
    c->cb(c->arg, status);
    free(c);
    rtmd_redis_call_done(rs);
}

static const struct rtmd_str type_arg[] = {
    [RTMD_MSG_PEER] = RTMD_STR_LIT("p"), [RTMD_MSG_CHANNEL] = RTMD_STR_LIT("c")};

int rtmd_redis_history_put(struct rtmd_store *base, const struct rtmd_app *app,
                           const struct rtmd_message *m, const struct rtmd_str *recipients,
                           size_t n_recipients, rtmd_store_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb || !message_ok(rs, m))
        return -EINVAL;
    if (m->type == RTMD_MSG_PEER ? n_recipients != 0 : (n_recipients && !recipients))
        return -EINVAL;
    for (size_t i = 0; i < n_recipients; i++)
        if (!rtmd_id_valid(recipients[i]))
            return -EINVAL;
    if (n_recipients > INT32_MAX - 16)
        return -EINVAL;
    struct rtmd_str *args = rtmd_malloc((6 + n_recipients) * sizeof(*args));
    struct num dl, ms;
    args[0] = redis_deadline(&dl, rs);
    args[1] = type_arg[m->type];
    args[2] = m->src;
    args[3] = m->dst;
    args[4] = num(&ms, m->ms);
    args[5] = m->payload;
    for (size_t i = 0; i < n_recipients; i++)
        args[6 + i] = recipients[i];
    struct put_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct put_call){rs, cb, arg, false};
    int r = run(rs, a, RTMD_LUA_HISTORY_PUT, args, (int)(6 + n_recipients), on_put_reply, c);
    free(args);
    if (r < 0)
        free(c);
    return r;
}

/* ---- history_query and history_count ------------------------------------------------------- */

/* What the embedded store shows: ms >= now - retention, or the pinned
 * cut-off, no older than what the prune keeps (2 x the handle TTL more). */
static uint64_t history_min_ms(const struct redis_store *rs, bool grace)
{
    const struct rtmd_limits *l = &rs->cfg->limits;
    uint64_t keep = (uint64_t)l->history_retention_s * 1000;
    if (grace)
        keep += 2 * (uint64_t)l->history_handle_ttl_s * 1000;
    uint64_t now = rtmd_now_ms();
    return now > keep ? now - keep : 0;
}

/* The arguments every HISTORY_QUERY takes: c|q, shape, src, dst, lo, hi. */
struct filter_args {
    struct rtmd_str v[6];
    struct num lo, hi;
};

static void filter_args(struct filter_args *f, const struct redis_store *rs, bool count,
                        const struct rtmd_history_query *q)
{
    uint64_t min =
        q->min_ms == 0 ? history_min_ms(rs, false) : RTMD_MAX(q->min_ms, history_min_ms(rs, true));
    f->v[0] = count ? RTMD_STR_LIT("c") : RTMD_STR_LIT("q");
    f->v[1] = q->source.p && q->destination.p ? RTMD_STR_LIT("p")
              : q->source.p                   ? RTMD_STR_LIT("s")
                                              : RTMD_STR_LIT("d");
    f->v[2] = q->source.p ? q->source : RTMD_STR_LIT("");
    f->v[3] = q->destination.p ? q->destination : RTMD_STR_LIT("");
    f->v[4] = num(&f->lo, RTMD_MAX(q->start_ms, min));
    f->v[5] = num(&f->hi, RTMD_MIN(q->end_ms, SCORE_MAX));
}

struct count_call {
    struct redis_store *rs;
    rtmd_store_count_cb cb;
    void *arg;
};

static void on_count_reply(void *arg, int status, const redisReply *reply)
{
    struct count_call *c = arg;
    struct redis_store *rs = c->rs;
    status = reply_status(status, reply, "history count");
    long long n = 0;
    if (status == 0 && (!rtmd_redis_reply_int(reply, &n) || n < 0))
        status = RTMD_ESTORE;
    c->cb(c->arg, status, status == 0 ? (uint64_t)n : 0);
    free(c);
    rtmd_redis_call_done(rs);
}

int rtmd_redis_history_count(struct rtmd_store *base, const struct rtmd_app *app,
                             const struct rtmd_history_query *q, rtmd_store_count_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb || !query_ok(q, false))
        return -EINVAL;
    struct filter_args f;
    filter_args(&f, rs, true, q);
    struct count_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct count_call){rs, cb, arg};
    int r = run(rs, a, RTMD_LUA_HISTORY_QUERY, f.v, 6, on_count_reply, c);
    if (r < 0)
        free(c);
    return r;
}

/* One position of a page: read, gone (pruned meanwhile) or still to read. */
enum slot_state { SLOT_WANTED, SLOT_READ, SLOT_GONE };

struct slot {
    enum slot_state state;
    char id[MSG_ID_MAX + 1];
    struct rtmd_message m;
    char *mem;
};

struct query_call {
    struct redis_store *rs;
    struct app_rs *a;
    rtmd_store_messages_cb cb;
    void *arg;
    size_t n;
    struct slot slots[HISTORY_LIMIT_MAX];
};

static void query_finish(struct query_call *c, int status)
{
    struct redis_store *rs = c->rs;
    struct rtmd_message v[HISTORY_LIMIT_MAX];
    size_t n = 0;
    for (size_t i = 0; i < c->n && status == 0; i++)
        if (c->slots[i].state == SLOT_READ)
            v[n++] = c->slots[i].m;
    struct rtmd_message_batch b = {n, v};
    c->cb(c->arg, status, &b);
    for (size_t i = 0; i < c->n; i++)
        free(c->slots[i].mem);
    free(c);
    rtmd_redis_call_done(rs);
}

/* Fills the wanted slots, in order, from the elements of a reply (one a
 * wanted slot): a message, "" (gone) or "#ID" (past the reply's budget: still
 * wanted). False on a malformed element. */
static bool fill_slots(struct query_call *c, const redisReply *reply)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (s->state != SLOT_WANTED)
            continue;
        if (k >= reply->elements || reply->element[k]->type != REDIS_REPLY_STRING)
            return false;
        const redisReply *e = reply->element[k++];
        struct rtmd_str v = rtmd_str_make(e->str, e->len);
        struct rtmd_message m;
        if (v.len == 0) {
            s->state = SLOT_GONE;
        } else if (v.p[0] == '#') {
            if (v.len < 2 || v.len > MSG_ID_MAX + 1)
                return false;
            for (size_t j = 1; j < v.len; j++)
                if (!((v.p[j] >= '0' && v.p[j] <= '9') || (v.p[j] >= 'a' && v.p[j] <= 'f')))
                    return false;
            memcpy(s->id, v.p + 1, v.len - 1);
            s->id[v.len - 1] = '\0';
        } else if (parse_history(v, &m)) {
            message_copy(&s->m, &s->mem, &m);
            s->state = SLOT_READ;
        } else {
            return false;
        }
    }
    return k == reply->elements;
}

static void on_query_reply(void *arg, int status, const redisReply *reply);

/* Reads the messages of the slots still wanted (HISTORY_BODIES). */
static int query_more(struct query_call *c)
{
    struct rtmd_str args[1 + HISTORY_LIMIT_MAX];
    struct num budget;
    int n = 0;
    args[n++] = num(&budget, reply_bytes(c->rs));
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].state == SLOT_WANTED)
            args[n++] = rtmd_str_cstr(c->slots[i].id);
    struct rtmd_str key = rtmd_redis_app_key(c->a);
    return rtmd_redis_script(c->rs, RTMD_LUA_HISTORY_BODIES, &key, 1, args, n, on_query_reply, c);
}

static void on_query_reply(void *arg, int status, const redisReply *reply)
{
    struct query_call *c = arg;
    bool first = c->n == 0;
    status = reply_status(status, reply, "history query");
    if (status < 0) {
        query_finish(c, status);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || (first && reply->elements > HISTORY_LIMIT_MAX)) {
        query_finish(c, RTMD_ESTORE);
        return;
    }
    if (first) {
        c->n = reply->elements;
        for (size_t i = 0; i < c->n; i++)
            c->slots[i].state = SLOT_WANTED;
    }
    size_t wanted_before = 0;
    for (size_t i = 0; i < c->n; i++)
        wanted_before += c->slots[i].state == SLOT_WANTED;
    if (!first && reply->elements != wanted_before) {
        query_finish(c, RTMD_ESTORE);
        return;
    }
    if (!fill_slots(c, reply)) {
        query_finish(c, RTMD_ESTORE);
        return;
    }
    size_t wanted = 0;
    for (size_t i = 0; i < c->n; i++)
        wanted += c->slots[i].state == SLOT_WANTED;
    if (wanted == 0) {
        query_finish(c, 0);
        return;
    }
    if (!first && wanted == wanted_before) {
        query_finish(c, RTMD_ESTORE); /* no progress */
        return;
    }
    int r = query_more(c);
    if (r < 0)
        query_finish(c, r == -ENOTCONN ? -ETIMEDOUT : r);
    else
        rtmd_redis_call_done(c->rs);
}

int rtmd_redis_history_query(struct rtmd_store *base, const struct rtmd_app *app,
                             const struct rtmd_history_query *q, rtmd_store_messages_cb cb,
                             void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb || !query_ok(q, true))
        return -EINVAL;
    struct filter_args f;
    filter_args(&f, rs, false, q);
    struct num offset, limit, budget;
    struct rtmd_str args[10] = {f.v[0],
                                f.v[1],
                                f.v[2],
                                f.v[3],
                                f.v[4],
                                f.v[5],
                                num(&offset, q->offset),
                                num(&limit, q->limit),
                                q->desc ? RTMD_STR_LIT("1") : RTMD_STR_LIT("0"),
                                num(&budget, reply_bytes(rs))};
    struct query_call *c = rtmd_calloc(1, sizeof(*c));
    c->rs = rs;
    c->a = a;
    c->cb = cb;
    c->arg = arg;
    int r = run(rs, a, RTMD_LUA_HISTORY_QUERY, args, 10, on_query_reply, c);
    if (r < 0)
        free(c);
    return r;
}

/* ---- query handles ------------------------------------------------------------------------- */

/* A query as a handle keeps it: "FLAGS\nSTART\nEND\nOFFSET\nLIMIT\nMIN\nSRC\nDST",
 * FLAGS a digit: 1 a source, 2 a destination, 4 descending. */
enum { Q_SOURCE = 1, Q_DESTINATION = 2, Q_DESC = 4 };

static int query_encode(struct rtmd_buf *b, const struct rtmd_history_query *q)
{
    int flags = (q->source.p ? Q_SOURCE : 0) | (q->destination.p ? Q_DESTINATION : 0) |
                (q->desc ? Q_DESC : 0);
    int r = rtmd_buf_printf(b, "%d\n%llu\n%llu\n%u\n%u\n%llu\n", flags,
                            (unsigned long long)q->start_ms, (unsigned long long)q->end_ms,
                            q->offset, q->limit, (unsigned long long)q->min_ms);
    if (r == 0 && q->source.p)
        r = rtmd_buf_append_str(b, q->source);
    if (r == 0)
        r = rtmd_buf_append_byte(b, '\n');
    if (r == 0 && q->destination.p)
        r = rtmd_buf_append_str(b, q->destination);
    return r;
}

/* The reverse, viewing s; false unless s is one query_encode() makes. */
static bool query_decode(struct rtmd_str s, struct rtmd_history_query *q)
{
    struct rtmd_str f[8];
    uint64_t flags, offset, limit;
    for (int i = 0; i < 8; i++)
        if (!next_field(&s, i == 7, &f[i]))
            return false;
    memset(q, 0, sizeof(*q));
    if (rtmd_str_to_u64(f[0], 7, &flags) < 0 ||
        rtmd_str_to_u64(f[1], UINT64_MAX, &q->start_ms) < 0 ||
        rtmd_str_to_u64(f[2], UINT64_MAX, &q->end_ms) < 0 ||
        rtmd_str_to_u64(f[3], UINT32_MAX, &offset) < 0 ||
        rtmd_str_to_u64(f[4], HISTORY_LIMIT_MAX, &limit) < 0 || limit == 0 ||
        rtmd_str_to_u64(f[5], UINT64_MAX, &q->min_ms) < 0)
        return false;
    q->offset = (uint32_t)offset;
    q->limit = (uint32_t)limit;
    q->desc = (flags & Q_DESC) != 0;
    q->source = flags & Q_SOURCE ? f[6] : RTMD_STR_NULL;
    q->destination = flags & Q_DESTINATION ? f[7] : RTMD_STR_NULL;
    if ((!(flags & Q_SOURCE) && f[6].len) || (!(flags & Q_DESTINATION) && f[7].len))
        return false;
    return query_ok(q, true);
}

static int handle_name(char out[HANDLE_LEN + 1])
{
    unsigned char raw[HANDLE_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -EIO;
    struct rtmd_buf b;
    rtmd_buf_init(&b, RTMD_BASE64_ENCODED_LEN(HANDLE_BYTES));
    int r = rtmd_base64url_encode(&b, raw, sizeof(raw));
    if (r == 0 && b.len == HANDLE_LEN) {
        memcpy(out, b.data, HANDLE_LEN);
        out[HANDLE_LEN] = '\0';
    } else if (r == 0) {
        r = -EIO;
    }
    rtmd_buf_free(&b);
    return r;
}

struct handle_call {
    struct redis_store *rs;
    struct app_rs *a;
    rtmd_store_handle_cb put_cb;
    rtmd_store_query_cb take_cb;
    void *arg;
    int attempts;
    uint64_t ttl_ms;
    char name[HANDLE_LEN + 1];
    struct rtmd_buf query; /* put: the encoded query */
};

static void handle_call_free(struct handle_call *c)
{
    struct redis_store *rs = c->rs;
    rtmd_buf_free(&c->query);
    free(c);
    rtmd_redis_call_done(rs);
}

static int handle_put_send(struct handle_call *c);

static void on_handle_put_reply(void *arg, int status, const redisReply *reply)
{
    struct handle_call *c = arg;
    status = reply_status(status, reply, "handle put");
    long long ok = 0;
    if (status == 0 && !rtmd_redis_reply_int(reply, &ok))
        status = RTMD_ESTORE;
    if (status == 0 && ok < 0)
        status = -ETIMEDOUT;
    if (status == 0 && ok == 0) {
        /* The name is taken (16 random bytes: never seen in practice). */
        int r = ++c->attempts < HANDLE_ATTEMPTS ? handle_put_send(c) : -EIO;
        if (r == 0) {
            rtmd_redis_call_done(c->rs);
            return;
        }
        status = r == -ENOTCONN ? -ETIMEDOUT : r;
    }
    c->put_cb(c->arg, status, status == 0 ? c->name : NULL);
    handle_call_free(c);
}

static int handle_put_send(struct handle_call *c)
{
    int r = handle_name(c->name);
    if (r < 0)
        return r;
    struct num dl, ttl;
    struct rtmd_str args[] = {redis_deadline(&dl, c->rs), rtmd_str_cstr(c->name),
                              rtmd_str_make(c->query.data, c->query.len), num(&ttl, c->ttl_ms)};
    struct rtmd_str key = rtmd_redis_app_key(c->a);
    return rtmd_redis_script(c->rs, RTMD_LUA_HANDLE_PUT, &key, 1, args, 4, on_handle_put_reply, c);
}

int rtmd_redis_handle_put(struct rtmd_store *base, const struct rtmd_app *app,
                          const struct rtmd_history_query *q, uint64_t ttl_ms,
                          rtmd_store_handle_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb || !query_ok(q, true) || ttl_ms == 0)
        return -EINVAL;
    struct handle_call *c = rtmd_calloc(1, sizeof(*c));
    c->rs = rs;
    c->a = a;
    c->put_cb = cb;
    c->arg = arg;
    c->ttl_ms = RTMD_MIN(ttl_ms, HANDLE_TTL_MAX);
    rtmd_buf_init(&c->query, 4 * RTMD_ID_MAX + 256);
    int r = query_encode(&c->query, q);
    if (r == 0)
        r = handle_put_send(c);
    if (r < 0) {
        rtmd_buf_free(&c->query);
        free(c);
        return r == -ENOTCONN ? -ETIMEDOUT : r;
    }
    prune_maybe(rs);
    return 0;
}

static void on_handle_take_reply(void *arg, int status, const redisReply *reply)
{
    struct handle_call *c = arg;
    status = reply_status(status, reply, "handle take");
    struct rtmd_history_query q;
    long long n = 0;
    if (status == 0 && rtmd_redis_reply_int(reply, &n))
        status = n < 0 ? -ETIMEDOUT : -ENOENT;
    else if (status == 0 && (reply->type != REDIS_REPLY_STRING ||
                             !query_decode(rtmd_str_make(reply->str, reply->len), &q)))
        status = RTMD_ESTORE;
    c->take_cb(c->arg, status, status == 0 ? &q : NULL);
    handle_call_free(c);
}

static bool handle_valid(struct rtmd_str h)
{
    if (h.len != HANDLE_LEN || !h.p)
        return false;
    for (size_t i = 0; i < h.len; i++) {
        char ch = h.p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

int rtmd_redis_handle_take(struct rtmd_store *base, const struct rtmd_app *app,
                           struct rtmd_str handle, rtmd_store_query_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb)
        return -EINVAL;
    struct handle_call *c = rtmd_calloc(1, sizeof(*c));
    c->rs = rs;
    c->a = a;
    c->take_cb = cb;
    c->arg = arg;
    rtmd_buf_init(&c->query, 0);
    /* A name no handle has is looked up as "" (no put makes it), so that
     * the answer comes the same way, later. */
    if (handle_valid(handle))
        memcpy(c->name, handle.p, HANDLE_LEN);
    struct num dl;
    struct rtmd_str args[] = {redis_deadline(&dl, rs), rtmd_str_cstr(c->name)};
    int r = run(rs, a, RTMD_LUA_HANDLE_TAKE, args, 2, on_handle_take_reply, c);
    if (r < 0)
        free(c);
    return r;
}

/* ---- offline messages ---------------------------------------------------------------------- */

int rtmd_redis_offline_put(struct rtmd_store *base, const struct rtmd_app *app,
                           const struct rtmd_message *m, uint32_t max_per_user, uint64_t ttl_ms,
                           rtmd_store_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb || !message_ok(rs, m) || m->type != RTMD_MSG_PEER || max_per_user == 0 || ttl_ms == 0)
        return -EINVAL;
    uint64_t expire = ttl_ms > UINT64_MAX - m->ms ? UINT64_MAX : m->ms + ttl_ms;
    struct num dl, ms, ex, max, now;
    struct rtmd_str args[] = {redis_deadline(&dl, rs),
                              m->dst,
                              m->src,
                              num(&ms, m->ms),
                              num(&ex, RTMD_MIN(expire, SCORE_MAX)),
                              m->payload,
                              num(&max, max_per_user),
                              num(&now, rtmd_now_ms())};
    struct put_call *c = rtmd_malloc(sizeof(*c));
    *c = (struct put_call){rs, cb, arg, true};
    int r = run(rs, a, RTMD_LUA_OFFLINE_PUT, args, 8, on_put_reply, c);
    if (r < 0)
        free(c);
    return r;
}

struct take_call {
    struct redis_store *rs;
    struct app_rs *a;
    rtmd_store_messages_cb cb;
    void *arg;
    bool started; /* a step took messages: a later failure keeps them */
    struct rows rows;
    char uid[RTMD_ID_MAX + 1];
    size_t uid_len;
};

static void take_finish(struct take_call *c, int status)
{
    struct redis_store *rs = c->rs;
    if (status < 0 && c->started) {
        /* What earlier steps took is handed over; the rest stays stored. */
        rtmd_log_warn(MODULE, "redis: taking the rest of an offline queue failed (%s)",
                      rtmd_strerror(status));
        status = 0;
    }
    struct rtmd_message_batch b = {status == 0 ? c->rows.n : 0, c->rows.v};
    c->cb(c->arg, status, &b);
    rows_free(&c->rows);
    free(c);
    rtmd_redis_call_done(rs);
}

static int take_send(struct take_call *c);

static void on_take_reply(void *arg, int status, const redisReply *reply)
{
    struct take_call *c = arg;
    status = reply_status(status, reply, "offline take");
    long long more = 0;
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
                        !rtmd_redis_reply_int(reply->element[0], &more) || more < -1 || more > 1))
        status = RTMD_ESTORE;
    if (status == 0 && more < 0)
        status = -ETIMEDOUT; /* it reached Redis after its deadline: nothing taken */
    if (status < 0) {
        take_finish(c, status);
        return;
    }
    struct rtmd_str uid = rtmd_str_make(c->uid, c->uid_len);
    bool bad = false;
    for (size_t i = 1; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        struct rtmd_message m;
        if (e->type == REDIS_REPLY_STRING && parse_offline(rtmd_str_make(e->str, e->len), uid, &m))
            rows_add(&c->rows, &m);
        else
            bad = true;
    }
    if (bad)
        rtmd_log_error(MODULE, "redis: malformed offline messages skipped");
    c->started = true;
    if (more == 0) {
        take_finish(c, 0);
        return;
    }
    int r = take_send(c);
    if (r < 0)
        take_finish(c, r);
    else
        rtmd_redis_call_done(c->rs);
}

static int take_send(struct take_call *c)
{
    struct num dl, now, budget;
    struct rtmd_str args[] = {redis_deadline(&dl, c->rs), rtmd_str_make(c->uid, c->uid_len),
                              num(&now, rtmd_now_ms()), num(&budget, reply_bytes(c->rs))};
    struct rtmd_str key = rtmd_redis_app_key(c->a);
    return rtmd_redis_script(c->rs, RTMD_LUA_OFFLINE_TAKE, &key, 1, args, 4, on_take_reply, c);
}

int rtmd_redis_offline_take(struct rtmd_store *base, const struct rtmd_app *app,
                            struct rtmd_str uid, rtmd_store_messages_cb cb, void *arg)
{
    struct redis_store *rs = from_base(base);
    int err;
    struct app_rs *a = app_of(rs, app, &err);
    if (!a)
        return err;
    if (!cb || !rtmd_id_valid(uid))
        return -EINVAL;
    struct take_call *c = rtmd_calloc(1, sizeof(*c));
    c->rs = rs;
    c->a = a;
    c->cb = cb;
    c->arg = arg;
    memcpy(c->uid, uid.p, uid.len);
    c->uid_len = uid.len;
    int r = take_send(c);
    if (r < 0) {
        free(c);
        return r == -ENOTCONN ? -ETIMEDOUT : r;
    }
    prune_maybe(rs);
    return 0;
}

/* ---- the prune ------------------------------------------------------------------------------- */

static void prune_end(struct redis_store *rs)
{
    struct redis_msg_prune *p = &rs->msg.prune;
    p->running = false;
    p->next_ms = rtmd_mono_ms() + PRUNE_INTERVAL_MS;
    if (p->messages || p->receivers)
        rtmd_log_info(MODULE,
                      "redis: pruned %llu history messages and %llu offline receivers in %llu "
                      "steps",
                      (unsigned long long)p->messages, (unsigned long long)p->receivers,
                      (unsigned long long)p->steps);
}

static void prune_step(struct redis_store *rs);

static void on_prune_reply(void *arg, int status, const redisReply *reply)
{
    struct redis_store *rs = arg;
    struct redis_msg_prune *p = &rs->msg.prune;
    status = reply_status(status, reply, "prune");
    long long v[3] = {0, 0, 0};
    if (status == 0 && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
                        !rtmd_redis_reply_int(reply->element[0], &v[0]) ||
                        !rtmd_redis_reply_int(reply->element[1], &v[1]) ||
                        !rtmd_redis_reply_int(reply->element[2], &v[2]) || v[0] < 0 || v[1] < 0))
        status = RTMD_ESTORE;
    if (status == 0) {
        rs->stats.history_pruned += (uint64_t)v[0];
        p->messages += (uint64_t)v[0];
        p->receivers += (uint64_t)v[1];
        p->steps++;
        if (v[2] == 0)
            p->app++;
    }
    if (status < 0 || rs->closing) {
        if (status < 0)
            rtmd_log_warn(MODULE, "redis: a prune step failed (%s); the next pass goes on",
                          rtmd_strerror(status));
        prune_end(rs);
    } else {
        prune_step(rs);
    }
    rtmd_redis_call_done(rs);
}

/* The next step of the pass: the current app again while it has more. */
static void prune_step(struct redis_store *rs)
{
    struct redis_msg_prune *p = &rs->msg.prune;
    if (p->app >= rs->n_apps) {
        prune_end(rs);
        return;
    }
    struct num before, now, budget;
    struct rtmd_str key = rtmd_redis_app_key(rs->apps[p->app]);
    struct rtmd_str args[] = {num(&before, p->before_ms), num(&now, p->now_ms),
                              num(&budget, p->budget)};
    if (rtmd_redis_script(rs, RTMD_LUA_MSG_PRUNE, &key, 1, args, 3, on_prune_reply, rs) < 0)
        prune_end(rs);
}

void rtmd_redis_msg_prune(struct redis_store *rs)
{
    struct redis_msg_prune *p = &rs->msg.prune;
    if (p->running || rs->closing || !rs->up)
        return;
    p->running = true;
    p->app = 0;
    p->messages = p->receivers = p->steps = 0;
    p->before_ms = history_min_ms(rs, true);
    p->now_ms = rtmd_now_ms();
    if (p->budget == 0)
        p->budget = PRUNE_BUDGET;
    prune_step(rs);
}

static void prune_maybe(struct redis_store *rs)
{
    if (!rs->msg.prune.running && rtmd_mono_ms() >= rs->msg.prune.next_ms)
        rtmd_redis_msg_prune(rs);
}
