/*
 * Unit tests for rtmd_ws_subprotocol() (net/ws.c): what an upgrade request's
 * Sec-WebSocket-Protocol header lines offer — rtm.v1 (1), nothing (0), or
 * only others (-1, answered 400 unsupported_subprotocol). Tokens compare
 * case-sensitively, items are comma-separated with optional spaces, and
 * every header line counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/ws.h"

#define MAX_LINES 4

/* A request with the given header lines ("Name", "value" pairs, NULL-ended). */
static int offer(const char *const *pairs)
{
    struct rtmd_http_header headers[MAX_LINES];
    struct rtmd_http_request req = {0};
    size_t n = 0;
    for (; pairs[2 * n]; n++) {
        headers[n].name = rtmd_str_cstr(pairs[2 * n]);
        headers[n].value = rtmd_str_cstr(pairs[2 * n + 1]);
    }
    req.headers = headers;
    req.n_headers = n;
    return rtmd_ws_subprotocol(&req);
}

#define OFFER(...) offer((const char *const[]){__VA_ARGS__, NULL})

static void test_rtm_v1_offered(void **state)
{
    (void)state;
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "rtm.v1"), 1);
    assert_int_equal(OFFER("sec-websocket-protocol", "rtm.v1"), 1); /* the name has no case */
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "chat, rtm.v1"), 1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "  rtm.v1\t,chat"), 1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", ",,rtm.v1,,"), 1);
    /* in a later header line */
    assert_int_equal(
        OFFER("Sec-WebSocket-Protocol", "chat", "Host", "x", "Sec-WebSocket-Protocol", "rtm.v1"),
        1);
}

static void test_none_offered(void **state)
{
    (void)state;
    assert_int_equal(OFFER("Host", "127.0.0.1"), 0);
    const char *const none[] = {NULL};
    assert_int_equal(offer(none), 0);
    /* a look-alike header name is not the header */
    assert_int_equal(OFFER("Sec-WebSocket-Protocols", "chat"), 0);
}

static void test_only_others_offered(void **state)
{
    (void)state;
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "chat"), -1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "RTM.V1"), -1); /* tokens keep their case */
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "rtm.v1x, xrtm.v1"), -1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "rtm.v"), -1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "rtm .v1"), -1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", ""), -1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", " , "), -1);
    assert_int_equal(OFFER("Sec-WebSocket-Protocol", "a", "Sec-WebSocket-Protocol", "b"), -1);
}

/* A value that is not NUL-terminated where its length ends: the length rules. */
static void test_value_length_is_respected(void **state)
{
    (void)state;
    static const char wire[] = "rtm.v1x";
    struct rtmd_http_header h = {RTMD_STR_LIT("Sec-WebSocket-Protocol"),
                                 rtmd_str_make(wire, 6)}; /* "rtm.v1" */
    struct rtmd_http_request req = {0};
    req.headers = &h;
    req.n_headers = 1;
    assert_int_equal(rtmd_ws_subprotocol(&req), 1);
    h.value = rtmd_str_make(wire, 5); /* "rtm.v" */
    assert_int_equal(rtmd_ws_subprotocol(&req), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rtm_v1_offered),
        cmocka_unit_test(test_none_offered),
        cmocka_unit_test(test_only_others_offered),
        cmocka_unit_test(test_value_length_is_respected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
