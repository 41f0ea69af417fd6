/*
 * json.h — a streaming JSON writer over an rtmd_buf.
 *
 * rtmd writes every response and push with this writer, never with a DOM:
 * it measured about 3x faster than building a cJSON tree and printing it
 * (bench/json_writer.c; docs/BENCHMARKS.md). Callers write keys in
 * alphabetical order themselves (every REST answer's keys are sorted, as
 * Agora's are). Errors are sticky: the first failed append is
 * kept and returned by rtmd_json_finish(), so call sites need not check
 * every step.
 */
#ifndef RTMD_CORE_JSON_H
#define RTMD_CORE_JSON_H

#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"

#define RTMD_JSON_MAX_DEPTH 32

struct rtmd_json {
    struct rtmd_buf *buf;
    uint32_t comma; /* bit d set: the container at depth d already has an element */
    int depth;
    int err;
};

void rtmd_json_init(struct rtmd_json *j, struct rtmd_buf *buf);
void rtmd_json_obj_begin(struct rtmd_json *j);
void rtmd_json_obj_end(struct rtmd_json *j);
void rtmd_json_arr_begin(struct rtmd_json *j);
void rtmd_json_arr_end(struct rtmd_json *j);
/* Writes "key": (with a leading comma when needed). key is trusted ASCII. */
void rtmd_json_key(struct rtmd_json *j, const char *key);
/* Writes "key": for a key from data (escaped). */
void rtmd_json_key_str(struct rtmd_json *j, struct rtmd_str key);
void rtmd_json_str(struct rtmd_json *j, struct rtmd_str s);
void rtmd_json_cstr(struct rtmd_json *j, const char *s);
void rtmd_json_i64(struct rtmd_json *j, int64_t v);
void rtmd_json_u64(struct rtmd_json *j, uint64_t v);
void rtmd_json_bool(struct rtmd_json *j, bool v);
void rtmd_json_null(struct rtmd_json *j);
/* Appends bytes that already are one JSON value (a stored event). */
void rtmd_json_raw(struct rtmd_json *j, const char *p, size_t n);
/* 0 or the first error. */
int rtmd_json_finish(struct rtmd_json *j);

/*
 * Reading untrusted JSON (client frames, request bodies) with cJSON: the
 * text must be one object and nothing else but white space, nested at most
 * max_depth deep, with no raw NUL and no raw control character inside a
 * string. cJSON's strings end at a NUL, so a \u0000 escape would cut an ID
 * or payload short silently: each is read as \u0001 instead (which no ID
 * allows) and *had_nul is set, so payload checks can refuse U+0001 too.
 * Returns the parsed object, or NULL with *why set to a static message.
 * Free with cJSON_Delete().
 */
struct cJSON;
struct cJSON *rtmd_json_parse_object(const char *p, size_t n, int max_depth, const char **why,
                                     bool *had_nul);

/* Appends s as a quoted, escaped JSON string. */
int rtmd_json_append_escaped(struct rtmd_buf *b, struct rtmd_str s);

#endif
