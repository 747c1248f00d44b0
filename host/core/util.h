/* util.h - small shared helpers: clocks, bounded string copies, sizes. */
#ifndef SC_UTIL_H
#define SC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Monotonic milliseconds: for deadlines, timeouts and latencies. */
static inline int64_t sc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds: for benchmarks. */
static inline int64_t sc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wall-clock milliseconds since the epoch: for timestamps that leave the process. */
static inline int64_t sc_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy at most dstlen-1 bytes and always terminate; returns strlen(src) (truncated when
 * >= dstlen). dstlen must be > 0. */
static inline size_t sc_strlcpy(char *dst, const char *src, size_t dstlen)
{
    size_t n = strlen(src);
    size_t c = n < dstlen - 1 ? n : dstlen - 1;
    memcpy(dst, src, c);
    dst[c] = '\0';
    return n;
}

#define SC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
