/* Private helpers shared by the container, pool and index modules. */
#ifndef ORBIT_PAK_INTERNAL_H
#define ORBIT_PAK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PAK_ERRMSG_LEN 512

uint32_t pak_crc32c(uint32_t crc, const void *data, size_t len);

/* Format "name: offset N: message" into buf[PAK_ERRMSG_LEN]. */
void pak_set_err(char *buf, const char *name, uint64_t offset, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

/* Read exactly len bytes at off; ORBIT_ETRUNC at end of file. */
int pak_pread_full(int fd, void *buf, size_t len, uint64_t off);
int pak_write_full(int fd, const void *buf, size_t len, uint64_t off);
/* fsync the directory holding path (after creating or removing in it). */
int pak_sync_parent_dir(const char *path);
/* mkdir -p; ORBIT_ENOTDIR if dir exists and is not a directory. */
int pak_mkdir_p(const char *dir);

#endif
