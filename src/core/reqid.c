#include "core/reqid.h"

#include "core/buf.h"

static uint32_t node_ = 1;
static uint64_t next_;

void rtmd_request_id_init(uint32_t node_id, uint64_t start)
{
    node_ = node_id;
    next_ = start;
}

size_t rtmd_request_id_next(char *out)
{
    size_t n = rtmd_u64_to_dec(node_, out);
    out[n++] = '_';
    n += rtmd_u64_to_dec(next_++, out + n);
    out[n] = '\0';
    return n;
}
