/*
 * Fuzz target: an arbitrary byte string taken as an .orbitpak container.
 * The header parsers run on the raw bytes, then the whole container is
 * scanned with verification (header checks, decode, chunk id) from a memfd.
 * Nothing may crash, leak or read out of bounds; every record the scanner
 * accepts must have a well-formed header and, verified, matching bytes.
 */
#include "orbit/chunk_codec.h"
#include "orbit/error.h"
#include "orbit/pak.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_raw(const uint8_t *data, size_t size)
{
    struct pak_record_info info;
    uint8_t out[PAK_REC_HEADER_LEN];
    (void)pak_file_header_parse(data, size);
    if (size >= PAK_FILE_HEADER_LEN &&
        pak_record_header_parse(data + PAK_FILE_HEADER_LEN,
                                size - PAK_FILE_HEADER_LEN, &info) == 0) {
        /* what parses re-encodes to the same bytes */
        if (pak_record_header_encode(&info, out) != 0)
            abort();
        for (size_t i = 0; i < PAK_REC_HEADER_LEN; i++)
            if (out[i] != data[PAK_FILE_HEADER_LEN + i])
                abort();
    }
}

static void
scan(int fd, bool verify)
{
    struct pak_scanner *s = NULL;
    struct pak_record_info info;
    uint64_t last = 0;
    if (pak_scanner_open_fd(fd, "fuzz.orbitpak", verify, &s) != 0)
        return;
    int rc;
    while ((rc = pak_scanner_next(s, &info)) == 0) {
        if (info.offset < PAK_FILE_HEADER_LEN || info.offset < last ||
            info.raw_len > CHUNK_CODEC_MAX_RAW)
            abort();
        last = info.offset + PAK_REC_HEADER_LEN + info.stored_len;
        if (pak_scanner_offset(s) != last)
            abort();
    }
    if (rc == 0 || !pak_scanner_errmsg(s)[0])
        abort();
    pak_scanner_free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_raw(data, size);
    int fd = memfd_create("pak_record", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    scan(fd, false);
    scan(fd, true);
    close(fd);
    return 0;
}
