/*
 * When the star drops its index's page mappings (star_store_trim): once a
 * second, and sooner while the process maps more than 24 MiB of files (a
 * sync's HAVEs and in-place commits touch tens of MiB of index pages a
 * second, and the star's peak RSS is what counts).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "star_store.h"

static void
rm_tree(const char *root)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

Test(star_trim, sooner_than_a_second_only_while_many_file_pages_are_mapped)
{
    char root[] = "/tmp/orbit-trim-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(rootfd, 0);
    struct star_store *st = NULL;
    cr_assert_eq(star_store_open(rootfd, root, 0, &st), 0);

    uint64_t t = 1000000;
    cr_assert(star_store_trim(st, t), "the first call trims");
    cr_assert_not(star_store_trim(st, t + 10),
                  "within the second, with little mapped: no trim");
    cr_assert(star_store_trim(st, t + 1000), "a second later: trim");

    /* map and read 32 MiB of a file: the process now maps more than 24 */
    char big[600];
    snprintf(big, sizeof big, "%s/big", root);
    int fd = open(big, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    size_t len = (size_t)32 << 20;
    cr_assert_eq(ftruncate(fd, (off_t)len), 0);
    volatile uint8_t *p =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq((void *)p, MAP_FAILED);
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    cr_assert(star_store_trim(st, t + 1010),
              "32 MiB of file pages mapped: trimmed within the second");
    cr_assert(star_store_trim(st, t + 1020), "and again while they stay");
    munmap((void *)p, len);
    close(fd);
    cr_assert_not(star_store_trim(st, t + 1030),
                  "unmapped: back to once a second");

    star_store_close(st);
    close(rootfd);
    rm_tree(root);
}
