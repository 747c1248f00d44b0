/* log.c - key=value event lines on stderr, one write(2) per line so threads never interleave. */
#include "host/core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SC_LOG_LINE_MAX 4096

static atomic_int log_level = -1; /* -1: not yet read from the environment */

static const char *level_name[] = {"debug", "info", "warn", "error", "off"};

int sc_log_level_parse(const char *name, sc_log_level_t *out)
{
    for (int i = 0; i <= SC_LOG_OFF; i++) {
        if (strcasecmp(name, level_name[i]) == 0) {
            *out = (sc_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

sc_log_level_t sc_log_get_level(void)
{
    int lv = atomic_load(&log_level);
    if (lv < 0) {
        sc_log_level_t parsed = SC_LOG_INFO;
        const char *env = getenv("SCRIMP_LOG");
        if (env && sc_log_level_parse(env, &parsed) != 0)
            parsed = SC_LOG_INFO;
        lv = (int)parsed;
        atomic_store(&log_level, lv);
    }
    return (sc_log_level_t)lv;
}

void sc_log_set_level(sc_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

void sc_log(sc_log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < sc_log_get_level() || level >= SC_LOG_OFF)
        return;
    char line[SC_LOG_LINE_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_name[level], event);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (fmt && fmt[0] && len < sizeof line - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + len, sizeof line - len, fmt, ap);
        va_end(ap);
        if (m > 0)
            len += (size_t)m < sizeof line - len ? (size_t)m : sizeof line - len - 1;
    }
    if (len >= sizeof line - 1)
        len = sizeof line - 2; /* truncated: keep the newline */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
