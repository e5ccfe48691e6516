/*
 * File records and the trusted in-place commit: a file the star committed
 * and nobody touched since is not read again when only its mtime changes;
 * a file changed behind the star's back (even with its mtime restored) is
 * read, and not committed in place when its bytes differ.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "orbit/starmap.h"
#include "test_star_helpers.h"

#define NCH   3
#define CHUNK 65536

static struct tstar T;
static uint8_t src[NCH * CHUNK];
static const size_t cuts[NCH] = {CHUNK, CHUNK, CHUNK};
static const char *const fpath = "d/f.bin";

static void
setup(void)
{
    ts_start(&T);
    ts_fill(src, sizeof src, 42);
}

static void
teardown(void)
{
    ts_stop(&T);
}

TestSuite(star_records, .init = setup, .fini = teardown);

static void
put_all(int fd, const char *hint)
{
    for (uint32_t i = 0; i < NCH; i++)
        tc_put(fd, 100 + i, src + (size_t)i * CHUNK, CHUNK, hint,
               (uint64_t)i * CHUNK);
}

/* COMMIT the source file with mtime; the reply type (ERROR: *code). */
static uint8_t
commit(int fd, int64_t mtime, int *code)
{
    struct tc_file f = {fpath, src, sizeof src, cuts, NCH, 0640, mtime};
    struct wire_chunk_ref refs[NCH];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, 200, &f, refs);
    uint8_t t = tc_call(fd, &m, &r, &buf);
    *code = t == WIRE_ERROR ? r.u.error.code : 0;
    if (t == WIRE_COMMIT_OK)
        cr_assert(r.u.commit_ok.complete);
    free(buf);
    return t;
}

static void
commit_ok(int fd, int64_t mtime)
{
    int code = 0;
    uint8_t t = commit(fd, mtime, &code);
    cr_assert_eq(t, WIRE_COMMIT_OK, "COMMIT: %s %s", wire_type_name(t),
                 orbit_errname(code));
}

static void
dest_path(char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", T.root, fpath);
}

/* The destination holds the source's bytes, with mtime. */
static void
assert_dest(int64_t mtime)
{
    char p[512];
    dest_path(p, sizeof p);
    size_t n = 0;
    char *got = ts_read_file(p, &n);
    cr_assert_not_null(got);
    cr_assert_eq(n, sizeof src);
    cr_assert_arr_eq(got, src, sizeof src);
    free(got);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mtim.tv_sec, mtime);
    cr_assert_eq(st.st_mode & 07777, 0640);
}

static void
assert_counts(uint64_t in_place, uint64_t trusted)
{
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.commits_in_place, in_place, "in place: %llu, want %llu",
                 (unsigned long long)st.commits_in_place,
                 (unsigned long long)in_place);
    cr_assert_eq(st.commits_trusted, trusted, "trusted: %llu, want %llu",
                 (unsigned long long)st.commits_trusted,
                 (unsigned long long)trusted);
}

/* Rewrite the destination's bytes (same size), then put its mtime back. */
static void
tamper(void)
{
    char p[512];
    dest_path(p, sizeof p);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    uint8_t *other = malloc(sizeof src);
    ts_fill(other, sizeof src, 7);
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
    cr_assert_eq(pwrite(fd, other, sizeof src, 0), (ssize_t)sizeof src);
    close(fd);
    free(other);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    struct stat now;
    cr_assert_eq(stat(p, &now), 0);
    cr_assert_eq(now.st_size, st.st_size);
    cr_assert_eq(now.st_mtim.tv_sec, st.st_mtim.tv_sec);
    cr_assert_eq(now.st_mtim.tv_nsec, st.st_mtim.tv_nsec);
}

Test(star_records, trusted_fast_path_and_tampered_file)
{
    int fd = tc_open(T.port);
    put_all(fd, fpath);
    commit_ok(fd, 1600000000);
    assert_dest(1600000000);
    assert_counts(0, 0);

    /* Only the mtime changed: committed in place, trusted, not read. */
    commit_ok(fd, 1600000100);
    assert_dest(1600000100);
    assert_counts(1, 1);
    /* The record was refreshed after fchmod/futimens moved the ctime. */
    commit_ok(fd, 1600000200);
    assert_dest(1600000200);
    assert_counts(2, 2);

    /* Changed behind the star's back, size and mtime restored: the ctime
     * moved, so the file is read; its bytes differ, so no in-place commit.
     * Its chunks were located in that file and fail verification: the
     * star asks for them again, one missing chunk per COMMIT. */
    tamper();
    int code = 0;
    uint8_t t = WIRE_ERROR;
    for (int i = 0; i <= NCH && t != WIRE_COMMIT_OK; i++) {
        t = commit(fd, 1600000300, &code);
        cr_assert(t == WIRE_COMMIT_OK || code == ORBIT_ENOENT, "%s",
                  orbit_errname(code));
        if (t != WIRE_COMMIT_OK)
            put_all(fd, NULL);
    }
    cr_assert_eq(t, WIRE_COMMIT_OK);
    assert_dest(1600000300);
    assert_counts(2, 2);

    /* Committed anew, the file is trusted again. */
    commit_ok(fd, 1600000400);
    assert_dest(1600000400);
    assert_counts(3, 3);
    close(fd);
}

Test(star_records, touched_file_is_read_not_trusted)
{
    int fd = tc_open(T.port);
    put_all(fd, fpath);
    commit_ok(fd, 1600000000);
    /* Someone sets the mtime (same bytes): the ctime moved. */
    char p[512];
    dest_path(p, sizeof p);
    struct timespec ts[2] = {{1234, 0}, {1234, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    commit_ok(fd, 1600000100);
    assert_dest(1600000100);
    assert_counts(1, 0); /* in place after reading it */
    commit_ok(fd, 1600000200);
    assert_counts(2, 1); /* and trusted from then on */
    close(fd);
}

/* Restart the star on the same root. */
static void
restart(void)
{
    star_free(T.star);
    T.star = NULL;
    struct star_config cfg;
    ts_config(&cfg, T.root);
    ts_start_cfg(&T, &cfg);
}

static int
record_of(const char *path, struct starmap_file_rec *r)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/.orbit/starmap", T.root);
    struct starmap *sm = NULL;
    cr_assert_eq(starmap_open(dir, NULL, &sm), 0);
    int rc = starmap_file_get(sm, path, r);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    starmap_close(sm);
    return rc;
}

Test(star_records, records_survive_restart_and_go_with_delete)
{
    int fd = tc_open(T.port);
    put_all(fd, fpath);
    commit_ok(fd, 1600000000);
    close(fd);
    star_free(T.star);
    T.star = NULL;
    struct starmap_file_rec r;
    cr_assert_eq(record_of(fpath, &r), 0);
    char p[512];
    dest_path(p, sizeof p);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(r.ino, (uint64_t)st.st_ino);
    cr_assert_eq(r.ctime_sec, st.st_ctim.tv_sec);
    cr_assert_eq(r.ctime_nsec, (uint32_t)st.st_ctim.tv_nsec);
    cr_assert_eq(r.size, sizeof src);
    uint8_t d[32];
    ts_sha(src, sizeof src, d);
    cr_assert_arr_eq(r.digest, d, 32);

    restart();
    fd = tc_open(T.port);
    commit_ok(fd, 1600000100);
    assert_counts(1, 1);
    struct wire_msg m, rep;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_DELETE;
    m.request_id = 300;
    m.u.del.path = fpath;
    m.u.del.path_len = strlen(fpath);
    cr_assert_eq(tc_call(fd, &m, &rep, &buf), WIRE_DELETE_OK);
    cr_assert(rep.u.delete_ok.existed);
    free(buf);
    close(fd);
    star_free(T.star);
    T.star = NULL;
    cr_assert_eq(record_of(fpath, &r), ORBIT_ENOENT);
}

static int
staging_files(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/.orbit/staging", T.root);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A hinted PUT of another chunk for the path: its staging file exists. */
static void
stage_other_chunk(int fd, uint32_t seed)
{
    uint8_t other[4096];
    ts_fill(other, sizeof other, seed);
    tc_put(fd, 400, other, sizeof other, fpath, 0);
    cr_assert_eq(staging_files(), 1);
}

Test(star_records, in_place_commit_removes_a_staging_file)
{
    int fd = tc_open(T.port);
    put_all(fd, fpath);
    commit_ok(fd, 1600000000);
    cr_assert_eq(staging_files(), 0);
    commit_ok(fd, 1600000100); /* none to remove */
    cr_assert_eq(staging_files(), 0);
    stage_other_chunk(fd, 99);
    commit_ok(fd, 1600000200);
    assert_counts(2, 2);
    cr_assert_eq(staging_files(), 0);
    /* Known after a restart too: the star reads the staging directory. */
    stage_other_chunk(fd, 100);
    close(fd);
    restart();
    fd = tc_open(T.port);
    commit_ok(fd, 1600000300);
    assert_dest(1600000300);
    cr_assert_eq(staging_files(), 0);
    close(fd);
}

static void
dir_msg(struct wire_msg *m, uint32_t rid, const char *path, uint32_t mode,
        int64_t mtime)
{
    memset(m, 0, sizeof *m);
    m->type = WIRE_COMMIT;
    m->request_id = rid;
    m->u.commit.path = path;
    m->u.commit.path_len = strlen(path);
    m->u.commit.ftype = WIRE_FT_DIRECTORY;
    m->u.commit.mode = mode;
    m->u.commit.mtime_sec = mtime;
    m->u.commit.mtime_nsec = 5000;
    m->u.commit.target = "";
}

#define NDIRS 24

/* NDIRS directory COMMITs sent at once (one group), all answered OK. */
static void
commit_dirs(int fd, uint32_t mode, int64_t mtime)
{
    char paths[NDIRS][32];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    for (int i = 0; i < NDIRS; i++) {
        snprintf(paths[i], sizeof paths[i], "top/d%02d/sub", i);
        dir_msg(&m, 500 + (uint32_t)i, paths[i], mode, mtime);
        cr_assert_eq(tc_send(fd, &m), 0);
    }
    for (int i = 0; i < NDIRS; i++) {
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_COMMIT_OK, "%s", wire_type_name(r.type));
    }
    free(buf);
    for (int i = 0; i < NDIRS; i++) {
        char p[512];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", T.root, paths[i]);
        cr_assert_eq(stat(p, &st), 0);
        cr_assert(S_ISDIR(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, mode);
        cr_assert_eq(st.st_mtim.tv_sec, mtime);
        cr_assert_eq(st.st_mtim.tv_nsec, 5000);
    }
}

Test(star_records, directories_synced_with_their_group)
{
    int fd = tc_open(T.port);
    commit_dirs(fd, 0750, 1500000000);
    commit_dirs(fd, 0750, 1500000000); /* unchanged: nothing to set */
    commit_dirs(fd, 0700, 1500000000); /* the mode only */
    commit_dirs(fd, 0700, 1500000100); /* the mtime only */
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    dir_msg(&m, 600, "alone", 0755, 1500000200); /* a group of one */
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    free(buf);
    close(fd);
}

Test(star_records, changed_source_of_the_same_size_is_not_in_place)
{
    int fd = tc_open(T.port);
    put_all(fd, fpath);
    commit_ok(fd, 1600000000);
    /* The source changes, same size: the record says the file holds other
     * bytes, so no read and no in-place commit. */
    ts_fill(src, sizeof src, 43);
    put_all(fd, fpath);
    commit_ok(fd, 1600000100);
    assert_dest(1600000100);
    assert_counts(0, 0);
    commit_ok(fd, 1600000200);
    assert_dest(1600000200);
    assert_counts(1, 1);
    close(fd);
}
