/*
 * orbit/wire_path.h - relative paths received from the wire, made safe.
 *
 * wire_path_check() is the lexical gate every path from a peer passes before
 * use: relative, no "." or ".." component, no empty component, no NUL, each
 * component <= 255 bytes, the whole <= WIRE_MAX_PATH bytes, nothing under the
 * reserved top-level ".orbit" (in any letter case). Lexical checks cannot
 * see symlinks, so files are then opened with wire_path_open_beneath(),
 * which refuses to resolve through any symlink that leaves the root (openat2
 * RESOLVE_BENEATH, or a component-by-component O_NOFOLLOW walk where openat2
 * is missing).
 *
 * Ownership: err buffers and fds belong to the caller; a returned fd is the
 * caller's to close. Errors: ORBIT_EPATH (refused, with a message in err),
 * ORBIT_EINVAL (bad argument), or an errno translated by
 * orbit_err_from_errno() (ORBIT_ENOENT, ORBIT_EPERM, ORBIT_ENOTDIR, ...).
 * Thread-safety: reentrant; the fd functions are as safe as the underlying
 * syscalls on a shared rootfd.
 */
#ifndef ORBIT_WIRE_PATH_H
#define ORBIT_WIRE_PATH_H

#include <stddef.h>
#include <sys/types.h>

#define WIRE_PATH_MAX_COMPONENT 255
#define WIRE_PATH_RESERVED      ".orbit"

/* Check rel (len bytes, no terminator needed). On refusal returns
 * ORBIT_EPATH and writes a one-line reason into err (if errcap > 0). */
int wire_path_check(const char *rel, size_t len, char *err, size_t errcap);

/*
 * Open rel (a NUL-terminated path that passed wire_path_check()) below the
 * directory rootfd, never following a symlink out of it. flags/mode as for
 * openat(2); O_CLOEXEC is always added. With O_CREAT, the final component is
 * created if missing; O_NOFOLLOW on the final component is the caller's
 * choice.
 */
int wire_path_open_beneath(int rootfd, const char *rel, int flags, mode_t mode,
                           int *out_fd);

/*
 * Open rel below rootfd following no symlink at all (openat2 with
 * RESOLVE_NO_SYMLINKS): the same answer as walking it with O_NOFOLLOW, in one
 * call. Any failure (also ENOSYS on old kernels) is returned: callers fall
 * back to the walk, which gives the precise error.
 */
int wire_path_open_nosymlinks(int rootfd, const char *rel, int flags,
                              int *out_fd);

/* mkdir -p of rel_dir below rootfd (mode 0755), refusing symlinks on the way;
 * "" is the root itself and succeeds. */
int wire_path_mkdirs_beneath(int rootfd, const char *rel_dir);

/* Order paths component by component ('/' sorts before every other byte):
 * the order LIST pages a subtree in. <0, 0 or >0 as strcmp. */
int wire_path_cmp(const char *a, const char *b);

#endif
