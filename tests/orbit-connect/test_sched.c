/*
 * The scheduler driven directly (no CLI): local destinations served by
 * in-process stars, several destinations at once, deduplication across
 * files, dead letters, sync's skip rule and --delete.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/sched.h"
#include "orbit/star.h"
#include "orbit/star.h"

static char tmp[256];

static void
setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/orbit-sched-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp));
}

static void
teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    cr_assert_eq(system(cmd), 0);
}

static void
path_of(char *buf, size_t cap, const char *rel)
{
    snprintf(buf, cap, "%s/%s", tmp, rel);
}

static void
write_bytes(const char *rel, size_t len, unsigned seed)
{
    char p[512];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "%s", p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        fputc((int)(x & 0xff), f);
    }
    cr_assert_eq(fclose(f), 0);
}

static void
mkd(const char *rel)
{
    char p[512];
    path_of(p, sizeof p, rel);
    cr_assert_eq(mkdir(p, 0755), 0, "%s", p);
}

static int
same_file(const char *a_rel, const char *b_rel)
{
    char cmd[1200], a[512], b[512];
    path_of(a, sizeof a, a_rel);
    path_of(b, sizeof b, b_rel);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

struct run_result {
    int rc;
    struct sched_stats st;
    struct dlq_entry *dl;
    size_t ndl;
};

static const uint8_t token[] = "test-token";

static const char *prioritize;
static unsigned job_retries = 1;
static uint64_t started_sizes[64];
static size_t nstarted;

static const char *grow_on_start; /* src-relative file to grow when started */

static void
append_bytes(const char *rel, size_t len)
{
    char p[512];
    snprintf(p, sizeof p, "%s/src/%s", tmp, rel);
    FILE *f = fopen(p, "ab");
    cr_assert_not_null(f, "%s", p);
    for (size_t i = 0; i < len; i++)
        fputc((int)((i * 2654435761u) >> 13 & 0xff), f);
    cr_assert_eq(fclose(f), 0);
}

static void
on_file(void *arg, const struct sched_file_event *ev)
{
    (void)arg;
    if (ev->outcome == SCHED_FILE_STARTED && nstarted < 64)
        started_sizes[nstarted++] = ev->size;
    /* between the walk (which planned a probe on its size) and the read */
    if (ev->outcome == SCHED_FILE_STARTED && grow_on_start &&
        strcmp(ev->path, grow_on_start) == 0)
        append_bytes(grow_on_start, 24u << 20);
}

static void
run_job(const char *const *dst_rels, size_t ndst, bool sync, bool del,
        struct run_result *out)
{
    static char roots[4][512];
    struct sched_dest_config dests[4];
    struct sched_source src = {.path = NULL, .dest_name = ""};
    char srcpath[512];
    path_of(srcpath, sizeof srcpath, "src");
    src.path = srcpath;
    memset(dests, 0, sizeof dests);
    for (size_t i = 0; i < ndst; i++) {
        path_of(roots[i], sizeof roots[i], dst_rels[i]);
        mkdir(roots[i], 0755);
        dests[i].kind = SCHED_DEST_LOCAL;
        dests[i].name = roots[i];
        dests[i].root = roots[i];
        dests[i].prefix = "";
        dests[i].token = token;
        dests[i].token_len = sizeof token - 1;
    }
    struct sched_config cfg;
    sched_config_init(&cfg);
    cfg.job_id = "0123456789abcdef";
    cfg.sources = &src;
    cfg.nsources = 1;
    cfg.dests = dests;
    cfg.ndests = ndst;
    cfg.sync_mode = sync;
    cfg.delete_extraneous = del;
    cfg.retries = job_retries;
    cfg.retry_initial_ms = 10;
    cfg.retry_max_ms = 10;
    cfg.prioritize = prioritize;
    cfg.on_file = on_file;
    nstarted = 0;
    struct sched *s = NULL;
    cr_assert_eq(sched_new(&cfg, &s), 0);
    out->rc = sched_run(s);
    sched_get_stats(s, &out->st);
    cr_assert_eq(sched_dead_letters(s, &out->dl, &out->ndl), 0);
    sched_free(s);
}

static void
make_tree(void)
{
    mkd("src");
    mkd("src/a");
    mkd("src/a/b");
    mkd("src/empty");
    write_bytes("src/a/small.txt", 100, 1);
    write_bytes("src/a/b/big.bin", 3u << 20, 2);
    write_bytes("src/zero.bin", 0, 3);
    char p[512];
    path_of(p, sizeof p, "src/link");
    cr_assert_eq(symlink("a/small.txt", p), 0);
}

TestSuite(sched, .init = setup, .fini = teardown, .timeout = 60);

Test(sched, copy_to_two_destinations)
{
    make_tree();
    const char *dst[] = {"d1", "d2"};
    struct run_result r;
    run_job(dst, 2, false, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 0);
    cr_assert(same_file("src/a/b/big.bin", "d1/a/b/big.bin"));
    cr_assert(same_file("src/a/b/big.bin", "d2/a/b/big.bin"));
    cr_assert(same_file("src/a/small.txt", "d2/a/small.txt"));
    cr_assert(same_file("src/zero.bin", "d1/zero.bin"));
    char p[512], t[64];
    path_of(p, sizeof p, "d2/link");
    ssize_t n = readlink(p, t, sizeof t - 1);
    cr_assert_gt(n, 0);
    t[n] = '\0';
    cr_assert_str_eq(t, "a/small.txt");
    struct stat st;
    path_of(p, sizeof p, "d1/empty");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    /* every byte went to both */
    cr_assert_eq(r.st.bytes_raw_sent, 2 * ((3u << 20) + 100));
}

Test(sched, identical_files_are_sent_once)
{
    mkd("src");
    write_bytes("src/one.bin", 2u << 20, 7);
    write_bytes("src/two.bin", 2u << 20, 7);
    write_bytes("src/three.bin", 2u << 20, 7);
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.st.bytes_raw_sent, 2u << 20, "sent %llu",
                 (unsigned long long)r.st.bytes_raw_sent);
    cr_assert_eq(r.st.bytes_dedup, 4u << 20);
    cr_assert(same_file("src/three.bin", "d/three.bin"));
    cr_assert(same_file("src/one.bin", "d/one.bin"));
}

Test(sched, refused_path_is_a_dead_letter_and_the_rest_completes)
{
    make_tree();
    write_bytes("src/.orbit", 10, 9); /* reserved at a star's root */
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 1);
    cr_assert_str_eq(r.dl[0].key, ".orbit");
    cr_assert_eq(r.dl[0].reason, DLQ_PERMANENT_ERROR);
    cr_assert_eq(r.dl[0].error_code, ORBIT_EPATH);
    cr_assert_eq(r.st.files_failed, 1);
    cr_assert(same_file("src/a/b/big.bin", "d/a/b/big.bin"));
    dlq_entries_free(r.dl, r.ndl);
}

Test(sched, sync_skips_unchanged_and_sends_only_new_chunks)
{
    make_tree();
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    run_job(dst, 1, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.st.bytes_sent, 0);
    cr_assert_eq(r.st.bytes_read, 0, "unchanged files are not read");
    /* change 4 KiB in the middle of the big file */
    char p[512];
    path_of(p, sizeof p, "src/a/b/big.bin");
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0);
    char patch[4096];
    memset(patch, 'x', sizeof patch);
    cr_assert_eq(pwrite(fd, patch, sizeof patch, 1u << 20), 4096);
    close(fd);
    run_job(dst, 1, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert(same_file("src/a/b/big.bin", "d/a/b/big.bin"));
    cr_assert_lt(r.st.bytes_raw_sent, (3u << 20) / 4, "sent %llu",
                 (unsigned long long)r.st.bytes_raw_sent);
    cr_assert_gt(r.st.bytes_dedup, (3u << 20) / 2);
}

/*
 * A file under 1 MiB is cut with an eighth of the job's average chunk size
 * (8 KiB by default): an edit in a 256 KiB file re-sends one or two small
 * chunks, not a 64 KiB one.
 */
Test(sched, small_files_get_finer_chunks)
{
    mkd("src");
    write_bytes("src/mid.bin", 256u << 10, 7);
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_geq(r.st.chunks_sent, 16, "a 256 KiB file in %llu chunks",
                  (unsigned long long)r.st.chunks_sent);
    /* every frame is counted: the chunks, their ids twice (HAVE, COMMIT) */
    cr_assert_geq(r.st.wire_out, r.st.bytes_sent + 64 * r.st.chunks_sent,
                  "wire %llu", (unsigned long long)r.st.wire_out);
    cr_assert_gt(r.st.wire_in, 32 * r.st.chunks_sent); /* PUT_OKs at least */
    char p[512];
    path_of(p, sizeof p, "src/mid.bin");
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "sixteen bytes!!!", 16, 100000), 16);
    close(fd);
    run_job(dst, 1, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert(same_file("src/mid.bin", "d/mid.bin"));
    cr_assert_gt(r.st.chunks_sent, 0);
    cr_assert_lt(r.st.bytes_raw_sent, 40u << 10, "sent %llu",
                 (unsigned long long)r.st.bytes_raw_sent);
}

static void
set_mtime(const char *rel, time_t when)
{
    char p[512];
    path_of(p, sizeof p, rel);
    struct timespec ts[2] = {{when, 0}, {when, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0, "%s", p);
}

static void
patch_bytes(const char *rel, off_t off)
{
    char p[512];
    path_of(p, sizeof p, rel);
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0, "%s", p);
    cr_assert_eq(pwrite(fd, "sixteen bytes!!!", 16, off), 16);
    close(fd);
}

/*
 * sync of files whose mtimes all changed: a small file whose destination
 * has the same size is offered by digest alone and kept where its bytes
 * match (mtime set); where they differ (changed at the source, or behind
 * the star's back at the destination) it is sent the usual way.
 */
Test(sched, sync_keeps_unchanged_files_by_digest_alone)
{
    mkd("src");
    write_bytes("src/same.bin", 200000, 11);
    write_bytes("src/edited.bin", 200000, 12);
    write_bytes("src/tampered.bin", 100000, 13);
    write_bytes("src/large.bin", 300u << 10, 14); /* over the probe bound */
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    patch_bytes("src/edited.bin", 150000);
    char tp[512];
    struct stat tst;
    path_of(tp, sizeof tp, "d/tampered.bin");
    cr_assert_eq(stat(tp, &tst), 0);
    patch_bytes("d/tampered.bin", 5000); /* same size, new ctime */
    struct timespec back[2] = {tst.st_atim, tst.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, tp, back, 0), 0); /* mtime put back */
    const char *all[] = {"src/same.bin", "src/edited.bin", "src/tampered.bin",
                         "src/large.bin"};
    for (size_t i = 0; i < 4; i++)
        set_mtime(all[i], 1500000000 + (time_t)i);
    /* tampered.bin: the star's index still names its old bytes there, so
     * its COMMIT finds a chunk gone and the file is retried once */
    job_retries = 3;
    run_job(dst, 1, true, false, &r);
    job_retries = 1;
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 0, "%s: %s", r.ndl ? r.dl[0].key : "",
                 r.ndl && r.dl[0].last_error ? r.dl[0].last_error : "");
    cr_assert_eq(r.st.files_kept, 1, "kept %llu",
                 (unsigned long long)r.st.files_kept);
    cr_assert(same_file("src/same.bin", "d/same.bin"));
    cr_assert(same_file("src/edited.bin", "d/edited.bin"));
    cr_assert(same_file("src/tampered.bin", "d/tampered.bin"));
    cr_assert(same_file("src/large.bin", "d/large.bin"));
    char p[512];
    struct stat st;
    path_of(p, sizeof p, "d/same.bin");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mtim.tv_sec, 1500000000);
    /* only the edited and the tampered chunks travel: a few small chunks */
    cr_assert_lt(r.st.bytes_raw_sent, 100u << 10, "sent %llu",
                 (unsigned long long)r.st.bytes_raw_sent);
    /* the same again, now nothing differs: all three small files kept */
    for (size_t i = 0; i < 4; i++)
        set_mtime(all[i], 1600000000 + (time_t)i);
    run_job(dst, 1, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.st.files_kept, 3);
    cr_assert_eq(r.st.bytes_sent, 0);
}

/* Two destinations, one holding the files (probed, kept) and one empty
 * (sent the usual way): both end equal to the source. */
Test(sched, probe_on_one_destination_and_chunks_to_the_other)
{
    mkd("src");
    write_bytes("src/a.bin", 150000, 21);
    write_bytes("src/b.bin", 90000, 22);
    const char *one[] = {"d1"};
    struct run_result r;
    run_job(one, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    set_mtime("src/a.bin", 1500000000);
    set_mtime("src/b.bin", 1500000001);
    const char *two[] = {"d1", "d2"};
    run_job(two, 2, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 0);
    cr_assert_eq(r.st.files_kept, 2); /* on d1 */
    cr_assert_geq(r.st.bytes_raw_sent, 240000, "d2 gets every byte");
    const char *files[] = {"a.bin", "b.bin"};
    for (size_t i = 0; i < 2; i++) {
        char a[64], b1[64], b2[64];
        snprintf(a, sizeof a, "src/%s", files[i]);
        snprintf(b1, sizeof b1, "d1/%s", files[i]);
        snprintf(b2, sizeof b2, "d2/%s", files[i]);
        cr_assert(same_file(a, b1));
        cr_assert(same_file(a, b2));
        char p1[512];
        struct stat st;
        path_of(p1, sizeof p1, b1);
        cr_assert_eq(stat(p1, &st), 0);
        cr_assert_eq(st.st_mtim.tv_sec, 1500000000 + (time_t)i);
        path_of(p1, sizeof p1, b2);
        cr_assert_eq(stat(p1, &st), 0);
        cr_assert_eq(st.st_mtim.tv_sec, 1500000000 + (time_t)i);
    }
}

/* Both destinations hold the files and are offered them by digest: the
 * unchanged file is kept on both; the edited one (same size) is turned
 * down by both, cut once at the source, and only its new chunks go to
 * each. */
Test(sched, probe_turned_down_by_two_destinations_sends_only_new_chunks)
{
    mkd("src");
    write_bytes("src/kept.bin", 120000, 31);
    write_bytes("src/edited.bin", 200000, 32);
    const char *two[] = {"d1", "d2"};
    struct run_result r;
    run_job(two, 2, false, false, &r);
    cr_assert_eq(r.rc, 0);
    patch_bytes("src/edited.bin", 150000);
    set_mtime("src/kept.bin", 1500000000);
    set_mtime("src/edited.bin", 1500000001);
    run_job(two, 2, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 0);
    cr_assert_eq(r.st.files_kept, 2, "kept %llu",
                 (unsigned long long)r.st.files_kept);
    cr_assert_lt(r.st.bytes_raw_sent, 2 * (100u << 10), "sent %llu",
                 (unsigned long long)r.st.bytes_raw_sent);
    cr_assert_gt(r.st.bytes_raw_sent, 0);
    cr_assert(same_file("src/kept.bin", "d1/kept.bin"));
    cr_assert(same_file("src/kept.bin", "d2/kept.bin"));
    cr_assert(same_file("src/edited.bin", "d1/edited.bin"));
    cr_assert(same_file("src/edited.bin", "d2/edited.bin"));
}

/* Same-size files that all changed: offered by digest, all turned down.
 * Once most offers are refused, files are read and cut by the readers
 * again, not read whole and cut on the loop. */
Test(sched, offers_mostly_refused_stop_whole_reads)
{
    enum { N = 2000 };
    mkd("src");
    char rel[64];
    for (unsigned i = 0; i < N; i++) {
        snprintf(rel, sizeof rel, "src/f%04u", i);
        write_bytes(rel, 3000, 100 + i);
    }
    const char *one[] = {"d"};
    struct run_result r;
    run_job(one, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    for (unsigned i = 0; i < N; i++) {
        snprintf(rel, sizeof rel, "src/f%04u", i);
        write_bytes(rel, 3000, 5000 + i); /* same size, other bytes */
        set_mtime(rel, 1500000000);
    }
    run_job(one, 1, true, false, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 0);
    cr_assert_eq(r.st.files_kept, 0);
    cr_assert_gt(r.st.files_cut_late, 0, "the first offers read whole");
    cr_assert_lt(r.st.files_cut_late, N / 2, "%llu of %d cut on the loop",
                 (unsigned long long)r.st.files_cut_late, N);
    for (unsigned i = 0; i < N; i += 97) {
        char a[64], b[64];
        snprintf(a, sizeof a, "src/f%04u", i);
        snprintf(b, sizeof b, "d/f%04u", i);
        cr_assert(same_file(a, b), "%s", a);
    }
}

/* cfg for a copy of src/ (srcpath: its absolute path) to the one dest. */
static void
one_dest_config(struct sched_config *cfg, struct sched_source *src,
                char *srcpath, size_t cap, const struct sched_dest_config *d)
{
    path_of(srcpath, cap, "src");
    *src = (struct sched_source){.path = srcpath, .dest_name = ""};
    sched_config_init(cfg);
    cfg->job_id = "0123456789abcdef";
    cfg->sources = src;
    cfg->nsources = 1;
    cfg->dests = d;
    cfg->ndests = 1;
}

/* A star on 127.0.0.1 serving tmp/ROOT_REL (created), its rounds held
 * batch_delay_us; *dest addresses it. */
static struct star *
tcp_star(const char *root_rel, uint32_t batch_delay_us,
         struct sched_dest_config *dest)
{
    static char root[512];
    path_of(root, sizeof root, root_rel);
    cr_assert_eq(mkdir(root, 0755), 0);
    struct star_config sc;
    star_config_init(&sc);
    sc.root = root;
    sc.token = token;
    sc.token_len = sizeof token - 1;
    sc.quiet = true;
    sc.batch_delay_us = batch_delay_us;
    struct star *star = NULL;
    cr_assert_eq(star_new(&sc, &star), 0);
    cr_assert_eq(star_listen(star, "127.0.0.1:0"), 0);
    cr_assert_eq(star_schedule(star), 0);
    *dest = (struct sched_dest_config){
        .kind = SCHED_DEST_STAR,
        .name = "star",
        .host = "127.0.0.1",
        .port = star_port(star),
        .prefix = "",
        .token = token,
        .token_len = sizeof token - 1,
    };
    return star;
}

/* A file's manifest follows its PUTs without waiting for their answers:
 * the star takes both in one sync round. A star that holds each round open
 * for 300 ms shows it: the three files cost one round, where waiting for
 * the PUT_OKs first costs two. */
Test(sched, a_manifest_follows_its_puts_into_the_same_round)
{
    mkd("src");
    write_bytes("src/a.bin", 40000, 31);
    write_bytes("src/b.bin", 50000, 32);
    write_bytes("src/c.bin", 60000, 33);
    char srcpath[512];
    struct sched_dest_config dest;
    struct star *star = tcp_star("dstar", 300000, &dest);
    struct sched_source src;
    struct sched_config cfg;
    one_dest_config(&cfg, &src, srcpath, sizeof srcpath, &dest);
    cfg.compress_level = 0;
    struct sched *s = NULL;
    cr_assert_eq(sched_new(&cfg, &s), 0);
    cr_assert_eq(sched_run(s), 0);
    struct sched_stats st;
    sched_get_stats(s, &st);
    sched_free(s);
    struct star_stats ss;
    star_get_stats(star, &ss);
    star_free(star);
    cr_assert_eq(st.files_done, 3, "%llu files done",
                 (unsigned long long)st.files_done);
    cr_assert_eq(ss.files_committed, 3, "%llu committed",
                 (unsigned long long)ss.files_committed);
    cr_assert_eq(
        ss.rounds, 1, "%llu rounds (PUT rounds %llu, COMMIT groups %llu)",
        (unsigned long long)ss.rounds, (unsigned long long)ss.sync_rounds,
        (unsigned long long)ss.commit_groups);
    const char *files[] = {"a.bin", "b.bin", "c.bin"};
    for (size_t i = 0; i < 3; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "src/%s", files[i]);
        snprintf(b, sizeof b, "dstar/%s", files[i]);
        cr_assert(same_file(a, b), "%s differs", files[i]);
    }
}

/* --compress auto sends a star on this host raw chunks (compressing them
 * would only spend CPU at both ends of a loopback connection); an explicit
 * level compresses for it all the same. */
Test(sched, auto_compression_skips_a_star_on_this_host)
{
    mkd("src");
    char p[512];
    path_of(p, sizeof p, "src/text.txt");
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 40000; i++)
        fprintf(f, "line %d of a compressible file\n", i % 97);
    cr_assert_eq(fclose(f), 0);
    const int levels[] = {-1, 3};
    const char *roots[] = {"dauto", "dzstd3"};
    struct sched_stats st[2];
    for (int i = 0; i < 2; i++) {
        /* a star each: one that holds the chunks would not be sent them */
        char srcpath[512];
        struct sched_dest_config dest;
        struct star *star = tcp_star(roots[i], 0, &dest);
        struct sched_source src;
        struct sched_config cfg;
        one_dest_config(&cfg, &src, srcpath, sizeof srcpath, &dest);
        cfg.compress_level = levels[i];
        struct sched *s = NULL;
        cr_assert_eq(sched_new(&cfg, &s), 0);
        cr_assert_eq(sched_run(s), 0);
        sched_get_stats(s, &st[i]);
        sched_free(s);
        star_free(star);
        char dst[64];
        snprintf(dst, sizeof dst, "%s/text.txt", roots[i]);
        cr_assert(same_file("src/text.txt", dst), "%s differs", dst);
    }
    cr_assert_gt(st[0].bytes_raw_sent, 1000000);
    cr_expect_eq(st[0].bytes_sent, st[0].bytes_raw_sent,
                 "auto compressed for 127.0.0.1: %llu of %llu bytes",
                 (unsigned long long)st[0].bytes_sent,
                 (unsigned long long)st[0].bytes_raw_sent);
    cr_expect_lt(st[1].bytes_sent, st[1].bytes_raw_sent / 5,
                 "level 3 did not compress: %llu of %llu bytes",
                 (unsigned long long)st[1].bytes_sent,
                 (unsigned long long)st[1].bytes_raw_sent);
}

/* 3 MB of seeded bytes, with 8 bytes changed every 150,000 when changed:
 * about 20 of its 64 KiB chunks differ between the two versions. */
static void
write_versioned(const char *rel, bool changed)
{
    char p[512];
    path_of(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "%s", p);
    uint32_t x = 12345;
    for (size_t i = 0; i < 3000000; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bool mark = changed && i >= 50000 && (i - 50000) % 150000 < 8;
        fputc(mark ? '!' : (int)(x & 0xff), f);
    }
    cr_assert_eq(fclose(f), 0);
}

/* Copying a file back to its older version: the star's index still names
 * the old version's chunks at offsets of the file that replaced it, so
 * HAVE finds them and the COMMIT finds them gone. The star drops all of
 * those entries at that first COMMIT, and the source sends them at once:
 * one quick retry, no penalty wait (an hour here), no dead letter. */
Test(sched, a_file_copied_back_to_an_older_version_resends_its_chunks)
{
    mkd("src");
    char srcpath[512];
    struct sched_dest_config dest;
    struct star *star = tcp_star("dstar", 0, &dest);
    const bool versions[] = {false, true, false};
    struct sched_stats st;
    struct timespec t0, t1;
    for (int v = 0; v < 3; v++) {
        write_versioned("src/big.bin", versions[v]);
        struct sched_source src;
        struct sched_config cfg;
        one_dest_config(&cfg, &src, srcpath, sizeof srcpath, &dest);
        cfg.retries = 1;
        cfg.retry_initial_ms = cfg.retry_max_ms = 3600000;
        struct sched *s = NULL;
        cr_assert_eq(sched_new(&cfg, &s), 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(sched_run(s), 0, "version %d", v);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sched_get_stats(s, &st);
        sched_free(s);
        cr_assert_eq(st.files_failed, 0, "version %d: a dead letter", v);
        cr_assert(same_file("src/big.bin", "dstar/big.bin"), "version %d", v);
    }
    star_free(star);
    cr_assert_geq(st.retries, 1, "the stale chunks were not met");
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 20, "the retry waited its penalty");
}

/* A file planned for a probe that grew by 24 MiB before it was read: more
 * than the held-data limit would be parked waiting for an answer that only
 * the end of the read sends; it goes the usual way instead. */
Test(sched, a_probed_file_that_grew_is_sent_the_usual_way)
{
    mkd("src");
    write_bytes("src/grows.bin", 100000, 31);
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    cr_assert_eq(r.rc, 0);
    set_mtime("src/grows.bin", 1500000000);
    grow_on_start = "grows.bin";
    run_job(dst, 1, true, false, &r);
    grow_on_start = NULL;
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(r.ndl, 0);
    cr_assert_eq(r.st.files_kept, 0);
    cr_assert(same_file("src/grows.bin", "d/grows.bin"));
}

Test(sched, sync_delete_removes_extraneous_entries)
{
    make_tree();
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    mkd("d/stale");
    write_bytes("d/stale/f", 10, 4);
    write_bytes("d/old.txt", 10, 5);
    run_job(dst, 1, true, false, &r);
    char p[512];
    path_of(p, sizeof p, "d/old.txt");
    cr_assert_eq(access(p, F_OK), 0, "kept without --delete");
    run_job(dst, 1, true, true, &r);
    cr_assert_eq(r.rc, 0);
    cr_assert_neq(access(p, F_OK), 0);
    path_of(p, sizeof p, "d/stale");
    cr_assert_neq(access(p, F_OK), 0);
    path_of(p, sizeof p, "d/a/small.txt");
    cr_assert_eq(access(p, F_OK), 0);
    cr_assert_geq(r.st.deleted, 2);
}

Test(sched, unreachable_star_is_fatal_with_a_message)
{
    mkd("src");
    write_bytes("src/f", 10, 1);
    struct sched_dest_config d = {
        .kind = SCHED_DEST_STAR,
        .name = "star://127.0.0.1:1/x",
        .host = "127.0.0.1",
        .port = 1,
        .prefix = "x",
        .token = token,
        .token_len = sizeof token - 1,
    };
    char srcpath[512];
    struct sched_source src;
    struct sched_config cfg;
    one_dest_config(&cfg, &src, srcpath, sizeof srcpath, &d);
    struct sched *s = NULL;
    cr_assert_eq(sched_new(&cfg, &s), 0);
    int rc = sched_run(s);
    cr_assert_lt(rc, 0);
    cr_assert(strstr(sched_fatal_message(s), "cannot reach") != NULL, "%s",
              sched_fatal_message(s));
    sched_free(s);
}

Test(sched, prioritizers_order_the_ready_window)
{
    mkd("src");
    unsigned sizes[] = {3000, 100, 70000, 10, 5000, 900000, 1};
    for (unsigned i = 0; i < 7; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "src/f%u", i);
        write_bytes(rel, sizes[i], i);
    }
    prioritize = "largest";
    const char *dst[] = {"d"};
    struct run_result r;
    run_job(dst, 1, false, false, &r);
    prioritize = NULL;
    cr_assert_eq(r.rc, 0);
    cr_assert_eq(nstarted, 7);
    for (size_t i = 1; i < nstarted; i++)
        cr_assert_geq(started_sizes[i - 1], started_sizes[i],
                      "start %zu: %llu before %llu", i,
                      (unsigned long long)started_sizes[i - 1],
                      (unsigned long long)started_sizes[i]);
}
