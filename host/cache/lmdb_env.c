/* lmdb_env.c - LMDB environments opened with their lock file's blocks reserved (lmdb_env.h). */
#include "host/cache/lmdb_env.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/core/log.h"

#define SC_LMDB_LOCK_NAME "lock.mdb"
#define SC_LMDB_PATH_MAX 4096
/* LMDB 0.9's lock file: a 128-byte header (two cache lines) and one 64-byte cache line per
 * reader. Were a later LMDB to want more, it would extend the file itself, and only the slots of
 * its extension would be unreserved; a larger file is adopted as it is by every opener. */
#define SC_LMDB_LOCK_HEADER 128
#define SC_LMDB_READER_BYTES 64

int sc_lmdb_env_open(MDB_env *env, const char *dir, unsigned int flags, mdb_mode_t mode)
{
    char lock[SC_LMDB_PATH_MAX];
    unsigned int readers = 0;
    struct stat sb;
    if (snprintf(lock, sizeof lock, "%s/%s", dir, SC_LMDB_LOCK_NAME) >= (int)sizeof lock)
        return ENAMETOOLONG;
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0) /* a read-only store, say: LMDB tells the rest */
        return mdb_env_open(env, dir, flags, mode);
    if (fstat(fd, &sb) != 0 || mdb_env_get_maxreaders(env, &readers) != 0) {
        close(fd);
        return mdb_env_open(env, dir, flags, mode);
    }
    /* A file already in use keeps its size: another process maps it (and sizes its reader table
     * by it), so only its holes are filled. An empty one is new, or was never set up. */
    off_t want = sb.st_size > 0 ? sb.st_size
                                : (off_t)readers * SC_LMDB_READER_BYTES + SC_LMDB_LOCK_HEADER;
    int rc = posix_fallocate(fd, 0, want);
    if (rc && sb.st_size == 0 && ftruncate(fd, 0) != 0) /* give back what a failure kept */
        sc_debug("lmdb_lock", "path=%s op=ftruncate error=\"%s\"", lock, strerror(errno));
    close(fd); /* an empty file left behind is set up by the next open */
    if (rc == ENOSPC || rc == EDQUOT) {
        if (sb.st_size == 0)
            return rc;
        sc_warn("lmdb_lock", "path=%s error=\"%s\" note=\"opened anyway: the readers in use so "
                "far have their pages\"", lock, strerror(rc));
    } /* else EOPNOTSUPP and the like: a filesystem without holes to fear, or nothing to do */
    return mdb_env_open(env, dir, flags, mode);
}
