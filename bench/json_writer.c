/*
 * json_writer.c — rtmd's streaming JSON writer (core/json.c) against cJSON
 * building a tree and printing it, for the same answer: a history page of
 * N messages ({"code":"ok","messages":[{"dst","message_type","ms",
 * "payload","src"}...],"request_id","result"}), payloads with characters to
 * escape. Both must write the same bytes (checked first); then each writes
 * the answer again and again for --ms milliseconds, in alternating rounds,
 * and the median time per answer of each is printed, with the ratio.
 *
 *   build/bench/json_writer [--messages N] [--rounds R] [--ms MS] [--plain]
 *
 * --plain: payloads with nothing to escape.
 *
 * The writer appends into a buffer kept between answers, as the API does
 * (one answer buffer per server); cJSON allocates every node and the
 * printed string, then frees them, which is what building answers with it
 * would cost.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"

#define ROUNDS_MAX 99

struct msg {
    char src[16], dst[16], payload[96];
    long long ms;
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void with_writer(struct rtmd_buf *b, const struct msg *m, int n)
{
    struct rtmd_json j;
    rtmd_buf_reset(b);
    rtmd_json_init(&j, b);
    rtmd_json_obj_begin(&j);
    rtmd_json_key(&j, "code");
    rtmd_json_cstr(&j, "ok");
    rtmd_json_key(&j, "messages");
    rtmd_json_arr_begin(&j);
    for (int i = 0; i < n; i++) {
        rtmd_json_obj_begin(&j);
        rtmd_json_key(&j, "dst");
        rtmd_json_cstr(&j, m[i].dst);
        rtmd_json_key(&j, "message_type");
        rtmd_json_cstr(&j, "peer_message");
        rtmd_json_key(&j, "ms");
        rtmd_json_i64(&j, m[i].ms);
        rtmd_json_key(&j, "payload");
        rtmd_json_cstr(&j, m[i].payload);
        rtmd_json_key(&j, "src");
        rtmd_json_cstr(&j, m[i].src);
        rtmd_json_obj_end(&j);
    }
    rtmd_json_arr_end(&j);
    rtmd_json_key(&j, "request_id");
    rtmd_json_cstr(&j, "1_8812345678901234567");
    rtmd_json_key(&j, "result");
    rtmd_json_cstr(&j, "success");
    rtmd_json_obj_end(&j);
    if (rtmd_json_finish(&j) != 0)
        abort();
}

/* Returns the printed answer (free() it). */
static char *with_cjson(const struct msg *m, int n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "code", "ok");
    cJSON *arr = cJSON_AddArrayToObject(root, "messages");
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dst", m[i].dst);
        cJSON_AddStringToObject(o, "message_type", "peer_message");
        cJSON_AddNumberToObject(o, "ms", (double)m[i].ms);
        cJSON_AddStringToObject(o, "payload", m[i].payload);
        cJSON_AddStringToObject(o, "src", m[i].src);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddStringToObject(root, "request_id", "1_8812345678901234567");
    cJSON_AddStringToObject(root, "result", "success");
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!out)
        abort();
    return out;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long arg(int argc, char **argv, const char *name, long def, long lo, long hi)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || v < lo || v > hi) {
                fprintf(stderr, "%s: %ld..%ld\n", name, lo, hi);
                exit(2);
            }
            return v;
        }
    return def;
}

int main(int argc, char **argv)
{
    int n = (int)arg(argc, argv, "--messages", 100, 1, 100000);
    int rounds = (int)arg(argc, argv, "--rounds", 5, 1, ROUNDS_MAX);
    double budget = (double)arg(argc, argv, "--ms", 500, 10, 600000) * 1e6;
    bool plain = false;
    for (int i = 1; i < argc; i++)
        plain |= strcmp(argv[i], "--plain") == 0;
    struct msg *m = calloc((size_t)n, sizeof(*m));
    if (!m)
        return 1;
    for (int i = 0; i < n; i++) {
        snprintf(m[i].src, sizeof(m[i].src), "user%d", i % 50);
        snprintf(m[i].dst, sizeof(m[i].dst), "peer%d", i % 7);
        snprintf(m[i].payload, sizeof(m[i].payload),
                 plain ? "message %d: plain text, nothing to escape in it at all"
                       : "message %d: \"quoted\", a \\ backslash,\ta tab and a line\nend",
                 i);
        m[i].ms = 1733500000000LL + i;
    }
    struct rtmd_buf b;
    rtmd_buf_init(&b, 1 << 30);
    with_writer(&b, m, n);
    char *ref = with_cjson(m, n);
    if (strlen(ref) != b.len || memcmp(ref, b.data, b.len) != 0) {
        fprintf(stderr, "the two answers differ:\n%.*s\n%s\n", (int)b.len, b.data, ref);
        return 1;
    }
    printf("answer: %d messages, %zu bytes%s\n", n, b.len, plain ? ", nothing escaped" : "");
    free(ref);

    double w[ROUNDS_MAX], c[ROUNDS_MAX];
    for (int r = 0; r < rounds; r++) {
        for (int side = 0; side < 2; side++) {
            bool writer = (side == 0) == (r % 2 == 0);
            long count = 0;
            double t0 = now_ns(), t;
            do {
                for (int k = 0; k < 16; k++, count++) {
                    if (writer)
                        with_writer(&b, m, n);
                    else
                        free(with_cjson(m, n));
                }
                t = now_ns();
            } while (t - t0 < budget);
            (writer ? w : c)[r] = (t - t0) / (double)count;
        }
    }
    qsort(w, (size_t)rounds, sizeof(double), cmp_double);
    qsort(c, (size_t)rounds, sizeof(double), cmp_double);
    double wm = w[rounds / 2], cm = c[rounds / 2];
    printf("rtmd writer      %10.0f ns per answer (median of %d rounds)\n", wm, rounds);
    printf("cJSON tree+print %10.0f ns per answer\n", cm);
    printf("ratio            %10.1fx\n", cm / wm);
    rtmd_buf_free(&b);
    free(m);
    return 0;
}
