/*
 * orbit_demo.c - `orbit demo`: the embedded default job. Generates a sample
 * tree (text files, a binary blob, a duplicate, a symlink, an empty file and
 * an empty directory), copies it to a local destination through an
 * in-process star, edits one file, syncs again to show that only the changed
 * chunks travel, and verifies the result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit_cli.h"

#define DEMO_DIR "demo-out"

static int
write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return ORBIT_EIO;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return (w == len && rc == 0) ? 0 : ORBIT_EIO;
}

/* Deterministic pseudo-random bytes (xorshift), so runs are comparable. */
static void
fill_random(unsigned char *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
}

static int
make_tree(const char *root)
{
    char path[512];
    const size_t big = (size_t)24 << 20;
    unsigned char *buf = malloc(big);
    if (!buf)
        return ORBIT_ENOMEM;
    int rc = 0;
    const char *dirs[] = {"", "/docs", "/data", "/src", "/src/lib", "/empty"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", root, dirs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            rc = ORBIT_EIO;
    }
    for (int i = 0; rc == 0 && i < 200; i++) {
        int n = snprintf((char *)buf, 4096,
                         "/* module %d */\nint f%d(void) { return %d; }\n", i,
                         i, i * 7);
        snprintf(path, sizeof path, "%s/src/lib/m%03d.c", root, i);
        rc = write_file(path, buf, (size_t)n);
    }
    fill_random(buf, big, 42);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/data/blob.bin", root);
        rc = write_file(path, buf, big);
    }
    if (rc == 0) { /* the same bytes again: deduplicated, never sent twice */
        snprintf(path, sizeof path, "%s/data/blob-copy.bin", root);
        rc = write_file(path, buf, big);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/docs/README.txt", root);
        const char *t = "Orbit demo tree.\n";
        rc = write_file(path, (const unsigned char *)t, strlen(t));
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/docs/empty.txt", root);
        rc = write_file(path, buf, 0);
    }
    snprintf(path, sizeof path, "%s/docs/latest", root);
    if (rc == 0 && symlink("README.txt", path) != 0 && errno != EEXIST)
        rc = ORBIT_EIO;
    free(buf);
    return rc;
}

/* Overwrite 4 KiB in the middle of the blob: a small change in a big file. */
static int
edit_blob(const char *root)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/blob.bin", root);
    FILE *f = fopen(path, "r+b");
    if (!f)
        return ORBIT_EIO;
    unsigned char patch[4096];
    fill_random(patch, sizeof patch, 7);
    int rc = fseek(f, 10L << 20, SEEK_SET) == 0 &&
                     fwrite(patch, 1, sizeof patch, f) == sizeof patch
                 ? 0
                 : ORBIT_EIO;
    if (fclose(f) != 0)
        rc = ORBIT_EIO;
    return rc;
}

static int
run(const char *self_arg, const char *const *args)
{
    /* the running executable itself, whatever name started it */
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len > 0)
        self[len] = '\0';
    else
        snprintf(self, sizeof self, "%s", self_arg);
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "'%s'", self);
    for (size_t i = 0; args[i] && n > 0 && (size_t)n < sizeof cmd; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " %s", args[i]);
    printf("\n$ orbit");
    for (size_t i = 0; args[i]; i++)
        printf(" %s", args[i]);
    printf("\n");
    fflush(stdout);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : ORBIT_EXIT_FATAL;
}

int
cli_cmd_demo(const struct cli_opts *o, const char *self)
{
    (void)o;
    const char *src = DEMO_DIR "/source";
    const char *dst = DEMO_DIR "/destination";
    if (system("rm -rf " DEMO_DIR) != 0 || mkdir(DEMO_DIR, 0755) != 0) {
        fprintf(stderr, "orbit demo: cannot create ./" DEMO_DIR "\n");
        return ORBIT_EXIT_FATAL;
    }
    /* Its own journal, wiped with the rest: a demo never resumes an old
     * demo whose destination is gone. */
    setenv("ORBIT_STATE_DIR", DEMO_DIR "/state", 1);
    printf("orbit demo: generating a sample tree in %s (200 source files, "
           "two identical 24 MiB blobs, a symlink, empty file and "
           "directory)\n",
           src);
    if (make_tree(src) != 0) {
        fprintf(stderr, "orbit demo: cannot write the sample tree\n");
        return ORBIT_EXIT_FATAL;
    }
    const char *copy[] = {"copy", DEMO_DIR "/source/", dst, NULL};
    int rc = run(self, copy);
    if (rc != ORBIT_EXIT_OK)
        return rc;
    printf("\norbit demo: changing 4 KiB in the middle of data/blob.bin, "
           "then syncing: only the chunks around the change travel\n");
    if (edit_blob(src) != 0)
        return ORBIT_EXIT_FATAL;
    const char *sync[] = {"sync", DEMO_DIR "/source/", dst, NULL};
    rc = run(self, sync);
    if (rc != ORBIT_EXIT_OK)
        return rc;
    const char *verify[] = {"verify", DEMO_DIR "/source/", dst, NULL};
    return run(self, verify);
}
