/*
 * metrics.h — Prometheus histograms of durations, and the text exposition's
 * helpers (HELP and TYPE lines, process metrics).
 *
 * A histogram is plain counters, updated by one thread (the loop's; the
 * store's worker hands its durations over under its own mutex). Durations
 * are observed in nanoseconds and written in seconds, with one bucket
 * layout for every histogram: 100 µs to 10 s.
 */
#ifndef RTMD_CORE_METRICS_H
#define RTMD_CORE_METRICS_H

#include "core/buf.h"
#include "core/common.h"

#define RTMD_HIST_BUCKETS 16

struct rtmd_histogram {
    uint64_t counts[RTMD_HIST_BUCKETS + 1]; /* per bucket, the last one over every bound */
    uint64_t count;
    uint64_t sum_ns;
};

void rtmd_histogram_observe(struct rtmd_histogram *h, uint64_t ns);
/* n observations of the same duration. */
void rtmd_histogram_observe_n(struct rtmd_histogram *h, uint64_t ns, uint64_t n);

/* "# HELP name help\n# TYPE name type\n". */
int rtmd_metric_head(struct rtmd_buf *out, const char *name, const char *type, const char *help);
/* The samples of h as name_bucket{labels,le="..."} (cumulative, ending in
 * +Inf), name_sum and name_count; labels is `k="v"` pairs or NULL. The
 * HELP and TYPE lines are the caller's (once per family). */
int rtmd_histogram_write(struct rtmd_buf *out, const char *name, const char *labels,
                         const struct rtmd_histogram *h);

/* Records the process's start time (call once, early). */
void rtmd_metrics_start(void);
/* process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds and
 * process_start_time_seconds, named as the Prometheus client libraries
 * name them. */
int rtmd_metrics_write_process(struct rtmd_buf *out);

#endif
