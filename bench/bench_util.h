/* bench_util.h - what the benchmarks share: the machine's CPU model for their result headers, and
 * the parser of their comma-separated number lists. */
#ifndef SC_BENCH_UTIL_H
#define SC_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/core/util.h"

/* The first "model name" of /proc/cpuinfo into buf (len bytes), "unknown CPU" when none. */
static inline void sc_bench_cpu_model(char *buf, size_t len)
{
    sc_strlcpy(buf, "unknown CPU", len);
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            sc_strlcpy(buf, v, len);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
}

/* "1,32,256" into out (at most max values, each > 0): their count, or -1 on anything else. */
static inline int sc_bench_parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 0x7fffffff)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

#endif
