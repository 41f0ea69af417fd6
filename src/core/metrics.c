#include "core/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Upper bounds of the buckets: in ns to compare, as text for `le`. */
static const uint64_t bounds_ns_[RTMD_HIST_BUCKETS] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bounds_text_[RTMD_HIST_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};

static double start_time_s_;

void rtmd_histogram_observe_n(struct rtmd_histogram *h, uint64_t ns, uint64_t n)
{
    size_t i = 0;
    while (i < RTMD_HIST_BUCKETS && ns > bounds_ns_[i])
        i++;
    h->counts[i] += n;
    h->count += n;
    h->sum_ns += ns * n;
}

void rtmd_histogram_observe(struct rtmd_histogram *h, uint64_t ns)
{
    rtmd_histogram_observe_n(h, ns, 1);
}

int rtmd_metric_head(struct rtmd_buf *out, const char *name, const char *type, const char *help)
{
    return rtmd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int rtmd_histogram_write(struct rtmd_buf *out, const char *name, const char *labels,
                         const struct rtmd_histogram *h)
{
    const char *sep = labels ? "," : "";
    labels = labels ? labels : "";
    uint64_t cum = 0;
    int r = 0;
    for (size_t i = 0; i < RTMD_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        r |= rtmd_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep,
                             bounds_text_[i], (unsigned long long)cum);
    }
    r |= rtmd_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                         (unsigned long long)h->count);
    const char *open = *labels ? "{" : "", *close = *labels ? "}" : "";
    r |= rtmd_buf_printf(out, "%s_sum%s%s%s %llu.%09llu\n%s_count%s%s%s %llu\n", name, open, labels,
                         close, (unsigned long long)(h->sum_ns / 1000000000),
                         (unsigned long long)(h->sum_ns % 1000000000), name, open, labels, close,
                         (unsigned long long)h->count);
    return r < 0 ? -ENOMEM : 0;
}

void rtmd_metrics_start(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    start_time_s_ = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Open descriptors: the entries of /proc/self/fd, less the one reading it. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

int rtmd_metrics_write_process(struct rtmd_buf *out)
{
    int r = 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                     ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
        r |= rtmd_metric_head(out, "process_cpu_seconds_total", "counter",
                              "Total user and system CPU time spent in seconds.");
        r |= rtmd_buf_printf(out, "process_cpu_seconds_total %.6f\n", cpu);
    }
    unsigned long long vsize_pages = 0, rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsize_pages, &rss_pages) == 2) {
            unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
            r |= rtmd_metric_head(out, "process_resident_memory_bytes", "gauge",
                                  "Resident memory size in bytes.");
            r |= rtmd_buf_printf(out, "process_resident_memory_bytes %llu\n", rss_pages * page);
            r |= rtmd_metric_head(out, "process_virtual_memory_bytes", "gauge",
                                  "Virtual memory size in bytes.");
            r |= rtmd_buf_printf(out, "process_virtual_memory_bytes %llu\n", vsize_pages * page);
        }
        fclose(f);
    }
    long fds = open_fds();
    if (fds >= 0) {
        r |= rtmd_metric_head(out, "process_open_fds", "gauge", "Number of open file descriptors.");
        r |= rtmd_buf_printf(out, "process_open_fds %ld\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        r |= rtmd_metric_head(out, "process_max_fds", "gauge",
                              "Maximum number of open file descriptors.");
        r |= rtmd_buf_printf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    r |= rtmd_metric_head(out, "process_start_time_seconds", "gauge",
                          "Start time of the process since unix epoch in seconds.");
    r |= rtmd_buf_printf(out, "process_start_time_seconds %.3f\n", start_time_s_);
    return r < 0 ? -ENOMEM : 0;
}
