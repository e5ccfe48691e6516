/* The fresh index: entries visible once published, merged into LMDB in
 * key order, replayed from the log after a crash (a torn tail cut, a
 * foreign log emptied), and merges due at their threshold. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/starmap.h"
#include "star_fresh.h"

static char dir[256];
static int dirfd_ = -1;
static struct starmap *sm;

static void
setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/orbit-fresh-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dirfd_, 0);
    char p[300];
    snprintf(p, sizeof p, "%s/starmap", dir);
    cr_assert_eq(starmap_open(p, NULL, &sm), 0);
}

static void
teardown(void)
{
    starmap_close(sm);
    close(dirfd_);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(star_fresh, .init = setup, .fini = teardown);

static void
id_of(unsigned i, uint8_t id[WIRE_ID_LEN])
{
    /* Spread like SHA-256 ids: the first 8 bytes pick the slot. */
    uint64_t x = (uint64_t)(i + 1) * 0x9e3779b97f4a7c15u;
    for (int k = 0; k < WIRE_ID_LEN; k++) {
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9u;
        id[k] = (uint8_t)(x >> 56);
    }
}

static void
file_loc(struct star_loc *l, unsigned file, uint64_t off, uint32_t len)
{
    memset(l, 0, sizeof *l);
    l->kind = STAR_LOC_FILE;
    l->offset = off;
    l->length = len;
    snprintf(l->path, sizeof l->path, "dir/file-%u", file);
}

/* Entries [from, from + n): entry i is chunk i of file i / 10. */
static void
add(struct star_fresh *f, unsigned from, unsigned n, bool publish)
{
    uint8_t(*ids)[WIRE_ID_LEN] = calloc(n, WIRE_ID_LEN);
    struct star_loc *locs = calloc(n, sizeof *locs);
    const uint8_t **idp = calloc(n, sizeof *idp);
    const struct star_loc **lp = calloc(n, sizeof *lp);
    cr_assert(ids && locs && idp && lp);
    for (unsigned k = 0; k < n; k++) {
        unsigned i = from + k;
        id_of(i, ids[k]);
        file_loc(&locs[k], i / 10, (uint64_t)(i % 10) * 4096, 4096);
        idp[k] = ids[k];
        lp[k] = &locs[k];
    }
    cr_assert_eq(star_fresh_append(f, idp, lp, n), 0);
    if (publish)
        cr_assert_eq(star_fresh_publish(f, idp, lp, n), 0);
    free(ids);
    free(locs);
    free(idp);
    free(lp);
}

static off_t
log_size(void)
{
    struct stat st;
    cr_assert_eq(fstatat(dirfd_, "index.log", &st, 0), 0);
    return st.st_size;
}

static bool
in_lmdb(struct starmap *m, unsigned i)
{
    struct chunk_id cid;
    id_of(i, cid.b);
    struct starmap_entry *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    int rc = starmap_lookup(m, &cid, e);
    bool ok = false;
    if (rc == 0 && e->nlocs == 1) {
        char want[64];
        snprintf(want, sizeof want, "dir/file-%u", i / 10);
        ok = e->locs[0].kind == STARMAP_LOC_FILE &&
             strcmp(e->locs[0].path, want) == 0 &&
             e->locs[0].offset == (uint64_t)(i % 10) * 4096 &&
             e->locs[0].length == 4096;
    }
    free(e);
    return ok;
}

Test(star_fresh, published_entries_are_found_and_dropped_ones_are_not)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    add(f, 0, 100, false);
    uint8_t id[WIRE_ID_LEN];
    id_of(7, id);
    bool have = false;
    star_fresh_have(f, id, 1, &have);
    cr_assert(!have, "visible before its sync was published");
    cr_assert_eq(star_fresh_count(f), 0);

    add(f, 0, 100, true);
    cr_assert_eq(star_fresh_count(f), 100);
    star_fresh_have(f, id, 1, &have);
    cr_assert(have);
    struct star_loc *locs = calloc(STAR_MAX_LOCS, sizeof *locs);
    cr_assert_eq(star_fresh_lookup(f, id, locs, STAR_MAX_LOCS), 1);
    cr_assert_str_eq(locs[0].path, "dir/file-0");
    cr_assert_eq(locs[0].offset, 7 * 4096);

    /* The same chunk at a second place: two locations; the same place
     * published again: still two. */
    struct star_loc other;
    file_loc(&other, 999, 0, 4096);
    const uint8_t *idp[2] = {id, id};
    const struct star_loc *lp[2] = {&other, &other};
    cr_assert_eq(star_fresh_publish(f, idp, lp, 2), 0);
    cr_assert_eq(star_fresh_lookup(f, id, locs, STAR_MAX_LOCS), 2);
    cr_assert_eq(star_fresh_count(f), 101);

    cr_assert(star_fresh_drop(f, id, &other));
    cr_assert(!star_fresh_drop(f, id, &other), "dropped twice");
    cr_assert_eq(star_fresh_lookup(f, id, locs, STAR_MAX_LOCS), 1);
    cr_assert_str_eq(locs[0].path, "dir/file-0");
    cr_assert(star_fresh_drop(f, id, &locs[0]));
    have = false;
    star_fresh_have(f, id, 1, &have);
    cr_assert(!have);
    cr_assert_eq(star_fresh_count(f), 99);

    /* Container locations are not the fresh index's. */
    struct star_loc pack = {.kind = STAR_LOC_PACK, .length = 10, .pack = 1};
    uint8_t pid[WIRE_ID_LEN];
    id_of(5000, pid);
    const uint8_t *pidp[1] = {pid};
    const struct star_loc *pp[1] = {&pack};
    off_t before = log_size();
    cr_assert_eq(star_fresh_append(f, pidp, pp, 1), 0);
    cr_assert_eq(star_fresh_publish(f, pidp, pp, 1), 0);
    cr_assert_eq(log_size(), before);
    cr_assert_eq(star_fresh_count(f), 99);
    free(locs);
    cr_assert_eq(star_fresh_close(f), 0);
}

Test(star_fresh, a_merge_moves_every_entry_into_lmdb_and_empties_the_log)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    cr_assert_eq(log_size(), 8);
    /* More than one merge transaction's worth, published in rounds. */
    for (unsigned i = 0; i < 3 * FRESH_MERGE_TXN + 17; i += 500)
        add(f, i, 500, true);
    cr_assert_gt(log_size(), 8);
    cr_assert(!in_lmdb(sm, 0));
    cr_assert_eq(star_fresh_merge(f), 0);
    cr_assert_eq(star_fresh_merges(f), 1);
    cr_assert_eq(star_fresh_count(f), 0);
    cr_assert_eq(log_size(), 8);
    for (unsigned i = 0; i < 3 * FRESH_MERGE_TXN + 17; i++)
        cr_assert(in_lmdb(sm, i), "entry %u not merged", i);
    cr_assert_eq(starmap_check(sm, NULL), 0);
    /* Published again after the merge: LMDB keeps one location. */
    add(f, 0, 10, true);
    cr_assert_eq(star_fresh_close(f), 0); /* merges what is left */
    cr_assert(in_lmdb(sm, 3));
}

/* Copy the log aside (what a SIGKILL would leave), then open a new index
 * with it. */
static void
copy_log(const char *to)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp %s/index.log %s", dir, to);
    cr_assert_eq(system(cmd), 0);
}

/* A second index in dir/sub whose log is the saved one (moved to `to`,
 * 400 bytes), opened (so replayed) into *f. */
static struct starmap *
open_second(const char *sub, const char *log, char *to, int *fd,
            struct star_fresh **f)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    cr_assert_eq(mkdir(p, 0700), 0);
    *fd = open(p, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(*fd, 0);
    snprintf(p, sizeof p, "%s/%s/starmap", dir, sub);
    struct starmap *m = NULL;
    cr_assert_eq(starmap_open(p, NULL, &m), 0);
    snprintf(to, 400, "%s/%s/index.log", dir, sub);
    cr_assert_eq(rename(log, to), 0);
    cr_assert_eq(star_fresh_open(*fd, m, f), 0);
    return m;
}

Test(star_fresh, a_crash_is_recovered_by_replaying_the_log)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    add(f, 0, 1000, true);
    char p[400];
    snprintf(p, sizeof p, "%s/crashed.log", dir);
    copy_log(p);
    cr_assert_eq(star_fresh_close(f), 0);

    int fd2;
    char to[400];
    struct starmap *m2 = open_second("b", p, to, &fd2, &f);
    cr_assert_eq(star_fresh_count(f), 0, "replayed, merged, emptied");
    for (unsigned i = 0; i < 1000; i++)
        cr_assert(in_lmdb(m2, i), "entry %u lost", i);
    struct stat st;
    cr_assert_eq(stat(to, &st), 0);
    cr_assert_eq(st.st_size, 8);
    cr_assert_eq(star_fresh_close(f), 0);
    starmap_close(m2);
    close(fd2);
}

Test(star_fresh, a_torn_tail_is_cut_and_the_records_before_it_kept)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    add(f, 0, 20, true);
    add(f, 20, 1, true);
    off_t full = log_size();
    char p[400];
    snprintf(p, sizeof p, "%s/torn.log", dir);
    copy_log(p);
    cr_assert_eq(star_fresh_close(f), 0);
    /* The 21st record torn three bytes before its end. */
    cr_assert_eq(truncate(p, full - 3), 0);

    int fd2;
    char to[400];
    struct starmap *m2 = open_second("c", p, to, &fd2, &f);
    for (unsigned i = 0; i < 20; i++)
        cr_assert(in_lmdb(m2, i), "entry %u lost", i);
    cr_assert(!in_lmdb(m2, 20), "a torn record was indexed");
    /* Appends go on from the header. */
    add(f, 100, 5, true);
    struct stat st;
    cr_assert_eq(stat(to, &st), 0);
    cr_assert_eq(st.st_size, 8 + 5 * (50 + (off_t)strlen("dir/file-10")));
    cr_assert_eq(star_fresh_close(f), 0);
    starmap_close(m2);
    close(fd2);
}

Test(star_fresh, a_corrupt_record_ends_the_replay)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    add(f, 0, 10, true);
    off_t ten = log_size();
    add(f, 10, 10, true);
    char p[400];
    snprintf(p, sizeof p, "%s/bad.log", dir);
    copy_log(p);
    cr_assert_eq(star_fresh_close(f), 0);
    /* Flip a byte of the 11th record's offset field. */
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, ten + 12), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, ten + 12), 1);
    close(fd);

    int fd2;
    char to[400];
    struct starmap *m2 = open_second("d", p, to, &fd2, &f);
    for (unsigned i = 0; i < 10; i++)
        cr_assert(in_lmdb(m2, i));
    for (unsigned i = 10; i < 20; i++)
        cr_assert(!in_lmdb(m2, i), "entry %u after a corrupt record", i);
    cr_assert_eq(star_fresh_close(f), 0);
    starmap_close(m2);
    close(fd2);
}

Test(star_fresh, a_log_that_is_not_ours_is_emptied)
{
    int fd = openat(dirfd_, "index.log", O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    const char junk[] = "not an orbit index log, 40 bytes long...";
    cr_assert_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    cr_assert_eq(log_size(), 8);
    uint64_t n = 99;
    cr_assert_eq(starmap_count(sm, &n), 0);
    cr_assert_eq(n, 0);
    char hdr[8];
    fd = openat(dirfd_, "index.log", O_RDONLY);
    cr_assert_eq(read(fd, hdr, 8), 8);
    close(fd);
    cr_assert_eq(memcmp(hdr, "ORBITIX1", 8), 0);
    cr_assert_eq(star_fresh_close(f), 0);
}

Test(star_fresh, a_merge_is_due_at_its_threshold)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    add(f, 0, FRESH_MERGE_ENTRIES - 1, true);
    cr_assert(!star_fresh_due(f));
    add(f, FRESH_MERGE_ENTRIES - 1, 1, true);
    cr_assert(star_fresh_due(f));
    cr_assert_eq(star_fresh_merge(f), 0);
    cr_assert(!star_fresh_due(f));
    cr_assert(in_lmdb(sm, FRESH_MERGE_ENTRIES - 1));
    cr_assert_eq(star_fresh_close(f), 0);
}

/* The loop's side (have, lookup, drop) runs while the syncer's side
 * publishes and merges: every entry published stays findable, in the
 * table or in LMDB, until dropped. */
struct reader_arg {
    struct star_fresh *f;
    _Atomic unsigned published; /* entries [0, published) are visible */
    _Atomic bool stop;
    unsigned lost, dropped;
};

static void *
reader_main(void *p)
{
    struct reader_arg *a = p;
    struct star_loc *locs = calloc(STAR_MAX_LOCS, sizeof *locs);
    uint32_t x = 2463534242u;
    while (!a->stop) {
        unsigned n = a->published;
        if (n == 0)
            continue;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        unsigned i = x % n;
        uint8_t id[WIRE_ID_LEN];
        id_of(i, id);
        bool have = false;
        star_fresh_have(a->f, id, 1, &have);
        size_t k = star_fresh_lookup(a->f, id, locs, STAR_MAX_LOCS);
        /* Every 97th may have been dropped by this thread. */
        if (i % 97 != 0 && !have && k == 0 && !in_lmdb(sm, i))
            a->lost++;
        if (i % 97 == 0 && k > 0 && star_fresh_drop(a->f, id, &locs[0]))
            a->dropped++;
    }
    free(locs);
    return NULL;
}

Test(star_fresh, lookups_and_drops_run_beside_merges, .timeout = 60)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    struct reader_arg a = {.f = f};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reader_main, &a), 0);
    unsigned total = 2 * FRESH_MERGE_ENTRIES + 1000;
    for (unsigned i = 0; i < total; i += 500) {
        add(f, i, 500, true);
        a.published = i + 500;
        if (star_fresh_due(f))
            cr_assert_eq(star_fresh_merge(f), 0);
    }
    a.stop = true;
    pthread_join(t, NULL);
    cr_assert_eq(star_fresh_merges(f), 2);
    cr_assert_eq(a.lost, 0, "%u lookups found nothing", a.lost);
    cr_log_info("%u drops beside the merges", a.dropped);
    cr_assert_eq(star_fresh_close(f), 0);
    cr_assert_eq(starmap_check(sm, NULL), 0);
}

/* A record whose CRC holds but whose chunk length no chunk can have (0, or
 * over WIRE_MAX_CHUNK) ends the replay like a corrupt one. */
Test(star_fresh, a_record_with_an_impossible_length_ends_the_replay)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    add(f, 0, 10, true); /* all of file-0: records of 50 + 10 bytes */
    char p[400];
    snprintf(p, sizeof p, "%s/long.log", dir);
    copy_log(p);
    cr_assert_eq(star_fresh_close(f), 0);
    const size_t rec = 50 + strlen("dir/file-0");
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t r[64];
    off_t at = 8 + 6 * (off_t)rec; /* the 7th record */
    cr_assert_eq(pread(fd, r, rec, at), (ssize_t)rec);
    uint32_t len = WIRE_MAX_CHUNK + 1, crc;
    for (int k = 0; k < 4; k++)
        r[6 + k] = (uint8_t)(len >> (24 - 8 * k));
    crc = wire_crc32c(r + 4, rec - 4);
    for (int k = 0; k < 4; k++)
        r[k] = (uint8_t)(crc >> (24 - 8 * k));
    cr_assert_eq(pwrite(fd, r, rec, at), (ssize_t)rec);
    close(fd);

    int fd2;
    char to[400];
    struct starmap *m2 = open_second("e", p, to, &fd2, &f);
    for (unsigned i = 0; i < 6; i++)
        cr_assert(in_lmdb(m2, i), "entry %u lost", i);
    for (unsigned i = 6; i < 10; i++)
        cr_assert(!in_lmdb(m2, i), "entry %u replayed", i);
    cr_assert_eq(star_fresh_close(f), 0);
    starmap_close(m2);
    close(fd2);
}

/* KiB of this process's RSS in mappings of the index's data file. */
static size_t
index_mapped_kib(void)
{
    char data[300], line[512];
    snprintf(data, sizeof data, "%s/starmap/data.mdb", dir);
    FILE *fp = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(fp);
    size_t kib = 0;
    bool in = false;
    while (fgets(line, sizeof line, fp)) {
        size_t v = 0;
        if (strchr(line, '-') && line[0] != ' ' && !strstr(line, " kB"))
            in = strstr(line, data) != NULL; /* a mapping's header */
        else if (in && sscanf(line, "Rss: %zu kB", &v) == 1)
            kib += v;
    }
    fclose(fp);
    return kib;
}

/* A merge inserts random keys, one leaf page each: it drops its mappings
 * of the index after each transaction, so that what the star maps does
 * not grow with what it merges (the one at close came after the last
 * round's trim and raised the star's peak RSS by 17 MiB). */
Test(star_fresh, a_merge_leaves_little_of_the_index_mapped)
{
    struct star_fresh *f = NULL;
    cr_assert_eq(star_fresh_open(dirfd_, sm, &f), 0);
    unsigned n = 12 * FRESH_MERGE_TXN;
    for (unsigned i = 0; i < n; i += 1024)
        add(f, i, 1024, true);
    cr_assert_eq(star_fresh_merge(f), 0);
    char p[300];
    struct stat st;
    snprintf(p, sizeof p, "%s/starmap/data.mdb", dir);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_gt(st.st_size, 2 << 20, "index of %lld bytes",
                 (long long)st.st_size);
    size_t kib = index_mapped_kib();
    cr_assert_lt(kib, 256, "%zu KiB of a %lld-byte index mapped", kib,
                 (long long)st.st_size);
    for (unsigned i = 0; i < n; i += 97)
        cr_assert(in_lmdb(sm, i), "entry %u", i);
    cr_assert_eq(star_fresh_close(f), 0);
}
