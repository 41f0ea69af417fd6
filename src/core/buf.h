/*
 * buf.h — a growable byte buffer that cannot exist without a maximum size
 * (curl's dynbuf). Every append checks the bound first; growth uses the
 * failing allocator, so a client-sized buffer can never abort the process.
 *
 * Ownership: the buffer owns data; rtmd_buf_free() releases it.
 * rtmd_buf_steal() hands data to the caller and leaves the buffer empty.
 */
#ifndef RTMD_CORE_BUF_H
#define RTMD_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common.h"

struct rtmd_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass this fail with RTMD_ELIMIT */
};

void rtmd_buf_init(struct rtmd_buf *b, size_t max);
void rtmd_buf_free(struct rtmd_buf *b);
/* Forgets the contents but keeps the allocation. */
static inline void rtmd_buf_reset(struct rtmd_buf *b)
{
    b->len = 0;
}
/* Makes room for n more bytes. 0, RTMD_ELIMIT, or -ENOMEM. */
int rtmd_buf_reserve(struct rtmd_buf *b, size_t n);
int rtmd_buf_append(struct rtmd_buf *b, const void *p, size_t n);
int rtmd_buf_append_str(struct rtmd_buf *b, struct rtmd_str s);
int rtmd_buf_append_cstr(struct rtmd_buf *b, const char *s);
int rtmd_buf_append_byte(struct rtmd_buf *b, char c);
int rtmd_buf_append_u64(struct rtmd_buf *b, uint64_t v);
int rtmd_buf_append_i64(struct rtmd_buf *b, int64_t v);
int rtmd_buf_printf(struct rtmd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void rtmd_buf_consume(struct rtmd_buf *b, size_t n);
/* Returns the data (caller frees) and leaves b empty with no allocation. */
char *rtmd_buf_steal(struct rtmd_buf *b, size_t *len);

/* Writes the decimal form of v into out (at least 21 bytes); returns its length. */
size_t rtmd_u64_to_dec(uint64_t v, char *out);

#endif
