/*
 * A sync after the source was touched (mtimes changed, bytes not): the star
 * verifies the file it holds against the manifest's digest and sets mode
 * and times in place, so the destination keeps its inode; a file whose
 * bytes did change is written anew and renamed into place.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_inplace, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 60);

static ino_t
inode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0, "%s", path);
    return st.st_ino;
}

Test(cli_inplace, touched_files_keep_their_inode_changed_ones_do_not)
{
    char a[E2E_PATH * 2], b[E2E_PATH * 2], da[E2E_PATH * 2], db[E2E_PATH * 2];
    e2e_path(t, a, "src/same.bin");
    e2e_path(t, b, "src/changed.bin");
    e2e_path(t, da, "dst/same.bin");
    e2e_path(t, db, "dst/changed.bin");
    e2e_write_file(a, 300000, 1, 0644, 1600000000);
    e2e_write_file(b, 300000, 2, 0644, 1600000000);
    E2E_ORBIT_OK(t, "copy", t->src_slash, t->dst);
    ino_t ia = inode_of(da), ib = inode_of(db);
    /* new mtimes on both; new bytes (same size) in one */
    e2e_set_mtime(a, 1700000000, 0, false);
    int fd = open(b, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "XXXX", 4, 1000), 4);
    close(fd);
    e2e_set_mtime(b, 1700000000, 0, false);
    E2E_ORBIT_OK(t, "sync", t->src_slash, t->dst);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, 0, NULL), 0);
    cr_assert_eq(inode_of(da), ia, "an unchanged file was rewritten");
    cr_assert_neq(inode_of(db), ib, "a changed file kept its old inode");
    struct stat st;
    cr_assert_eq(stat(da, &st), 0);
    cr_assert_eq(st.st_mtime, 1700000000);
}
