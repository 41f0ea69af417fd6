#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static void oom(size_t n)
{
    rtmd_log_flush(); /* the lines the loop gathered before this */
    rtmd_log_error("main", "out of memory allocating %zu bytes", n);
    abort();
}

void *rtmd_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rtmd_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *rtmd_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *rtmd_strdup(const char *s)
{
    return rtmd_strndup(s, strlen(s));
}

char *rtmd_strndup(const char *s, size_t len)
{
    char *p = rtmd_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *rtmd_try_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *rtmd_try_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}
