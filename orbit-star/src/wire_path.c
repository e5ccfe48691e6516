/*
 * Path safety: a lexical gate for every path a peer sends, and openers that
 * keep the kernel from resolving out of the root through symlinks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "orbit/wire_path.h"
#include "wire_internal.h"

/* Copy at most 64 bytes of the path into dst, non-printables as '?'. */
static void
sanitize(char *dst, size_t cap, const char *rel, size_t len)
{
    size_t n = len < 64 ? len : 64;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)rel[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = 0;
}

static int
refuse(char *err, size_t errcap, const char *rel, size_t len,
       const char *reason)
{
    if (err && errcap > 0) {
        char shown[72];
        sanitize(shown, sizeof shown, rel ? rel : "", rel ? len : 0);
        snprintf(err, errcap,
                 "path refused: %s (\"%s%s\"); send a relative "
                 "path below the destination root",
                 reason, shown, len > 64 ? "..." : "");
    }
    return ORBIT_EPATH;
}

static int
check_component(const char *c, size_t n, bool first, const char **reason)
{
    if (n == 0)
        *reason = "empty component ('//' or a trailing '/')";
    else if (n == 1 && c[0] == '.')
        *reason = "'.' component";
    else if (n == 2 && c[0] == '.' && c[1] == '.')
        *reason = "'..' component";
    else if (n > WIRE_PATH_MAX_COMPONENT)
        *reason = "component longer than 255 bytes";
    else if (first && n == sizeof WIRE_PATH_RESERVED - 1 &&
             strncasecmp(c, WIRE_PATH_RESERVED, n) == 0)
        /* Any case: the root may sit on a case-insensitive file system. */
        *reason = "the top-level .orbit directory is reserved";
    else
        return 0;
    return ORBIT_EPATH;
}

int
wire_path_check(const char *rel, size_t len, char *err, size_t errcap)
{
    if (len == 0)
        return refuse(err, errcap, rel, len, "empty path");
    if (!rel)
        return ORBIT_EINVAL;
    if (len > WIRE_MAX_PATH)
        return refuse(err, errcap, rel, len, "longer than 4096 bytes");
    if (memchr(rel, 0, len))
        return refuse(err, errcap, rel, len, "contains a NUL byte");
    if (rel[0] == '/')
        return refuse(err, errcap, rel, len, "absolute path");
    size_t start = 0;
    for (;;) {
        const char *slash = memchr(rel + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - rel) : len;
        const char *reason = NULL;
        if (check_component(rel + start, end - start, start == 0, &reason) < 0)
            return refuse(err, errcap, rel, len, reason);
        if (!slash)
            return 0;
        start = end + 1;
    }
}

static int
errno_to_orbit(int e)
{
    /* EXDEV: openat2 saw the walk leave the root; ELOOP: a refused link. */
    if (e == EXDEV || e == ELOOP)
        return ORBIT_EPATH;
    return orbit_err_from_errno(e);
}

static int
check_cstr(const char *rel)
{
    if (!rel)
        return ORBIT_EINVAL;
    return wire_path_check(rel, strlen(rel), NULL, 0);
}

/* Copy the component at p (checked: <= 255 bytes) into comp; returns the
 * '/' after it, or NULL if it is the last. */
static const char *
take_component(const char *p, char comp[WIRE_PATH_MAX_COMPONENT + 1])
{
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    memcpy(comp, p, n);
    comp[n] = 0;
    return slash;
}

/* Open the directory comp below cur without following a symlink; a symlink
 * there is a refused path, not a "not a directory". */
static int
open_dir_step(int cur, const char *comp, int *out_fd)
{
    int fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        struct stat st;
        if (fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
            return ORBIT_EPATH;
        return errno_to_orbit(e);
    }
    *out_fd = fd;
    return 0;
}

static int
mkdir_step(int cur, const char *comp, int *out_fd)
{
    if (mkdirat(cur, comp, 0755) != 0 && errno != EEXIST)
        return errno_to_orbit(errno);
    return open_dir_step(cur, comp, out_fd);
}

/*
 * Walk every component of rel but the last with O_NOFOLLOW (creating them
 * first if create), so no symlink is ever followed. On success *out_dir is
 * the parent directory (rootfd itself or an fd the caller closes) and comp
 * holds the last component.
 */
static int
walk_parents(int rootfd, const char *rel, bool create, int *out_dir,
             char comp[WIRE_PATH_MAX_COMPONENT + 1])
{
    int cur = rootfd;
    const char *p = rel;
    const char *slash;
    while ((slash = take_component(p, comp)) != NULL) {
        int next = -1;
        int rc = create ? mkdir_step(cur, comp, &next)
                        : open_dir_step(cur, comp, &next);
        if (cur != rootfd)
            close(cur);
        if (rc < 0)
            return rc;
        cur = next;
        p = slash + 1;
    }
    *out_dir = cur;
    return 0;
}

/* The fallback where openat2 is missing: stricter than openat2 (which
 * follows links that stay inside the root), never looser. */
int
wire_path_open_walk(int rootfd, const char *rel, int flags, mode_t mode,
                    int *out_fd)
{
    char comp[WIRE_PATH_MAX_COMPONENT + 1];
    int dir = -1;
    int rc = walk_parents(rootfd, rel, false, &dir, comp);
    if (rc < 0)
        return rc;
    int fd = openat(dir, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        rc = errno_to_orbit(errno);
    else
        *out_fd = fd;
    if (dir != rootfd)
        close(dir);
    return rc;
}

/* openat2(rootfd, rel) with these resolve flags: 0 and *out_fd, or -errno
 * (ENOSYS where the kernel lacks it). */
static int
openat2_raw(int rootfd, const char *rel, int flags, mode_t mode,
            uint64_t resolve, int *out_fd)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    if (flags & (O_CREAT | O_TMPFILE))
        how.mode = mode;
    how.resolve = resolve;
    long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
    if (fd < 0)
        return -errno;
    *out_fd = (int)fd;
    return 0;
}

int
wire_path_open_beneath(int rootfd, const char *rel, int flags, mode_t mode,
                       int *out_fd)
{
    if (!out_fd)
        return ORBIT_EINVAL;
    int rc = check_cstr(rel);
    if (rc < 0)
        return rc;
    int e = openat2_raw(rootfd, rel, flags, mode,
                        RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, out_fd);
    if (e == 0)
        return 0;
    if (e != -ENOSYS)
        return errno_to_orbit(-e);
    return wire_path_open_walk(rootfd, rel, flags, mode, out_fd);
}

int
wire_path_open_nosymlinks(int rootfd, const char *rel, int flags, int *out_fd)
{
    if (!out_fd)
        return ORBIT_EINVAL;
    int rc = check_cstr(rel);
    if (rc < 0)
        return rc;
    int e = openat2_raw(rootfd, rel, flags, 0,
                        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, out_fd);
    return e == 0 ? 0 : errno_to_orbit(-e);
}

int
wire_path_mkdirs_beneath(int rootfd, const char *rel_dir)
{
    if (!rel_dir)
        return ORBIT_EINVAL;
    if (rel_dir[0] == 0)
        return 0;
    int rc = check_cstr(rel_dir);
    if (rc < 0)
        return rc;
    char comp[WIRE_PATH_MAX_COMPONENT + 1];
    int dir = -1, last = -1;
    rc = walk_parents(rootfd, rel_dir, true, &dir, comp);
    if (rc < 0)
        return rc;
    rc = mkdir_step(dir, comp, &last);
    if (last >= 0)
        close(last);
    if (dir != rootfd)
        close(dir);
    return rc;
}

int
wire_path_cmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned ca = *a == '/' ? 1u : (unsigned char)*a;
        unsigned cb = *b == '/' ? 1u : (unsigned char)*b;
        if (ca != cb || ca == 0)
            return (int)ca - (int)cb;
    }
}
