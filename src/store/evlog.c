#include "store/evlog.h"

#include "core/alloc.h"
#include "store/store.h"

struct rtmd_evrec *rtmd_evrec_new(uint64_t seq, const char *json, size_t len,
                                  struct rtmd_str session)
{
    struct rtmd_evrec *r = rtmd_malloc(sizeof(*r) + len + 1 + session.len);
    r->refs = 1;
    r->len = (uint32_t)len;
    r->seq = seq;
    r->end = 0;
    r->numbered = NULL;
    r->numbered_len = 0;
    r->session_len = (uint32_t)session.len;
    r->ts_at = (uint32_t)rtmd_event_ts_offset(rtmd_str_make(json, len));
    memcpy(r->json, json, len);
    r->json[len] = '\0';
    if (session.len)
        memcpy(r->json + len + 1, session.p, session.len);
    return r;
}

void rtmd_evrec_release(struct rtmd_evrec *r)
{
    if (r && --r->refs == 0) {
        rtmd_free(r->numbered);
        rtmd_free(r);
    }
}

void rtmd_evlog_init(struct rtmd_evlog *l, uint32_t retain, uint32_t n_regions)
{
    memset(l, 0, sizeof(*l));
    l->retain = retain ? retain : 1;
    l->n_regions = RTMD_MIN(n_regions, (uint32_t)RTMD_REGIONS_MAX);
    l->next_seq = 1;
}

void rtmd_evlog_free(struct rtmd_evlog *l)
{
    for (uint32_t i = 0; i < l->count; i++)
        rtmd_evrec_release(l->ring[(l->head + i) % l->cap]);
    rtmd_free(l->ring);
    l->ring = NULL;
    l->cap = l->count = l->head = 0;
}

static bool region_ok(const struct rtmd_evlog *l, uint32_t region)
{
    return region < l->n_regions && region < RTMD_REGIONS_MAX;
}

/* The i-th oldest record (i < count). */
static struct rtmd_evrec *at(const struct rtmd_evlog *l, uint32_t i)
{
    return l->ring[(l->head + i) % l->cap];
}

/* Doubles the ring (up to retain), moving the records to slots 0..count-1. */
static void grow(struct rtmd_evlog *l)
{
    uint32_t cap = l->cap ? l->cap * 2 : 8;
    if (cap > l->retain || cap < l->cap)
        cap = l->retain;
    struct rtmd_evrec **ring = rtmd_malloc(sizeof(*ring) * cap);
    for (uint32_t i = 0; i < l->count; i++)
        ring[i] = at(l, i);
    rtmd_free(l->ring);
    l->ring = ring;
    l->cap = cap;
    l->head = 0;
}

static int put(struct rtmd_evlog *l, struct rtmd_evrec *rec, bool count_drops)
{
    if (rec->seq <= l->last_seq)
        return -EINVAL;
    if (l->count == l->retain) {
        struct rtmd_evrec *old = l->ring[l->head];
        if (count_drops) {
            for (uint32_t r = 0; r < l->n_regions; r++)
                if (l->cursor[r] < old->seq)
                    l->dropped[r]++;
        }
        l->trimmed_seq = old->seq;
        rtmd_evrec_release(old);
        l->ring[l->head] = rec;
        l->head = (l->head + 1) % l->cap;
    } else {
        if (l->count == l->cap)
            grow(l);
        l->ring[(l->head + l->count) % l->cap] = rec;
        l->count++;
    }
    l->last_seq = rec->seq;
    l->bytes += rec->len + 1;
    rec->end = l->bytes;
    return 0;
}

int rtmd_evlog_append(struct rtmd_evlog *l, struct rtmd_evrec *rec)
{
    if (rec->seq >= l->next_seq)
        return -EINVAL;
    return put(l, rec, true);
}

uint64_t rtmd_evlog_push(struct rtmd_evlog *l, const char *json, size_t len)
{
    uint64_t seq = rtmd_evlog_reserve(l);
    struct rtmd_evrec *rec = rtmd_evrec_new(seq, json, len, RTMD_STR_NULL);
    if (rtmd_evlog_append(l, rec) != 0) {
        /* Cannot happen: seq was just reserved above every appended one. */
        rtmd_evrec_release(rec);
        return 0;
    }
    return seq;
}

/* Index (from the oldest) of the first record with seq > after. */
static uint32_t first_after(const struct rtmd_evlog *l, uint64_t after)
{
    uint32_t lo = 0, hi = l->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (at(l, mid)->seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t rtmd_evlog_unread(const struct rtmd_evlog *l, uint32_t region)
{
    if (!region_ok(l, region))
        return 0;
    return l->count - first_after(l, l->cursor[region]);
}

size_t rtmd_evlog_peek(struct rtmd_evlog *l, uint32_t region, uint32_t max, struct rtmd_evrec **out)
{
    if (!region_ok(l, region))
        return 0;
    uint32_t i = first_after(l, l->cursor[region]);
    size_t n = 0;
    for (; i < l->count && n < max; i++)
        out[n++] = rtmd_evrec_ref(at(l, i));
    return n;
}

size_t rtmd_evlog_copy(const struct rtmd_evlog *l, uint32_t region, uint32_t max,
                       struct rtmd_buf *out, uint64_t *last_seq)
{
    if (!region_ok(l, region))
        return 0;
    uint32_t first = first_after(l, l->cursor[region]);
    uint32_t n = RTMD_MIN(max, l->count - first);
    if (n == 0)
        return 0;
    /* The size from the running sums, without a pass over the records. */
    const struct rtmd_evrec *a = at(l, first), *z = at(l, first + n - 1);
    if (rtmd_buf_reserve(out, (size_t)(z->end - a->end) + a->len + 1) < 0)
        return 0;
    char *o = out->data + out->len;
    uint32_t slot = (l->head + first) % l->cap;
    for (uint32_t i = 0; i < n; i++) {
        const struct rtmd_evrec *r = l->ring[slot];
        slot = slot + 1 == l->cap ? 0 : slot + 1;
        *o = ',';
        o += i > 0;
        memcpy(o, r->json, r->len);
        o += r->len;
    }
    out->len = (size_t)(o - out->data);
    *last_seq = z->seq;
    return n;
}

/* r's numbered form, made (and kept) at its first lossless read. */
static struct rtmd_str numbered(struct rtmd_evrec *r)
{
    if (!r->numbered) {
        struct rtmd_str session = rtmd_evrec_session(r);
        char *p = rtmd_malloc(r->len + session.len + RTMD_EVENT_NUMBERED_EXTRA);
        char *end = rtmd_event_numbered_put(p, rtmd_evrec_str(r), r->ts_at, r->seq, session);
        r->numbered = p;
        r->numbered_len = (uint32_t)(end - p);
    }
    return rtmd_str_make(r->numbered, r->numbered_len);
}

size_t rtmd_evlog_copy_after(struct rtmd_evlog *l, uint64_t after, uint32_t max,
                             struct rtmd_buf *out, uint64_t *last_seq)
{
    uint32_t first = first_after(l, after);
    uint32_t n = RTMD_MIN(l->count - first, max);
    if (n == 0)
        return 0;
    size_t room = 0;
    uint32_t slot = (l->head + first) % l->cap;
    for (uint32_t i = 0; i < n; i++) {
        room += numbered(l->ring[slot]).len + 1;
        slot = slot + 1 == l->cap ? 0 : slot + 1;
    }
    if (rtmd_buf_reserve(out, room) < 0)
        return 0;
    char *o = out->data + out->len;
    slot = (l->head + first) % l->cap;
    for (uint32_t i = 0; i < n; i++) {
        const struct rtmd_evrec *r = l->ring[slot];
        slot = slot + 1 == l->cap ? 0 : slot + 1;
        *o = ',';
        o += i > 0;
        memcpy(o, r->numbered, r->numbered_len);
        o += r->numbered_len;
    }
    out->len = (size_t)(o - out->data);
    *last_seq = at(l, first + n - 1)->seq;
    return n;
}

void rtmd_evlog_advance(struct rtmd_evlog *l, uint32_t region, uint64_t seq)
{
    if (!region_ok(l, region))
        return;
    if (seq > l->last_seq)
        seq = l->last_seq;
    if (seq > l->cursor[region])
        l->cursor[region] = seq;
}

void rtmd_evlog_rewind(struct rtmd_evlog *l, uint32_t region, uint64_t seq)
{
    if (region_ok(l, region))
        l->cursor[region] = RTMD_MIN(seq, l->last_seq);
}

uint64_t rtmd_evlog_oldest_seq(const struct rtmd_evlog *l)
{
    return l->count ? at(l, 0)->seq : 0;
}

int rtmd_evlog_restore(struct rtmd_evlog *l, struct rtmd_evrec *rec)
{
    int rc = put(l, rec, false);
    if (rc == 0 && l->next_seq <= rec->seq)
        l->next_seq = rec->seq + 1;
    return rc;
}

void rtmd_evlog_restore_cursor(struct rtmd_evlog *l, uint32_t region, uint64_t seq)
{
    if (region_ok(l, region))
        l->cursor[region] = seq;
}

void rtmd_evlog_restore_next_seq(struct rtmd_evlog *l, uint64_t seq)
{
    if (l->next_seq < seq)
        l->next_seq = seq;
}

void rtmd_evlog_restore_trimmed(struct rtmd_evlog *l)
{
    /* The disk drops numbers up to the newest's minus retain: below the
     * oldest kept, every number that held an event is gone. */
    uint64_t oldest = rtmd_evlog_oldest_seq(l);
    if (l->last_seq > l->retain && oldest > 1 && l->trimmed_seq < oldest - 1)
        l->trimmed_seq = oldest - 1;
}
