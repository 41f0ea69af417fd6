/*
 * online.c — who is online (see online.h).
 */
#include "presence/online.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "core/loop.h"
#include "core/url.h"
#include "presence/presence.h"

int rtmd_online_uid_cmp(struct rtmd_str a, struct rtmd_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int uid_order(const void *a, const void *b)
{
    return rtmd_online_uid_cmp(*(const struct rtmd_str *)a, *(const struct rtmd_str *)b);
}

size_t rtmd_online_sort_uids(struct rtmd_str *uids, size_t n)
{
    qsort(uids, n, sizeof(*uids), uid_order);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || rtmd_online_uid_cmp(uids[k - 1], uids[i]) != 0)
            uids[k++] = uids[i];
    return k;
}

/* ---- a page from this node's state ------------------------------------------------ */

struct members_call {
    struct rtmd_deferred d;
    const struct rtmd_app *app;
    rtmd_store_members_cb cb;
    void *arg;
    uint32_t limit;
    uint8_t channel_len, after_len;
    char channel[RTMD_ID_MAX];
    char after[RTMD_ID_MAX];
};

/* The page: the channel keeps its members in uid order too (by_uid), so a
 * page is a binary search and a copy, O(log members + limit). */
static void members_answer(struct rtmd_deferred *d)
{
    struct members_call *call = (struct members_call *)d;
    struct rtmd_channel *ch =
        rtmd_presence_channel(call->app, rtmd_str_make(call->channel, call->channel_len));
    struct rtmd_member_page page = {.count = ch ? ch->n_members : 0};
    struct rtmd_str *uids = NULL;
    if (ch && call->limit > 0) {
        uint32_t from = rtmd_channel_after(ch, rtmd_str_make(call->after, call->after_len));
        uint32_t n = ch->n_members - from < call->limit ? ch->n_members - from : call->limit;
        uids = rtmd_malloc((n ? n : 1) * sizeof(*uids));
        for (uint32_t i = 0; i < n; i++) {
            const struct rtmd_session *s = ch->by_uid[from + i];
            uids[i] = rtmd_str_make(s->uid, s->uid_len);
        }
        page.n = n;
        page.more = from + n < ch->n_members;
    }
    page.uids = uids;
    call->cb(call->arg, 0, &page);
    free(uids);
    free(call);
}

int rtmd_online_members(struct rtmd_store *store, const struct rtmd_app *app,
                        struct rtmd_str channel, struct rtmd_str after, uint32_t limit,
                        rtmd_store_members_cb cb, void *arg)
{
    if (!app || !cb || !rtmd_id_valid(channel) || (after.len && !rtmd_id_valid(after)) ||
        limit > RTMD_MEMBERS_PAGE_MAX)
        return -EINVAL;
    if (rtmd_store_has_members(store))
        return rtmd_store_members(store, app, channel, after, limit, cb, arg);
    struct members_call *call = rtmd_calloc(1, sizeof(*call));
    call->app = app;
    call->cb = cb;
    call->arg = arg;
    call->limit = limit;
    call->channel_len = (uint8_t)channel.len;
    memcpy(call->channel, channel.p, channel.len);
    call->after_len = (uint8_t)after.len;
    if (after.len)
        memcpy(call->after, after.p, after.len);
    rtmd_defer(&call->d, members_answer);
    return 0;
}

/* ---- statuses from this node's state ---------------------------------------------- */

struct status_call {
    struct rtmd_deferred d;
    const struct rtmd_app *app;
    rtmd_store_status_cb cb;
    void *arg;
    size_t n;
    uint8_t len[RTMD_STATUS_MAX];
    char uid[RTMD_STATUS_MAX][RTMD_ID_MAX];
};

static void status_answer(struct rtmd_deferred *d)
{
    struct status_call *call = (struct status_call *)d;
    bool online[RTMD_STATUS_MAX];
    for (size_t i = 0; i < call->n; i++) {
        struct rtmd_session *s =
            rtmd_presence_find(call->app, rtmd_str_make(call->uid[i], call->len[i]));
        online[i] = s && s->state == RTMD_SESSION_ONLINE;
    }
    call->cb(call->arg, 0, online, call->n);
    free(call);
}

int rtmd_online_status(struct rtmd_store *store, const struct rtmd_app *app,
                       const struct rtmd_str *uids, size_t n, rtmd_store_status_cb cb, void *arg)
{
    if (!app || !cb || n == 0 || n > RTMD_STATUS_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!rtmd_id_valid(uids[i]))
            return -EINVAL;
    if (rtmd_store_has_members(store))
        return rtmd_store_status(store, app, uids, n, cb, arg);
    struct status_call *call = rtmd_malloc(sizeof(*call));
    call->app = app;
    call->cb = cb;
    call->arg = arg;
    call->n = n;
    for (size_t i = 0; i < n; i++) {
        call->len[i] = (uint8_t)uids[i].len;
        memcpy(call->uid[i], uids[i].p, uids[i].len);
    }
    rtmd_defer(&call->d, status_answer);
    return 0;
}

/* ---- cursors ------------------------------------------------------------------------- */

size_t rtmd_online_cursor_encode(struct rtmd_str uid, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = uid.len < RTMD_ID_MAX ? uid.len : RTMD_ID_MAX;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[(unsigned char)uid.p[i] >> 4];
        out[2 * i + 1] = hex[(unsigned char)uid.p[i] & 15];
    }
    out[2 * n] = '\0';
    return 2 * n;
}

bool rtmd_online_cursor_decode(struct rtmd_str cursor, char out[RTMD_ID_MAX], size_t *len)
{
    if (cursor.len == 0 || cursor.len % 2 || cursor.len > RTMD_CURSOR_MAX)
        return false;
    for (size_t i = 0; i < cursor.len / 2; i++) {
        int hi = rtmd_url_hexval(cursor.p[2 * i]), lo = rtmd_url_hexval(cursor.p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (char)(hi << 4 | lo);
    }
    *len = cursor.len / 2;
    return rtmd_id_valid(rtmd_str_make(out, *len));
}

/* ---- the overview ------------------------------------------------------------------- */

struct overview_call {
    const struct rtmd_app *app;
    rtmd_store_overview_cb cb;
    void *arg;
};

/* The first RTMD_OVERVIEW_MAX names in order, kept sorted while walking
 * every one (each walk is O(names x log) on a full list, bounded). */
struct first_names {
    struct rtmd_str names[RTMD_OVERVIEW_MAX];
    uint64_t members[RTMD_OVERVIEW_MAX];
    size_t n;
};

static void first_put(struct first_names *f, struct rtmd_str name, uint64_t members)
{
    if (f->n == RTMD_OVERVIEW_MAX && rtmd_online_uid_cmp(name, f->names[f->n - 1]) >= 0)
        return;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rtmd_online_uid_cmp(f->names[mid], name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t move = (f->n == RTMD_OVERVIEW_MAX ? f->n - 1 : f->n) - lo;
    memmove(&f->names[lo + 1], &f->names[lo], move * sizeof(f->names[0]));
    memmove(&f->members[lo + 1], &f->members[lo], move * sizeof(f->members[0]));
    f->names[lo] = name;
    f->members[lo] = members;
    if (f->n < RTMD_OVERVIEW_MAX)
        f->n++;
}

static void put_session(const struct rtmd_session *s, void *arg)
{
    if (s->state == RTMD_SESSION_ONLINE)
        first_put(arg, rtmd_str_make(s->uid, s->uid_len), 0);
}

static void put_channel(const struct rtmd_channel *ch, void *arg)
{
    first_put(arg, rtmd_str_make(ch->name, ch->name_len), ch->n_members);
}

static void on_overview(void *arg, int status, const struct rtmd_store_overview *ov)
{
    struct overview_call *call = arg;
    if (status < 0 || ov->has_online) {
        call->cb(call->arg, status, ov);
        free(call);
        return;
    }
    struct rtmd_store_overview full = *ov;
    struct first_names *users = rtmd_malloc(sizeof(*users));
    struct first_names *chans = rtmd_malloc(sizeof(*chans));
    users->n = chans->n = 0;
    rtmd_presence_app_foreach(call->app, put_session, NULL, users);
    rtmd_presence_app_foreach(call->app, NULL, put_channel, chans);
    full.has_online = true;
    full.n_users = rtmd_presence_app_session_count(call->app);
    full.n_uids = users->n;
    full.uids = users->names;
    full.n_channels = rtmd_presence_app_channel_count(call->app);
    full.n_listed = chans->n;
    full.channels = chans->names;
    full.members = chans->members;
    call->cb(call->arg, 0, &full);
    free(users);
    free(chans);
    free(call);
}

int rtmd_online_overview(struct rtmd_store *store, const struct rtmd_app *app,
                         rtmd_store_overview_cb cb, void *arg)
{
    if (!app || !cb)
        return -EINVAL;
    struct overview_call *call = rtmd_malloc(sizeof(*call));
    *call = (struct overview_call){app, cb, arg};
    int r = rtmd_store_overview(store, app, on_overview, call);
    if (r < 0)
        free(call);
    return r;
}
