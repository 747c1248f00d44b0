/* bench_util.h - what the benchmarks share for their result headers: the machine's CPU model. */
#ifndef SC_BENCH_UTIL_H
#define SC_BENCH_UTIL_H

#include <stdio.h>
#include <string.h>

#include "host/util.h"

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

#endif
