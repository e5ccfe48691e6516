/*
 * orbit/pak.h - .orbitpak containers: append-only files of chunk records.
 *
 * Layout (all integers little-endian; docs/core-starmap.md has the table):
 *   file header, 16 bytes: "ORBITPAK", version u16 (1), flags u16 (0),
 *     CRC-32C of bytes 0..11;
 *   records, back to back: a 52-byte header ("ORBR", codec u8, flags u8,
 *     reserved u16, raw length u32, stored length u32, chunk id 32 bytes,
 *     CRC-32C of header bytes 0..47) followed by the stored bytes.
 * A container is self-describing: pak_scanner rebuilds its record list
 * without any index, and stops at a torn tail, reporting where.
 *
 * pak_writer appends records under a sync policy; pak_reader reads a record
 * at an offset, decodes it and verifies the chunk id (SHA-256 of the decoded
 * bytes) on every read. Every failure leaves a message naming the container
 * and the offset in the object's error buffer (pak_*_errmsg).
 *
 * Ownership: *_open() objects are freed by *_free() (NULL is a no-op), which
 * closes the file; pak_writer_free() does not sync: call pak_writer_sync()
 * first if the tail must be durable. Buffers passed in stay the caller's.
 * Errors: ORBIT_EINVAL, ORBIT_ENOMEM, errno-based codes (ORBIT_ENOENT,
 * ORBIT_EIO, ORBIT_ENOSPC, ORBIT_EPERM), ORBIT_EFORMAT (bad magic or field),
 * ORBIT_EVERSION, ORBIT_ETRUNC (file ends inside a header or a record),
 * ORBIT_ECORRUPT (header checksum or chunk id mismatch), ORBIT_ECODEC,
 * ORBIT_ETOOBIG, ORBIT_EFULL (caller's buffer too small).
 * Thread-safety: each object is used by one thread at a time.
 */
#ifndef ORBIT_PAK_H
#define ORBIT_PAK_H

#include "orbit/chunk_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAK_VERSION         1
#define PAK_FILE_HEADER_LEN 16
#define PAK_REC_HEADER_LEN  52

struct pak_record_info {
    struct chunk_id id;
    uint64_t offset;     /* of the record header in its container */
    uint32_t raw_len;    /* decoded length */
    uint32_t stored_len; /* bytes after the header */
    uint8_t codec;       /* CHUNK_CODEC_RAW or CHUNK_CODEC_ZSTD */
};

/* Parse the 16-byte file header at buf[0, len). */
int pak_file_header_parse(const void *buf, size_t len);
/* Encode a file header into out[PAK_FILE_HEADER_LEN]. */
void pak_file_header_encode(uint8_t *out);
/* Parse a record header at buf[0, len); info->offset is left to the caller. */
int pak_record_header_parse(const void *buf, size_t len,
                            struct pak_record_info *info);
/* Encode a record header into out[PAK_REC_HEADER_LEN]; checks the fields. */
int pak_record_header_encode(const struct pak_record_info *info, uint8_t *out);

enum pak_sync_mode {
    PAK_SYNC_EXPLICIT = 0,     /* only pak_writer_sync() */
    PAK_SYNC_EVERY_RECORD = 1, /* fdatasync after each append */
    PAK_SYNC_EVERY_BYTES = 2,  /* after every_bytes appended since the last */
};

struct pak_sync_policy {
    enum pak_sync_mode mode;
    uint64_t every_bytes;
};

struct pak_writer;
struct pak_reader;
struct pak_scanner;

/*
 * Open path for appending: a missing file is created with its header (file
 * and directory synced); an existing one is scanned, a torn tail is cut off,
 * and appends continue after the last whole record. A container with a
 * corrupted record before its end is refused (ORBIT_ECORRUPT): start a new
 * one. sync NULL means PAK_SYNC_EXPLICIT.
 */
int pak_writer_open(const char *path, const struct pak_sync_policy *sync,
                    struct pak_writer **out);
void pak_writer_free(struct pak_writer *w);
/*
 * Append one record holding an already encoded chunk (see chunk_codec.h);
 * *offset receives the record's offset. The content is not verified here:
 * the caller checked the chunk id. On a short write the file is cut back.
 */
int pak_writer_append(struct pak_writer *w, const struct chunk_id *id,
                      uint8_t codec, size_t raw_len, const void *stored,
                      size_t stored_len, uint64_t *offset);
/* Make every appended record durable (fdatasync). */
int pak_writer_sync(struct pak_writer *w);
/* Current size of the container, i.e. the offset of the next record. */
uint64_t pak_writer_size(const struct pak_writer *w);
uint64_t pak_writer_records(const struct pak_writer *w);
const char *pak_writer_errmsg(const struct pak_writer *w);

int pak_reader_open(const char *path, struct pak_reader **out);
void pak_reader_free(struct pak_reader *r);
/*
 * Read the record at offset, decode it into dst[0, dst_cap) and verify that
 * SHA-256 of the decoded bytes equals the record's chunk id and, if expect
 * is not NULL, equals *expect. info (may be NULL) describes the record.
 */
int pak_reader_read(struct pak_reader *r, uint64_t offset,
                    const struct chunk_id *expect, void *dst, size_t dst_cap,
                    struct pak_record_info *info);
/* The stored bytes of the last successful read, until the next call. */
const void *pak_reader_stored(const struct pak_reader *r);
const char *pak_reader_errmsg(const struct pak_reader *r);

/*
 * Scanner: walks the records of a container. pak_scanner_next() returns 0
 * with the next record, ORBIT_ENOENT at a clean end, ORBIT_ETRUNC at a torn
 * tail, or ORBIT_EFORMAT / ORBIT_ECORRUPT at a damaged record; in every case
 * pak_scanner_offset() is where the scan stopped (the end of the last whole
 * record). With verify set, every record's bytes are decoded and checked
 * against its chunk id too (ORBIT_ECORRUPT / ORBIT_ECODEC on mismatch).
 * pak_scanner_open() succeeds once the file is open; a bad file header is
 * what the first pak_scanner_next() reports (offset 0).
 */
int pak_scanner_open(const char *path, bool verify, struct pak_scanner **out);
/* Same over an open file (duplicated: the caller keeps fd); name for
 * messages. */
int pak_scanner_open_fd(int fd, const char *name, bool verify,
                        struct pak_scanner **out);
void pak_scanner_free(struct pak_scanner *s);
int pak_scanner_next(struct pak_scanner *s, struct pak_record_info *info);
uint64_t pak_scanner_offset(const struct pak_scanner *s);
const char *pak_scanner_errmsg(const struct pak_scanner *s);

#endif
