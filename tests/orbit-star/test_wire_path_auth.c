/*
 * Path validator table, beneath-root openers against hostile symlinks,
 * HMAC known answers, token files.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire_auth.h"
#include "orbit/wire_path.h"
#include "wire_internal.h"

struct path_case {
    const char *path;
    size_t len;
    int want;
};

#define P(s, w)                                                                \
    {                                                                          \
        s, sizeof(s) - 1, w                                                    \
    }

Test(wire_path, validator_table)
{
    static char longname[300], longpath[4200], maxname[256], maxpath[4097];
    memset(longname, 'n', 256);
    memset(maxname, 'n', 255);
    for (size_t i = 0; i < 4096; i += 2)
        memcpy(maxpath + i, i + 2 < 4096 ? "a/" : "ab", 2);
    memset(longpath, 'a', 4097);
    for (size_t i = 1; i < 4097; i += 100)
        longpath[i] = '/';
    const struct path_case cases[] = {
        P("a", 0),
        P("a/b/c.txt", 0),
        P("dir\\file", 0),
        P("..a/b..", 0),
        P(".hidden/.x", 0),
        P("a/.orbit", 0),
        P(".orbitx/y", 0),
        P("", ORBIT_EPATH),
        P(".", ORBIT_EPATH),
        P("..", ORBIT_EPATH),
        P("../x", ORBIT_EPATH),
        P("a/../../b", ORBIT_EPATH),
        P("a/..", ORBIT_EPATH),
        P("a/./b", ORBIT_EPATH),
        P("/etc/passwd", ORBIT_EPATH),
        P("/", ORBIT_EPATH),
        P("a\0b", ORBIT_EPATH),
        P("a//b", ORBIT_EPATH),
        P("a/", ORBIT_EPATH),
        P(".orbit", ORBIT_EPATH),
        P(".orbit/x", ORBIT_EPATH),
        P(".ORBIT/x", ORBIT_EPATH),
        P(".Orbit", ORBIT_EPATH),
        {longname, 256, ORBIT_EPATH},
        {maxname, 255, 0},
        {maxpath, 4096, 0},
        {longpath, 4097, ORBIT_EPATH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        int rc = wire_path_check(cases[i].path, cases[i].len, err, sizeof err);
        cr_assert_eq(rc, cases[i].want, "case %zu (%.40s): %d %s", i,
                     cases[i].path, rc, err);
        if (rc < 0)
            cr_assert(strstr(err, "path refused: ") == err, "%s", err);
    }
    char err[256];
    wire_path_check("a/../b", 6, err, sizeof err);
    cr_assert(strstr(err, "'..'") && strstr(err, "a/../b"), "%s", err);
    cr_assert_eq(wire_path_check("x", 1, NULL, 0), 0);
}

static char root[64];

static void
make_root(void)
{
    strcpy(root, "/tmp/wire_path_XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void
rm_root(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    cr_assert_eq(system(cmd), 0);
}

typedef int (*open_fn)(int, const char *, int, mode_t, int *);

static int
walk(int rootfd, const char *rel, int flags, mode_t mode, int *out_fd)
{
    return wire_path_open_walk(rootfd, rel, flags, mode, out_fd);
}

static void
check_opener(open_fn open_it, int rootfd)
{
    int fd = -1;
    cr_assert_eq(wire_path_mkdirs_beneath(rootfd, "in/deep"), 0);
    cr_assert_eq(open_it(rootfd, "in/deep/f", O_WRONLY | O_CREAT, 0600, &fd),
                 0);
    cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
    cr_assert_eq(open_it(rootfd, "in/deep/f", O_RDONLY, 0, &fd), 0);
    close(fd);
    /* Links that leave the root, as a directory and as the final file. */
    cr_assert_eq(symlinkat("/etc", rootfd, "out"), 0);
    cr_assert_eq(symlinkat("../../../../../etc/passwd", rootfd, "in/pw"), 0);
    cr_assert_eq(open_it(rootfd, "out/passwd", O_RDONLY, 0, &fd), ORBIT_EPATH);
    cr_assert_eq(open_it(rootfd, "in/pw", O_RDONLY, 0, &fd), ORBIT_EPATH);
    cr_assert_eq(open_it(rootfd, "out/x", O_WRONLY | O_CREAT, 0600, &fd),
                 ORBIT_EPATH);
    cr_assert_eq(open_it(rootfd, "missing", O_RDONLY, 0, &fd), ORBIT_ENOENT);
}

Test(wire_path, open_beneath_refuses_escaping_symlinks, .init = make_root,
     .fini = rm_root)
{
    int rootfd = open(root, O_PATH | O_DIRECTORY);
    cr_assert_geq(rootfd, 0);
    check_opener(wire_path_open_beneath, rootfd);
    int fd;
    cr_assert_eq(wire_path_open_beneath(rootfd, "../x", O_RDONLY, 0, &fd),
                 ORBIT_EPATH, "lexical check first");
    cr_assert_eq(
        wire_path_open_beneath(rootfd, "/etc/passwd", O_RDONLY, 0, &fd),
        ORBIT_EPATH);
    cr_assert_eq(wire_path_mkdirs_beneath(rootfd, "out/newdir"), ORBIT_EPATH);
    cr_assert_eq(wire_path_mkdirs_beneath(rootfd, ""), 0);
    cr_assert_eq(wire_path_mkdirs_beneath(rootfd, "in/deep/f/x"),
                 ORBIT_ENOTDIR);
    close(rootfd);
}

Test(wire_path, fallback_walk_refuses_escaping_symlinks, .init = make_root,
     .fini = rm_root)
{
    int rootfd = open(root, O_PATH | O_DIRECTORY);
    cr_assert_geq(rootfd, 0);
    check_opener(walk, rootfd);
    close(rootfd);
}

/* No symlink at all, even one that stays inside the root. */
Test(wire_path, open_nosymlinks_follows_none, .init = make_root,
     .fini = rm_root)
{
    int rootfd = open(root, O_PATH | O_DIRECTORY);
    cr_assert_geq(rootfd, 0);
    cr_assert_eq(wire_path_mkdirs_beneath(rootfd, "in/deep"), 0);
    int fd = -1;
    cr_assert_eq(wire_path_open_nosymlinks(rootfd, "in/deep",
                                           O_RDONLY | O_DIRECTORY, &fd),
                 0);
    close(fd);
    cr_assert_eq(symlinkat("in", rootfd, "alias"), 0); /* stays inside */
    cr_assert_neq(wire_path_open_nosymlinks(rootfd, "alias/deep",
                                            O_RDONLY | O_DIRECTORY, &fd),
                  0);
    cr_assert_eq(symlinkat("/etc", rootfd, "out"), 0);
    cr_assert_neq(
        wire_path_open_nosymlinks(rootfd, "out", O_RDONLY | O_DIRECTORY, &fd),
        0);
    cr_assert_eq(wire_path_open_nosymlinks(rootfd, "missing",
                                           O_RDONLY | O_DIRECTORY, &fd),
                 ORBIT_ENOENT);
    cr_assert_eq(wire_path_open_nosymlinks(rootfd, "../x", O_RDONLY, &fd),
                 ORBIT_EPATH);
    cr_assert_eq(wire_path_open_nosymlinks(rootfd, "in", O_RDONLY, NULL),
                 ORBIT_EINVAL);
    close(rootfd);
}

static void
hex(const char *s, uint8_t *out)
{
    for (size_t i = 0; s[2 * i]; i++)
        sscanf(s + 2 * i, "%2hhx", &out[i]);
}

Test(wire_auth, rfc4231_known_answers)
{
    uint8_t mac[WIRE_MAC_LEN], want[WIRE_MAC_LEN];
    /* RFC 4231 test case 2. */
    cr_assert_eq(wire_auth_hmac((const uint8_t *)"Jefe", 4,
                                (const uint8_t *)"what do ya want for nothing?",
                                28, mac),
                 0);
    hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        want);
    cr_assert_arr_eq(mac, want, WIRE_MAC_LEN);
    /* RFC 4231 test case 1. */
    uint8_t key[20];
    memset(key, 0x0b, sizeof key);
    cr_assert_eq(
        wire_auth_hmac(key, sizeof key, (const uint8_t *)"Hi There", 8, mac),
        0);
    hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        want);
    cr_assert_arr_eq(mac, want, WIRE_MAC_LEN);
}

Test(wire_auth, respond_and_verify)
{
    uint8_t ch[WIRE_CHALLENGE_LEN], ch2[WIRE_CHALLENGE_LEN], mac[WIRE_MAC_LEN];
    const uint8_t *tok = (const uint8_t *)"s3cret";
    cr_assert_eq(wire_auth_challenge(ch), 0);
    cr_assert_eq(wire_auth_challenge(ch2), 0);
    cr_assert_arr_neq(ch, ch2, WIRE_CHALLENGE_LEN);
    cr_assert_eq(wire_auth_respond(tok, 6, ch, mac), 0);
    cr_assert_eq(wire_auth_verify(tok, 6, ch, mac), 0);
    cr_assert_eq(wire_auth_verify((const uint8_t *)"s3creT", 6, ch, mac),
                 ORBIT_EAUTH, "wrong token");
    cr_assert_eq(wire_auth_verify(tok, 5, ch, mac), ORBIT_EAUTH);
    cr_assert_eq(wire_auth_verify(tok, 6, ch2, mac), ORBIT_EAUTH, "replay");
    mac[31] ^= 1;
    cr_assert_eq(wire_auth_verify(tok, 6, ch, mac), ORBIT_EAUTH);
    cr_assert_eq(wire_auth_respond(tok, 0, ch, mac), ORBIT_EINVAL);
}

static void
write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

Test(wire_auth, token_files, .init = make_root, .fini = rm_root)
{
    char path[128];
    uint8_t buf[WIRE_TOKEN_MAX];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/token", root);
    write_file(path, "abc\r\n", 5);
    cr_assert_eq(wire_token_load(path, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 3);
    cr_assert_arr_eq(buf, "abc", 3);
    write_file(path, "\n\n", 2);
    cr_assert_eq(wire_token_load(path, buf, sizeof buf, &len), ORBIT_EINVAL);
    write_file(path, "", 0);
    cr_assert_eq(wire_token_load(path, buf, sizeof buf, &len), ORBIT_EINVAL);
    char *big = malloc(WIRE_TOKEN_MAX + 1);
    memset(big, 'k', WIRE_TOKEN_MAX + 1);
    write_file(path, big, WIRE_TOKEN_MAX);
    cr_assert_eq(wire_token_load(path, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, WIRE_TOKEN_MAX);
    cr_assert_eq(wire_token_load(path, buf, 10, &len), ORBIT_ETOOBIG);
    write_file(path, big, WIRE_TOKEN_MAX + 1);
    cr_assert_eq(wire_token_load(path, buf, sizeof buf, &len), ORBIT_ETOOBIG);
    free(big);
    snprintf(path, sizeof path, "%s/none", root);
    cr_assert_eq(wire_token_load(path, buf, sizeof buf, &len), ORBIT_ENOENT);
}
