#include "orbit/chunk_codec.h"
#include "orbit/error.h"
#include "orbit/pak.h"
#include "orbit/pak_pool.h"
#include "pak_internal.h"
#include "starmap_test_util.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#define NREC 40

struct rec {
    uint8_t *raw;
    size_t raw_len;
    struct chunk_id id;
    uint64_t off;
};

static struct rec recs[NREC];
static char dir[64], path[128];

static void
make_recs(void)
{
    for (int i = 0; i < NREC; i++) {
        size_t len = (size_t)(i * 997 % 20000) + (i == 0 ? 0 : 1);
        recs[i].raw = i % 2 ? tu_text_bytes((uint64_t)i, len)
                            : tu_random_bytes((uint64_t)i, len);
        recs[i].raw_len = len;
        cr_assert_eq(chunk_id_compute(recs[i].raw, len, &recs[i].id), 0);
    }
}

/* Encode and append every record; returns the container size. */
static uint64_t
write_all(struct pak_writer *w)
{
    struct chunk_codec *c = NULL;
    cr_assert_eq(chunk_codec_new(0, &c), 0);
    uint8_t *buf = malloc(chunk_codec_bound(20000));
    for (int i = 0; i < NREC; i++) {
        size_t n;
        uint8_t codec;
        cr_assert_eq(chunk_codec_encode(c, recs[i].raw, recs[i].raw_len, buf,
                                        chunk_codec_bound(20000), &n, &codec),
                     0);
        cr_assert_eq(pak_writer_append(w, &recs[i].id, codec, recs[i].raw_len,
                                       buf, n, &recs[i].off),
                     0);
        cr_assert_eq(recs[i].off + PAK_REC_HEADER_LEN + n, pak_writer_size(w));
    }
    free(buf);
    chunk_codec_free(c);
    return pak_writer_size(w);
}

static void
setup(void)
{
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/container_000001.orbitpak", dir);
    make_recs();
}

static void
teardown(void)
{
    for (int i = 0; i < NREC; i++)
        free(recs[i].raw);
    tu_rmrf(dir);
}

/* Invariant checker: the scanner finds exactly the records written, in
 * order, and stops cleanly; every one reads back verified. */
static void
check_container(int nrec)
{
    struct pak_scanner *s = NULL;
    struct pak_reader *r = NULL;
    struct pak_record_info info;
    uint8_t *out = malloc(20000);
    cr_assert_eq(pak_scanner_open(path, true, &s), 0);
    cr_assert_eq(pak_reader_open(path, &r), 0);
    for (int i = 0; i < nrec; i++) {
        cr_assert_eq(pak_scanner_next(s, &info), 0, "%s",
                     pak_scanner_errmsg(s));
        cr_assert_eq(info.offset, recs[i].off);
        cr_assert(chunk_id_equal(&info.id, &recs[i].id));
        cr_assert_eq(info.raw_len, recs[i].raw_len);
        cr_assert_eq(
            pak_reader_read(r, recs[i].off, &recs[i].id, out, 20000, &info), 0,
            "%s", pak_reader_errmsg(r));
        cr_assert(recs[i].raw_len == 0 ||
                  memcmp(out, recs[i].raw, recs[i].raw_len) == 0);
    }
    cr_assert_eq(pak_scanner_next(s, &info), ORBIT_ENOENT);
    pak_scanner_free(s);
    pak_reader_free(r);
    free(out);
}

TestSuite(pak, .init = setup, .fini = teardown);

Test(pak, crc32c_check_value)
{
    cr_assert_eq(pak_crc32c(0, "123456789", 9), 0xe3069283u);
}

Test(pak, write_scan_read)
{
    struct pak_writer *w = NULL;
    struct pak_sync_policy every = {PAK_SYNC_EVERY_BYTES, 50000};
    cr_assert_eq(pak_writer_open(path, &every, &w), 0);
    cr_assert_eq(pak_writer_size(w), PAK_FILE_HEADER_LEN);
    write_all(w);
    cr_assert_eq(pak_writer_sync(w), 0);
    cr_assert_eq(pak_writer_records(w), NREC);
    pak_writer_free(w);
    check_container(NREC);
    /* wrong expectation and too small a buffer */
    struct pak_reader *r = NULL;
    uint8_t out[16];
    cr_assert_eq(pak_reader_open(path, &r), 0);
    cr_assert_eq(pak_reader_read(r, recs[3].off, &recs[4].id, out, 0, NULL),
                 ORBIT_EFULL);
    uint8_t *big = malloc(20000);
    cr_assert_eq(pak_reader_read(r, recs[3].off, &recs[4].id, big, 20000, NULL),
                 ORBIT_ECORRUPT);
    cr_assert_null(pak_reader_stored(r));
    cr_assert_eq(pak_reader_read(r, recs[3].off + 1, NULL, big, 20000, NULL),
                 ORBIT_EFORMAT);
    cr_assert(strstr(pak_reader_errmsg(r), "container_000001.orbitpak"));
    cr_assert_eq(pak_reader_read(r, 3, NULL, big, 20000, NULL), ORBIT_EINVAL);
    cr_assert_eq(pak_reader_read(r, UINT64_MAX - 10, NULL, big, 20000, NULL),
                 ORBIT_EINVAL);
    cr_assert_eq(pak_reader_read(r, 1u << 30, NULL, big, 20000, NULL),
                 ORBIT_ETRUNC);
    free(big);
    pak_reader_free(r);
    /* reopen for append: continues after the last record */
    cr_assert_eq(pak_writer_open(path, NULL, &w), 0);
    cr_assert_eq(pak_writer_records(w), NREC);
    pak_writer_free(w);
}

Test(pak, torn_tail_every_length)
{
    struct pak_writer *w = NULL;
    struct pak_sync_policy each = {PAK_SYNC_EVERY_RECORD, 0};
    cr_assert_eq(pak_writer_open(path, &each, &w), 0);
    uint64_t size = write_all(w);
    pak_writer_free(w);
    uint64_t last = recs[NREC - 1].off;
    for (uint64_t cut = size - 1; cut > last; cut -= cut > last + 97 ? 97 : 1) {
        cr_assert_eq(truncate(path, (off_t)cut), 0);
        struct pak_scanner *s = NULL;
        struct pak_record_info info;
        int rc, n = 0;
        cr_assert_eq(pak_scanner_open(path, false, &s), 0);
        while ((rc = pak_scanner_next(s, &info)) == 0)
            n++;
        cr_assert_eq(rc, ORBIT_ETRUNC, "cut %llu rc %d %s",
                     (unsigned long long)cut, rc, pak_scanner_errmsg(s));
        cr_assert_eq(n, NREC - 1);
        cr_assert_eq(pak_scanner_offset(s), last);
        char want[64];
        snprintf(want, sizeof want, "offset %llu", (unsigned long long)last);
        cr_assert(strstr(pak_scanner_errmsg(s), want), "%s",
                  pak_scanner_errmsg(s));
        pak_scanner_free(s);
    }
    /* the writer cuts the torn tail off and appends after it */
    cr_assert_eq(pak_writer_open(path, NULL, &w), 0);
    cr_assert_eq(pak_writer_size(w), last);
    struct chunk_codec *c = NULL;
    cr_assert_eq(chunk_codec_new(0, &c), 0);
    pak_writer_free(w);
    chunk_codec_free(c);
    check_container(NREC - 1);
    cr_assert_eq(truncate(path, 10), 0);
    cr_assert_eq(pak_writer_open(path, NULL, &w), ORBIT_ETRUNC);
}

static void
flip(uint64_t off, uint8_t bit)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
    b ^= bit;
    cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

static int
scan_all(bool verify, uint64_t *stop, char *msg)
{
    struct pak_scanner *s = NULL;
    struct pak_record_info info;
    int rc;
    cr_assert_eq(pak_scanner_open(path, verify, &s), 0);
    while ((rc = pak_scanner_next(s, &info)) == 0)
        ;
    *stop = pak_scanner_offset(s);
    snprintf(msg, 512, "%s", pak_scanner_errmsg(s));
    pak_scanner_free(s);
    return rc;
}

Test(pak, bit_flips_detected)
{
    struct pak_writer *w = NULL;
    cr_assert_eq(pak_writer_open(path, NULL, &w), 0);
    write_all(w);
    pak_writer_free(w);
    uint64_t stop;
    char msg[512];
    /* every bit of one record header */
    uint64_t h = recs[5].off;
    for (uint64_t i = 0; i < PAK_REC_HEADER_LEN; i++)
        for (int b = 0; b < 8; b++) {
            flip(h + i, (uint8_t)(1u << b));
            int rc = scan_all(false, &stop, msg);
            cr_assert(rc == ORBIT_ECORRUPT || rc == ORBIT_EFORMAT, "%d", rc);
            cr_assert_eq(stop, h);
            cr_assert(strstr(msg, "container_000001.orbitpak"), "%s", msg);
            flip(h + i, (uint8_t)(1u << b));
        }
    /* payload bits: the verifying scan and the reader catch them */
    uint64_t seed = 3;
    uint8_t *out = malloc(20000);
    struct pak_reader *r = NULL;
    cr_assert_eq(pak_reader_open(path, &r), 0);
    for (int k = 0; k < 200; k++) {
        int i = 1 + (int)(tu_rand(&seed) % (NREC - 1));
        uint64_t len = recs[i + 1 < NREC ? i + 1 : i].off - recs[i].off;
        if (i == NREC - 1 || len <= PAK_REC_HEADER_LEN)
            continue;
        uint64_t pos = recs[i].off + PAK_REC_HEADER_LEN +
                       tu_rand(&seed) % (len - PAK_REC_HEADER_LEN);
        flip(pos, 0x10);
        int rc = scan_all(true, &stop, msg);
        cr_assert(rc == ORBIT_ECORRUPT || rc == ORBIT_ECODEC, "%d", rc);
        cr_assert_eq(stop, recs[i].off);
        rc = pak_reader_read(r, recs[i].off, NULL, out, 20000, NULL);
        cr_assert(rc == ORBIT_ECORRUPT || rc == ORBIT_ECODEC, "%d", rc);
        flip(pos, 0x10);
    }
    pak_reader_free(r);
    free(out);
    check_container(NREC);
    /* file header: bad magic, bad checksum, unknown version */
    flip(0, 1);
    cr_assert_eq(scan_all(false, &stop, msg), ORBIT_EFORMAT);
    cr_assert_eq(stop, 0);
    cr_assert(strstr(msg, "offset 0"), "%s", msg);
    cr_assert_eq(pak_reader_open(path, &r), ORBIT_EFORMAT);
    cr_assert_null(r);
    flip(0, 1);
    flip(10, 1);
    cr_assert_eq(scan_all(false, &stop, msg), ORBIT_ECORRUPT);
    flip(10, 1);
    uint8_t hdr[PAK_FILE_HEADER_LEN];
    pak_file_header_encode(hdr);
    hdr[8] = 2;
    uint32_t crc = pak_crc32c(0, hdr, 12);
    memcpy(hdr + 12, &crc, 4);
    int fd = open(path, O_RDWR);
    cr_assert_eq(pwrite(fd, hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
    close(fd);
    cr_assert_eq(scan_all(false, &stop, msg), ORBIT_EVERSION);
    cr_assert(strstr(msg, "unsupported version"), "%s", msg);
}

Test(pak, header_encode_checks_fields)
{
    struct pak_record_info info = {
        .raw_len = 10, .stored_len = 11, .codec = CHUNK_CODEC_RAW};
    uint8_t out[PAK_REC_HEADER_LEN];
    cr_assert_eq(pak_record_header_encode(&info, out), ORBIT_EFORMAT);
    info.codec = 5;
    cr_assert_eq(pak_record_header_encode(&info, out), ORBIT_EFORMAT);
    info.codec = CHUNK_CODEC_ZSTD;
    cr_assert_eq(pak_record_header_encode(&info, out), 0);
    struct pak_record_info back;
    cr_assert_eq(pak_record_header_parse(out, sizeof out, &back), 0);
    cr_assert_eq(back.stored_len, 11);
    cr_assert_eq(pak_record_header_parse(out, 51, &back), ORBIT_ETRUNC);
    info.raw_len = (uint32_t)CHUNK_CODEC_MAX_RAW + 1;
    cr_assert_eq(pak_record_header_encode(&info, out), ORBIT_ETOOBIG);
}

Test(pak, pool_rotates_reads_removes)
{
    struct pak_pool_opts o;
    struct pak_pool *p = NULL;
    char pdir[128];
    pak_pool_opts_default(&o);
    cr_assert_eq(o.rotate_size, (uint64_t)4 << 30);
    o.rotate_size = 60000;
    o.max_open_readers = 2;
    snprintf(pdir, sizeof pdir, "%s/root/.orbit/packs", dir);
    cr_assert_eq(pak_pool_open(pdir, &o, &p), 0);
    cr_assert_eq(pak_pool_active(p), 1);
    struct pak_loc locs[NREC];
    for (int i = 0; i < NREC; i++) {
        cr_assert_eq(pak_pool_append(p, &recs[i].id, CHUNK_CODEC_RAW,
                                     recs[i].raw_len, recs[i].raw,
                                     recs[i].raw_len, &locs[i]),
                     0);
        cr_assert(locs[i].offset + PAK_REC_HEADER_LEN + recs[i].raw_len <=
                      60000 ||
                  locs[i].offset == PAK_FILE_HEADER_LEN);
    }
    cr_assert_eq(pak_pool_sync(p), 0);
    uint32_t active = pak_pool_active(p);
    cr_assert_gt(active, 5);
    uint32_t list[64];
    size_t n = 0;
    cr_assert_eq(pak_pool_list(p, list, 64, &n), 0);
    cr_assert_eq(n, active);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(list[i], i + 1);
    uint8_t *out = malloc(20000), *st = malloc(20000);
    struct pak_record_info info;
    for (int k = 0; k < 3; k++) /* round robin over few reader slots */
        for (int i = 0; i < NREC; i++) {
            cr_assert_eq(
                pak_pool_read(p, &locs[i], &recs[i].id, out, 20000, &info), 0,
                "%s", pak_pool_errmsg(p));
            cr_assert(recs[i].raw_len == 0 ||
                      memcmp(out, recs[i].raw, recs[i].raw_len) == 0);
        }
    cr_assert_eq(
        pak_pool_read_stored(p, &locs[7], out, 20000, st, 20000, &info), 0);
    cr_assert_eq(memcmp(st, recs[7].raw, recs[7].raw_len), 0);
    cr_assert_eq(pak_pool_remove(p, active), ORBIT_ESTATE);
    cr_assert_eq(pak_pool_remove(p, locs[0].container), 0);
    cr_assert_eq(pak_pool_remove(p, locs[0].container), 0);
    cr_assert_eq(pak_pool_read(p, &locs[0], NULL, out, 20000, &info),
                 ORBIT_ENOENT);
    cr_assert(strstr(pak_pool_errmsg(p), "container_000001.orbitpak"));
    pak_pool_free(p);
    /* reopening resumes the newest container */
    cr_assert_eq(pak_pool_open(pdir, &o, &p), 0);
    cr_assert_eq(pak_pool_active(p), active);
    cr_assert_eq(pak_pool_rotate(p), 0);
    cr_assert_eq(pak_pool_active(p), active + 1);
    char cpath[256];
    cr_assert_eq(pak_pool_path(p, active + 1, cpath, sizeof cpath), 0);
    pak_pool_free(p);
    /* a newest container cut inside its file header: start the next one */
    cr_assert_eq(truncate(cpath, 7), 0);
    cr_assert_eq(pak_pool_open(pdir, &o, &p), 0);
    cr_assert_eq(pak_pool_active(p), active + 2);
    pak_pool_free(p);
    free(out);
    free(st);
}

struct pool_worker {
    struct pak_pool *pool;
    int first, step;
    struct pak_loc locs[NREC];
    int errors;
};

static void *
append_and_read(void *arg)
{
    struct pool_worker *pw = arg;
    uint8_t *out = malloc(20000);
    for (int i = pw->first; i < NREC; i += pw->step) {
        if (pak_pool_append(pw->pool, &recs[i].id, CHUNK_CODEC_RAW,
                            recs[i].raw_len, recs[i].raw, recs[i].raw_len,
                            &pw->locs[i]) != 0 ||
            pak_pool_read(pw->pool, &pw->locs[i], &recs[i].id, out, 20000,
                          NULL) != 0)
            pw->errors++;
    }
    free(out);
    return NULL;
}

Test(pak, pool_is_thread_safe)
{
    struct pak_pool_opts o;
    struct pak_pool *p = NULL;
    char pdir[128];
    pak_pool_opts_default(&o);
    o.rotate_size = 50000;
    o.sync.mode = PAK_SYNC_EVERY_BYTES;
    o.sync.every_bytes = 30000;
    snprintf(pdir, sizeof pdir, "%s/packs", dir);
    cr_assert_eq(pak_pool_open(pdir, &o, &p), 0);
    static struct pool_worker w[4];
    pthread_t t[4];
    for (int k = 0; k < 4; k++) {
        w[k] = (struct pool_worker){.pool = p, .first = k, .step = 4};
        pthread_create(&t[k], NULL, append_and_read, &w[k]);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        cr_assert_eq(w[k].errors, 0);
    }
    /* every record, whoever wrote it, reads back from its location */
    uint8_t *out = malloc(20000);
    for (int i = 0; i < NREC; i++)
        cr_assert_eq(
            pak_pool_read(p, &w[i % 4].locs[i], &recs[i].id, out, 20000, NULL),
            0, "%s", pak_pool_errmsg(p));
    free(out);
    pak_pool_free(p);
}
