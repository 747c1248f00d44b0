/* paths.h - where data files (model weights, router weights) are found for a relative path. */
#ifndef SC_PATHS_H
#define SC_PATHS_H

#include <stddef.h>

/* A relative path that does not exist from the working directory is looked up beside the
 * executable's folder and its parent (build/scrimp finds <repo>/models/...). out gets the first
 * that exists, else path unchanged. Returns out. */
const char *sc_resolve_path(const char *path, char *out, size_t outlen);

#endif
