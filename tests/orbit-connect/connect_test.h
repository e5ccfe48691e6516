/*
 * connect_test.h - helpers shared by the orbit-connect test files:
 * temporary directories that clean themselves up.
 */
#ifndef ORBIT_CONNECT_TEST_H
#define ORBIT_CONNECT_TEST_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
connect_test_rm_cb(const char *path, const struct stat *st, int flag,
                   struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a tree, ignoring errors. */
static inline void
connect_test_rmtree(const char *path)
{
    nftw(path, connect_test_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new empty directory under base (/tmp when NULL); the caller frees the
 * returned path. */
static inline char *
connect_test_tmpdir_in(const char *base, const char *tag)
{
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/orbit-%s-XXXXXX", base ? base : "/tmp",
             tag);
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d, "mkdtemp");
    return strdup(d);
}

static inline char *
connect_test_tmpdir(const char *tag)
{
    return connect_test_tmpdir_in(getenv("TMPDIR"), tag);
}

/* For trees of many files: on tmpfs when /dev/shm is writable, where
 * creating 200,000 files costs a fraction of a disk-backed directory. */
static inline char *
connect_test_fast_tmpdir(const char *tag)
{
    if (access("/dev/shm", W_OK) == 0)
        return connect_test_tmpdir_in("/dev/shm", tag);
    return connect_test_tmpdir(tag);
}

/* Writes size bytes of filler into root/rel, creating nothing else. */
static inline void
connect_test_write(const char *root, const char *rel, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    for (size_t i = 0; i < size; i++)
        fputc((int)('a' + i % 26), f);
    fclose(f);
}

static inline void
connect_test_mkdir(const char *root, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s", path);
}

#endif
