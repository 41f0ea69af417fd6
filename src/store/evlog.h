/*
 * evlog.h — one in-memory presence event log (one per app and log kind).
 *
 * A ring of at most `retain` records, oldest first. Each record is an
 * immutable, reference-counted (seq, JSON) pair; the log numbers records
 * itself with strictly increasing sequence numbers starting at 1. Every
 * region has its own read position (the seq of the last record it read, 0
 * for none), so regions drain the same log independently: each reads every
 * event once.
 *
 * When the ring is full, appending overwrites the oldest record. For every
 * region whose position had not passed it, that counts one drop. A reader
 * that holds references (a pull in flight) keeps the overwritten record
 * alive until it releases them.
 *
 * The ring starts empty and grows by doubling up to `retain`, so an app with
 * few events costs little memory.
 *
 * Sequence numbers may be reserved before the record exists
 * (rtmd_evlog_reserve(), at the time an event is submitted to a store) and
 * appended later, once durable; a reserved number that is never appended
 * (its commit failed) is simply a gap.
 *
 * Threading: loop thread only. Reference counts are not atomic; another
 * thread may read a record's seq and bytes (never its count) while the loop
 * thread holds a reference, given proper hand-over (a mutex).
 */
#ifndef RTMD_STORE_EVLOG_H
#define RTMD_STORE_EVLOG_H

#include "core/buf.h"
#include "core/common.h"
#include "core/config.h"

struct rtmd_evrec {
    uint32_t refs;
    uint32_t len; /* bytes of json, no NUL counted */
    uint64_t seq;
    uint64_t end;         /* the log's rtmd_evlog.bytes once this record was put */
    uint32_t session_len; /* bytes of the session_id, after the json's NUL */
    uint32_t ts_at;       /* rtmd_event_ts_offset() of the json (the numbered form) */
    uint32_t numbered_len;
    char *numbered; /* the numbered form, made at the record's first lossless read */
    char json[];    /* len bytes, a NUL, then session_len bytes of session_id */
};

/* A new record holding a copy of json and of session (the event's
 * session_id, store.h; may be empty), with one reference owned by the
 * caller. Aborts on out-of-memory (the size is bounded by the event format). */
struct rtmd_evrec *rtmd_evrec_new(uint64_t seq, const char *json, size_t len,
                                  struct rtmd_str session);
static inline struct rtmd_evrec *rtmd_evrec_ref(struct rtmd_evrec *r)
{
    r->refs++;
    return r;
}
/* Drops one reference; frees the record with the last. NULL is ignored. */
void rtmd_evrec_release(struct rtmd_evrec *r);
static inline struct rtmd_str rtmd_evrec_str(const struct rtmd_evrec *r)
{
    return rtmd_str_make(r->json, r->len);
}
static inline struct rtmd_str rtmd_evrec_session(const struct rtmd_evrec *r)
{
    return rtmd_str_make(r->json + r->len + 1, r->session_len);
}

struct rtmd_evlog {
    struct rtmd_evrec **ring;
    uint32_t cap;    /* slots allocated, <= retain */
    uint32_t retain; /* most records kept */
    uint32_t head;   /* slot of the oldest record */
    uint32_t count;  /* records held */
    uint32_t n_regions;
    uint64_t next_seq;                  /* the next number rtmd_evlog_reserve() hands out */
    uint64_t last_seq;                  /* seq of the newest record appended, 0 for none */
    uint64_t bytes;                     /* len + 1 of every record ever put, summed */
    uint64_t trimmed_seq;               /* seq of the newest record retention removed */
    uint64_t cursor[RTMD_REGIONS_MAX];  /* last seq read, per region */
    uint64_t dropped[RTMD_REGIONS_MAX]; /* records overwritten unread */
};

/* An empty log keeping at most retain (>= 1) records, with read positions
 * for regions 0..n_regions-1 (n_regions <= RTMD_REGIONS_MAX). */
void rtmd_evlog_init(struct rtmd_evlog *l, uint32_t retain, uint32_t n_regions);
/* Releases the log's references and its ring. */
void rtmd_evlog_free(struct rtmd_evlog *l);

/* Hands out the next sequence number. */
static inline uint64_t rtmd_evlog_reserve(struct rtmd_evlog *l)
{
    return l->next_seq++;
}

/*
 * Appends rec, taking over the caller's reference. rec->seq must be above
 * the newest record's and below next_seq (reserved); otherwise returns
 * -EINVAL and the reference stays with the caller. Overwrites and counts
 * drops as described above.
 */
int rtmd_evlog_append(struct rtmd_evlog *l, struct rtmd_evrec *rec);
/* Reserves a number, makes a record of json and appends it; returns its seq. */
uint64_t rtmd_evlog_push(struct rtmd_evlog *l, const char *json, size_t len);

/*
 * Up to max of the oldest records region has not read, oldest first, into
 * out (room for max pointers); returns how many. Takes one reference on each
 * (release every one with rtmd_evrec_release()); does not move the region's
 * position (rtmd_evlog_advance() does).
 */
size_t rtmd_evlog_peek(struct rtmd_evlog *l, uint32_t region, uint32_t max,
                       struct rtmd_evrec **out);
/* Records region has not read that the log still holds. */
uint32_t rtmd_evlog_unread(const struct rtmd_evlog *l, uint32_t region);
/* Appends the oldest (at most max) records region has not read to out as
 * JSON joined by commas; returns how many and sets *last_seq to the seq of
 * the last one. Nothing is appended when out's bound would be passed (0). */
size_t rtmd_evlog_copy(const struct rtmd_evlog *l, uint32_t region, uint32_t max,
                       struct rtmd_buf *out, uint64_t *last_seq);
/*
 * A lossless read: appends the oldest (at most max) records numbered above
 * after, in their numbered form (rtmd_event_numbered), joined by commas;
 * returns how many and sets *last_seq to the seq of the last one. Region
 * positions are not read or moved. Nothing is appended when out's bound
 * would be passed (0). Each record keeps its numbered form once made (a
 * log read this way holds its events twice; repeated reads cost one copy
 * per event, as a draining pull does).
 */
size_t rtmd_evlog_copy_after(struct rtmd_evlog *l, uint64_t after, uint32_t max,
                             struct rtmd_buf *out, uint64_t *last_seq);
/* Numbers above after that retention removed (trimmed_seq - after, or 0):
 * the events a read from after can no longer return. Counts numbers, so a
 * number that never held an event (store.h) counts too. */
static inline uint64_t rtmd_evlog_trimmed_after(const struct rtmd_evlog *l, uint64_t after)
{
    return l->trimmed_seq > after ? l->trimmed_seq - after : 0;
}

/* Marks everything up to seq read for region (a position never moves back). */
void rtmd_evlog_advance(struct rtmd_evlog *l, uint32_t region, uint64_t seq);
/* Sets region's position to seq even if that moves it back (undoing a read
 * whose persistence failed). */
void rtmd_evlog_rewind(struct rtmd_evlog *l, uint32_t region, uint64_t seq);
static inline uint64_t rtmd_evlog_dropped(const struct rtmd_evlog *l, uint32_t region)
{
    return region < RTMD_REGIONS_MAX ? l->dropped[region] : 0;
}
/* Seq of the oldest record held, or 0 when empty. */
uint64_t rtmd_evlog_oldest_seq(const struct rtmd_evlog *l);

/*
 * Loading from disk: records in increasing seq order (any numbers, gaps
 * allowed), then positions. A restored record counts no drops; next_seq
 * moves past it. Returns -EINVAL (reference kept by the caller) when seq is
 * not above the newest record's.
 */
int rtmd_evlog_restore(struct rtmd_evlog *l, struct rtmd_evrec *rec);
void rtmd_evlog_restore_cursor(struct rtmd_evlog *l, uint32_t region, uint64_t seq);
/* Makes the next reserved number at least seq (numbers already on disk). */
void rtmd_evlog_restore_next_seq(struct rtmd_evlog *l, uint64_t seq);
/* After loading: numbers below the oldest record count as removed by
 * retention once the log has numbered more than retain events (the disk
 * keeps only the newest retain). */
void rtmd_evlog_restore_trimmed(struct rtmd_evlog *l);

#endif
