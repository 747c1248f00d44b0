/* lmdb_env.h - opening the LMDB environments of host/cache (the cache store, the summary store,
 * the agreement store) so that a full disk is an error from the open, never a SIGBUS later. */
#ifndef SC_LMDB_ENV_H
#define SC_LMDB_ENV_H

#include <lmdb.h>

/*
 * mdb_env_open(env, dir, flags, mode), after reserving the disk blocks of dir/lock.mdb. LMDB maps
 * its lock file and writes the reader table through the map; on a full filesystem (a small tmpfs
 * most of all) a page of that sparse file which cannot be backed kills the process with SIGBUS
 * at its first touch. A new lock file is therefore allocated first (sized for the env's reader
 * table: call mdb_env_set_maxreaders() before), and one that already exists is filled in where
 * it has holes. Returns an LMDB code: ENOSPC (or EDQUOT) when a new lock file cannot be backed,
 * which mdb_strerror() words as strerror() does. dir must exist (LMDB's default layout).
 */
int sc_lmdb_env_open(MDB_env *env, const char *dir, unsigned int flags, mdb_mode_t mode);

#endif
