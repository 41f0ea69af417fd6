/*
 * assets.c — files compiled into the binary and served as they are
 * (GET /v1/rtm.js: the JavaScript client, clients/js/rtm.js), and the
 * dashboard's page (src/api/dashboard/, which dashboard.c serves).
 *
 * Each file is assembled into .rodata with .incbin (ASSET below), so rtmd
 * reads nothing from disk to serve it and a binary always serves the files
 * of its own source tree. The Makefile names each file as a prerequisite of
 * assets.o (the compiler's dependency list does not see .incbin).
 *
 * Answers: 200 with the file, its ETag (a hash of its bytes, computed on
 * the first request) and `Cache-Control: no-cache` (a browser may keep a
 * copy but asks again, so a new binary's file is used at once); 304 to an
 * If-None-Match that names the ETag; HEAD as GET without the body; other
 * methods 405; CORS headers as on the REST API ([server] cors_origins).
 * To add a file: one ASSET line and one row of assets_[], and the file in
 * the Makefile's ASSET_FILES.
 */
#include <http_parser.h>
#include <stdio.h>

#include "api/dashboard.h"
#include "api/internal.h"

/* Defines NAME_start and NAME_end around the bytes of FILE (a path from the
 * top of the source tree, where make runs the compiler). */
#define ASSET(name, file)                                                                          \
    __asm__(".pushsection .rodata\n"                                                               \
            ".balign 16\n"                                                                         \
            ".globl " #name "_start\n"                                                             \
            ".hidden " #name "_start\n" #name "_start:\n"                                          \
            ".incbin \"" file "\"\n"                                                               \
            ".globl " #name "_end\n"                                                               \
            ".hidden " #name "_end\n" #name "_end:\n"                                              \
            ".byte 0\n"                                                                            \
            ".popsection\n");                                                                      \
    extern const char name##_start[] __attribute__((visibility("hidden")));                        \
    extern const char name##_end[] __attribute__((visibility("hidden")))

ASSET(rtmd_asset_rtm_js, "clients/js/rtm.js");
ASSET(rtmd_asset_dash_html, "src/api/dashboard/index.html");
ASSET(rtmd_asset_dash_js, "src/api/dashboard/dashboard.js");
ASSET(rtmd_asset_dash_css, "src/api/dashboard/dashboard.css");

/* The dashboard's page, below /dashboard/: served by dashboard.c, behind a
 * customer's credentials (not here: these are public). */
const struct dash_asset dash_assets[] = {
    {"", "text/html;charset=utf-8", rtmd_asset_dash_html_start, rtmd_asset_dash_html_end},
    {"dashboard.js", "text/javascript;charset=utf-8", rtmd_asset_dash_js_start,
     rtmd_asset_dash_js_end},
    {"dashboard.css", "text/css;charset=utf-8", rtmd_asset_dash_css_start, rtmd_asset_dash_css_end},
};
const size_t dash_n_assets = RTMD_ARRAY_SIZE(dash_assets);

struct asset {
    const char *path;
    const char *content_type;
    const char *start;
    const char *end;
};

static const struct asset assets_[] = {
    {"/v1/rtm.js", "text/javascript; charset=utf-8", rtmd_asset_rtm_js_start,
     rtmd_asset_rtm_js_end},
};

/* "\"<16 hex digits>\"" per asset, made on first use. */
#define ETAG_LEN 18
static char etags_[RTMD_ARRAY_SIZE(assets_)][ETAG_LEN + 1];

/* FNV-1a, 64 bits: enough to tell two versions of a file apart. */
static const char *etag_of(size_t i)
{
    if (etags_[i][0])
        return etags_[i];
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = assets_[i].start; p < assets_[i].end; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    snprintf(etags_[i], sizeof(etags_[i]), "\"%016llx\"", (unsigned long long)h);
    return etags_[i];
}

/* If-None-Match names etag: "*", or a list holding it (W/ ignored, as the
 * weak comparison of RFC 9110 §13.1.2 has it). */
static bool none_match(struct rtmd_str header, const char *etag)
{
    if (!header.p)
        return false;
    size_t elen = strlen(etag);
    size_t i = 0;
    while (i < header.len) {
        while (i < header.len && (header.p[i] == ' ' || header.p[i] == '\t' || header.p[i] == ','))
            i++;
        if (i < header.len && header.p[i] == '*')
            return true;
        if (header.len - i >= 2 && header.p[i] == 'W' && header.p[i + 1] == '/')
            i += 2;
        if (header.len - i >= elen && memcmp(header.p + i, etag, elen) == 0 &&
            (header.len - i == elen || header.p[i + elen] == ',' || header.p[i + elen] == ' ' ||
             header.p[i + elen] == '\t'))
            return true;
        while (i < header.len && header.p[i] != ',')
            i++;
    }
    return false;
}

bool api_asset(struct rtmd_api *api, struct rtmd_http_request *req)
{
    size_t i = 0;
    while (i < RTMD_ARRAY_SIZE(assets_) && !rtmd_str_eq_cstr(req->path, assets_[i].path))
        i++;
    if (i == RTMD_ARRAY_SIZE(assets_))
        return false;
    api_cors_headers(api, req);
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        char allow[] = "Allow: GET, HEAD\r\n";
        api_count_status(api, 405);
        rtmd_http_respond_error_headers(req, 405, "method_not_allowed", "method not allowed here",
                                        rtmd_str_make(allow, sizeof(allow) - 1));
        return true;
    }
    const char *etag = etag_of(i);
    char headers[64 + ETAG_LEN];
    int n = snprintf(headers, sizeof(headers), "ETag: %s\r\nCache-Control: no-cache\r\n", etag);
    struct rtmd_str extra = rtmd_str_make(headers, (size_t)n);
    if (none_match(rtmd_http_header(req, "If-None-Match"), etag)) {
        api_count_status(api, 304);
        rtmd_http_respond(req, 304, "", extra, RTMD_STR_NULL);
        return true;
    }
    api_count_status(api, 200);
    rtmd_http_respond(req, 200, assets_[i].content_type, extra,
                      rtmd_str_make(assets_[i].start, (size_t)(assets_[i].end - assets_[i].start)));
    return true;
}
