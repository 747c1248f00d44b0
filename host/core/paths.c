/* paths.c - resolution of relative data paths against the working directory, then the
 * executable's location. */
#include "host/core/paths.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host/core/util.h"

const char *sc_resolve_path(const char *path, char *out, size_t outlen)
{
    char exe[PATH_MAX];
    sc_strlcpy(out, path, outlen);
    if (path[0] == '/' || access(path, F_OK) == 0)
        return out;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return out;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return out;
    *slash = '\0';
    static const char *const prefixes[] = {"", "/.."};
    for (size_t i = 0; i < SC_ARRAY_LEN(prefixes); i++) {
        char cand[PATH_MAX];
        int m = snprintf(cand, sizeof cand, "%s%s/%s", exe, prefixes[i], path);
        if (m > 0 && (size_t)m < sizeof cand && access(cand, F_OK) == 0) {
            sc_strlcpy(out, cand, outlen);
            return out;
        }
    }
    return out;
}
