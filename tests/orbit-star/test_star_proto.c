/*
 * The star over a real socket: every message's happy path and error paths,
 * authentication failures, hostile frames, traversal attempts, lifecycle.
 */
#include <dirent.h>
#include <time.h>
#include <zstd.h>

#include "test_star_helpers.h"
#include "wire_internal.h"

static struct tstar T;

static void
setup(void)
{
    ts_start(&T);
}

static void
teardown(void)
{
    ts_stop(&T);
}

static void
expect_error(int fd, const struct wire_msg *req, int code)
{
    struct wire_msg r;
    uint8_t *buf = NULL;
    uint8_t t = tc_call(fd, req, &r, &buf);
    cr_assert_eq(t, WIRE_ERROR, "%s: expected ERROR %s, got %s",
                 wire_type_name(req->type), orbit_errname(code),
                 wire_type_name(t));
    cr_assert_eq(r.u.error.code, code, "%s: got %s (%s)",
                 wire_type_name(req->type), orbit_errname(r.u.error.code),
                 r.u.error.message);
    cr_assert_eq(r.u.error.retryable, orbit_err_retryable(code));
    free(buf);
}

static void
health_ok(int fd)
{
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 77;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HEALTH_REPLY);
    free(buf);
}

/* Count entries of dir other than . and .. */
static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

TestSuite(star_auth, .init = setup, .fini = teardown);

Test(star_auth, wrong_token_is_refused_and_closed)
{
    int fd = tc_connect(T.port);
    const uint8_t bad[] = "not-the-token";
    cr_assert_eq(tc_auth(fd, bad, sizeof bad - 1), ORBIT_EAUTH);
    cr_assert(tc_closed(fd));
    close(fd);
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_geq(st.errors_auth, 1);
}

Test(star_auth, frame_before_auth_is_refused)
{
    int fd = tc_connect(T.port);
    uint8_t *buf = NULL;
    struct wire_msg m, r;
    cr_assert_eq(tc_recv(fd, &buf, &m), 0);
    cr_assert_eq(m.type, WIRE_AUTH_CHALLENGE);
    memset(&r, 0, sizeof r);
    r.type = WIRE_HEALTH;
    r.request_id = 9;
    expect_error(fd, &r, ORBIT_EAUTH);
    cr_assert(tc_closed(fd));
    close(fd);
    free(buf);
}

Test(star_auth, hello_required_before_work)
{
    int fd = tc_connect(T.port);
    cr_assert_eq(tc_auth(fd, ts_token, TS_TOKEN_LEN), 0);
    uint8_t id[32] = {1};
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 5;
    m.u.have.n = 1;
    m.u.have.ids = id;
    expect_error(fd, &m, ORBIT_ESTATE);
    tc_hello(fd);
    health_ok(fd);
    close(fd);
}

Test(star_auth, silent_client_times_out)
{
    ts_stop(&T);
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.auth_timeout_ms = 200;
    ts_start_cfg(&T, &cfg);
    int fd = tc_connect(T.port);
    cr_assert(tc_closed(fd));
    close(fd);
}

Test(star_auth, slowloris_frame_times_out)
{
    ts_stop(&T);
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.frame_timeout_ms = 300;
    ts_start_cfg(&T, &cfg);
    int fd = tc_open(T.port);
    uint8_t part[5] = {1, WIRE_HEALTH, 0, 0, 0};
    /* one byte every 100 ms: the frame never completes in time */
    for (int i = 0; i < 5; i++) {
        if (tc_write_all(fd, part + i, 1) < 0)
            break;
        usleep(100 * 1000);
    }
    cr_assert(tc_closed(fd));
    close(fd);
}

TestSuite(star_frames, .init = setup, .fini = teardown);

Test(star_frames, oversize_header_gets_etoobig_then_close)
{
    int fd = tc_open(T.port);
    uint8_t h[WIRE_HDR_LEN] = {WIRE_VERSION, WIRE_PUT, 0,    0,   0, 0, 0, 3,
                               0xff,         0xff,     0xff, 0xff};
    cr_assert_eq(tc_write_all(fd, h, sizeof h), 0);
    uint8_t *buf = NULL;
    struct wire_msg r;
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.type, WIRE_ERROR);
    cr_assert_eq(r.u.error.code, ORBIT_ETOOBIG);
    cr_assert_eq(r.request_id, 3);
    cr_assert_not(r.u.error.retryable);
    cr_assert(tc_closed(fd));
    close(fd);
    free(buf);
}

Test(star_frames, bad_version_gets_eversion_then_close)
{
    int fd = tc_open(T.port);
    uint8_t h[WIRE_HDR_LEN] = {9, WIRE_HEALTH, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0};
    cr_assert_eq(tc_write_all(fd, h, sizeof h), 0);
    uint8_t *buf = NULL;
    struct wire_msg r;
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.u.error.code, ORBIT_EVERSION);
    cr_assert(tc_closed(fd));
    close(fd);
    free(buf);
}

Test(star_frames, malformed_payload_keeps_the_session)
{
    int fd = tc_open(T.port);
    /* HAVE announcing 2 ids but carrying one. */
    uint8_t f[WIRE_HDR_LEN + 4 + 32] = {
        WIRE_VERSION, WIRE_HAVE, 0, 0, 0, 0, 0, 6, 0, 0, 0, 36, 0, 0, 0, 2};
    cr_assert_eq(tc_write_all(fd, f, sizeof f), 0);
    uint8_t *buf = NULL;
    struct wire_msg r;
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.type, WIRE_ERROR);
    cr_assert_eq(r.request_id, 6);
    cr_assert_eq(r.u.error.code, ORBIT_EPROTO);
    /* unknown type, empty payload */
    uint8_t u[WIRE_HDR_LEN] = {
        WIRE_VERSION, 0x7e, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0};
    cr_assert_eq(tc_write_all(fd, u, sizeof u), 0);
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.u.error.code, ORBIT_EPROTO);
    /* a reply type sent as a request */
    uint8_t ok[WIRE_HDR_LEN] = {
        WIRE_VERSION, WIRE_AUTH_OK, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0};
    cr_assert_eq(wire_frame_seal(ok, sizeof ok), 0);
    cr_assert_eq(tc_write_all(fd, ok, sizeof ok), 0);
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.u.error.code, ORBIT_EPROTO);
    health_ok(fd);
    close(fd);
    free(buf);
}

Test(star_frames, garbage_never_kills_the_star)
{
    for (uint32_t round = 0; round < 20; round++) {
        int fd = tc_connect(T.port);
        uint8_t junk[512];
        ts_fill(junk, sizeof junk, round);
        if (round % 2)
            junk[0] = WIRE_VERSION;
        tc_write_all(fd, junk, sizeof junk);
        close(fd);
    }
    int fd = tc_open(T.port);
    health_ok(fd);
    close(fd);
}

TestSuite(star_data, .init = setup, .fini = teardown);

Test(star_data, put_have_commit_roundtrip)
{
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    int fd = tc_open(T.port);
    enum { N = 200000 };
    uint8_t *data = malloc(N);
    ts_fill(data, N, 1);
    size_t cuts[] = {70000, 65536, N - 70000 - 65536};
    /* chunk 0 hinted, chunk 1 without hint (container), chunk 2 hinted */
    tc_put(fd, 10, data, (uint32_t)cuts[0], "dir/sub/f.bin", 0);
    tc_put(fd, 11, data + cuts[0], (uint32_t)cuts[1], NULL, 0);
    tc_put(fd, 12, data + cuts[0] + cuts[1], (uint32_t)cuts[2], "dir/sub/f.bin",
           cuts[0] + cuts[1]);

    uint8_t ids[4 * 32];
    for (int i = 0, off = 0; i < 3; off += (int)cuts[i], i++)
        ts_sha(data + off, cuts[i], ids + 32 * i);
    memset(ids + 96, 0x5a, 32);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 13;
    m.u.have.n = 4;
    m.u.have.ids = ids;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    cr_assert_eq(r.u.have_reply.n, 4);
    cr_assert_eq(r.u.have_reply.bitmap[0], 0x08, "bitmap %02x",
                 r.u.have_reply.bitmap[0]);

    /* PUT of a held chunk: existed */
    tc_put_msg(&m, 14, data, (uint32_t)cuts[0], NULL, 0);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_PUT_OK);
    cr_assert(r.u.put_ok.existed);

    struct tc_file f = {"dir/sub/f.bin", data, N, cuts, 3, 0640, 1600000000};
    struct wire_chunk_ref refs[3];
    tc_commit_msg(&m, 15, &f, refs);
    uint8_t t = tc_call(fd, &m, &r, &buf);
    cr_assert_eq(t, WIRE_COMMIT_OK, "%s",
                 t == WIRE_ERROR ? r.u.error.message : "");
    cr_assert(r.u.commit_ok.complete);

    char path[512];
    snprintf(path, sizeof path, "%s/dir/sub/f.bin", T.root);
    size_t len = 0;
    char *got = ts_read_file(path, &len);
    cr_assert_not_null(got);
    cr_assert_eq(len, N);
    cr_assert_eq(memcmp(got, data, N), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640);
    cr_assert_eq(st.st_mtim.tv_sec, 1600000000);
    free(got);

    /* the same file again: every chunk found (some now in the file) */
    m.request_id = 16;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    /* and a copy under another name, assembled from the committed file */
    f.path = "copy.bin";
    tc_commit_msg(&m, 17, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    snprintf(path, sizeof path, "%s/copy.bin", T.root);
    got = ts_read_file(path, &len);
    cr_assert_eq(len, N);
    cr_assert_eq(memcmp(got, data, N), 0);
    free(got);
    free(buf);
    free(data);
    close(fd);

    /* Where the star's time went: every stage ran, and each was timed once
     * (together no longer than the test itself). */
    clock_gettime(CLOCK_MONOTONIC, &w1);
    uint64_t wall_us = (uint64_t)(w1.tv_sec - w0.tv_sec) * 1000000u +
                       (uint64_t)((w1.tv_nsec - w0.tv_nsec) / 1000);
    struct star_stats st2;
    star_get_stats(T.star, &st2);
    uint64_t stages[] = {st2.us_put,      st2.us_put_sync,    st2.us_index,
                         st2.us_assemble, st2.us_commit_sync, st2.us_rename,
                         st2.us_record};
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        cr_assert_gt(stages[i], 0, "stage %zu not timed", i);
        sum += stages[i];
    }
    cr_assert_leq(sum, wall_us, "%llu us counted in %llu us",
                  (unsigned long long)sum, (unsigned long long)wall_us);
}

Test(star_data, put_zstd_and_corrupt)
{
    int fd = tc_open(T.port);
    uint8_t raw[40000];
    memset(raw, 'z', sizeof raw);
    uint8_t comp[1024];
    size_t cn = ZSTD_compress(comp, sizeof comp, raw, sizeof raw, 3);
    cr_assert(!ZSTD_isError(cn));
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_put_msg(&m, 20, raw, sizeof raw, NULL, 0);
    m.u.put.codec = WIRE_CODEC_ZSTD;
    m.u.put.data = comp;
    m.u.put.data_len = (uint32_t)cn;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_PUT_OK);
    cr_assert_not(r.u.put_ok.existed);
    /* a file made of it: read back from its container and decoded */
    size_t cuts[] = {sizeof raw};
    struct tc_file f = {"z.txt", raw, sizeof raw, cuts, 1, 0, 0};
    struct wire_chunk_ref refs[1];
    tc_commit_msg(&m, 23, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/z.txt", T.root);
    size_t len = 0;
    char *got = ts_read_file(p, &len);
    cr_assert_eq(len, sizeof raw);
    cr_assert_eq(memcmp(got, raw, len), 0);
    free(got);
    /* bytes that do not match the id */
    tc_put_msg(&m, 21, raw, 1000, NULL, 0);
    m.u.put.id[0] ^= 1;
    expect_error(fd, &m, ORBIT_ECORRUPT);
    /* bad zstd stream */
    tc_put_msg(&m, 22, raw, 1000, NULL, 0);
    m.u.put.codec = WIRE_CODEC_ZSTD;
    m.u.put.data_len = 10;
    expect_error(fd, &m, ORBIT_ECORRUPT);
    health_ok(fd);
    free(buf);
    close(fd);
}

Test(star_data, failed_commits_leave_nothing_visible)
{
    int fd = tc_open(T.port);
    uint8_t data[3000];
    ts_fill(data, sizeof data, 3);
    size_t cuts[] = {1000, 2000};
    tc_put(fd, 30, data, 1000, "f", 0);
    struct tc_file f = {"f", data, sizeof data, cuts, 2, 0, 0};
    struct wire_chunk_ref refs[2];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, 31, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_ERROR);
    cr_assert_eq(r.u.error.code, ORBIT_ENOENT);
    cr_assert_eq(r.u.error.item, 1);
    cr_assert(r.u.error.retryable, "resending the chunk fixes it");
    /* digest mismatch */
    tc_put(fd, 32, data + 1000, 2000, NULL, 0);
    tc_commit_msg(&m, 33, &f, refs);
    m.u.commit.digest[5] ^= 0xff;
    expect_error(fd, &m, ORBIT_ECORRUPT);
    /* sizes that do not add up */
    tc_commit_msg(&m, 34, &f, refs);
    m.u.commit.size = 2999;
    expect_error(fd, &m, ORBIT_EPROTO);
    cr_assert_eq(count_entries(T.root), 1, "only .orbit in ROOT");
    /* and now it works */
    tc_commit_msg(&m, 35, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    cr_assert_eq(count_entries(T.root), 2);
    free(buf);
    close(fd);
}

static void
commit_special(int fd, uint32_t rid, const char *path, uint8_t ftype,
               const char *target, uint32_t mode)
{
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_COMMIT;
    m.request_id = rid;
    m.u.commit.path = path;
    m.u.commit.path_len = strlen(path);
    m.u.commit.ftype = ftype;
    m.u.commit.mode = mode;
    m.u.commit.mtime_sec = 1500000000;
    m.u.commit.target = target;
    m.u.commit.target_len = strlen(target);
    if (ftype == WIRE_FT_REGULAR)
        ts_sha("", 0, m.u.commit.digest);
    uint8_t t = tc_call(fd, &m, &r, &buf);
    cr_assert_eq(t, WIRE_COMMIT_OK, "%s: %s", path,
                 t == WIRE_ERROR ? r.u.error.message : "");
    free(buf);
}

Test(star_data, symlinks_dirs_and_empty_files)
{
    int fd = tc_open(T.port);
    commit_special(fd, 40, "a/b/empty", WIRE_FT_DIRECTORY, "", 0750);
    commit_special(fd, 41, "x/y/zero.txt", WIRE_FT_REGULAR, "", 0600);
    commit_special(fd, 42, "x/link", WIRE_FT_SYMLINK, "../../etc/passwd", 0777);
    commit_special(fd, 43, "x/link", WIRE_FT_SYMLINK, "y/zero.txt", 0777);
    char p[512], target[64] = {0};
    struct stat st;
    snprintf(p, sizeof p, "%s/a/b/empty", T.root);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0750);
    cr_assert_eq(st.st_mtim.tv_sec, 1500000000);
    snprintf(p, sizeof p, "%s/x/y/zero.txt", T.root);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_size, 0);
    snprintf(p, sizeof p, "%s/x/link", T.root);
    cr_assert_eq(lstat(p, &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
    cr_assert_gt(readlink(p, target, sizeof target - 1), 0);
    cr_assert_str_eq(target, "y/zero.txt");
    cr_assert_eq(st.st_mtim.tv_sec, 1500000000);
    /* a regular file where a directory stands */
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_COMMIT;
    m.request_id = 44;
    m.u.commit.path = "a/b";
    m.u.commit.path_len = 3;
    m.u.commit.ftype = WIRE_FT_REGULAR;
    m.u.commit.target = "";
    ts_sha("", 0, m.u.commit.digest);
    expect_error(fd, &m, ORBIT_EISDIR);
    close(fd);
}

/* Encode m, then overwrite the path bytes (same length) with evil. */
static void
send_patched(int fd, const struct wire_msg *m, const char *good,
             const char *evil)
{
    size_t len = 0, wrote = 0;
    cr_assert_eq(wire_encoded_len(m, &len), 0);
    uint8_t *f = malloc(len);
    cr_assert_eq(wire_encode(m, f, len, &wrote), 0);
    size_t n = strlen(good);
    cr_assert_eq(strlen(evil), n);
    uint8_t *at = memmem(f + WIRE_HDR_LEN, len - WIRE_HDR_LEN, good, n);
    cr_assert_not_null(at);
    memcpy(at, evil, n);
    cr_assert_eq(tc_write_all(fd, f, wrote), 0);
    free(f);
}

Test(star_data, traversal_attempts_are_refused)
{
    int fd = tc_open(T.port);
    const char *evil[] = {"../outside/x", "/tmp/escaped", ".orbit/starm",
                          "a/../../../b", "a//b/c/d/e/f", "./a/b/c/d/ef",
                          "a/b/c/d/e/.."};
    uint8_t *buf = NULL;
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        char good[64];
        memset(good, 'q', strlen(evil[i]));
        good[strlen(evil[i])] = 0;
        for (int kind = 0; kind < 3; kind++) {
            struct wire_msg m, r;
            memset(&m, 0, sizeof m);
            m.request_id = (uint32_t)(100 + i * 3 + kind);
            if (kind == 0) {
                commit_special(fd, 99, "warmup", WIRE_FT_DIRECTORY, "", 0755);
                m.type = WIRE_COMMIT;
                m.u.commit.path = good;
                m.u.commit.path_len = strlen(good);
                m.u.commit.ftype = WIRE_FT_DIRECTORY;
                m.u.commit.target = "";
            } else if (kind == 1) {
                m.type = WIRE_DELETE;
                m.u.del.path = good;
                m.u.del.path_len = strlen(good);
            } else {
                m.type = WIRE_LIST;
                m.u.list.path = good;
                m.u.list.path_len = strlen(good);
                m.u.list.cursor = "";
            }
            send_patched(fd, &m, good, evil[i]);
            cr_assert_eq(tc_recv(fd, &buf, &r), 0);
            cr_assert_eq(r.type, WIRE_ERROR, "%s accepted", evil[i]);
            cr_assert_eq(r.u.error.code, ORBIT_EPATH, "%s: %s", evil[i],
                         orbit_errname(r.u.error.code));
        }
    }
    health_ok(fd);
    free(buf);
    close(fd);
    cr_assert_eq(access("/tmp/escaped", F_OK), -1);
}

Test(star_data, symlink_out_of_root_is_not_followed)
{
    char outside[256], p[512];
    ts_mkroot(outside, sizeof outside);
    snprintf(p, sizeof p, "%s/evil", T.root);
    cr_assert_eq(symlink(outside, p), 0);
    snprintf(p, sizeof p, "%s/victim", outside);
    FILE *v = fopen(p, "w");
    fputs("keep", v);
    fclose(v);
    int fd = tc_open(T.port);
    uint8_t data[100];
    ts_fill(data, sizeof data, 9);
    /* a hint through the link is ignored: the chunk still lands */
    tc_put(fd, 50, data, sizeof data, "evil/new", 0);
    size_t cuts[] = {sizeof data};
    struct tc_file f = {"evil/new", data, sizeof data, cuts, 1, 0, 0};
    struct wire_chunk_ref refs[1];
    struct wire_msg m;
    tc_commit_msg(&m, 51, &f, refs);
    expect_error(fd, &m, ORBIT_EPATH);
    memset(&m, 0, sizeof m);
    m.type = WIRE_DELETE;
    m.request_id = 52;
    m.u.del.path = "evil/victim";
    m.u.del.path_len = strlen(m.u.del.path);
    expect_error(fd, &m, ORBIT_EPATH);
    memset(&m, 0, sizeof m);
    m.type = WIRE_LIST;
    m.request_id = 53;
    m.u.list.path = "evil";
    m.u.list.path_len = 4;
    m.u.list.cursor = "";
    expect_error(fd, &m, ORBIT_EPATH);
    cr_assert_eq(count_entries(outside), 1, "nothing written outside");
    cr_assert_eq(access(p, F_OK), 0, "victim kept");
    close(fd);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", outside);
    cr_assert_eq(system(cmd), 0);
}

Test(star_data, list_pages_through_the_tree)
{
    char p[512];
    for (int i = 0; i < 25; i++) {
        snprintf(p, sizeof p, "%s/d%d", T.root, i % 3);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/d%d/f%02d", T.root, i % 3, i);
        FILE *f = fopen(p, "w");
        fprintf(f, "%d", i);
        fclose(f);
    }
    int fd = tc_open(T.port);
    char cursor[WIRE_MAX_PATH + 1] = "";
    int files = 0, dirs = 0, pages = 0;
    uint8_t *buf = NULL;
    for (;;) {
        struct wire_msg m, r;
        memset(&m, 0, sizeof m);
        m.type = WIRE_LIST;
        m.request_id = (uint32_t)(60 + pages);
        m.u.list.path = "";
        m.u.list.cursor = cursor;
        m.u.list.cursor_len = strlen(cursor);
        m.u.list.max_entries = 10;
        cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_LIST_REPLY);
        pages++;
        size_t pos = 0;
        struct wire_list_entry e;
        while (wire_list_next(&r.u.list_reply, &pos, &e) == 0) {
            cr_assert_neq(strncmp(e.path, ".orbit", 6), 0);
            files += e.ftype == WIRE_FT_REGULAR;
            dirs += e.ftype == WIRE_FT_DIRECTORY;
        }
        if (r.u.list_reply.next_cursor_len == 0)
            break;
        memcpy(cursor, r.u.list_reply.next_cursor,
               r.u.list_reply.next_cursor_len + 1);
        cr_assert_lt(pages, 10);
    }
    cr_assert_eq(files, 25, "files %d dirs %d pages %d", files, dirs, pages);
    cr_assert_eq(dirs, 3);
    cr_assert_geq(pages, 3);
    free(buf);
    buf = NULL;
    close(fd);
}

/* LIST with WIRE_LIST_DIGESTS: every regular file's SHA-256, read now; a
 * page ends after the file that takes its hashing past 64 MiB. Without
 * the flag no digest is sent; an unknown flag is refused. */
Test(star_data, list_with_digests_reads_every_file)
{
    static const size_t sizes[] = {100, 40u << 20, 40u << 20, 7};
    static const char *const names[] = {"a", "b", "c", "d"};
    uint8_t want[4][32];
    char p[512];
    for (int i = 0; i < 4; i++) {
        uint8_t *data = malloc(sizes[i]);
        cr_assert_not_null(data);
        ts_fill(data, sizes[i], (uint32_t)i + 3);
        ts_sha(data, sizes[i], want[i]);
        snprintf(p, sizeof p, "%s/%s", T.root, names[i]);
        FILE *f = fopen(p, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(data, 1, sizes[i], f), sizes[i]);
        fclose(f);
        free(data);
    }
    int fd = tc_open(T.port);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_LIST;
    m.request_id = 90;
    m.u.list.path = "";
    m.u.list.cursor = "";
    m.u.list.flags = WIRE_LIST_DIGESTS;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_LIST_REPLY);
    /* a (100 B) + b + c pass 64 MiB: the page ends after c */
    cr_assert_eq(r.u.list_reply.n, 3);
    cr_assert_str_eq(r.u.list_reply.next_cursor, "c");
    size_t pos = 0;
    struct wire_list_entry e;
    for (int i = 0; wire_list_next(&r.u.list_reply, &pos, &e) == 0; i++) {
        cr_assert_str_eq(e.path, names[i]);
        cr_assert(e.has_digest, "%s has no digest", e.path);
        cr_assert_arr_eq(e.digest, want[i], 32, "%s: wrong digest", e.path);
    }
    m.request_id = 91;
    m.u.list.cursor = "c";
    m.u.list.cursor_len = 1;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_LIST_REPLY);
    cr_assert_eq(r.u.list_reply.n, 1);
    cr_assert_eq(r.u.list_reply.next_cursor_len, 0);
    pos = 0;
    cr_assert_eq(wire_list_next(&r.u.list_reply, &pos, &e), 0);
    cr_assert(e.has_digest);
    cr_assert_arr_eq(e.digest, want[3], 32);

    /* without the flag: one page, no digests */
    m.request_id = 92;
    m.u.list.flags = 0;
    m.u.list.cursor = "";
    m.u.list.cursor_len = 0;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_LIST_REPLY);
    cr_assert_eq(r.u.list_reply.n, 4);
    pos = 0;
    while (wire_list_next(&r.u.list_reply, &pos, &e) == 0)
        cr_assert_not(e.has_digest);

    /* flag bit 1 is no flag: the encoder refuses it, the star too */
    m.request_id = 93;
    m.u.list.flags = 0x02;
    size_t len = 0;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EINVAL);
    m.u.list.flags = WIRE_LIST_DIGESTS;
    uint8_t frame[64];
    cr_assert_eq(wire_encode(&m, frame, sizeof frame, &len), 0);
    frame[len - 1] = 0x02;
    cr_assert_eq(wire_frame_seal(frame, len), ORBIT_EPROTO);
    wire_be16_put(frame + 2, 0x8000); /* any check: the payload fails first */
    cr_assert_eq(tc_write_all(fd, frame, len), 0);
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.type, WIRE_ERROR);
    cr_assert_eq(r.request_id, 93);
    health_ok(fd);
    free(buf);
    close(fd);
}

/* The staging file a PUT with a hint for path writes to. */
static void
staging_path(const char *path, char *out, size_t cap)
{
    uint8_t h[32];
    ts_sha(path, strlen(path), h);
    int n = snprintf(out, cap, "%s/.orbit/staging/", T.root);
    for (int i = 0; i < 32; i++)
        n += snprintf(out + n, cap - (size_t)n, "%02x", h[i]);
}

/* Staging files of transfers never committed go once nothing has written
 * to them for staging_ttl_s (checked at start, then hourly); recent ones
 * stay. A COMMIT naming the removed chunks then gets ENOENT, retryable,
 * and HAVE reports them missing. */
Test(star_data, abandoned_staging_files_expire)
{
    uint8_t a[4000], b[4000];
    ts_fill(a, sizeof a, 51);
    ts_fill(b, sizeof b, 52);
    int fd = tc_open(T.port);
    tc_put(fd, 1, a, sizeof a, "old/abandoned.bin", 0);
    tc_put(fd, 2, b, sizeof b, "recent.bin", 0);
    close(fd);
    star_free(T.star);
    T.star = NULL;
    char old[600], recent[600];
    staging_path("old/abandoned.bin", old, sizeof old);
    staging_path("recent.bin", recent, sizeof recent);
    cr_assert_eq(access(old, F_OK), 0, "%s", old);
    cr_assert_eq(access(recent, F_OK), 0, "%s", recent);
    struct timespec eight_days_ago[2] = {
        {.tv_sec = time(NULL) - 8 * 24 * 3600},
        {.tv_sec = time(NULL) - 8 * 24 * 3600}};
    cr_assert_eq(utimensat(AT_FDCWD, old, eight_days_ago, 0), 0);

    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.staging_ttl_s = 0; /* kept */
    ts_start_cfg(&T, &cfg);
    cr_assert_eq(access(old, F_OK), 0, "staging_ttl_s 0 keeps it");
    star_free(T.star);
    ts_config(&cfg, T.root); /* the default: 7 days */
    ts_start_cfg(&T, &cfg);
    cr_assert_neq(access(old, F_OK), 0, "the abandoned staging file stayed");
    cr_assert_eq(access(recent, F_OK), 0, "a recent one went too");
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.staging_expired, 1);

    fd = tc_open(T.port);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    const size_t cut[] = {sizeof a};
    struct tc_file f = {"old/abandoned.bin", a, sizeof a, cut, 1, 0, 0};
    struct wire_chunk_ref ref;
    tc_commit_msg(&m, 3, &f, &ref);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_ERROR);
    cr_assert_eq(r.u.error.code, ORBIT_ENOENT, "%s", r.u.error.message);
    cr_assert(r.u.error.retryable);
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 4;
    m.u.have.n = 1;
    m.u.have.ids = ref.id;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    cr_assert_eq(r.u.have_reply.bitmap[0], 0x01, "the chunk is missing");
    free(buf);
    close(fd);
}

Test(star_data, delete_files_and_directories)
{
    char p[1024];
    snprintf(p, sizeof p, "mkdir -p %s/d/e && touch %s/d/e/f %s/g", T.root,
             T.root, T.root);
    cr_assert_eq(system(p), 0);
    int fd = tc_open(T.port);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_DELETE;
    m.request_id = 70;
    m.u.del.path = "g";
    m.u.del.path_len = 1;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_DELETE_OK);
    cr_assert(r.u.delete_ok.existed);
    m.request_id = 71;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_DELETE_OK);
    cr_assert_not(r.u.delete_ok.existed);
    m.request_id = 72;
    m.u.del.path = "d";
    m.u.del.path_len = 1;
    expect_error(fd, &m, ORBIT_EISDIR);
    m.request_id = 73;
    m.u.del.flags = WIRE_DELETE_RECURSIVE;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_DELETE_OK);
    cr_assert(r.u.delete_ok.existed);
    m.request_id = 74;
    m.u.del.path = "nope/deeper";
    m.u.del.path_len = strlen(m.u.del.path);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_DELETE_OK);
    cr_assert_not(r.u.delete_ok.existed);
    cr_assert_eq(count_entries(T.root), 1);
    free(buf);
    close(fd);
}

Test(star_data, health_reports_disk_and_counters)
{
    int fd = tc_open(T.port);
    uint8_t data[5000];
    ts_fill(data, sizeof data, 4);
    tc_put(fd, 80, data, sizeof data, NULL, 0);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 81;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HEALTH_REPLY);
    cr_assert_gt(r.u.health.disk_total, 0);
    cr_assert_leq(r.u.health.disk_used, r.u.health.disk_total);
    cr_assert_eq(r.u.health.bytes_received, sizeof data);
    cr_assert_eq(r.u.health.chunks_received, 1);
    cr_assert_geq(r.u.health.connections, 1);
    cr_assert(r.u.health.state == WIRE_STATE_READY ||
              r.u.health.state == WIRE_STATE_DEGRADED);
    free(buf);
    close(fd);
}

Test(star_data, goodbye_answers_then_closes)
{
    int fd = tc_open(T.port);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_GOODBYE;
    m.request_id = 90;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_GOODBYE_OK);
    cr_assert(tc_closed(fd));
    free(buf);
    close(fd);
}

Test(star_data, pipelined_puts_share_sync_rounds)
{
    int fd = tc_open(T.port);
    enum { N = 64, LEN = 4096 };
    uint8_t *data = malloc((size_t)N * LEN);
    ts_fill(data, (size_t)N * LEN, 5);
    struct wire_msg m;
    for (uint32_t i = 0; i < N; i++) {
        tc_put_msg(&m, 1000 + i, data + (size_t)i * LEN, LEN, "big", i * LEN);
        cr_assert_eq(tc_send(fd, &m), 0);
    }
    uint8_t *buf = NULL;
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_PUT_OK);
    }
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_lt(st.sync_rounds, N, "%lu rounds for %d PUTs",
                 (unsigned long)st.sync_rounds, N);
    free(buf);
    free(data);
    close(fd);
}

/* PUTs to more files than the star keeps open: a file pushed out of its
 * cache before the round is synced with the round (one syncfs for many), not
 * with an fdatasync of its own at eviction; every chunk is still indexed. */
Test(star_data, puts_to_many_files_share_the_round_sync)
{
    int fd = tc_open(T.port);
    enum { N = 300, LEN = 1024 };
    uint8_t *data = malloc((size_t)N * LEN);
    ts_fill(data, (size_t)N * LEN, 11);
    struct wire_msg m;
    for (uint32_t i = 0; i < N; i++) {
        char hint[32];
        snprintf(hint, sizeof hint, "d/f%03u", i);
        tc_put_msg(&m, 2000 + i, data + (size_t)i * LEN, LEN, hint, 0);
        cr_assert_eq(tc_send(fd, &m), 0);
    }
    uint8_t *buf = NULL;
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_PUT_OK, "PUT %u: %s", i,
                     wire_type_name(r.type));
    }
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.chunks_received, N);
    cr_assert_lt(st.put_syncs, N / 4, "%llu syncs for %d files in %llu rounds",
                 (unsigned long long)st.put_syncs, N,
                 (unsigned long long)st.sync_rounds);
    uint8_t(*ids)[32] = malloc((size_t)N * 32);
    for (uint32_t i = 0; i < N; i++)
        ts_sha(data + (size_t)i * LEN, LEN, ids[i]);
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 1;
    m.u.have.n = N;
    m.u.have.ids = (const uint8_t *)ids;
    struct wire_msg r;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    for (uint32_t i = 0; i < N; i++)
        cr_assert(!wire_bitmap_get(r.u.have_reply.bitmap, i), /* missing */
                  "chunk %u not indexed", i);
    free(ids);
    free(buf);
    free(data);
    close(fd);
}

/* Rounds are spaced only after busy ones: a client that waits for each
 * reply gets it at once, however long the spacing. */
Test(star_data, a_client_waiting_for_each_reply_is_not_spaced)
{
    ts_stop(&T);
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.round_interval_us = 120u * 1000 * 1000; /* 2 min; replies wait 20 s */
    ts_start_cfg(&T, &cfg);
    int fd = tc_open(T.port);
    uint8_t data[4][2048];
    for (uint32_t i = 0; i < 4; i++) {
        ts_fill(data[i], sizeof data[i], 12 + i);
        tc_put(fd, 1 + i, data[i], sizeof data[i], "one.bin",
               (uint64_t)i * sizeof data[i]);
    }
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.sync_rounds, 4);
    close(fd);
}

/* The syncer's test seam: this process's rounds wait this long before
 * each of their sync steps. */
static volatile unsigned syncer_pause_ms;

void star_syncer_test_pause(void);
void
star_syncer_test_pause(void)
{
    if (syncer_pause_ms)
        usleep(syncer_pause_ms * 1000u);
}

/* A HEALTH sent now is answered first, within 500 ms, though an earlier
 * request (what) is held. */
static void
health_first(int fd, uint32_t rid, uint8_t **buf, const char *what)
{
    struct wire_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = rid;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(tc_send(fd, &m), 0);
    cr_assert_eq(tc_recv(fd, buf, &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 +
              (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert_eq(r.request_id, rid, "the %s of request %u came first",
                 wire_type_name(r.type), r.request_id);
    cr_assert_eq(r.type, WIRE_HEALTH_REPLY);
    cr_assert_lt(ms, 500, "HEALTH took %ld ms behind %s", ms, what);
}

/* A round's syncs run beside the loop: while one is held in flight, a
 * HEALTH sent after the PUT is answered at once, before the PUT_OK, and
 * the PUT_OK still comes (durable and indexed) once the round completes. */
Test(star_data, the_loop_answers_while_a_round_syncs)
{
    int fd = tc_open(T.port);
    uint8_t data[5000];
    ts_fill(data, sizeof data, 41);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_put_msg(&m, 20, data, sizeof data, "held.bin", 0);
    syncer_pause_ms = 800;
    cr_assert_eq(tc_send(fd, &m), 0);
    usleep(150 * 1000); /* the round has started: its sync is held */
    health_first(fd, 21, &buf, "a held round");
    syncer_pause_ms = 0;
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.request_id, 20);
    cr_assert_eq(r.type, WIRE_PUT_OK);
    struct wire_msg h;
    memset(&h, 0, sizeof h);
    h.type = WIRE_HAVE;
    h.request_id = 22;
    h.u.have.n = 1;
    uint8_t id[32];
    ts_sha(data, sizeof data, id);
    h.u.have.ids = id;
    cr_assert_eq(tc_call(fd, &h, &r, &buf), WIRE_HAVE_REPLY);
    cr_assert_eq(r.u.have_reply.bitmap[0], 0, "the chunk is indexed");
    free(buf);
    close(fd);
}

static void
send_digest_list(int fd, uint32_t rid)
{
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_LIST;
    m.request_id = rid;
    m.u.list.path = "";
    m.u.list.cursor = "";
    m.u.list.flags = WIRE_LIST_DIGESTS;
    cr_assert_eq(tc_send(fd, &m), 0);
}

/* The one entry of a digest LIST reply: "f", with the digest want. */
static void
expect_listed(const struct wire_msg *r, uint32_t rid, const uint8_t want[32])
{
    cr_assert_eq(r->request_id, rid, "the %s of request %u came first",
                 wire_type_name(r->type), r->request_id);
    cr_assert_eq(r->type, WIRE_LIST_REPLY);
    cr_assert_eq(r->u.list_reply.n, 1);
    size_t pos = 0;
    struct wire_list_entry e;
    cr_assert_eq(wire_list_next(&r->u.list_reply, &pos, &e), 0);
    cr_assert_str_eq(e.path, "f");
    cr_assert(e.has_digest);
    cr_assert_arr_eq(e.digest, want, 32);
}

/* A LIST that hashes files runs beside the loop: held, it does not hold
 * up a HEALTH sent after it; LISTs queued behind it are answered in turn;
 * a draining star answers the one in flight before it closes. */
Test(star_data, the_loop_answers_while_a_list_hashes)
{
    enum { SIZE = 3 << 20 };
    uint8_t *data = malloc(SIZE), want[32];
    cr_assert_not_null(data);
    ts_fill(data, SIZE, 47);
    ts_sha(data, SIZE, want);
    char p[512];
    snprintf(p, sizeof p, "%s/f", T.root);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, SIZE, f), SIZE);
    cr_assert_eq(fclose(f), 0);
    free(data);
    int fd = tc_open(T.port);
    struct wire_msg r;
    uint8_t *buf = NULL;
    syncer_pause_ms = 800;
    send_digest_list(fd, 50);
    usleep(150 * 1000); /* the LIST has started: it is held */
    health_first(fd, 51, &buf, "a held LIST");
    /* two more queue behind the held one */
    send_digest_list(fd, 52);
    send_digest_list(fd, 53);
    syncer_pause_ms = 0;
    for (uint32_t rid = 50; rid <= 53; rid += rid == 50 ? 2 : 1) {
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        expect_listed(&r, rid, want);
    }
    health_ok(fd);
    /* draining with one held: answered, then the connection closes */
    syncer_pause_ms = 400;
    send_digest_list(fd, 54);
    usleep(100 * 1000);
    cr_assert_eq(star_drain(T.star), 0);
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    expect_listed(&r, 54, want);
    cr_assert(tc_closed(fd));
    syncer_pause_ms = 0;
    cr_assert_eq(star_check(T.star), 0);
    free(buf);
    close(fd);
}

/* Digest LISTs wait in a bounded queue: with one held and 63 queued, the
 * next ones are refused at once (EAGAIN, retryable) and the 64 are then
 * answered in order. */
Test(star_data, digest_lists_queue_at_most_64)
{
    int fd = tc_open(T.port);
    struct wire_msg r;
    uint8_t *buf = NULL;
    syncer_pause_ms = 800;
    for (uint32_t rid = 100; rid < 166; rid++)
        send_digest_list(fd, rid);
    for (uint32_t rid = 164; rid < 166; rid++) {
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.request_id, rid, "the %s of request %u came first",
                     wire_type_name(r.type), r.request_id);
        cr_assert_eq(r.type, WIRE_ERROR);
        cr_assert_eq(r.u.error.code, ORBIT_EAGAIN);
        cr_assert(r.u.error.retryable);
    }
    syncer_pause_ms = 0;
    for (uint32_t rid = 100; rid < 164; rid++) {
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.request_id, rid);
        cr_assert_eq(r.type, WIRE_LIST_REPLY);
    }
    health_ok(fd);
    free(buf);
    close(fd);
}

/* Draining with a round held in flight: the PUT is still answered (its
 * chunk durable and indexed) before the star closes the connection. */
Test(star_data, a_round_in_flight_completes_before_the_star_stops)
{
    int fd = tc_open(T.port);
    uint8_t data[3000];
    ts_fill(data, sizeof data, 43);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_put_msg(&m, 30, data, sizeof data, "late.bin", 0);
    syncer_pause_ms = 400;
    cr_assert_eq(tc_send(fd, &m), 0);
    usleep(100 * 1000);
    cr_assert_eq(star_drain(T.star), 0);
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    cr_assert_eq(r.request_id, 30);
    cr_assert_eq(r.type, WIRE_PUT_OK);
    cr_assert(tc_closed(fd));
    close(fd);
    free(buf);
    buf = NULL;
    syncer_pause_ms = 0;
    cr_assert_eq(star_check(T.star), 0);
    star_free(T.star); /* the root stays */
    T.star = NULL;
    /* reopened, the star still has the chunk */
    struct star_config cfg;
    ts_config(&cfg, T.root);
    ts_start_cfg(&T, &cfg);
    fd = tc_open(T.port);
    uint8_t id[32];
    ts_sha(data, sizeof data, id);
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 31;
    m.u.have.n = 1;
    m.u.have.ids = id;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    cr_assert_eq(r.u.have_reply.bitmap[0], 0);
    free(buf);
    close(fd);
}

Test(star_lifecycle, work_refused_unless_scheduled)
{
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cr_assert_eq(star_new(&cfg, &T.star), 0);
    cr_assert_eq(star_get_state(T.star), STAR_REGISTERED);
    cr_assert_eq(star_listen(T.star, "127.0.0.1:0"), 0);
    T.port = star_port(T.star);
    int fd = tc_open(T.port);
    uint8_t data[10] = "0123456789";
    struct wire_msg m;
    tc_put_msg(&m, 1, data, sizeof data, NULL, 0);
    expect_error(fd, &m, ORBIT_ESTATE);
    health_ok(fd);
    cr_assert_eq(star_schedule(T.star), 0);
    cr_assert_eq(star_schedule(T.star), ORBIT_ESTATE);
    tc_put(fd, 2, data, sizeof data, NULL, 0);
    close(fd);
    ts_stop(&T);
}

static int transitions[8];
static int ntransitions;

static void
record_state(void *arg, enum star_state from, enum star_state to)
{
    (void)arg;
    (void)from;
    if (ntransitions < 8)
        transitions[ntransitions++] = (int)to;
}

Test(star_lifecycle, drain_closes_clients_and_refuses_new_ones)
{
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.on_state = record_state;
    ts_start_cfg(&T, &cfg);
    int fd = tc_open(T.port);
    uint8_t data[100];
    ts_fill(data, sizeof data, 6);
    tc_put(fd, 1, data, sizeof data, NULL, 0);
    cr_assert_eq(star_drain(T.star), 0);
    cr_assert_eq(star_get_state(T.star), STAR_SHUTDOWN);
    cr_assert(tc_closed(fd));
    close(fd);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(T.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_neq(connect(s, (struct sockaddr *)&sa, sizeof sa), 0);
    close(s);
    cr_assert_eq(star_drain(T.star), 0);
    cr_assert_eq(ntransitions, 3);
    cr_assert_eq(transitions[0], STAR_SCHEDULED);
    cr_assert_eq(transitions[1], STAR_DRAINING);
    cr_assert_eq(transitions[2], STAR_SHUTDOWN);
    ts_stop(&T);
}

/* A socketpair whose end sv[1] the star serves; sv[0] authed, HELLO done. */
static void
adopt_client(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(star_adopt_fd(T.star, sv[1]), 0);
    struct timeval tv = {20, 0};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(tc_auth(sv[0], ts_token, TS_TOKEN_LEN), 0);
    tc_hello(sv[0]);
}

Test(star_lifecycle, socketpair_in_process)
{
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cr_assert_eq(star_new(&cfg, &T.star), 0);
    cr_assert_eq(star_schedule(T.star), 0);
    int sv[2];
    adopt_client(sv);
    uint8_t data[3000];
    ts_fill(data, sizeof data, 7);
    tc_put(sv[0], 5, data, sizeof data, "local.bin", 0);
    size_t cuts[] = {sizeof data};
    struct tc_file f = {"local.bin", data, sizeof data, cuts, 1, 0, 0};
    struct wire_chunk_ref refs[1];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, 6, &f, refs);
    cr_assert_eq(tc_call(sv[0], &m, &r, &buf), WIRE_COMMIT_OK);
    close(sv[0]);
    free(buf);
    ts_stop(&T);
}

/* A star that does not hash PUTs (the in-process star of a local copy, its
 * client its own process) refuses to listen. A PUT whose bytes do not match
 * its id is taken, but the COMMIT over it fails (retryable), leaves nothing
 * at the path, and the chunk is missing from then on; sent again with the
 * right bytes, the file commits. */
Test(star_lifecycle, an_unverified_put_is_caught_at_commit)
{
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.verify_puts = false;
    cr_assert_eq(star_new(&cfg, &T.star), 0);
    cr_assert_eq(star_listen(T.star, "127.0.0.1:0"), ORBIT_EINVAL);
    cr_assert_eq(star_schedule(T.star), 0);
    int sv[2];
    adopt_client(sv);
    uint8_t good[3000], bad[3000];
    ts_fill(good, sizeof good, 8);
    memcpy(bad, good, sizeof bad);
    bad[1234] ^= 0x40;
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_put_msg(&m, 5, good, sizeof good, "lie.bin", 0);
    m.u.put.data = bad; /* the id names good */
    cr_assert_eq(tc_call(sv[0], &m, &r, &buf), WIRE_PUT_OK);
    size_t cuts[] = {sizeof good};
    struct tc_file f = {"lie.bin", good, sizeof good, cuts, 1, 0, 0};
    struct wire_chunk_ref refs[1];
    tc_commit_msg(&m, 6, &f, refs);
    cr_assert_eq(tc_call(sv[0], &m, &r, &buf), WIRE_ERROR);
    cr_assert(r.u.error.retryable, "code %d: %s", r.u.error.code,
              r.u.error.message);
    char p[600];
    snprintf(p, sizeof p, "%s/lie.bin", T.root);
    cr_assert_eq(access(p, F_OK), -1, "a wrong file was put in place");
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 7;
    m.u.have.n = 1;
    m.u.have.ids = refs[0].id;
    cr_assert_eq(tc_call(sv[0], &m, &r, &buf), WIRE_HAVE_REPLY);
    cr_assert(wire_bitmap_get(r.u.have_reply.bitmap, 0), "still indexed");
    tc_put(sv[0], 8, good, sizeof good, "lie.bin", 0);
    tc_commit_msg(&m, 9, &f, refs);
    cr_assert_eq(tc_call(sv[0], &m, &r, &buf), WIRE_COMMIT_OK);
    size_t n = 0;
    char *got = ts_read_file(p, &n);
    cr_assert(got && n == sizeof good && memcmp(got, good, n) == 0);
    free(got);
    close(sv[0]);
    free(buf);
    ts_stop(&T);
}

Test(star_data, stale_entries_are_dropped_on_read)
{
    int fd = tc_open(T.port);
    uint8_t data[8192];
    ts_fill(data, sizeof data, 31);
    tc_put(fd, 1, data, 4096, "s.bin", 0);
    tc_put(fd, 2, data + 4096, 4096, "s.bin", 4096);
    /* the staging file changes behind the star's back */
    uint8_t h[32];
    ts_sha("s.bin", 5, h);
    char p[512];
    int n = snprintf(p, sizeof p, "%s/.orbit/staging/", T.root);
    for (int i = 0; i < 32; i++)
        n += snprintf(p + n, sizeof p - (size_t)n, "%02x", h[i]);
    int sfd = open(p, O_WRONLY);
    cr_assert_geq(sfd, 0, "staging file %s", p);
    cr_assert_eq(pwrite(sfd, "garbage!", 8, 5000), 8);
    close(sfd);
    size_t cuts[] = {4096, 4096};
    struct tc_file f = {"s.bin", data, sizeof data, cuts, 2, 0, 0};
    struct wire_chunk_ref refs[2];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, 3, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_ERROR);
    cr_assert_eq(r.u.error.code, ORBIT_ENOENT);
    cr_assert_eq(r.u.error.item, 1);
    /* the entry is gone: HAVE asks for the chunk again */
    uint8_t ids[64];
    memcpy(ids, refs[0].id, 32);
    memcpy(ids + 32, refs[1].id, 32);
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 4;
    m.u.have.n = 2;
    m.u.have.ids = ids;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    cr_assert_eq(r.u.have_reply.bitmap[0], 0x02);
    cr_assert_eq(star_check(T.star), 0, "the stale location is gone");
    tc_put(fd, 5, data + 4096, 4096, NULL, 0);
    tc_commit_msg(&m, 6, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    snprintf(p, sizeof p, "%s/s.bin", T.root);
    size_t len = 0;
    char *got = ts_read_file(p, &len);
    cr_assert_eq(len, sizeof data);
    cr_assert_eq(memcmp(got, data, len), 0);
    free(got);
    free(buf);
    close(fd);
}

Test(star_data, manifest_over_several_commit_frames)
{
    int fd = tc_open(T.port);
    uint8_t data[5000];
    ts_fill(data, sizeof data, 32);
    size_t cuts[] = {1000, 1500, 2500};
    tc_put(fd, 1, data, 1000, NULL, 0);
    tc_put(fd, 2, data + 1000, 1500, "multi", 1000);
    tc_put(fd, 3, data + 2500, 2500, NULL, 0);
    struct tc_file f = {"multi", data, sizeof data, cuts, 3, 0, 0};
    struct wire_chunk_ref refs[3];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, 4, &f, refs);
    m.u.commit.n = 2;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    cr_assert_not(r.u.commit_ok.complete);
    char p[512];
    snprintf(p, sizeof p, "%s/multi", T.root);
    cr_assert_eq(access(p, F_OK), -1, "not visible before the last frame");
    /* a frame out of order is refused */
    m.request_id = 5;
    m.u.commit.chunk_first = 1;
    m.u.commit.n = 1;
    m.u.commit.chunks = refs + 1;
    expect_error(fd, &m, ORBIT_EPROTO);
    /* start again, then finish */
    tc_commit_msg(&m, 6, &f, refs);
    m.u.commit.n = 2;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    m.request_id = 7;
    m.u.commit.chunk_first = 2;
    m.u.commit.n = 1;
    m.u.commit.chunks = refs + 2;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    cr_assert(r.u.commit_ok.complete);
    size_t len = 0;
    char *got = ts_read_file(p, &len);
    cr_assert_eq(len, sizeof data);
    cr_assert_eq(memcmp(got, data, len), 0);
    free(got);
    free(buf);
    close(fd);
}

Test(star_lifecycle, committed_chunks_leave_their_containers)
{
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.pack_max_bytes = 64 * 1024; /* about one chunk per container */
    ts_start_cfg(&T, &cfg);
    int fd = tc_open(T.port);
    enum { LEN = 40000, N = 5 };
    uint8_t data[LEN * N];
    ts_fill(data, sizeof data, 41);
    for (uint32_t i = 0; i < N; i++)
        tc_put(fd, 1 + i, data + (size_t)i * LEN, LEN, NULL, 0);
    char packs[512];
    snprintf(packs, sizeof packs, "%s/.orbit/packs", T.root);
    int before = count_entries(packs);
    cr_assert_geq(before, N - 1, "%d containers", before);
    size_t cuts[N] = {LEN, LEN, LEN, LEN, LEN};
    struct tc_file f = {"all.bin", data, sizeof data, cuts, N, 0, 0};
    struct wire_chunk_ref refs[N];
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, 10, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_geq(st.containers_removed, N - 2, "%llu removed",
                  (unsigned long long)st.containers_removed);
    cr_assert_eq(star_check(T.star), 0);
    cr_assert_lt(count_entries(packs), before);
    /* the chunks are still served, from the committed file */
    f.path = "again.bin";
    tc_commit_msg(&m, 11, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    ts_expect_file(T.root, "again.bin", data, sizeof data);
    free(buf);
    close(fd);
    ts_stop(&T);
}

Test(star_data, many_small_files_share_commit_groups)
{
    int fd = tc_open(T.port);
    enum { N = 100, LEN = 700 };
    uint8_t data[N * LEN];
    ts_fill(data, sizeof data, 71);
    char paths[N][32];
    struct wire_chunk_ref refs[N][1];
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg m;
        snprintf(paths[i], sizeof paths[i], "small/d%u/f%03u", i % 4, i);
        tc_put_msg(&m, 1000 + i, data + i * LEN, LEN, paths[i], 0);
        cr_assert_eq(tc_send(fd, &m), 0);
        size_t cuts[] = {LEN};
        struct tc_file f = {paths[i], data + i * LEN, LEN, cuts, 1, 0, 0};
        tc_commit_msg(&m, 2000 + i, &f, refs[i]);
        cr_assert_eq(tc_send(fd, &m), 0);
    }
    uint8_t *buf = NULL;
    for (uint32_t i = 0; i < 2 * N; i++) {
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert(r.type == WIRE_PUT_OK || r.type == WIRE_COMMIT_OK, "%s",
                  r.type == WIRE_ERROR ? r.u.error.message : "");
    }
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.files_committed, N);
    cr_assert_lt(st.commit_groups, N / 2, "%llu groups for %d files",
                 (unsigned long long)st.commit_groups, N);
    for (uint32_t i = 0; i < N; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", T.root, paths[i]);
        struct stat sb;
        cr_assert_eq(stat(p, &sb), 0, "%s", paths[i]);
        cr_assert_eq(sb.st_size, LEN);
    }
    free(buf);
    close(fd);
}

/* HAVE for the n chunks of len bytes at data: the bitmap's first byte. */
static uint8_t
have_bits(int fd, uint32_t rid, const uint8_t *data, uint32_t n, uint32_t len)
{
    uint8_t ids[8 * 32];
    cr_assert_leq(n, 8);
    for (uint32_t i = 0; i < n; i++)
        ts_sha(data + (size_t)i * len, len, ids + 32 * i);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = rid;
    m.u.have.n = n;
    m.u.have.ids = ids;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    uint8_t bits = r.u.have_reply.bitmap[0];
    free(buf);
    return bits;
}

/* Chunks placed in a staging file are indexed through the fresh index
 * (its log, then a table): found at once; merged into LMDB when the star
 * stops; and after a crash, found again by replaying the log (the log is
 * copied aside before a clean stop, then LMDB's index removed and the log
 * put back: what a SIGKILL before any merge leaves). */
Test(star_data, placed_chunks_are_found_through_the_fresh_index)
{
    enum { N = 8, LEN = 1000 };
    uint8_t data[N * LEN];
    ts_fill(data, sizeof data, 93);
    int fd = tc_open(T.port);
    for (uint32_t i = 0; i < N; i++)
        tc_put(fd, 100 + i, data + i * LEN, LEN, "fresh/a.bin",
               (uint64_t)i * LEN);
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.index_fresh, N);
    cr_assert_eq(st.index_merges, 0);
    cr_assert_eq(have_bits(fd, 200, data, N, LEN), 0, "reported missing");
    close(fd);

    char log[600], saved[600], cmd[1400];
    snprintf(log, sizeof log, "%s/.orbit/index.log", T.root);
    snprintf(saved, sizeof saved, "%s.log", T.root);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", log, saved);
    cr_assert_eq(system(cmd), 0);
    struct stat sb;
    cr_assert_eq(stat(saved, &sb), 0);
    cr_assert_gt(sb.st_size, 8 + N * 50);
    star_free(T.star); /* a clean stop merges */
    T.star = NULL;
    cr_assert_eq(stat(log, &sb), 0);
    cr_assert_eq(sb.st_size, 8, "the log is emptied by the merge");

    struct star_config cfg;
    ts_config(&cfg, T.root);
    ts_start_cfg(&T, &cfg);
    fd = tc_open(T.port);
    cr_assert_eq(have_bits(fd, 201, data, N, LEN), 0, "lost by the merge");
    close(fd);
    star_free(T.star);
    T.star = NULL;

    snprintf(cmd, sizeof cmd, "rm -rf '%s/.orbit/starmap' && mv '%s' '%s'",
             T.root, saved, log);
    cr_assert_eq(system(cmd), 0);
    ts_start_cfg(&T, &cfg);
    star_get_stats(T.star, &st);
    cr_assert_eq(st.index_fresh, 0, "the replayed log is merged at start");
    fd = tc_open(T.port);
    cr_assert_eq(have_bits(fd, 202, data, N, LEN), 0, "not replayed");
    size_t cuts[N];
    for (int i = 0; i < N; i++)
        cuts[i] = LEN;
    struct tc_file f = {"fresh/a.bin", data, sizeof data, cuts, N, 0644, 1};
    tc_commit_ok(fd, 203, &f);
    ts_expect_file(T.root, "fresh/a.bin", data, sizeof data);
    close(fd);
}

/* Two COMMITs of one file pipelined into one group (a client that died with
 * its COMMIT queued, and its rerun; or a file sent twice): both succeed,
 * the second in a group of its own. Sharing one, both assembled the one
 * staging file and the second rename found it gone. */
Test(star_data, two_commits_of_one_file_in_a_row_both_succeed)
{
    enum { LEN = 3000 };
    uint8_t data[LEN];
    ts_fill(data, sizeof data, 17);
    int fd = tc_open(T.port);
    tc_put(fd, 1, data, LEN, "twice.bin", 0);
    size_t cuts[] = {LEN};
    struct wire_chunk_ref refs[2][1];
    struct wire_msg m, r;
    for (uint32_t i = 0; i < 2; i++) {
        struct tc_file f = {"twice.bin", data, LEN,           cuts,
                            1,           0644, 1600000000 + i};
        tc_commit_msg(&m, 10 + i, &f, refs[i]);
        cr_assert_eq(tc_send(fd, &m), 0);
    }
    uint8_t *buf = NULL;
    for (uint32_t i = 0; i < 2; i++) {
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_COMMIT_OK, "COMMIT %u: %s", r.request_id,
                     r.type == WIRE_ERROR ? r.u.error.message : "");
    }
    ts_expect_file(T.root, "twice.bin", data, sizeof data);
    char p[600];
    snprintf(p, sizeof p, "%s/twice.bin", T.root);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_mtim.tv_sec, 1600000001, "the later COMMIT wins");
    free(buf);
    close(fd);
}
