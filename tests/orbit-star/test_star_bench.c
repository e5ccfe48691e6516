/*
 * Measurement, not a check: a large-file copy into a star over 127.0.0.1,
 * chunks placed in the file's staging file (hinted) versus in containers,
 * against writing the same bytes once with write + fsync. Runs only with
 * ORBIT_STAR_BENCH=1 (size: ORBIT_STAR_BENCH_MB, default 256); use a
 * Release build: ORBIT_STAR_BENCH=1 ./tests/test_orbit_star
 * --filter=star_bench/large_file_staging_vs_containers --verbose
 */
#include <time.h>

#include "test_star_helpers.h"

#define CHUNK  (64 * 1024)
#define WINDOW 64

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
chunk_at(uint8_t *buf, size_t i)
{
    ts_fill(buf, CHUNK, (uint32_t)i + 1);
}

/* Send every chunk (WINDOW in flight), then the COMMIT; seconds taken. */
static double
copy_once(enum star_placement placement, size_t nchunks, uint8_t *ids)
{
    struct tstar t;
    ts_mkroot(t.root, sizeof t.root);
    struct star_config cfg;
    ts_config(&cfg, t.root);
    cfg.placement = placement;
    ts_start_cfg(&t, &cfg);
    int fd = tc_open(t.port);
    uint8_t *chunk = malloc(CHUNK), *buf = NULL;
    double t0 = now_s();
    size_t sent = 0, acked = 0;
    while (acked < nchunks) {
        while (sent < nchunks && sent - acked < WINDOW) {
            struct wire_msg m;
            chunk_at(chunk, sent);
            tc_put_msg(&m, (uint32_t)(sent + 1), chunk, CHUNK, "big.bin",
                       (uint64_t)sent * CHUNK);
            memcpy(ids + sent * 32, m.u.put.id, 32);
            cr_assert_eq(tc_send(fd, &m), 0);
            sent++;
        }
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_PUT_OK);
        acked++;
    }
    struct wire_chunk_ref *refs = calloc(nchunks, sizeof *refs);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t i = 0; i < nchunks; i++) {
        chunk_at(chunk, i);
        EVP_DigestUpdate(md, chunk, CHUNK);
        memcpy(refs[i].id, ids + i * 32, 32);
        refs[i].raw_len = CHUNK;
    }
    struct wire_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = WIRE_COMMIT;
    m.request_id = 0x7fffffff;
    m.u.commit.path = "big.bin";
    m.u.commit.path_len = 7;
    m.u.commit.ftype = WIRE_FT_REGULAR;
    m.u.commit.size = (uint64_t)nchunks * CHUNK;
    m.u.commit.mode = 0644;
    m.u.commit.target = "";
    EVP_DigestFinal_ex(md, m.u.commit.digest, NULL);
    m.u.commit.chunk_total = nchunks;
    m.u.commit.n = (uint32_t)nchunks;
    m.u.commit.chunks = refs;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    double took = now_s() - t0;
    struct star_stats st;
    star_get_stats(t.star, &st);
    cr_log_info("  %s: %.2f s, %llu sync rounds",
                placement == STAR_PLACE_PACK ? "containers" : "staging", took,
                (unsigned long long)st.sync_rounds);
    close(fd);
    EVP_MD_CTX_free(md);
    free(refs);
    free(chunk);
    free(buf);
    ts_stop(&t);
    return took;
}

/* The same bytes written once and fsynced: the floor. */
static double
write_once(size_t nchunks)
{
    char root[256], path[300];
    ts_mkroot(root, sizeof root);
    snprintf(path, sizeof path, "%s/f", root);
    uint8_t *chunk = malloc(CHUNK);
    double t0 = now_s();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t i = 0; i < nchunks; i++) {
        chunk_at(chunk, i);
        cr_assert_eq(write(fd, chunk, CHUNK), CHUNK);
    }
    fsync(fd);
    close(fd);
    double took = now_s() - t0;
    unlink(path);
    rmdir(root);
    free(chunk);
    return took;
}

Test(star_bench, large_file_staging_vs_containers)
{
    if (!getenv("ORBIT_STAR_BENCH"))
        cr_skip_test("measurement: set ORBIT_STAR_BENCH=1 to run");
    const char *mb_env = getenv("ORBIT_STAR_BENCH_MB");
    size_t mb = mb_env ? (size_t)atol(mb_env) : 256;
    size_t nchunks = mb * 1024 * 1024 / CHUNK;
    uint8_t *ids = malloc(nchunks * 32);
    double base = write_once(nchunks);
    double staging = copy_once(STAR_PLACE_STAGING, nchunks, ids);
    double pack = copy_once(STAR_PLACE_PACK, nchunks, ids);
    double mbs = (double)mb;
    cr_log_info("%zu MiB in %zu chunks of 64 KiB:", mb, nchunks);
    cr_log_info("  write+fsync once : %6.2f s  %7.1f MiB/s", base, mbs / base);
    cr_log_info("  star, staging    : %6.2f s  %7.1f MiB/s  (%.2fx floor)",
                staging, mbs / staging, staging / base);
    cr_log_info("  star, containers : %6.2f s  %7.1f MiB/s  (%.2fx floor)",
                pack, mbs / pack, pack / base);
    free(ids);
}
