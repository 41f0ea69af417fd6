/*
 * list.h — an intrusive circular doubly linked list (libuv's queue, Linux's
 * list_head). The links live inside the owner, so membership costs no
 * allocation; insertion and removal are O(1).
 */
#ifndef RTMD_CORE_LIST_H
#define RTMD_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct rtmd_list {
    struct rtmd_list *prev;
    struct rtmd_list *next;
};

static inline void rtmd_list_init(struct rtmd_list *l)
{
    l->prev = l->next = l;
}

static inline bool rtmd_list_empty(const struct rtmd_list *l)
{
    return l->next == l;
}

/* A node that was initialised and is not on any list reports unlinked. */
static inline bool rtmd_list_linked(const struct rtmd_list *n)
{
    return n->next != n && n->next != NULL;
}

static inline void rtmd_list_insert_tail(struct rtmd_list *head, struct rtmd_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void rtmd_list_insert_head(struct rtmd_list *head, struct rtmd_list *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

/* Unlinks n and leaves it initialised (safe to remove twice). */
static inline void rtmd_list_remove(struct rtmd_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline struct rtmd_list *rtmd_list_first(const struct rtmd_list *head)
{
    return head->next == head ? NULL : head->next;
}

#define rtmd_list_foreach_safe(pos, tmp, head)                                                     \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
