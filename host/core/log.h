/* log.h - leveled logging to stderr, one line per event: ts=… level=… event=… key=value… */
#ifndef SC_LOG_H
#define SC_LOG_H

typedef enum { SC_LOG_DEBUG = 0, SC_LOG_INFO, SC_LOG_WARN, SC_LOG_ERROR, SC_LOG_OFF } sc_log_level_t;

/* Threshold; lines below it are dropped. Initially from env SCRIMP_LOG (debug|info|warn|error|off),
 * else info. */
void sc_log_set_level(sc_log_level_t level);
sc_log_level_t sc_log_get_level(void);
/* Parse "debug"... into *out; returns 0 on success, -1 on an unknown name. */
int sc_log_level_parse(const char *name, sc_log_level_t *out);

/* Write one line: "ts=<RFC3339 ms> level=<l> event=<event> <fmt…>\n". fmt should produce
 * space-separated key=value pairs; values with spaces should be quoted by the caller (%s with
 * sc_log_q() helps). Thread-safe: the line is written with one write(2). */
void sc_log(sc_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sc_debug(ev, ...) sc_log(SC_LOG_DEBUG, ev, __VA_ARGS__)
#define sc_info(ev, ...)  sc_log(SC_LOG_INFO, ev, __VA_ARGS__)
#define sc_warn(ev, ...)  sc_log(SC_LOG_WARN, ev, __VA_ARGS__)
#define sc_error(ev, ...) sc_log(SC_LOG_ERROR, ev, __VA_ARGS__)

#endif
