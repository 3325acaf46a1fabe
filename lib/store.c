#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

int
store_mkdir_p(const char *dir, char *err, size_t errlen)
{
	char *copy = NULL, *p;
	int rc = -1;

	if ((copy = strdup(dir)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", dir);
		goto out;
	}
	for (p = copy + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(copy, 0700) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create: %s", copy,
			    strerror(errno));
			goto out;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

int
store_sync_dir(const char *file)
{
	char *copy = strdup(file);
	int fd = -1, rc = -1;

	if (copy != NULL &&
	    (fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >=
	        0 &&
	    fsync(fd) == 0)
		rc = 0;
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

static char store_full_text[256];

const char *
store_strerror(int e)
{
	if (e == MDB_MAP_FULL && store_full_text[0] != '\0')
		return store_full_text;
	return mdb_strerror(e);
}

int
store_open(const char *dir, long map_mib, const char *limit,
    const char *const *names, MDB_env **env, MDB_dbi *dbis, char *err,
    size_t errlen)
{
	MDB_txn *txn = NULL;
	int dead = 0, e, n = 0, rc = -1;

	*env = NULL;
	snprintf(store_full_text, sizeof(store_full_text),
	    "the database is full: its %ld MiB (%s) are used up; raise it "
	    "and restart the service",
	    map_mib, limit);
	while (names[n] != NULL)
		n++;
	if (store_mkdir_p(dir, err, errlen) != 0)
		goto out;
	if ((e = mdb_env_create(env)) != 0 ||
	    (e = mdb_env_set_mapsize(*env, (size_t)map_mib << 20)) != 0 ||
	    /* Room for databases the caller opens with flags of its own. */
	    (e = mdb_env_set_maxdbs(*env, n + 4)) != 0 ||
	    (e = mdb_env_open(*env, dir, 0, 0600)) != 0) {
		snprintf(err, errlen, "%s: cannot open the database: %s", dir,
		    mdb_strerror(e));
		goto out;
	}
	/* Reader slots of a crashed earlier run. */
	mdb_reader_check(*env, &dead);
	if ((e = mdb_txn_begin(*env, NULL, 0, &txn)) != 0)
		goto fail;
	if (n == 0 && (e = mdb_dbi_open(txn, NULL, 0, &dbis[0])) != 0)
		goto fail;
	for (int i = 0; i < n; i++)
		if ((e = mdb_dbi_open(txn, names[i], MDB_CREATE, &dbis[i])) !=
		    0)
			goto fail;
	e = mdb_txn_commit(txn);
	txn = NULL;
	if (e != 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "%s: %s", dir, mdb_strerror(e));
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (rc != 0 && *env != NULL) {
		mdb_env_close(*env);
		*env = NULL;
	}
	return rc;
}

int
store_map_find(MDB_env *env, struct store_map *map)
{
	struct stat st;
	char line[4096];
	FILE *f;
	int fd;

	map->addr = NULL;
	map->len = 0;
	if (mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0 ||
	    (f = fopen("/proc/self/maps", "r")) == NULL)
		return -1;
	/* "start-end perms offset major:minor inode path": the mapping of
	 * the data file's device and inode (LMDB maps it once, whole). */
	while (map->addr == NULL && fgets(line, sizeof(line), f) != NULL) {
		unsigned long start, end, inode;
		unsigned int major, minor;

		if (sscanf(line, "%lx-%lx %*s %*x %x:%x %lu", &start, &end,
		        &major, &minor, &inode) == 5 &&
		    inode == (unsigned long)st.st_ino &&
		    major == major(st.st_dev) && minor == minor(st.st_dev) &&
		    end > start) {
			map->addr = (void *)start;
			map->len = end - start;
		}
	}
	fclose(f);
	return map->addr != NULL ? 0 : -1;
}

void
store_map_release(const struct store_map *map)
{
	if (map->addr != NULL)
		(void)madvise(map->addr, map->len, MADV_DONTNEED);
}

void
store_map_release_every(struct store_map *map, unsigned every)
{
	if (++map->writes < every)
		return;
	map->writes = 0;
	store_map_release(map);
}

int
store_readers_clear(MDB_env *env, const char *what)
{
	int dead = 0;

	if (mdb_reader_check(env, &dead) == 0 && dead > 0)
		log_warn("%s: %d reader slot%s of a process that died in a "
		         "read transaction cleared (its snapshot kept freed "
		         "pages from reuse)",
		    what, dead, dead == 1 ? "" : "s");
	return dead;
}
