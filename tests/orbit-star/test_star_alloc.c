/*
 * Allocation failures: the star's allocation seam (star_alloc.h) is
 * replaced here so the Nth allocation fails. star_new fails cleanly at every
 * point; a request whose allocation fails is answered ENOMEM and the star
 * keeps serving. Leaks show up under the sanitizer build.
 */
#include <stdatomic.h>

#include "star_alloc.h"
#include "test_star_helpers.h"

static atomic_long fail_at; /* 0: never; N: the Nth call from now fails */
static atomic_long calls;

static bool
should_fail(void)
{
    long f = atomic_load(&fail_at);
    return f > 0 && atomic_fetch_add(&calls, 1) + 1 == f;
}

static void
fail_nth(long n)
{
    atomic_store(&calls, 0);
    atomic_store(&fail_at, n);
}

void *
star_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size);
}

void *
star_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *
star_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size);
}

char *
star_strdup(const char *s)
{
    return should_fail() ? NULL : strdup(s);
}

Test(star_alloc, star_new_fails_cleanly_at_every_allocation)
{
    char root[256];
    ts_mkroot(root, sizeof root);
    struct star_config cfg;
    ts_config(&cfg, root);
    long n = 1;
    for (; n < 200; n++) {
        struct star *s = NULL;
        fail_nth(n);
        int rc = star_new(&cfg, &s);
        fail_nth(0);
        if (rc == 0) {
            cr_assert_eq(star_check(s), 0);
            star_free(s);
            break;
        }
        cr_assert_eq(rc, ORBIT_ENOMEM, "allocation %ld: %s", n,
                     orbit_errname(rc));
        cr_assert_null(s);
    }
    cr_assert_lt(n, 200);
    cr_assert_gt(n, 5, "the seam is not used");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

/* Send m with the Nth star allocation failing; the reply is want or an
 * ERROR ENOMEM, and the session still answers HEALTH afterwards. */
static bool
request_with_failure(int fd, const struct wire_msg *m, uint8_t want, long n)
{
    struct wire_msg r;
    uint8_t *buf = NULL;
    fail_nth(n);
    cr_assert_eq(tc_send(fd, m), 0);
    cr_assert_eq(tc_recv(fd, &buf, &r), 0, "no reply, allocation %ld", n);
    bool failed = false;
    if (r.type == WIRE_ERROR) {
        cr_assert_eq(r.u.error.code, ORBIT_ENOMEM, "%s: %s",
                     orbit_errname(r.u.error.code), r.u.error.message);
        failed = true;
    } else {
        cr_assert_eq(r.type, want, "%s", wire_type_name(r.type));
    }
    fail_nth(0);
    struct wire_msg h;
    memset(&h, 0, sizeof h);
    h.type = WIRE_HEALTH;
    h.request_id = 9999;
    cr_assert_eq(tc_call(fd, &h, &r, &buf), WIRE_HEALTH_REPLY);
    free(buf);
    return failed;
}

Test(star_alloc, requests_survive_allocation_failures)
{
    struct tstar t;
    ts_start(&t);
    int fd = tc_open(t.port);
    uint8_t data[6000];
    ts_fill(data, sizeof data, 81);
    uint8_t ids[64];
    ts_sha(data, 3000, ids);
    ts_sha(data + 3000, 3000, ids + 32);
    size_t cuts[] = {3000, 3000};
    struct wire_chunk_ref refs[2];
    for (int kind = 0; kind < 4; kind++) {
        /* an allocation that fails may be survived (a lookup falling back
         * to reading the bytes): stop after a few clean runs in a row */
        int clean = 0, failures = 0;
        for (long n = 1; n < 60 && clean < 5; n++) {
            struct wire_msg m;
            uint8_t want = 0;
            char path[64];
            snprintf(path, sizeof path, "k%d/n%ld", kind, n);
            if (kind == 0) {
                memset(&m, 0, sizeof m);
                m.type = WIRE_HAVE;
                m.u.have.n = 2;
                m.u.have.ids = ids;
                want = WIRE_HAVE_REPLY;
            } else if (kind == 1) {
                /* a fresh chunk each time so it is really stored */
                data[0] = (uint8_t)n;
                tc_put_msg(&m, 0, data, 3000, n % 2 ? path : NULL, 0);
                want = WIRE_PUT_OK;
            } else if (kind == 2) {
                data[0] = 0;
                tc_put(fd, 5000 + (uint32_t)n, data, 3000, path, 0);
                tc_put(fd, 6000 + (uint32_t)n, data + 3000, 3000, NULL, 0);
                struct tc_file f = {path, data, sizeof data, cuts, 2, 0, 0};
                tc_commit_msg(&m, 0, &f, refs);
                want = WIRE_COMMIT_OK;
            } else {
                memset(&m, 0, sizeof m);
                m.type = WIRE_LIST;
                m.u.list.path = "";
                m.u.list.cursor = "";
                want = WIRE_LIST_REPLY;
            }
            m.request_id = (uint32_t)(100 * kind + n);
            if (request_with_failure(fd, &m, want, n)) {
                failures++;
                clean = 0;
            } else {
                clean++;
            }
        }
        cr_log_info("request kind %d: %d allocation failures answered", kind,
                    failures);
        cr_assert_gt(failures, 0, "kind %d never allocates", kind);
    }
    close(fd);
    ts_stop(&t);
}
