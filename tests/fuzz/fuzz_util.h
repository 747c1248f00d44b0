/* fuzz_util.h - what the libFuzzer harnesses share: quiet logs, a fixed jansson hash seed, and a
 * scratch folder (one per process, removed at exit) for the parsers that read files. */
#ifndef SC_FUZZ_UTIL_H
#define SC_FUZZ_UTIL_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "host/core/log.h"
#include "host/core/util.h"

#define SC_FUZZ_PATH_MAX 4096
#define SC_FUZZ_JSON_SEED 0x5c41u /* jansson's hash seed: the same input takes the same path */
#define SC_FUZZ_FILES_MAX 4       /* scratch files one harness names */

static char sc_fuzz_dir[SC_FUZZ_PATH_MAX];
static char sc_fuzz_files[SC_FUZZ_FILES_MAX][SC_FUZZ_PATH_MAX];
static int sc_fuzz_nfiles;

static void sc_fuzz_cleanup(void)
{
    for (int i = 0; i < sc_fuzz_nfiles; i++)
        unlink(sc_fuzz_files[i]);
    if (sc_fuzz_dir[0])
        rmdir(sc_fuzz_dir);
}

/* Once per process, from LLVMFuzzerInitialize: logs off (a rejected input must cost no write) and
 * jansson seeded (before the first object). Dies when the scratch folder cannot be made: a
 * harness that cannot run must not pass. */
static inline void sc_fuzz_init(void)
{
    const char *tmp = getenv("TMPDIR");
    sc_log_set_level(SC_LOG_OFF);
    json_object_seed(SC_FUZZ_JSON_SEED);
    snprintf(sc_fuzz_dir, sizeof sc_fuzz_dir, "%s/scrimp-fuzz-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(sc_fuzz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(sc_fuzz_cleanup);
}

/* The path of scratch file name in this process's folder; it is removed at exit (with any
 * sub-folder the caller makes there removed by the caller). */
static inline const char *sc_fuzz_path(const char *name)
{
    if (sc_fuzz_nfiles == SC_FUZZ_FILES_MAX)
        abort();
    char *p = sc_fuzz_files[sc_fuzz_nfiles++];
    snprintf(p, SC_FUZZ_PATH_MAX, "%s/%s", sc_fuzz_dir, name);
    return p;
}

/* Replace the file at path with size bytes of data. Dies on failure (a full disk is no finding). */
static inline void sc_fuzz_write(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const unsigned char *p = data;
    if (fd < 0) {
        perror("fuzz: open");
        abort();
    }
    while (size) {
        ssize_t n = write(fd, p, size);
        if (n <= 0) {
            perror("fuzz: write");
            abort();
        }
        p += n;
        size -= (size_t)n;
    }
    close(fd);
}

/* A NUL-terminated copy of size bytes of data (bytes after an inner NUL are then not seen).
 * @remark the caller frees with free(). Dies when out of memory. */
static inline char *sc_fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* A broken promise of the code under test: report it as a crash, with the reason. */
#define SC_FUZZ_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
