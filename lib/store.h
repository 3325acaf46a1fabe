/*
 * LMDB as the services use it: one environment per directory, durable
 * commits (LMDB's default), named databases created on first open.
 */
#ifndef SCEPD_STORE_H
#define SCEPD_STORE_H

#include <stddef.h>

#include <lmdb.h>

/* Creates `dir` and its missing parents, mode 0700. 0, or -1 and err. */
int store_mkdir_p(const char *dir, char *err, size_t errlen);

/* Flushes the directory holding `file`, so that the name a link or a
 * rename gave it outlasts a crash (its data is fsync'ed apart). 0, or -1
 * and errno. */
int store_sync_dir(const char *file);

/*
 * Opens the environment in `dir` (created if missing) with room for
 * `map_mib` MiB, which the setting `limit` gives ("DatabaseMaxMiB in
 * [ca]": named by store_strerror when the map is full), clears reader
 * slots left by a crashed run, and opens the databases named in `names`
 * (NULL-terminated; a NULL first entry is the unnamed main database) into
 * dbis[]. On failure *env is NULL and err names the directory. One
 * environment per process.
 */
int store_open(const char *dir, long map_mib, const char *limit,
    const char *const *names, MDB_env **env, MDB_dbi *dbis, char *err,
    size_t errlen);

/* mdb_strerror(e); a full map (MDB_MAP_FULL) also names the setting. */
const char *store_strerror(int e);

/* Where LMDB mapped an environment's data file in this process. */
struct store_map {
	void *addr;
	size_t len;
	unsigned writes; /* since the last release (store_map_release_every) */
};

/*
 * Finds env's map in /proc/self/maps (LMDB only tells its address with
 * MDB_FIXEDMAP): before a sandbox closes /proc. 0, or -1 when not found.
 */
int store_map_find(MDB_env *env, struct store_map *map);

/*
 * Drops the map from this process's page tables (MADV_DONTNEED: the pages
 * stay in the page cache, and come back on the next read). A database that
 * only grows (the CA's ledger) is otherwise mapped in whole over time, by
 * the kernel's fault-around next to the pages a write reads, and shows in
 * the process's RSS as if it were its memory.
 */
void store_map_release(const struct store_map *map);
/* The same after every `every`th call: a release and the page faults that
 * bring back the trees' upper pages cost 0.1-0.2 ms, and the pages mapped
 * in between stay bounded (64 KiB of fault-around per page read). */
void store_map_release_every(struct store_map *map, unsigned every);

/*
 * Reader slots of processes that died holding a read transaction (a
 * backup's mdb_copy killed, a scepctl crashed): LMDB keeps them until
 * asked, and the pages their snapshot pins are never reused, so the
 * file grows until its map is full. Cleared, and logged naming `what`
 * when there were any; how many.
 */
int store_readers_clear(MDB_env *env, const char *what);

#endif
