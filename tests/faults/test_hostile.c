/*
 * Hostile clients against a running star. Each test starts a star on
 * 127.0.0.1:0 with short timeouts, rooted in ARENA/root next to
 * ARENA/outside (a sentinel file, and the target of a symlink inside the
 * root), and runs a well-behaved client on its own thread for the whole
 * test: HELLO, HAVE, PUT, COMMIT of a small file, over and over. Then it
 * attacks. Afterwards every well-behaved round must have succeeded, one more
 * must succeed, the star must still be scheduled, and nothing may have been
 * written outside the root.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "../orbit-star/test_star_helpers.h"
#include "faults_util.h"
#include "orbit/wire_sync.h"

#define GOOD_MAX_ROUNDS 5000
#define GOOD_FILE_LEN   3000

struct arena {
    char box[200];
    char root[256], outside[256];
    struct star *star;
    uint16_t port;
    struct stat passwd; /* /etc/passwd before the attack */
    pthread_t good;
    bool good_running;
    atomic_bool stop;
    atomic_uint rounds, failures;
    unsigned hostile_conns, hostile_frames; /* for the report line */
    char failure[256]; /* the first failure, written once */
};

static struct arena A;

/* One well-behaved session: a new file good/f<round>; 0 or a message. */
static const char *
good_round(const struct arena *a, unsigned round)
{
    static _Thread_local char why[160];
    uint8_t data[GOOD_FILE_LEN];
    fu_fill(data, sizeof data, 0x600d0000u + round);
    struct wire_sync *s = NULL;
    int rc = wire_sync_connect("127.0.0.1", a->port, ts_token, TS_TOKEN_LEN,
                               "good", 5000, &s);
    struct wire_msg m, r;
    struct wire_chunk_ref ref;
    char path[64];
    snprintf(path, sizeof path, "good/f%u", round);
    if (rc < 0)
        goto out;
    memset(&m, 0, sizeof m);
    ts_sha(data, sizeof data, ref.id);
    ref.raw_len = sizeof data;
    m.type = WIRE_HAVE;
    m.u.have.n = 1;
    m.u.have.ids = ref.id;
    if ((rc = wire_sync_request(s, &m, &r)) < 0)
        goto out;
    rc = r.type == WIRE_HAVE_REPLY && wire_bitmap_get(r.u.have_reply.bitmap, 0)
             ? 0
             : ORBIT_EPROTO;
    if (rc < 0)
        goto out;
    tc_put_msg(&m, 0, data, sizeof data, NULL, 0);
    if ((rc = wire_sync_request(s, &m, &r)) < 0)
        goto out;
    size_t cut = sizeof data;
    struct tc_file f = {path, data, sizeof data, &cut, 1, 0644, 0};
    tc_commit_msg(&m, 0, &f, &ref);
    if ((rc = wire_sync_request(s, &m, &r)) < 0)
        goto out;
    rc = r.type == WIRE_COMMIT_OK && r.u.commit_ok.complete ? 0 : ORBIT_EPROTO;
out:
    wire_sync_free(s);
    if (rc < 0) {
        snprintf(why, sizeof why, "round %u (%s): %s", round, path,
                 orbit_errname(rc));
        return why;
    }
    char full[400];
    snprintf(full, sizeof full, "%s/%s", a->root, path);
    size_t len = 0;
    char *got = fu_slurp(full, &len);
    bool same = got && len == sizeof data && memcmp(got, data, len) == 0;
    free(got);
    if (!same) {
        snprintf(why, sizeof why, "round %u: %s differs on disk", round, path);
        return why;
    }
    return NULL;
}

static void *
good_loop(void *arg)
{
    struct arena *a = arg;
    while (!atomic_load(&a->stop) &&
           atomic_load(&a->rounds) < GOOD_MAX_ROUNDS) {
        const char *why = good_round(a, atomic_load(&a->rounds));
        if (why && atomic_fetch_add(&a->failures, 1) == 0)
            snprintf(a->failure, sizeof a->failure, "%s", why);
        atomic_fetch_add(&a->rounds, 1);
        usleep(5 * 1000);
    }
    return NULL;
}

static void
good_start(struct arena *a)
{
    atomic_store(&a->stop, false);
    cr_assert_eq(pthread_create(&a->good, NULL, good_loop, a), 0);
    a->good_running = true;
}

static void
good_stop(struct arena *a)
{
    atomic_store(&a->stop, true);
    if (a->good_running)
        pthread_join(a->good, NULL);
    a->good_running = false;
}

static void
arena_up(struct arena *a, uint32_t max_connections)
{
    memset(a, 0, sizeof *a);
    fu_mkdtemp(a->box, sizeof a->box, "arena");
    snprintf(a->root, sizeof a->root, "%s/root", a->box);
    snprintf(a->outside, sizeof a->outside, "%s/outside", a->box);
    cr_assert_eq(mkdir(a->root, 0755), 0);
    cr_assert_eq(mkdir(a->outside, 0755), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/sentinel", a->outside);
    fu_write_file(p, "keep", 4);
    snprintf(p, sizeof p, "%s/link", a->root);
    cr_assert_eq(symlink(a->outside, p), 0);
    snprintf(p, sizeof p, "%s/keepme", a->root);
    fu_write_file(p, "mine", 4);
    cr_assert_eq(stat("/etc/passwd", &a->passwd), 0);
    struct star_config cfg;
    ts_config(&cfg, a->root);
    cfg.auth_timeout_ms = 1000;
    cfg.frame_timeout_ms = 300;
    cfg.idle_timeout_ms = 5000;
    cfg.drain_timeout_ms = 2000;
    if (max_connections)
        cfg.max_connections = max_connections;
    cr_assert_eq(star_new(&cfg, &a->star), 0);
    cr_assert_eq(star_listen(a->star, "127.0.0.1:0"), 0);
    a->port = star_port(a->star);
    cr_assert_eq(star_schedule(a->star), 0);
    good_start(a);
}

static void
setup(void)
{
    arena_up(&A, 0);
}

static void
teardown(void)
{
    good_stop(&A);
    star_free(A.star);
    fu_rmrf(A.box);
}

/* The names in dir, sorted and joined by spaces, into out. */
static void
dir_names(const char *dir, char *out, size_t cap)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort);
    cr_assert_geq(n, 0, "%s: %s", dir, strerror(errno));
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i]->d_name, ".") && strcmp(list[i]->d_name, "..")) {
            strncat(out, list[i]->d_name, cap - strlen(out) - 2);
            strcat(out, " ");
        }
        free(list[i]);
    }
    free(list);
}

/* Nothing outside the root changed; the star serves a well-behaved
 * client; every concurrent round succeeded. */
static void
arena_check(struct arena *a, unsigned min_rounds)
{
    cr_assert_eq(star_get_state(a->star), STAR_SCHEDULED);
    good_stop(a);
    unsigned rounds = atomic_load(&a->rounds);
    cr_assert_eq(atomic_load(&a->failures), 0,
                 "%u of %u concurrent rounds "
                 "failed, first: %s",
                 atomic_load(&a->failures), rounds, a->failure);
    cr_assert_geq(rounds, min_rounds, "only %u concurrent rounds", rounds);
    fprintf(stderr,
            "hostile: %u hostile connections, %u hand-made frames, %u "
            "concurrent well-behaved rounds, 0 failed\n",
            a->hostile_conns, a->hostile_frames, rounds);
    const char *why = good_round(a, rounds);
    cr_assert_null(why, "after the attack: %s", why);
    char names[512];
    dir_names(a->box, names, sizeof names);
    cr_assert_str_eq(names, "outside root ", "the arena holds: %s", names);
    dir_names(a->outside, names, sizeof names);
    cr_assert_str_eq(names, "sentinel ", "outside holds: %s", names);
    char p[400];
    snprintf(p, sizeof p, "%s/sentinel", a->outside);
    char *s = fu_slurp(p, NULL);
    cr_assert(s && strcmp(s, "keep") == 0, "the sentinel changed");
    free(s);
    struct stat st;
    cr_assert_eq(stat("/etc/passwd", &st), 0);
    cr_assert(st.st_mtim.tv_sec == a->passwd.st_mtim.tv_sec &&
              st.st_size == a->passwd.st_size);
    snprintf(p, sizeof p, "%s/orbit-faults-escape", fu_scratch_base());
    cr_assert_eq(access(p, F_OK), -1);
    cr_assert_eq(access("/tmp/orbit-faults-escape", F_OK), -1);
    cr_assert_eq(access("/orbit-faults-escape", F_OK), -1);
}

/* Repeat attack until the well-behaved client has finished min rounds
 * while it ran, so the two really overlap: at least 50 times and for up
 * to 20 s (a quick attack on a loaded machine can outrun the client). */
static void
during(struct arena *a, unsigned min, void (*attack)(void))
{
    unsigned r0 = atomic_load(&a->rounds);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0;; i++) {
        attack();
        if (atomic_load(&a->rounds) - r0 >= min)
            return;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (i >= 50 && now.tv_sec - t0.tv_sec >= 20)
            break;
    }
    cr_assert_fail("only %u well-behaved rounds during 20 s of attacks",
                   atomic_load(&a->rounds) - r0);
}

/* A connection that has read the challenge (and, by stage, more). */
enum stage { PRE_AUTH, AUTHED, HELLOED };

static int
open_at(uint16_t port, enum stage st)
{
    A.hostile_conns++;
    if (st == HELLOED)
        return tc_open(port);
    int fd = tc_connect(port);
    if (st == AUTHED) {
        cr_assert_eq(tc_auth(fd, ts_token, TS_TOKEN_LEN), 0);
        return fd;
    }
    uint8_t *buf = NULL;
    struct wire_msg m;
    cr_assert_eq(tc_recv(fd, &buf, &m), 0);
    cr_assert_eq(m.type, WIRE_AUTH_CHALLENGE);
    free(buf);
    return fd;
}

/* Read one frame; expect an ERROR with code (0: any code). */
static void
expect_error_reply(int fd, int code, const char *what)
{
    uint8_t *buf = NULL;
    struct wire_msg r;
    cr_assert_eq(tc_recv(fd, &buf, &r), 0, "%s: no reply", what);
    cr_assert_eq(r.type, WIRE_ERROR, "%s: answered %s", what,
                 wire_type_name(r.type));
    if (code)
        cr_assert_eq(r.u.error.code, code, "%s: %s, expected %s", what,
                     orbit_errname(r.u.error.code), orbit_errname(code));
    cr_assert_not(r.u.error.retryable, "%s: refused as retryable", what);
    free(buf);
}

/* ---- a payload builder for frames the encoder would refuse ---- */

struct hb {
    uint8_t b[16384 + WIRE_HDR_LEN];
    size_t n;
};

static void
hb_put(struct hb *h, const void *p, size_t n)
{
    cr_assert_leq(h->n + n, sizeof h->b);
    memcpy(h->b + h->n, p, n);
    h->n += n;
}

static void
hb_be(struct hb *h, uint64_t v, int bytes)
{
    uint8_t x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    hb_put(h, x, (size_t)bytes);
}

/* A wire str: u16 length, the bytes (any, NUL included), a zero byte. */
static void
hb_str(struct hb *h, const char *s, size_t len)
{
    hb_be(h, len, 2);
    hb_put(h, s, len);
    hb_be(h, 0, 1);
}

static void
hb_send(int fd, uint8_t type, uint32_t rid, const struct hb *payload)
{
    struct hb f = {.n = 0};
    A.hostile_frames++;
    hb_be(&f, WIRE_VERSION, 1);
    hb_be(&f, type, 1);
    hb_be(&f, 0, 2);
    hb_be(&f, rid, 4);
    hb_be(&f, payload->n, 4);
    hb_put(&f, payload->b, payload->n);
    /* the frame check, where the payload parses: the star must refuse
     * these frames for what they say, not for a missing check */
    (void)wire_frame_seal(f.b, f.n);
    cr_assert_eq(tc_write_all(fd, f.b, f.n), 0);
}

/* ---- authentication ---- */

TestSuite(hostile_auth, .init = setup, .fini = teardown, .timeout = 60);

static void
attack_wrong_tokens_are_refused_while_others_work(void)
{
    uint8_t bad[TS_TOKEN_LEN + 1];
    for (int i = 0; i < 20; i++) {
        memcpy(bad, ts_token, TS_TOKEN_LEN);
        size_t len = TS_TOKEN_LEN;
        if (i % 3 == 0)
            bad[i % TS_TOKEN_LEN] ^= 1; /* one bit off */
        else if (i % 3 == 1)
            len--; /* a prefix */
        else
            bad[len++] = 'x'; /* an extension */
        int fd = tc_connect(A.port);
        A.hostile_conns++;
        cr_assert_eq(tc_auth(fd, bad, len), ORBIT_EAUTH);
        cr_assert(fu_closed_within(fd, 3000, NULL));
        close(fd);
    }
    struct star_stats st;
    star_get_stats(A.star, &st);
    cr_assert_geq(st.errors_auth, 20);
}

Test(hostile_auth, wrong_tokens_are_refused_while_others_work)
{
    during(&A, 3, attack_wrong_tokens_are_refused_while_others_work);
    arena_check(&A, 3);
}

/* A well-formed request of the given type (paths "keepme", "preauth"). */
static void
wellformed(uint8_t type, struct wire_msg *m, const uint8_t *id)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->request_id = 7;
    if (type == WIRE_HELLO) {
        m->u.hello.version = WIRE_VERSION;
        m->u.hello.traceparent = m->u.hello.client_name = "";
        m->u.hello.job_id = "";
    } else if (type == WIRE_HAVE) {
        m->u.have.n = 1;
        m->u.have.ids = id;
    } else if (type == WIRE_PUT) {
        tc_put_msg(m, 7, id, 32, "preauth", 0);
    } else if (type == WIRE_COMMIT) {
        m->u.commit.path = "preauth";
        m->u.commit.path_len = 7;
        m->u.commit.ftype = WIRE_FT_DIRECTORY;
        m->u.commit.mode = 0755;
        m->u.commit.target = "";
    } else if (type == WIRE_DELETE) {
        m->u.del.path = "keepme";
        m->u.del.path_len = 6;
        m->u.del.flags = WIRE_DELETE_RECURSIVE;
    } else if (type == WIRE_LIST) {
        m->u.list.path = m->u.list.cursor = "";
    }
}

/*
 * Before AUTH_OK: a well-formed request gets EAUTH, anything else (empty or
 * malformed payloads, reply types, unknown types) some ERROR; every one
 * ends the session and none takes effect.
 */
static void
attack_every_request_before_auth_is_refused_and_closed(void)
{
    static const uint8_t types[] = {WIRE_HELLO,   WIRE_HAVE,     WIRE_PUT,
                                    WIRE_COMMIT,  WIRE_DELETE,   WIRE_LIST,
                                    WIRE_HEALTH,  WIRE_GOODBYE,  WIRE_ERROR,
                                    WIRE_AUTH_OK, WIRE_HELLO_OK, 0x7f};
    uint8_t id[32] = {1, 2, 3};
    for (size_t i = 0; i < 2 * sizeof types; i++) {
        uint8_t type = types[i % sizeof types];
        bool good = i >= sizeof types;
        if (good && wire_reply_type(type) == 0)
            continue;
        int fd = open_at(A.port, PRE_AUTH);
        char what[64];
        snprintf(what, sizeof what, "%s %s before auth",
                 good ? "well-formed" : "empty", wire_type_name(type));
        if (good) {
            struct wire_msg m;
            wellformed(type, &m, id);
            cr_assert_eq(tc_send(fd, &m), 0);
        } else {
            struct hb p = {.n = 0};
            hb_send(fd, type, 7, &p);
        }
        expect_error_reply(fd, good ? ORBIT_EAUTH : 0, what);
        cr_assert(fu_closed_within(fd, 3000, NULL), "%s: still open", what);
        close(fd);
    }
    char p[400];
    snprintf(p, sizeof p, "%s/keepme", A.root);
    cr_assert_eq(access(p, F_OK), 0, "a DELETE before auth took effect");
    snprintf(p, sizeof p, "%s/preauth", A.root);
    cr_assert_eq(access(p, F_OK), -1, "a COMMIT before auth took effect");
}

Test(hostile_auth, every_request_before_auth_is_refused_and_closed)
{
    during(&A, 3, attack_every_request_before_auth_is_refused_and_closed);
    arena_check(&A, 3);
}

/* ---- broken frames ---- */

TestSuite(hostile_frames, .init = setup, .fini = teardown, .timeout = 60);

static void
attack_oversize_headers_end_the_session(void)
{
    static const uint32_t lens[] = {WIRE_MAX_PAYLOAD + 1, 0x7fffffffu,
                                    0xffffffffu};
    for (int st = PRE_AUTH; st <= HELLOED; st++) {
        for (size_t i = 0; i < 3; i++) {
            int fd = open_at(A.port, (enum stage)st);
            uint8_t h[WIRE_HDR_LEN] = {
                WIRE_VERSION, WIRE_PUT, 0, 0, 0, 0, 0, 9};
            for (int k = 0; k < 4; k++)
                h[8 + k] = (uint8_t)(lens[i] >> (24 - 8 * k));
            cr_assert_eq(tc_write_all(fd, h, sizeof h), 0);
            A.hostile_frames++;
            /* Before auth the star may answer EAUTH or ETOOBIG first. */
            expect_error_reply(fd, st == PRE_AUTH ? 0 : ORBIT_ETOOBIG,
                               "oversize header");
            cr_assert(fu_closed_within(fd, 3000, NULL));
            close(fd);
        }
    }
}

Test(hostile_frames, oversize_headers_end_the_session)
{
    during(&A, 3, attack_oversize_headers_end_the_session);
    arena_check(&A, 3);
}

/* Random bytes at every stage of a session: the star closes or answers,
 * and never stops serving. */
static void
attack_garbage_bytes_at_every_stage(void)
{
    uint64_t rng = 0x6a7ba6e;
    uint8_t *junk = malloc(64 * 1024);
    cr_assert_not_null(junk);
    for (int i = 0; i < 36; i++) {
        enum stage st = (enum stage)(i % 3);
        int fd = open_at(A.port, st);
        size_t len = 1 + (size_t)(fu_rand(&rng) % (64 * 1024));
        fu_fill(junk, len, fu_rand(&rng));
        if (i % 2)
            junk[0] = WIRE_VERSION; /* get past the version check */
        /* The star may close while we write: a failed send is fine. */
        (void)tc_write_all(fd, junk, len);
        A.hostile_frames++;
        fu_closed_within(fd, 400, NULL);
        close(fd);
    }
    free(junk);
}

Test(hostile_frames, garbage_bytes_at_every_stage)
{
    during(&A, 3, attack_garbage_bytes_at_every_stage);
    arena_check(&A, 3);
}

/* Well-framed requests with random payloads, after HELLO: each gets an
 * ERROR (or a reply) and the session goes on. */
static void
attack_framed_garbage_is_answered_one_by_one(void)
{
    uint64_t rng = 0xf4a3ed;
    int fd = open_at(A.port, HELLOED);
    uint8_t *buf = NULL;
    for (uint32_t i = 0; i < 200; i++) {
        struct hb p = {.n = 0};
        uint8_t junk[512];
        size_t len = (size_t)(fu_rand(&rng) % sizeof junk);
        fu_fill(junk, len, fu_rand(&rng));
        hb_put(&p, junk, len);
        uint8_t type = (uint8_t)(WIRE_HELLO + 2 * (fu_rand(&rng) % 8));
        if (type == WIRE_GOODBYE)
            type = WIRE_HAVE;
        hb_send(fd, type, 1000 + i, &p);
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0, "frame %u: closed", i);
        cr_assert_eq(r.request_id, 1000 + i);
    }
    free(buf);
    close(fd);
}

Test(hostile_frames, framed_garbage_is_answered_one_by_one)
{
    during(&A, 3, attack_framed_garbage_is_answered_one_by_one);
    arena_check(&A, 3);
}

/* ---- paths ---- */

/* A path form, and the ERROR it must get. */
struct evil {
    const char *path;
    size_t len; /* 0: strlen */
    int code;
};

static char long_path[WIRE_MAX_PATH + 2], long_name[300];

static const struct evil *
evil_paths(size_t *n)
{
    memset(long_path, 'a', WIRE_MAX_PATH + 1);
    memset(long_name, 'b', 256);
    static const struct evil e[] = {
        {"../x", 0, ORBIT_EPATH},
        {"a/../../x", 0, ORBIT_EPATH},
        {"../../orbit-faults-escape", 0, ORBIT_EPATH},
        {"../outside/sentinel", 0, ORBIT_EPATH},
        {"/etc/passwd", 0, ORBIT_EPATH},
        {"/tmp/orbit-faults-escape", 0, ORBIT_EPATH},
        {"a\0/../../x", 10, ORBIT_EPROTO},
        {"keepme\0", 7, ORBIT_EPROTO},
        {"", 0, ORBIT_EPATH},
        {".", 0, ORBIT_EPATH},
        {"..", 0, ORBIT_EPATH},
        {"a/./b", 0, ORBIT_EPATH},
        {"a//b", 0, ORBIT_EPATH},
        {"a/", 0, ORBIT_EPATH},
        {".orbit", 0, ORBIT_EPATH},
        {".orbit/starmap/data.mdb", 0, ORBIT_EPATH},
        {".orbit/packs/x", 0, ORBIT_EPATH},
        {".ORBIT/x", 0, ORBIT_EPATH},
        {long_path, WIRE_MAX_PATH + 1, ORBIT_ETOOBIG},
        {long_name, 256, ORBIT_EPATH},
    };
    *n = sizeof e / sizeof e[0];
    return e;
}

enum carrier {
    VIA_COMMIT_FILE,
    VIA_COMMIT_DIR,
    VIA_PUT_HINT,
    VIA_DELETE,
    VIA_LIST,
    VIA_COUNT
};

static const char *const carrier_names[] = {"COMMIT file", "COMMIT dir",
                                            "PUT hint", "DELETE", "LIST"};

static const uint8_t chunk[] = "a chunk the star holds for the evil commits";

/* Send a request carrying path through the given message. */
static void
send_evil(int fd, enum carrier how, uint32_t rid, const char *path, size_t len)
{
    struct hb p = {.n = 0};
    uint8_t id[32], zero[32] = {0};
    ts_sha(chunk, sizeof chunk, id);
    uint8_t type = WIRE_COMMIT;
    if (how == VIA_COMMIT_FILE || how == VIA_COMMIT_DIR) {
        bool file = how == VIA_COMMIT_FILE;
        hb_str(&p, path, len);
        hb_be(&p, file ? WIRE_FT_REGULAR : WIRE_FT_DIRECTORY, 1);
        hb_be(&p, file ? sizeof chunk : 0, 8);
        hb_be(&p, 0644, 4);
        hb_be(&p, 1700000000, 8);
        hb_be(&p, 0, 4);
        hb_str(&p, "", 0);
        if (file)
            ts_sha(chunk, sizeof chunk, zero);
        hb_put(&p, zero, 32);
        hb_be(&p, 0, 8);
        hb_be(&p, file, 8);
        hb_be(&p, file, 4);
        if (file) {
            hb_put(&p, id, 32);
            hb_be(&p, sizeof chunk, 4);
        }
    } else if (how == VIA_PUT_HINT) {
        type = WIRE_PUT;
        hb_put(&p, id, 32);
        hb_be(&p, WIRE_CODEC_RAW, 1);
        hb_be(&p, sizeof chunk, 4);
        hb_be(&p, 1, 1);
        hb_str(&p, path, len);
        hb_be(&p, 0, 8);
        hb_be(&p, sizeof chunk, 4);
        hb_put(&p, chunk, sizeof chunk);
    } else if (how == VIA_DELETE) {
        type = WIRE_DELETE;
        hb_str(&p, path, len);
        hb_be(&p, WIRE_DELETE_RECURSIVE, 1);
    } else {
        type = WIRE_LIST;
        hb_str(&p, path, len);
        hb_str(&p, "", 0);
        hb_be(&p, 0, 4);
        hb_be(&p, WIRE_LIST_DIGESTS, 1); /* digests: a file would be read */
    }
    hb_send(fd, type, rid, &p);
}

static void
attack_traversal_in_every_form_and_message(void)
{
    int fd = open_at(A.port, HELLOED);
    tc_put(fd, 3, chunk, sizeof chunk, NULL, 0);
    size_t n = 0;
    const struct evil *e = evil_paths(&n);
    uint32_t rid = 100;
    for (size_t i = 0; i < n; i++) {
        size_t len = e[i].len ? e[i].len : strlen(e[i].path);
        for (int how = 0; how < VIA_COUNT; how++) {
            if (how == VIA_LIST && len == 0)
                continue; /* "" lists the root: allowed */
            send_evil(fd, (enum carrier)how, rid++, e[i].path, len);
            char what[128];
            snprintf(what, sizeof what, "%s of \"%.40s\" (%zu bytes)",
                     carrier_names[how], e[i].path, len);
            expect_error_reply(fd, e[i].code, what);
        }
    }
    char p[400];
    snprintf(p, sizeof p, "%s/keepme", A.root);
    cr_assert_eq(access(p, F_OK), 0, "keepme was deleted");
    close(fd);
}

Test(hostile_paths, traversal_in_every_form_and_message, .init = setup,
     .fini = teardown, .timeout = 60)
{
    during(&A, 3, attack_traversal_in_every_form_and_message);
    arena_check(&A, 3);
}

/* One reply to a request sent with send_evil(); its type, ERROR code in
 * *code. */
static uint8_t
reply_of(int fd, int *code)
{
    uint8_t *buf = NULL;
    struct wire_msg r;
    cr_assert_eq(tc_recv(fd, &buf, &r), 0);
    uint8_t t = r.type;
    *code = t == WIRE_ERROR ? r.u.error.code : 0;
    free(buf);
    return t;
}

/* Symlinks: one planted inside the root, one a client commits itself;
 * every message through either is refused, and nothing lands outside. */
static void
attack_symlinks_inside_the_root_lead_nowhere(void)
{
    int fd = open_at(A.port, HELLOED);
    tc_put(fd, 3, chunk, sizeof chunk, NULL, 0);
    /* The client plants its own way out: ROOT/door -> ../outside. */
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_COMMIT;
    m.request_id = 4;
    m.u.commit.path = "door";
    m.u.commit.path_len = 4;
    m.u.commit.ftype = WIRE_FT_SYMLINK;
    m.u.commit.mode = 0777;
    m.u.commit.target = "../outside";
    m.u.commit.target_len = strlen(m.u.commit.target);
    uint8_t t = tc_call(fd, &m, &r, &buf);
    free(buf);
    cr_assert(t == WIRE_COMMIT_OK || t == WIRE_ERROR);
    static const char *const through[] = {"link/evil",       "link/sentinel",
                                          "door/evil",       "door/sentinel",
                                          "link/new/deeper", "door"};
    uint32_t rid = 10;
    for (size_t i = 0; i < sizeof through / sizeof through[0]; i++) {
        for (int how = 0; how < VIA_COUNT; how++) {
            send_evil(fd, (enum carrier)how, rid++, through[i],
                      strlen(through[i]));
            int code = 0;
            uint8_t rt = reply_of(fd, &code);
            /* A hint the star cannot use is ignored: the chunk is kept.
             * "door" itself is a path inside the root. */
            bool may_pass =
                how == VIA_PUT_HINT || strcmp(through[i], "door") == 0;
            cr_assert(rt == WIRE_ERROR || may_pass, "%s through %s: %s",
                      carrier_names[how], through[i], wire_type_name(rt));
            if (rt == WIRE_ERROR && !may_pass)
                cr_assert(code == ORBIT_EPATH || code == ORBIT_ENOENT,
                          "%s through %s: %s", carrier_names[how], through[i],
                          orbit_errname(code));
        }
    }
    close(fd);
}

Test(hostile_paths, symlinks_inside_the_root_lead_nowhere, .init = setup,
     .fini = teardown, .timeout = 60)
{
    during(&A, 3, attack_symlinks_inside_the_root_lead_nowhere);
    arena_check(&A, 3);
}

/* ---- slow and many ---- */

TestSuite(hostile_load, .init = setup, .fini = teardown, .timeout = 60);

/* Trickle one byte of a header every 100 ms on many connections at once;
 * the star must cut each after its frame (or auth) timeout. */
Test(hostile_load, slowloris_trickles_are_cut)
{
    enum { N = 24 };
    int fds[N];
    bool open_[N];
    uint64_t t0 = fu_now_ms();
    for (int i = 0; i < N; i++) {
        fds[i] = open_at(A.port, i % 4 == 0 ? PRE_AUTH : HELLOED);
        open_[i] = true;
    }
    uint8_t hdr[WIRE_HDR_LEN] = {WIRE_VERSION, WIRE_HEALTH, 0, 0, 0, 0, 0, 5};
    int left = N;
    for (int step = 0; step < 60 && left > 0; step++) {
        for (int i = 0; i < N; i++) {
            if (!open_[i])
                continue;
            ssize_t w = send(fds[i], &hdr[step % WIRE_HDR_LEN], 1,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            bool gone = w < 0 && errno != EAGAIN;
            struct pollfd p = {fds[i], POLLIN, 0};
            if (!gone && poll(&p, 1, 0) == 1) {
                uint8_t b[64];
                ssize_t r = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
                gone = r == 0 || (r < 0 && errno != EAGAIN);
            }
            if (gone) {
                open_[i] = false;
                left--;
            }
        }
        usleep(100 * 1000);
    }
    cr_assert_eq(left, 0, "%d trickling connections still open", left);
    cr_assert_lt(fu_now_ms() - t0, 6500);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    arena_check(&A, 5);
}

/* A few hundred connections at once, half of them past HELLO, held while
 * the well-behaved client works, then dropped, half with a reset. */
Test(hostile_load, hundreds_of_concurrent_connections)
{
    enum { N = 300 };
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = open_at(A.port, i % 2 ? HELLOED : PRE_AUTH);
    struct star_stats st;
    star_get_stats(A.star, &st);
    cr_assert_geq(st.connections, N, "%u connections", st.connections);
    /* Every held session still answers. */
    for (int i = 1; i < N; i += 2) {
        struct wire_msg m, r;
        uint8_t *buf = NULL;
        memset(&m, 0, sizeof m);
        m.type = WIRE_HEALTH;
        m.request_id = 9;
        cr_assert_eq(tc_call(fds[i], &m, &r, &buf), WIRE_HEALTH_REPLY);
        free(buf);
    }
    for (int i = 0; i < N; i++) {
        if (i % 4 == 0) {
            struct linger lg = {1, 0};
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fds[i]);
    }
    uint64_t end = fu_now_ms() + 5000;
    do {
        usleep(20 * 1000);
        star_get_stats(A.star, &st);
    } while (st.connections > 2 && fu_now_ms() < end);
    cr_assert_leq(st.connections, 2, "%u connections linger", st.connections);
    arena_check(&A, 1);
}

/* Over the connection limit: the extra ones are refused (EAGAIN), and once
 * they go, the well-behaved client gets in again. */
Test(hostile_limit, connection_limit_refuses_then_recovers, .fini = teardown,
     .timeout = 60)
{
    arena_up(&A, 40);
    enum { N = 60 };
    int fds[N], refused = 0;
    for (int i = 0; i < N; i++) {
        fds[i] = tc_connect(A.port);
        A.hostile_conns++;
        uint8_t *buf = NULL;
        struct wire_msg m;
        if (tc_recv(fds[i], &buf, &m) == 0 && m.type == WIRE_ERROR) {
            cr_assert_eq(m.u.error.code, ORBIT_EAGAIN);
            refused++;
        }
        free(buf);
    }
    cr_assert_geq(refused, N - 40, "only %d refused", refused);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    usleep(300 * 1000);
    /* Rounds that met the full star were refused as busy: start over. */
    good_stop(&A);
    atomic_store(&A.failures, 0);
    good_start(&A);
    usleep(200 * 1000);
    arena_check(&A, 2);
}
