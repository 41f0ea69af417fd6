/* Unit tests for store/evlog.c: the in-memory event log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "store/evlog.c"

/* Appends n events "e<seq>" and returns the last seq. */
static uint64_t push_n(struct rtmd_evlog *l, int n)
{
    uint64_t seq = 0;
    for (int i = 0; i < n; i++) {
        char json[32];
        int len = snprintf(json, sizeof(json), "e%llu", (unsigned long long)l->next_seq);
        seq = rtmd_evlog_push(l, json, (size_t)len);
    }
    return seq;
}

static void release_all(struct rtmd_evrec **recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rtmd_evrec_release(recs[i]);
}

static void test_retention_bound(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 5, 1);
    assert_int_equal(l.cap, 0); /* lazy */
    push_n(&l, 3);
    assert_int_equal(l.count, 3);
    assert_true(l.cap >= 3 && l.cap <= 5);
    push_n(&l, 9);
    assert_int_equal(l.count, 5);
    assert_int_equal(l.cap, 5);
    assert_int_equal(rtmd_evlog_oldest_seq(&l), 8);
    struct rtmd_evrec *recs[10] = {0};
    size_t n = rtmd_evlog_peek(&l, 0, 10, recs);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        char want[8];
        snprintf(want, sizeof(want), "e%zu", i + 8);
        assert_int_equal(recs[i]->seq, i + 8);
        assert_string_equal(recs[i]->json, want);
    }
    release_all(recs, n);
    rtmd_evlog_free(&l);
}

static void test_growth_keeps_order(void **state)
{
    (void)state;
    /* Grows 8 → 16 → ... → 2000 while wrapping; order must hold throughout. */
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 2000, 1);
    push_n(&l, 2500);
    assert_int_equal(l.count, 2000);
    assert_int_equal(l.cap, 2000);
    struct rtmd_evrec **recs = malloc(2000 * sizeof(*recs));
    size_t n = rtmd_evlog_peek(&l, 0, 2000, recs);
    assert_int_equal(n, 2000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(recs[i]->seq, 501 + i);
    release_all(recs, n);
    free(recs);
    rtmd_evlog_free(&l);
}

static void test_max_per_pull_oldest_first(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 100, 1);
    push_n(&l, 25);
    struct rtmd_evrec *recs[10] = {0};
    uint64_t want = 1;
    for (int round = 0; round < 3; round++) {
        size_t n = rtmd_evlog_peek(&l, 0, 10, recs);
        assert_int_equal(n, round < 2 ? 10 : 5);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(recs[i]->seq, want++);
        rtmd_evlog_advance(&l, 0, recs[n ? n - 1 : 0]->seq);
        release_all(recs, n);
    }
    assert_int_equal(rtmd_evlog_peek(&l, 0, 10, recs), 0);
    assert_int_equal(rtmd_evlog_unread(&l, 0), 0);
    /* Peeking without advancing returns the same records again. */
    push_n(&l, 2);
    assert_int_equal(rtmd_evlog_peek(&l, 0, 10, recs), 2);
    release_all(recs, 2);
    assert_int_equal(rtmd_evlog_peek(&l, 0, 1, recs), 1);
    assert_int_equal(recs[0]->seq, 26);
    release_all(recs, 1);
    rtmd_evlog_free(&l);
}

static void test_regions_independent(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 100, 3);
    push_n(&l, 10);
    struct rtmd_evrec *recs[100] = {0};
    size_t n = rtmd_evlog_peek(&l, 0, 100, recs);
    assert_int_equal(n, 10);
    rtmd_evlog_advance(&l, 0, recs[n ? n - 1 : 0]->seq);
    release_all(recs, n);
    assert_int_equal(rtmd_evlog_unread(&l, 0), 0);
    assert_int_equal(rtmd_evlog_unread(&l, 1), 10);
    assert_int_equal(rtmd_evlog_unread(&l, 2), 10);
    n = rtmd_evlog_peek(&l, 1, 4, recs);
    rtmd_evlog_advance(&l, 1, recs[n ? n - 1 : 0]->seq);
    release_all(recs, n);
    assert_int_equal(rtmd_evlog_unread(&l, 1), 6);
    n = rtmd_evlog_peek(&l, 1, 100, recs);
    assert_int_equal(recs[0]->seq, 5);
    release_all(recs, n);
    /* A region out of range reads nothing and advancing it is ignored. */
    assert_int_equal(rtmd_evlog_peek(&l, 3, 100, recs), 0);
    rtmd_evlog_advance(&l, RTMD_REGIONS_MAX + 1, 5);
    /* Positions never move back, nor past the newest record. */
    rtmd_evlog_advance(&l, 1, 2);
    assert_int_equal(l.cursor[1], 4);
    rtmd_evlog_advance(&l, 2, 1000);
    assert_int_equal(l.cursor[2], 10);
    rtmd_evlog_rewind(&l, 2, 3);
    assert_int_equal(rtmd_evlog_unread(&l, 2), 7);
    rtmd_evlog_free(&l);
}

static void test_dropped_per_region(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 4, 3);
    push_n(&l, 4);                /* 1..4 */
    rtmd_evlog_advance(&l, 0, 4); /* region 0 read all */
    rtmd_evlog_advance(&l, 1, 2); /* region 1 read 1..2 */
    push_n(&l, 3);                /* 5..7 overwrite 1..3 */
    assert_int_equal(rtmd_evlog_dropped(&l, 0), 0);
    assert_int_equal(rtmd_evlog_dropped(&l, 1), 1); /* 3 */
    assert_int_equal(rtmd_evlog_dropped(&l, 2), 3); /* 1, 2, 3 */
    /* Region 2 now reads the oldest still held: 4. */
    struct rtmd_evrec *recs[8] = {0};
    size_t n = rtmd_evlog_peek(&l, 2, 8, recs);
    assert_int_equal(n, 4);
    assert_int_equal(recs[0]->seq, 4);
    release_all(recs, n);
    assert_int_equal(rtmd_evlog_unread(&l, 1), 4);
    push_n(&l, 1); /* overwrites 4: unread by regions 1 and 2 */
    assert_int_equal(rtmd_evlog_dropped(&l, 0), 0);
    assert_int_equal(rtmd_evlog_dropped(&l, 1), 2);
    assert_int_equal(rtmd_evlog_dropped(&l, 2), 4);
    rtmd_evlog_free(&l);
}

static void test_record_survives_overwrite(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 2, 1);
    push_n(&l, 2);
    struct rtmd_evrec *recs[2] = {0};
    size_t n = rtmd_evlog_peek(&l, 0, 2, recs);
    assert_int_equal(n, 2);
    assert_int_equal(recs[0]->refs, 2);
    push_n(&l, 5); /* both overwritten while held */
    assert_int_equal(recs[0]->refs, 1);
    assert_string_equal(recs[0]->json, "e1"); /* ASan catches a use after free */
    assert_string_equal(recs[1]->json, "e2");
    assert_int_equal(rtmd_evrec_str(recs[1]).len, 2);
    release_all(recs, n);
    rtmd_evlog_free(&l);
    /* The log freed first: held records still live. */
    rtmd_evlog_init(&l, 3, 1);
    push_n(&l, 3);
    n = rtmd_evlog_peek(&l, 0, 1, recs);
    rtmd_evlog_free(&l);
    assert_string_equal(recs[0]->json, "e1");
    release_all(recs, n);
}

static void test_reserve_append_and_restore(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 10, 2);
    uint64_t a = rtmd_evlog_reserve(&l), b = rtmd_evlog_reserve(&l), c = rtmd_evlog_reserve(&l);
    assert_int_equal(a, 1);
    assert_int_equal(c, 3);
    (void)b;
    /* b's commit failed: a gap. Appending out of order or unreserved fails. */
    struct rtmd_evrec *ra = rtmd_evrec_new(a, "a", 1, RTMD_STR_NULL),
                      *rc = rtmd_evrec_new(c, "c", 1, RTMD_STR_NULL);
    struct rtmd_evrec *bad = rtmd_evrec_new(9, "x", 1, RTMD_STR_NULL);
    assert_int_equal(rtmd_evlog_append(&l, bad), -EINVAL);
    assert_int_equal(rtmd_evlog_append(&l, ra), 0);
    assert_int_equal(rtmd_evlog_append(&l, rc), 0);
    bad->seq = 2;
    assert_int_equal(rtmd_evlog_append(&l, bad), -EINVAL);
    rtmd_evrec_release(bad);
    struct rtmd_evrec *recs[4] = {0};
    rtmd_evlog_advance(&l, 0, 1);
    size_t n = rtmd_evlog_peek(&l, 0, 4, recs);
    assert_int_equal(n, 1);
    assert_int_equal(recs[0]->seq, 3);
    release_all(recs, n);
    rtmd_evlog_free(&l);

    /* Restore: any increasing numbers, no drops counted, next_seq follows. */
    rtmd_evlog_init(&l, 3, 2);
    for (uint64_t s = 10; s <= 50; s += 10)
        assert_int_equal(rtmd_evlog_restore(&l, rtmd_evrec_new(s, "r", 1, RTMD_STR_NULL)), 0);
    struct rtmd_evrec *old = rtmd_evrec_new(5, "o", 1, RTMD_STR_NULL);
    assert_int_equal(rtmd_evlog_restore(&l, old), -EINVAL);
    rtmd_evrec_release(old);
    assert_int_equal(l.count, 3);
    assert_int_equal(rtmd_evlog_dropped(&l, 0), 0);
    assert_int_equal(l.next_seq, 51);
    rtmd_evlog_restore_next_seq(&l, 40); /* never lowers */
    assert_int_equal(l.next_seq, 51);
    rtmd_evlog_restore_cursor(&l, 1, 40);
    assert_int_equal(rtmd_evlog_unread(&l, 0), 3);
    assert_int_equal(rtmd_evlog_unread(&l, 1), 1);
    assert_int_equal(push_n(&l, 1), 51);
    assert_int_equal(rtmd_evlog_dropped(&l, 0), 1);
    assert_int_equal(rtmd_evlog_dropped(&l, 1), 0);
    rtmd_evlog_free(&l);
}

/* rtmd_evlog_copy joins the oldest unread records with commas, appended to
 * what the buffer holds, across the ring's wrap, sized from the running sums. */
static void test_copy_joins_across_the_wrap(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 5, 2);
    push_n(&l, 8); /* holds e4..e8; the ring has wrapped */
    assert_int_equal(l.head, 3);
    struct rtmd_buf out;
    rtmd_buf_init(&out, 1024);
    rtmd_buf_append(&out, "[", 1);
    uint64_t last = 0;
    assert_int_equal(rtmd_evlog_copy(&l, 0, 3, &out, &last), 3);
    assert_int_equal(last, 6);
    assert_int_equal(out.len, strlen("[e4,e5,e6"));
    assert_memory_equal(out.data, "[e4,e5,e6", out.len);
    rtmd_evlog_advance(&l, 0, last);

    rtmd_buf_reset(&out);
    push_n(&l, 100); /* e9..e108, sizes change from 2 to 4 bytes; holds e104..e108 */
    assert_int_equal(rtmd_evlog_copy(&l, 0, 1000, &out, &last), 5);
    assert_int_equal(last, 108);
    assert_int_equal(out.len, strlen("e104,e105,e106,e107,e108"));
    assert_memory_equal(out.data, "e104,e105,e106,e107,e108", out.len);
    rtmd_evlog_advance(&l, 0, last);

    /* nothing unread, a bad region, and a buffer too small for the answer */
    rtmd_buf_reset(&out);
    assert_int_equal(rtmd_evlog_copy(&l, 0, 10, &out, &last), 0);
    assert_int_equal(rtmd_evlog_copy(&l, 7, 10, &out, &last), 0);
    assert_int_equal(out.len, 0);
    struct rtmd_buf small;
    rtmd_buf_init(&small, 10);
    assert_int_equal(rtmd_evlog_copy(&l, 1, 10, &small, &last), 0);
    assert_int_equal(small.len, 0);
    assert_int_equal(rtmd_evlog_copy(&l, 1, 2, &small, &last), 2); /* "e104,e105" fits */
    assert_memory_equal(small.data, "e104,e105", small.len);
    rtmd_buf_free(&small);
    rtmd_buf_free(&out);
    rtmd_evlog_free(&l);
}

/* Lossless reads: records above after, numbered, and the numbers retention
 * removed. */
static void test_copy_after_numbers_and_trimmed(void **state)
{
    (void)state;
    struct rtmd_evlog l;
    rtmd_evlog_init(&l, 3, 1);
    for (int i = 0; i < 5; i++) {
        char json[64];
        int len = snprintf(json, sizeof(json), "{\"ms\":%d,\"ts\":%d,\"type\":\"Login\"}", i, i);
        struct rtmd_evrec *r =
            rtmd_evrec_new(rtmd_evlog_reserve(&l), json, (size_t)len, RTMD_STR_LIT("n1|7"));
        assert_int_equal(rtmd_evlog_append(&l, r), 0);
    }
    /* 1 and 2 were overwritten: after=0 answers 3..5, two numbers lost */
    assert_int_equal(rtmd_evlog_trimmed_after(&l, 0), 2);
    assert_int_equal(rtmd_evlog_trimmed_after(&l, 2), 0);
    struct rtmd_buf out;
    rtmd_buf_init(&out, SIZE_MAX);
    uint64_t last = 0;
    assert_int_equal(rtmd_evlog_copy_after(&l, 3, 10, &out, &last), 2);
    assert_int_equal(last, 5);
    const char *want = "{\"ms\":3,\"seq\":4,\"session_id\":\"n1|7\",\"ts\":3,\"type\":\"Login\"},"
                       "{\"ms\":4,\"seq\":5,\"session_id\":\"n1|7\",\"ts\":4,\"type\":\"Login\"}";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    /* the position is not read or moved; nothing above the newest */
    assert_int_equal(rtmd_evlog_unread(&l, 0), 3);
    rtmd_buf_reset(&out);
    assert_int_equal(rtmd_evlog_copy_after(&l, 5, 10, &out, &last), 0);
    assert_int_equal(rtmd_evlog_copy_after(&l, 0, 1, &out, &last), 1);
    assert_int_equal(last, 3);
    rtmd_buf_free(&out);
    rtmd_evlog_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention_bound),
        cmocka_unit_test(test_growth_keeps_order),
        cmocka_unit_test(test_max_per_pull_oldest_first),
        cmocka_unit_test(test_regions_independent),
        cmocka_unit_test(test_dropped_per_region),
        cmocka_unit_test(test_record_survives_overwrite),
        cmocka_unit_test(test_reserve_append_and_restore),
        cmocka_unit_test(test_copy_joins_across_the_wrap),
        cmocka_unit_test(test_copy_after_numbers_and_trimmed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
