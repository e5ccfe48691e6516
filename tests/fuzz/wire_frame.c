/*
 * Fuzz target: a byte stream of wire frames. Every frame the decoder accepts
 * must re-encode to exactly the same bytes, and every view it hands out
 * (chunk refs, list entries, bitmap bits, the frames a PACKED frame
 * unpacks to) must be readable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "orbit/wire_pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
walk_views(const struct wire_msg *m)
{
    volatile uint32_t sink = 0;
    if (m->type == WIRE_COMMIT) {
        for (uint32_t i = 0; i < m->u.commit.n; i++) {
            struct wire_chunk_ref ref;
            wire_commit_chunk(&m->u.commit, i, &ref);
            sink += ref.raw_len;
        }
    } else if (m->type == WIRE_LIST_REPLY) {
        struct wire_list_entry e;
        size_t pos = 0;
        uint32_t n = 0;
        while (wire_list_next(&m->u.list_reply, &pos, &e) == 0)
            n++;
        if (n != m->u.list_reply.n)
            abort();
    } else if (m->type == WIRE_PACKED) {
        struct wire_unpacker *u;
        if (wire_unpacker_new(&u) != 0)
            return;
        const uint8_t *raw;
        size_t len, pos = 0;
        if (wire_unpack(u, &m->u.packed, &raw, &len) == 0) {
            if (len != m->u.packed.raw_len)
                abort();
            struct wire_hdr h;
            const uint8_t *payload;
            struct wire_msg inner;
            while (wire_unpacked_next(raw, len, &pos, &h, &payload) == 1)
                sink += (uint32_t)wire_decode(&h, payload, &inner);
            if (pos != len)
                abort();
        }
        wire_unpacker_free(u);
    } else if (m->type == WIRE_HAVE_REPLY) {
        for (uint32_t i = 0; i < m->u.have_reply.n; i++)
            sink += wire_bitmap_get(m->u.have_reply.bitmap, i);
    }
    (void)sink;
}

static void
check_reencode(const struct wire_msg *m, const uint8_t *frame, size_t len)
{
    size_t want = 0, got = 0;
    if (wire_encoded_len(m, &want) != 0 || want != len)
        abort();
    uint8_t *buf = malloc(want);
    if (!buf)
        return;
    if (wire_encode(m, buf, want, &got) != 0 || got != len ||
        memcmp(buf, frame, len) != 0)
        abort();
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    while (size > 0) {
        struct wire_msg m;
        size_t used = 0;
        int rc = wire_frame_decode(data, size, &m, &used);
        if (rc == ORBIT_ETRUNC || used == 0)
            break;
        if (used > size)
            abort();
        if (rc == 0) {
            walk_views(&m);
            check_reencode(&m, data, used);
        }
        data += used;
        size -= used;
    }
    return 0;
}
