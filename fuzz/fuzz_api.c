/*
 * fuzz_api.c — libFuzzer driver for the vendor REST API as a whole: the
 * router, app IDs, Basic and token credentials, rate buckets, the event
 * pulls, the send APIs' bodies (peer and channel messages, wait_for_ack,
 * offline), the history API (query bodies with every filter, ISO-8601
 * times, handles, count with quoted values), URL decoding, /healthz,
 * /metrics — and a WebSocket upgrade into the gateway, whose clients the
 * send APIs then reach.
 *
 * Unlike fuzz_http.c and fuzz_ws.c, the store is the real embedded one, on
 * a data_dir made once per process (and removed at exit): history and
 * offline rows, cursors and events accumulate from input to input, and
 * store calls complete from its worker thread, which the loop waits for in
 * poll (stub_run_loop). http.c runs over the conn stubs of stub_conn.h.
 * Input:
 *
 *   byte 0  flags
 *           bits 0-1  the end: 0-1 EOF, 2 the peer resets, 3 silence (timeouts)
 *           bit 2     backpressure: writes stay queued until a drain event
 *           bit 3     a write fails (the connection is reset) after 0-5 writes
 *           bit 7     timeouts may also fire between reads
 *   byte 1  seed of the PRNG that picks read sizes and events
 *   rest    the bytes the client sends
 *
 * The config (CONFIG below) has two apps of one customer, ck_fuzz with
 * secret fuzz-secret-0123456789 ("Authorization: Basic
 * Y2tfZnV6ejpmdXp6LXNlY3JldC0wMTIzNDU2Nzg5"), one app with a certificate
 * (tokens) and one without; the corpus's requests use them.
 *
 * FUZZ_API_DUMP=1 in the environment prints what the client received.
 *
 * Checked: the output is a sequence of well-formed responses (status line,
 * Content-Length within the output, X-Request-ID) until a 101; every
 * application/json body is one JSON object; the connection always ends
 * (freed) and nothing is left running for the next input. Leaks show under
 * ASan; races with the store's thread under TSan.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/reqid.h"
#include "gateway/gateway.h"
#include "net/http.h"
#include "net/ws.h"
#include "store/store.h"
#include "stub_conn.h"

#define FUZZ_NAME "fuzz_api"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (256 * 1024)
#define OUT_MAX   (16u * 1024 * 1024)

#define CONFIG                                                                                     \
    "[server]\n"                                                                                   \
    "listen = 127.0.0.1:0@default, 127.0.0.1:0@eu\n"                                               \
    "tls = off\n"                                                                                  \
    "data_dir = %s\n"                                                                              \
    "log_level = error\n"                                                                          \
    "cors_origins = https://a.example, http://b.example:8080\n"                                    \
    "[store]\n"                                                                                    \
    "sync = normal\n"                                                                              \
    "[limits]\n"                                                                                   \
    "events_qps = 10000000\n"                                                                      \
    "send_qps = 10000000\n"                                                                        \
    "history_qps = 10000000\n"                                                                     \
    "presence_qps = 10000000\n"                                                                    \
    "events_retain = 50\n"                                                                         \
    "events_max_pull = 20\n"                                                                       \
    "max_payload = 256\n"                                                                          \
    "http_max_body = 4096\n"                                                                       \
    "[customer:ck_fuzz]\n"                                                                         \
    "secret = fuzz-secret-0123456789\n"                                                            \
    "apps = 970CA35de60c44645bbae8a215061b33, 0123456789abcdef0123456789abcdef\n"                  \
    "[app:970CA35de60c44645bbae8a215061b33]\n"                                                     \
    "certificate = 5CFd2fd1755d40ecb72977518be15d3b\n"                                             \
    "[app:0123456789abcdef0123456789abcdef]\n"

static struct rtmd_config *cfg_;
static struct rtmd_store *store_;
static char data_dir_[64];
static struct rtmd_server server_;
static struct rtmd_messaging messaging_;
static struct rtmd_gateway gateway_;
static struct rtmd_api api_;
static struct rtmd_listener listener_;
static struct stub_conn *conn_; /* NULL once freed */
static struct rtmd_buf out_;

static void remove_data_dir(void)
{
    DIR *d = opendir(data_dir_);
    if (!d)
        return;
    struct dirent *e;
    char path[sizeof(data_dir_) + 300];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", data_dir_, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(data_dir_);
}

/* Once per process: the config, the store, the API and the gateway over the
 * one stub loop. */
static void setup(void)
{
    if (cfg_)
        return;
    snprintf(data_dir_, sizeof(data_dir_), "/tmp/rtmd-fuzz-api-XXXXXX");
    CHECK(mkdtemp(data_dir_) != NULL);
    atexit(remove_data_dir);
    char text[2048], err[256];
    snprintf(text, sizeof(text), CONFIG, data_dir_);
    cfg_ = rtmd_config_load_string("fuzz_api.conf", text, err, sizeof(err));
    if (!cfg_) {
        fprintf(stderr, "fuzz_api: %s\n", err);
        abort();
    }
    rtmd_request_id_init(1, 1);
    CHECK(rtmd_store_open(&store_, cfg_, &stub_loop_) == 0);
    stub_server_init(&server_, &listener_, cfg_, rtmd_api_handle);
    CHECK(rtmd_messaging_init(&messaging_, cfg_, store_) == 0);
    CHECK(rtmd_gateway_init(&gateway_, cfg_, store_, &messaging_) == 0);
    rtmd_ws_init(cfg_, &gateway_.ws_handler);
    CHECK(rtmd_api_init(&api_, cfg_, store_, &server_, &messaging_, &gateway_) == 0);
    server_.request_ctx = &api_;
    stub_run_loop(); /* the prune the store starts with */
}

/* Every JSON answer is one object (an answer to HEAD has none). */
static void check_body(const char *head, size_t head_len, const char *body, size_t len)
{
    if (!fuzz_find(head, head_len, "\r\nContent-Type: application/json") ||
        !fuzz_find(head, head_len, "\r\nContent-Length: "))
        return;
    cJSON *j = cJSON_ParseWithLength(body, len);
    CHECK(j != NULL && cJSON_IsObject(j));
    cJSON_Delete(j);
}

/* The writes so far complete. */
static void drain(void)
{
    if (conn_)
        stub_drain(conn_);
}

/* Between reads: whatever the PRNG says happens in the loop. */
static void events(struct stub_conn **conn)
{
    fuzz_loop_events(conn, (flags_ & 0x80) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fuzz_begin(&data, &size, INPUT_MAX))
        return 0;
    setup();
    rtmd_buf_init(&out_, OUT_MAX);
    fuzz_conn_open(&server_, &listener_, &out_, &conn_);

    feed(&conn_, data, size, 1024, drain, events);
    /* The connection must end (a logged-in client's session with it: its
     * Leaves and Logout are recorded), and the loop be left idle. */
    fuzz_end_conn(&conn_, flags_ & 3, NULL);
    CHECK(stub_live_ == 0);
    CHECK(server_.n_conns == 0);
    fuzz_check_responses(&out_, check_body);
    if (getenv("FUZZ_API_DUMP")) /* what the client got, to write a corpus by */
        fwrite(out_.data, 1, out_.len, stderr);
    rtmd_buf_free(&out_);
    return 0;
}
