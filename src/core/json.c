#include "core/json.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/alloc.h"

static void put(struct rtmd_json *j, const char *p, size_t n)
{
    if (j->err)
        return;
    j->err = rtmd_buf_append(j->buf, p, n);
}

#define PENDING_VALUE (1u << 31) /* a key was written; the next value is its value */

/* Called before every value: emits the comma that separates it from the
 * previous element of the same container, unless it is the value of a key. */
static void value(struct rtmd_json *j)
{
    uint32_t bit = 1u << j->depth;
    if (j->comma & PENDING_VALUE) {
        j->comma &= ~PENDING_VALUE;
        return;
    }
    if (j->comma & bit)
        put(j, ",", 1);
    j->comma |= bit;
}

void rtmd_json_init(struct rtmd_json *j, struct rtmd_buf *buf)
{
    j->buf = buf;
    j->comma = 0;
    j->depth = 0;
    j->err = 0;
}

static void open_(struct rtmd_json *j, char c)
{
    value(j);
    if (j->depth + 2 >= RTMD_JSON_MAX_DEPTH) {
        j->err = j->err ? j->err : RTMD_ELIMIT;
        return;
    }
    put(j, &c, 1);
    j->depth++;
    j->comma &= ~(1u << j->depth);
}

static void close_(struct rtmd_json *j, char c)
{
    put(j, &c, 1);
    if (j->depth > 0)
        j->depth--;
}

void rtmd_json_obj_begin(struct rtmd_json *j)
{
    open_(j, '{');
}
void rtmd_json_obj_end(struct rtmd_json *j)
{
    close_(j, '}');
}
void rtmd_json_arr_begin(struct rtmd_json *j)
{
    open_(j, '[');
}
void rtmd_json_arr_end(struct rtmd_json *j)
{
    close_(j, ']');
}

void rtmd_json_key(struct rtmd_json *j, const char *key)
{
    value(j);
    put(j, "\"", 1);
    put(j, key, strlen(key));
    put(j, "\":", 2);
    j->comma |= PENDING_VALUE;
}

void rtmd_json_key_str(struct rtmd_json *j, struct rtmd_str key)
{
    value(j);
    if (!j->err)
        j->err = rtmd_json_append_escaped(j->buf, key);
    put(j, ":", 1);
    j->comma |= PENDING_VALUE;
}

int rtmd_json_append_escaped(struct rtmd_buf *b, struct rtmd_str s)
{
    if (s.len == 0)
        return rtmd_buf_append(b, "\"\"", 2);
    static const char hex[] = "0123456789abcdef";
    int rc = rtmd_buf_reserve(b, s.len + 2);
    if (rc)
        return rc;
    b->data[b->len++] = '"';
    size_t start = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        if ((rc = rtmd_buf_append(b, s.p + start, i - start)))
            return rc;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        if ((rc = rtmd_buf_append(b, esc, n)))
            return rc;
        start = i + 1;
    }
    if ((rc = rtmd_buf_append(b, s.p + start, s.len - start)))
        return rc;
    return rtmd_buf_append_byte(b, '"');
}

void rtmd_json_str(struct rtmd_json *j, struct rtmd_str s)
{
    value(j);
    if (!j->err)
        j->err = rtmd_json_append_escaped(j->buf, s);
}

void rtmd_json_cstr(struct rtmd_json *j, const char *s)
{
    rtmd_json_str(j, rtmd_str_cstr(s));
}

void rtmd_json_i64(struct rtmd_json *j, int64_t v)
{
    value(j);
    if (!j->err)
        j->err = rtmd_buf_append_i64(j->buf, v);
}

void rtmd_json_u64(struct rtmd_json *j, uint64_t v)
{
    value(j);
    if (!j->err)
        j->err = rtmd_buf_append_u64(j->buf, v);
}

void rtmd_json_bool(struct rtmd_json *j, bool v)
{
    value(j);
    put(j, v ? "true" : "false", v ? 4 : 5);
}

void rtmd_json_null(struct rtmd_json *j)
{
    value(j);
    put(j, "null", 4);
}

void rtmd_json_raw(struct rtmd_json *j, const char *p, size_t n)
{
    value(j);
    put(j, p, n);
}

int rtmd_json_finish(struct rtmd_json *j)
{
    return j->err;
}

static bool is_nul_escape(const char *p, size_t i, size_t n)
{
    return i + 5 < n && p[i] == '\\' && p[i + 1] == 'u' && p[i + 2] == '0' && p[i + 3] == '0' &&
           p[i + 4] == '0' && p[i + 5] == '0';
}

/* The checks cJSON does not make (see json.h); counts \u0000 escapes. */
static const char *precheck(const char *p, size_t n, int max_depth, size_t *nuls)
{
    int depth = 0;
    bool in_string = false;
    *nuls = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == 0)
            return "must not contain NUL bytes";
        if (in_string) {
            if (c < 0x20)
                return "has a control character inside a string";
            if (c == '\\') {
                if (is_nul_escape(p, i, n))
                    (*nuls)++;
                i++;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return "is nested too deeply";
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return NULL;
}

struct cJSON *rtmd_json_parse_object(const char *p, size_t n, int max_depth, const char **why,
                                     bool *had_nul)
{
    size_t nuls;
    *had_nul = false;
    *why = precheck(p, n, max_depth, &nuls);
    if (*why)
        return NULL;
    char *copy = NULL;
    if (nuls) {
        /* Same length: \u0000 becomes \u0001 outside and inside strings alike
         * (outside a string it is a syntax error either way). */
        copy = rtmd_malloc(n);
        memcpy(copy, p, n);
        bool in_string = false;
        for (size_t i = 0; i < n; i++) {
            char c = copy[i];
            if (in_string) {
                if (c == '\\') {
                    if (is_nul_escape(copy, i, n))
                        copy[i + 5] = '1';
                    i++;
                } else if (c == '"') {
                    in_string = false;
                }
            } else if (c == '"') {
                in_string = true;
            }
        }
        p = copy;
        *had_nul = true;
    }
    const char *end = NULL;
    cJSON *root = n ? cJSON_ParseWithLengthOpts(p, n, &end, false) : NULL;
    const char *bad = NULL;
    if (!root || !cJSON_IsObject(root)) {
        bad = "must be one JSON object";
    } else {
        for (const char *q = end; q && q < p + n; q++) {
            if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
                bad = "must be one JSON object and nothing after it";
                break;
            }
        }
    }
    free(copy);
    if (bad) {
        cJSON_Delete(root);
        *why = bad;
        return NULL;
    }
    return root;
}
