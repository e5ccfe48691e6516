/*
 * Copies through the fault proxy: a generated tree (hundreds of files of
 * mixed sizes, a few large, some duplicates, empty files, symlinks) goes
 * through `orbit copy` to an `orbit-star` behind the proxy, one run per
 * seed. Afterwards every source file is either identical at the destination
 * (SHA-256) or reported as a dead letter in the run's --json events; the
 * destination holds nothing the source does not; the exit code is 0, or 3
 * when there are dead letters; the star drains and exits 0.
 */
#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "faults_util.h"

#define ORBIT_BIN      ORBIT_BIN_DIR "/cli/orbit"
#define ORBIT_STAR_BIN ORBIT_BIN_DIR "/cli/orbit-star"
#define TREE_FILES     400
#define COPY_DEADLINE  60000 /* ms for one copy */

/* ---- the source tree ---- */

static size_t
tree_file_size(uint64_t *rng, int i)
{
    if (i < 3)
        return (size_t)(1u << 20) + (size_t)(fu_rand(rng) % (1u << 20));
    if (i % 50 == 7)
        return 0;
    uint64_t r = fu_rand(rng) % 100;
    if (r < 80)
        return (size_t)(fu_rand(rng) % (16u << 10));
    return (size_t)(16u << 10) + (size_t)(fu_rand(rng) % (112u << 10));
}

/* Write the tree under dir; returns the bytes written. */
static uint64_t
make_tree(const char *dir, uint64_t seed)
{
    static const char *const subdirs[] = {"",       "a/", "a/b/",
                                          "a/b/c/", "d/", "d/e/"};
    char p[512];
    for (size_t i = 1; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, subdirs[i]);
        cr_assert_eq(mkdir(p, 0755), 0);
    }
    uint64_t rng = seed, total = 0;
    uint8_t *buf = malloc(2u << 20);
    cr_assert_not_null(buf);
    for (int i = 0; i < TREE_FILES; i++) {
        size_t n = tree_file_size(&rng, i);
        /* Every tenth file repeats an earlier one: chunks deduplicate. */
        uint64_t content = i % 10 == 9 ? (uint64_t)(i - 5) : (uint64_t)i;
        fu_fill(buf, n, seed ^ (content * 0x9e3779b97f4a7c15ull));
        snprintf(p, sizeof p, "%s/%sf%03d.bin", dir, subdirs[fu_rand(&rng) % 6],
                 i);
        fu_write_file(p, buf, n);
        static const mode_t modes[] = {0644, 0600, 0755, 0640};
        cr_assert_eq(chmod(p, modes[fu_rand(&rng) % 4]), 0);
        struct timespec t[2] = {
            {(time_t)(1500000000 + fu_rand(&rng) % 100000000), 0}, {0, 0}};
        t[1] = t[0];
        cr_assert_eq(utimensat(AT_FDCWD, p, t, 0), 0);
        total += n;
    }
    free(buf);
    snprintf(p, sizeof p, "%s/a/link-to-f", dir);
    cr_assert_eq(symlink("b/f000.bin", p), 0);
    snprintf(p, sizeof p, "%s/d/e/dangling", dir);
    cr_assert_eq(symlink("../nowhere", p), 0);
    return total;
}

/* ---- walking and hashing ---- */

typedef void (*walk_fn)(void *ctx, const char *rel, const struct stat *st);

/* Call fn for every entry below dir (rel paths), skipping .orbit. */
static void
walk(const char *dir, const char *rel, walk_fn fn, void *ctx)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s%s", dir, rel[0] ? "/" : "", rel);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s: %s", path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (!rel[0] && !strcmp(e->d_name, ".orbit")))
            continue;
        char sub[1024], full[1100];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat st;
        cr_assert_eq(lstat(full, &st), 0);
        fn(ctx, sub, &st);
        if (S_ISDIR(st.st_mode))
            walk(dir, sub, fn, ctx);
    }
    closedir(d);
}

static void
sha256_file(const char *path, uint8_t out[32])
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    cr_assert(c && EVP_DigestInit_ex(c, EVP_sha256(), NULL));
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        cr_assert(EVP_DigestUpdate(c, buf, n));
    unsigned len = 0;
    cr_assert(EVP_DigestFinal_ex(c, out, &len));
    EVP_MD_CTX_free(c);
    fclose(f);
}

/* ---- one run ---- */

struct run {
    char box[200];
    char src[256], root[256], state[256];
    char star_err[256], proxy_err[256], json[256], copy_err[256];
    char token[256];
    uint64_t src_bytes;
    json_t *dead; /* dest paths reported as dead letters */
    /* results */
    unsigned files, identical, missing, symlinks;
    unsigned dead_letters; /* every path reported, directories included */
    uint64_t bytes_verified;
    uint64_t faults;
    int exit_code;
    pid_t star_pid, proxy_pid; /* while they run */
};

/* The run of the current test, so a failed assertion can clean up. */
static struct run R;

/* After every test, passed or failed: no process left, no scratch left. */
static void
copy_cleanup(void)
{
    pid_t *const pids[] = {&R.proxy_pid, &R.star_pid};
    fu_stop_all(pids, 2);
    json_decref(R.dead);
    R.dead = NULL;
    fu_rmrf(R.box);
}

static void
run_init(struct run *r, uint64_t tree_seed)
{
    memset(r, 0, sizeof *r);
    fu_mkdtemp(r->box, sizeof r->box, "copy");
    snprintf(r->src, sizeof r->src, "%s/src", r->box);
    snprintf(r->root, sizeof r->root, "%s/root", r->box);
    snprintf(r->state, sizeof r->state, "%s/state", r->box);
    snprintf(r->star_err, sizeof r->star_err, "%s/star.log", r->box);
    snprintf(r->proxy_err, sizeof r->proxy_err, "%s/proxy.log", r->box);
    snprintf(r->json, sizeof r->json, "%s/copy.json", r->box);
    snprintf(r->copy_err, sizeof r->copy_err, "%s/copy.log", r->box);
    snprintf(r->token, sizeof r->token, "%s/token", r->box);
    cr_assert_eq(mkdir(r->src, 0755), 0);
    r->src_bytes = make_tree(r->src, tree_seed);
    fu_write_file(r->token, "proving-ground-token\n", 21);
}

/* Start orbit-star on a fresh root; its port, from its first log line. */
static uint16_t
star_start(struct run *r, pid_t *pid)
{
    fu_rmrf(r->root);
    cr_assert_eq(mkdir(r->root, 0755), 0);
    char *argv[] = {ORBIT_STAR_BIN,        "--root", r->root,
                    "--token-file",        r->token, "--listen",
                    (char *)"127.0.0.1:0", NULL};
    unlink(r->star_err); /* never read the previous star's port */
    *pid = fu_spawn(argv, NULL, r->star_err);
    uint64_t end = fu_now_ms() + 10000;
    while (fu_now_ms() < end) {
        char *log = fu_slurp(r->star_err, NULL);
        const char *p = log ? strstr(log, "(port ") : NULL;
        long port = p ? strtol(p + 6, NULL, 10) : 0;
        free(log);
        if (port > 0 && port < 65536)
            return (uint16_t)port;
        usleep(10 * 1000);
    }
    cr_assert_fail("orbit-star did not report its port");
    return 0;
}

/* Dead-lettered paths from the --json events of the copy. */
static void
read_dead_letters(struct run *r)
{
    r->dead = json_object();
    FILE *f = fopen(r->json, "r");
    cr_assert_not_null(f, "no --json output");
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_t *ev = json_loads(line, 0, NULL);
        if (!ev)
            continue;
        const char *type = json_string_value(json_object_get(ev, "event_type"));
        const char *path = json_string_value(json_object_get(ev, "dest_path"));
        if (type && path && strstr(type, "dead_letter"))
            json_object_set_new(r->dead, path, json_true());
        json_decref(ev);
    }
    fclose(f);
}

static void
check_source_entry(void *ctx, const char *rel, const struct stat *st)
{
    struct run *r = ctx;
    char dst[1024], src[1024];
    snprintf(src, sizeof src, "%s/%s", r->src, rel);
    snprintf(dst, sizeof dst, "%s/copy/%s", r->root, rel);
    bool dead = json_object_get(r->dead, rel) != NULL;
    struct stat dt;
    bool present = lstat(dst, &dt) == 0;
    if (S_ISLNK(st->st_mode)) {
        char a[512] = {0}, b[512] = {0};
        cr_assert(present || dead, "symlink %s lost without a dead letter",
                  rel);
        if (present) {
            cr_assert(S_ISLNK(dt.st_mode), "%s is no longer a symlink", rel);
            cr_assert_geq(readlink(src, a, sizeof a - 1), 0);
            cr_assert_geq(readlink(dst, b, sizeof b - 1), 0);
            cr_assert_str_eq(a, b, "symlink %s points elsewhere", rel);
            r->symlinks++;
        }
        return;
    }
    if (!S_ISREG(st->st_mode))
        return;
    r->files++;
    if (!present) {
        cr_assert(dead, "%s is missing and not a dead letter", rel);
        r->missing++;
        return;
    }
    cr_assert(S_ISREG(dt.st_mode), "%s is not a regular file", rel);
    uint8_t a[32], b[32];
    sha256_file(src, a);
    sha256_file(dst, b);
    cr_assert(memcmp(a, b, 32) == 0 && dt.st_size == st->st_size,
              "%s is CORRUPTED at the destination (%lld bytes, source %lld)",
              rel, (long long)dt.st_size, (long long)st->st_size);
    cr_assert((dt.st_mode & 07777) == (st->st_mode & 07777) &&
                  dt.st_mtim.tv_sec == st->st_mtim.tv_sec,
              "%s: mode %o mtime %lld at the destination, source %o %lld", rel,
              dt.st_mode & 07777, (long long)dt.st_mtim.tv_sec,
              st->st_mode & 07777, (long long)st->st_mtim.tv_sec);
    r->identical++;
    r->bytes_verified += (uint64_t)st->st_size;
}

static void
check_dest_entry(void *ctx, const char *rel, const struct stat *st)
{
    struct run *r = ctx;
    (void)st;
    char src[1024];
    snprintf(src, sizeof src, "%s/%s", r->src, rel);
    struct stat s;
    cr_assert_eq(lstat(src, &s), 0,
                 "the destination holds %s, which the source lacks", rel);
}

static void
verify_run(struct run *r)
{
    read_dead_letters(r);
    r->dead_letters = (unsigned)json_object_size(r->dead);
    walk(r->src, "", check_source_entry, r);
    char dst[300];
    snprintf(dst, sizeof dst, "%s/copy", r->root);
    struct stat st;
    if (stat(dst, &st) == 0)
        walk(dst, "", check_dest_entry, r);
    json_decref(r->dead);
    r->dead = NULL;
}

static int
copy_through(struct run *r, uint16_t port)
{
    char dst[300];
    snprintf(dst, sizeof dst, "star://127.0.0.1:%u/copy", port);
    char src[300];
    snprintf(src, sizeof src, "%s/", r->src);
    char *argv[] = {ORBIT_BIN,      "copy",        src,         dst,
                    "--token-file", r->token,      "--retries", "8",
                    "--json",       "--state-dir", r->state,    NULL};
    setenv("ORBIT_RETRY_INITIAL_MS", "50", 1);
    pid_t pid = fu_spawn_to(argv, NULL, r->json, r->copy_err);
    int st = fu_wait(pid, COPY_DEADLINE);
    if (st == -1) {
        kill(pid, SIGKILL);
        fu_wait(pid, 5000);
        char *log = fu_slurp(r->copy_err, NULL);
        cr_assert_fail("orbit copy still running after %d ms: %s",
                       COPY_DEADLINE, log ? log : "");
    }
    cr_assert(WIFEXITED(st), "orbit copy died: status %d", st);
    return WEXITSTATUS(st);
}

/* One seed: star, proxy with the given options, copy, verify. */
static void
one_seed(struct run *r, uint64_t seed, const char *opts)
{
    fu_rmrf(r->state);
    uint16_t sport = star_start(r, &r->star_pid);
    char sd[32], words[256];
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    snprintf(words, sizeof words, "%s", opts);
    const char *extra[24] = {"--seed", sd};
    size_t n = 2;
    char *save = NULL;
    for (char *w = strtok_r(words, " ", &save); w && n + 1 < 24;
         w = strtok_r(NULL, " ", &save))
        extra[n++] = w;
    extra[n] = NULL;
    uint16_t pport = fu_proxy_start(sport, extra, r->proxy_err, &r->proxy_pid);
    uint64_t t0 = fu_now_ms();
    r->exit_code = copy_through(r, pport);
    uint64_t ms = fu_now_ms() - t0;
    int pst = fu_stop(r->proxy_pid, 5000);
    r->proxy_pid = 0;
    int sst = fu_stop(r->star_pid, 15000);
    r->star_pid = 0;
    char *summary = fu_slurp(r->proxy_err, NULL);
    char *log = fu_slurp(r->copy_err, NULL);
    cr_assert(r->exit_code == 0 || r->exit_code == 3,
              "seed %llu: orbit copy exited %d: %s", (unsigned long long)seed,
              r->exit_code, log ? log : "");
    cr_assert(WIFEXITED(pst) && WEXITSTATUS(pst) == 0);
    cr_assert(WIFEXITED(sst) && WEXITSTATUS(sst) == 0,
              "the star did not drain cleanly: status %d", sst);
    r->files = r->identical = r->missing = r->symlinks = 0;
    r->bytes_verified = 0;
    verify_run(r);
    cr_assert_eq(r->dead_letters > 0, r->exit_code == 3,
                 "exit %d with %u dead letters", r->exit_code, r->dead_letters);
    const char *sl = summary ? strstr(summary, "faultproxy: seed=") : NULL;
    cr_assert_not_null(sl, "no proxy summary");
    r->faults = fu_summary_field(sl, "faults");
    fprintf(stderr,
            "copy: seed %llu exit %d in %llu ms: %u files, %u identical, %u "
            "missing, %u dead letters, %u symlinks, %llu bytes verified | "
            "%.*s\n",
            (unsigned long long)seed, r->exit_code, (unsigned long long)ms,
            r->files, r->identical, r->missing, r->dead_letters, r->symlinks,
            (unsigned long long)r->bytes_verified, (int)strcspn(sl, "\n"), sl);
    free(summary);
    free(log);
}

/* Copy one tree once per seed, the proxy started with opts each time. */
static void
seeds(uint64_t tree_seed, const uint64_t *list, size_t n, const char *opts)
{
    struct run *r = &R;
    run_init(r, tree_seed);
    uint64_t faults = 0;
    for (size_t i = 0; i < n; i++) {
        one_seed(r, list[i], opts);
        faults += r->faults;
    }
    cr_assert_gt(faults, 0, "no fault was injected: the runs proved nothing");
}

#define SEEDS(tree, opts, ...)                                                 \
    do {                                                                       \
        static const uint64_t list_[] = {__VA_ARGS__};                         \
        seeds(tree, list_, sizeof list_ / sizeof list_[0], opts);              \
    } while (0)

TestSuite(copy_faults, .fini = copy_cleanup, .timeout = 240);

/*
 * Offsets start at 256 bytes: a fault inside the very first session setup
 * ends `orbit copy` (exit 1, see copy_known_gaps below), and the suite
 * keeps to what must already hold.
 */

/* Resets, stalls, cuts and delays anywhere in the first 2 MB uploaded. */
Test(copy_faults, mixed_faults_in_the_upload)
{
    SEEDS(42,
          "--fault reset,stall,truncate,delay --min-at 256 --span 2000000 "
          "--stall-ms 300 --delay-ms 5 --max-faults 6",
          11, 16, 2);
}

/* One flipped bit per connection inside PUT frames: ids, lengths, hints
 * and chunk bytes. The star must refuse what does not match its id. */
Test(copy_faults, bit_flips_in_chunks)
{
    SEEDS(43, "--fault flip --frame-type 20 --span 12000000 --max-faults 6", 5,
          6, 7);
}

/* Cuts and resets early in the upload: HAVEs, first chunks, first
 * COMMITs. */
Test(copy_faults, cuts_early)
{
    SEEDS(44,
          "--fault truncate,reset --min-at 256 --span 200000 --max-faults 6",
          11, 12, 13);
}

/* Faults inside the replies' payloads: HAVE_REPLY bitmaps, PUT_OK,
 * COMMIT_OK (a flipped reply header is a known gap, below). */
Test(copy_faults, faults_in_the_replies)
{
    SEEDS(45,
          "--fault flip,reset,truncate --dir down --frame-type any "
          "--min-at 100 --span 15000 --max-faults 6",
          8, 9, 10);
}

/*
 * Known gaps (docs/reliability.md): skipped unless ORBIT_FAULTS_KNOWN_GAPS
 * is set, because they fail today.
 */
static void
known_gap(void)
{
    if (!getenv("ORBIT_FAULTS_KNOWN_GAPS"))
        cr_skip_test("a known gap; set ORBIT_FAULTS_KNOWN_GAPS=1 to run it");
}

/*
 * A bit flipped inside a COMMIT frame is not detected: nothing covers the
 * path, mode or mtime of a manifest, so the star commits the file under
 * another name (or with other metadata), answers COMMIT_OK, and the real
 * path is missing without a dead letter. TCP's checksum is all that guards
 * it today.
 */
Test(copy_known_gaps, bit_flips_in_commits, .fini = copy_cleanup)
{
    known_gap();
    SEEDS(46, "--fault flip --frame-type 22 --span 20000 --max-faults 1", 2, 5,
          6);
}

/* A connection lost during the first session setup ends the job with exit
 * 1 ("cannot reach star"), where a later loss is retried. */
Test(copy_known_gaps, loss_during_the_first_handshake, .fini = copy_cleanup)
{
    known_gap();
    SEEDS(47, "--fault reset --at 0 --max-faults 1", 1);
}

/* A flipped bit in the length of a reply header (the first reply after
 * HELLO_OK, at byte 123 of the stream) desynchronises the session: its
 * requests time out after a minute, yet the connection is kept and the job
 * stalls. */
Test(copy_known_gaps, flipped_reply_length, .fini = copy_cleanup)
{
    known_gap();
    SEEDS(48, "--fault flip --dir down --at 123 --max-faults 1", 1);
}
