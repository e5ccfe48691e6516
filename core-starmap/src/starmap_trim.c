/*
 * starmap_trim: drop this process's page mappings of the index file.
 *
 * LMDB reads through a shared, read-only mapping of data.mdb, and every
 * page it touches stays counted in the process's RSS for as long as the
 * mapping lives, so a star's RSS would grow with the size of its index
 * (about 150 bytes per chunk) however little of it is in use. madvise
 * (MADV_DONTNEED) on a shared file mapping only removes the page table
 * entries: the pages stay in the page cache, the next access maps them
 * again (a minor fault), and the bytes seen never change.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "orbit/error.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"

/* One /proc/self/maps line: a shared mapping of (dev, ino)? */
static int
parse_map(const char *line, const struct stat *st, void **lo, size_t *len)
{
    unsigned long a, b, off, ino;
    unsigned maj, min;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &a, &b, perms, &off, &maj,
               &min, &ino) != 7)
        return 0;
    if (ino != (unsigned long)st->st_ino || maj != major(st->st_dev) ||
        min != minor(st->st_dev) || perms[3] != 's' || b <= a)
        return 0;
    *lo = (void *)a;
    *len = (size_t)(b - a);
    return 1;
}

int
starmap_trim(struct starmap *sm, size_t *trimmed)
{
    if (trimmed)
        *trimmed = 0;
    if (!sm)
        return ORBIT_EINVAL;
    int fd = -1;
    struct stat st;
    if (mdb_env_get_fd(sm->env, &fd) != 0 || fstat(fd, &st) != 0)
        return ORBIT_EIO;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (!maps)
        return orbit_err_from_errno(errno);
    int rc = 0;
    char line[512];
    /* no remap (map growth) while the ranges are used */
    pthread_rwlock_rdlock(&sm->resize);
    while (fgets(line, sizeof line, maps)) {
        void *lo = NULL;
        size_t len = 0;
        if (!parse_map(line, &st, &lo, &len))
            continue; /* also the tail of an over-long line */
        if (madvise(lo, len, MADV_DONTNEED) != 0)
            rc = orbit_err_from_errno(errno);
        else if (trimmed)
            *trimmed += len;
    }
    pthread_rwlock_unlock(&sm->resize);
    fclose(maps);
    return rc;
}
