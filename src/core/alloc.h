/*
 * alloc.h — the out-of-memory policy, decided once for the whole program.
 *
 * rtmd_malloc() and friends abort the process when memory runs out: they are
 * for internal allocations whose size rtmd controls. Allocations whose size a
 * client influences use rtmd_try_malloc()/rtmd_try_realloc(), which return
 * NULL so the caller can answer with an error instead.
 */
#ifndef RTMD_CORE_ALLOC_H
#define RTMD_CORE_ALLOC_H

#include <stddef.h>

void *rtmd_malloc(size_t n);
void *rtmd_calloc(size_t count, size_t n);
void *rtmd_realloc(void *p, size_t n);
char *rtmd_strdup(const char *s);
/* Copies len bytes and appends a NUL. */
char *rtmd_strndup(const char *s, size_t len);

void *rtmd_try_malloc(size_t n);
void *rtmd_try_realloc(void *p, size_t n);

#define rtmd_free(p) free(p)

#include <stdlib.h>

#endif
