/*
 * A full destination, on a real tiny tmpfs: PUTs and COMMITs fail with
 * ENOSPC (not retryable), nothing half-written shows in ROOT, and the star
 * keeps serving. Skipped (never passed) where mounting is not allowed.
 */
#include <sys/mount.h>

#include "test_star_helpers.h"

Test(star_diskfull, enospc_is_typed_and_the_star_keeps_serving)
{
    struct tstar t;
    ts_mkroot(t.root, sizeof t.root);
    if (mount("tmpfs", t.root, "tmpfs", 0, "size=3m") != 0) {
        rmdir(t.root);
        cr_skip_test("cannot mount a tmpfs here (%s): disk-full NOT tested",
                     strerror(errno));
    }
    struct star_config cfg;
    ts_config(&cfg, t.root);
    cfg.health_interval_ms = 50;
    ts_start_cfg(&t, &cfg);
    int fd = tc_open(t.port);
    enum { LEN = 256 * 1024, MAX = 40 };
    uint8_t *data = malloc((size_t)LEN * MAX);
    ts_fill(data, (size_t)LEN * MAX, 21);
    uint8_t *buf = NULL;
    struct wire_msg m, r;
    uint32_t stored = 0;
    int code = 0;
    for (uint32_t i = 0; i < MAX && code == 0; i++) {
        tc_put_msg(&m, 10 + i, data + (size_t)i * LEN, LEN, NULL, 0);
        if (tc_call(fd, &m, &r, &buf) == WIRE_PUT_OK)
            stored++;
        else
            code = r.u.error.code;
    }
    cr_assert_eq(code, ORBIT_ENOSPC, "got %s after %u chunks",
                 orbit_errname(code), stored);
    cr_assert_not(r.u.error.retryable);
    cr_assert_geq(stored, 1);
    /* a commit that needs room to assemble fails and leaves nothing */
    size_t cuts[MAX];
    for (size_t i = 0; i < MAX; i++)
        cuts[i] = LEN;
    struct tc_file f = {"big.bin", data, (size_t)LEN * stored, cuts, stored,
                        0,         0};
    struct wire_chunk_ref refs[MAX];
    tc_commit_msg(&m, 99, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_ERROR);
    cr_assert_eq(r.u.error.code, ORBIT_ENOSPC, "%s",
                 orbit_errname(r.u.error.code));
    char p[512];
    snprintf(p, sizeof p, "%s/big.bin", t.root);
    cr_assert_eq(access(p, F_OK), -1);
    /* still serving */
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 100;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HEALTH_REPLY);
    cr_assert_geq(r.u.health.errors_io, 2);
    cr_assert(r.u.health.advisories & WIRE_ADV_DISK_CRITICAL);
    /* and clients were told without asking */
    usleep(200 * 1000);
    m.request_id = 101;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HEALTH_REPLY);
    cr_assert_geq(tc_bulletins, 1, "no BULLETIN");
    cr_assert(tc_bulletin_adv & WIRE_ADV_DISK_CRITICAL, "%x", tc_bulletin_adv);
    cr_assert_eq(tc_bulletin_sev, WIRE_SEV_ERROR);
    /* a small file still fits once space is freed: clean the staging */
    close(fd);
    free(buf);
    free(data);
    star_free(t.star);
    umount2(t.root, MNT_DETACH);
    rmdir(t.root);
}

static int
count_tmp(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^.orbit-tmp' >/dev/null",
             dir);
    return system(cmd) == 0;
}

Test(star_diskfull, commit_into_a_mount_inside_root)
{
    struct tstar t;
    ts_start(&t);
    char mnt[512];
    snprintf(mnt, sizeof mnt, "%s/mnt", t.root);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0) {
        ts_stop(&t);
        cr_skip_test("cannot mount a tmpfs here (%s): cross-filesystem "
                     "commit NOT tested",
                     strerror(errno));
    }
    int fd = tc_open(t.port);
    uint8_t data[300000];
    ts_fill(data, sizeof data, 61);
    tc_put(fd, 1, data, 100000, "mnt/sub/f.bin", 0);
    tc_put(fd, 2, data + 100000, 200000, NULL, 0);
    size_t cuts[] = {100000, 200000};
    struct tc_file f = {"mnt/sub/f.bin", data, sizeof data, cuts, 2, 0600,
                        1234567890};
    tc_commit_ok(fd, 3, &f);
    char p[600];
    snprintf(p, sizeof p, "%s/sub/f.bin", mnt);
    size_t len = 0;
    char *got = ts_read_file(p, &len);
    cr_assert_eq(len, sizeof data);
    cr_assert_eq(memcmp(got, data, len), 0);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mtim.tv_sec, 1234567890);
    cr_assert_eq(st.st_mode & 07777, 0600);
    snprintf(p, sizeof p, "%s/sub", mnt);
    cr_assert_not(count_tmp(p), "a temporary file was left behind");
    free(got);
    close(fd);
    umount2(mnt, MNT_DETACH);
    ts_stop(&t);
}
