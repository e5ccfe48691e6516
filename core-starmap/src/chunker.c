#include "orbit/chunker.h"

#include "orbit/error.h"
#include "starmap_alloc.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

/*
 * FastCDC as in Xia et al., "The Design of Fast Content-Defined Chunking for
 * Data Deduplication Based Storage Systems" (TPDS 2020): gear rolling hash,
 * normalized chunking level 2 (a harder mask MaskS below the average size, an
 * easier MaskL above it), cut-point skipping below the minimum size, and the
 * hash rolled two bytes per step with a pre-shifted gear table.
 *
 * The cut rule, byte by byte, for the byte at position p of a chunk
 * (0-based): bytes p < min are not hashed; for min <= p < max the hash is
 * fp = (fp << 1) + gear[byte], and the chunk ends after this byte if
 * fp & mask == 0, with mask = MaskS while p < avg and MaskL after; a chunk
 * also ends after byte max - 1. The two-byte step and the two lanes
 * (roll_lanes) compute the same hashes.
 */

#define GEAR_SEED                                                              \
    UINT64_C(0x6f72626974636463) /* fixed: cut points depend on it */
#define NORMAL_LEVEL 2

struct chunker {
    struct chunker_params p;
    uint64_t mask_s, mask_s_ls; /* MaskS and MaskS << 1 */
    uint64_t mask_l, mask_l_ls;
    uint64_t fp; /* rolling state of the current chunk */
    size_t pos;  /* bytes fed since the last cut */
    uint64_t gear[256];
    uint64_t gear_ls[256]; /* gear[i] << 1 */
};

static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static unsigned
log2_exact(size_t v)
{
    unsigned n = 0;
    while (v > 1) {
        v >>= 1;
        n++;
    }
    return n;
}

/*
 * A mask with `bits` one-bits spread over bits 15..62: the high bits of a
 * gear hash depend on more of the recent bytes, which widens the effective
 * window (the paper's spread masks serve the same end). Bit 63 stays out:
 * the two-byte step keeps the first hash shifted left by one, which drops
 * that bit.
 */
static uint64_t
spread_mask(unsigned bits)
{
    uint64_t m = 0;
    assert(bits >= 1 && bits <= 48);
    for (unsigned j = 0; j < bits; j++)
        m |= UINT64_C(1) << (62 - (j * 48) / bits);
    return m;
}

void
chunker_params_default(struct chunker_params *p)
{
    p->min_size = CHUNKER_DEFAULT_MIN;
    p->avg_size = CHUNKER_DEFAULT_AVG;
    p->max_size = CHUNKER_DEFAULT_MAX;
}

int
chunker_params_validate(const struct chunker_params *p)
{
    if (!p)
        return ORBIT_EINVAL;
    if (p->avg_size < CHUNKER_AVG_MIN || (p->avg_size & (p->avg_size - 1)))
        return ORBIT_EINVAL;
    if (p->min_size < CHUNKER_MIN_LIMIT || p->min_size >= p->avg_size)
        return ORBIT_EINVAL;
    if (p->max_size <= p->avg_size || p->max_size > CHUNKER_MAX_LIMIT)
        return ORBIT_EINVAL;
    return 0;
}

int
chunker_new(const struct chunker_params *p, struct chunker **out)
{
    struct chunker_params def;
    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (!p) {
        chunker_params_default(&def);
        p = &def;
    }
    if (chunker_params_validate(p) != 0)
        return ORBIT_EINVAL;
    struct chunker *ch = starmap_calloc(1, sizeof *ch);
    if (!ch)
        return ORBIT_ENOMEM;
    ch->p = *p;
    unsigned bits = log2_exact(p->avg_size);
    ch->mask_s = spread_mask(bits + NORMAL_LEVEL);
    ch->mask_l = spread_mask(bits - NORMAL_LEVEL);
    ch->mask_s_ls = ch->mask_s << 1;
    ch->mask_l_ls = ch->mask_l << 1;
    uint64_t seed = GEAR_SEED;
    for (size_t i = 0; i < 256; i++) {
        ch->gear[i] = splitmix64(&seed);
        ch->gear_ls[i] = ch->gear[i] << 1;
    }
    *out = ch;
    return 0;
}

void
chunker_free(struct chunker *ch)
{
    free(ch);
}

void
chunker_reset(struct chunker *ch)
{
    ch->fp = 0;
    ch->pos = 0;
}

/*
 * Roll the hash over b[0, n) with mask m; the index just past the first byte
 * whose hash matches, or 0. Two bytes per step: the first hash of the pair
 * is kept shifted left by one (gear_ls, mask_ls), so adding the second byte's
 * gear value needs no extra shift.
 */
#define ROLL_PAIR(k)                                                           \
    do {                                                                       \
        fp = (fp << 2) + gls[b[i + (k)]];                                      \
        if (!(fp & m_ls))                                                      \
            return i + (k) + 1;                                                \
        fp += g[b[i + (k) + 1]];                                               \
        if (!(fp & m))                                                         \
            return i + (k) + 2;                                                \
    } while (0)

#define LANE_BLOCK  ((size_t)2048)
#define GEAR_WINDOW 64 /* bytes a 64-bit gear hash depends on */

/*
 * Two lanes: the hash of byte p depends only on the 64 bytes up to p (older
 * ones are shifted out), so a second lane can start GEAR_WINDOW bytes before
 * its block with a zero hash and be exact from the block's first byte. Lane
 * A hashes [0, B) while lane B hashes [B, 2B); the two dependency chains run
 * in parallel. A hit in A wins; a hit in B counts only if A has none. At the
 * end lane B's hash is the state at 2B, and A carries on from it. Returns
 * the index just past the cut, 0 if none in the 2B bytes.
 */
static size_t
roll_lanes(const uint64_t *g, const uint8_t *a, uint64_t *fpp, uint64_t m)
{
    const uint8_t *c = a + LANE_BLOCK;
    uint64_t fa = *fpp, fb = 0;
    size_t j;
    for (j = 0; j < GEAR_WINDOW; j++)
        fb = (fb << 1) + g[a[LANE_BLOCK - GEAR_WINDOW + j]];
    for (j = 0; j < LANE_BLOCK; j++) {
        fa = (fa << 1) + g[a[j]];
        fb = (fb << 1) + g[c[j]];
        if (__builtin_expect(!(fa & m) | !(fb & m), 0))
            break;
    }
    if (j == LANE_BLOCK) {
        *fpp = fb;
        return 0;
    }
    if (!(fa & m))
        return j + 1;
    for (size_t k = j + 1; k < LANE_BLOCK; k++) {
        fa = (fa << 1) + g[a[k]];
        if (!(fa & m))
            return k + 1;
    }
    return LANE_BLOCK + j + 1;
}

static size_t
roll(struct chunker *ch, const uint8_t *b, size_t n, uint64_t m, uint64_t m_ls)
{
    uint64_t fp = ch->fp;
    const uint64_t *g = ch->gear, *gls = ch->gear_ls;
    size_t i = 0;
    for (; n - i >= 2 * LANE_BLOCK; i += 2 * LANE_BLOCK) {
        size_t hit = roll_lanes(g, b + i, &fp, m);
        if (hit)
            return i + hit;
    }
    /* The rest, one lane, unrolled: the loop overhead would otherwise cost
     * as much as a byte. */
    for (; i + 8 <= n; i += 8) {
        ROLL_PAIR(0);
        ROLL_PAIR(2);
        ROLL_PAIR(4);
        ROLL_PAIR(6);
    }
    for (; i + 2 <= n; i += 2)
        ROLL_PAIR(0);
    if (i < n) {
        fp = (fp << 1) + g[b[i]];
        if (!(fp & m))
            return i + 1;
    }
    ch->fp = fp;
    return 0;
}

static size_t
min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* One phase [pos, limit) of the current chunk; true on a cut. */
static bool
phase(struct chunker *ch, const uint8_t *b, size_t len, size_t *i, size_t limit,
      uint64_t m, uint64_t m_ls)
{
    if (ch->pos >= limit || *i >= len)
        return false;
    size_t n = min_sz(limit - ch->pos, len - *i);
    size_t hit = roll(ch, b + *i, n, m, m_ls);
    size_t used = hit ? hit : n;
    *i += used;
    ch->pos += used;
    return hit != 0;
}

int
chunker_next(struct chunker *ch, const void *data, size_t len, size_t *cut_len)
{
    if (!ch || !cut_len || (!data && len))
        return ORBIT_EINVAL;
    const uint8_t *b = data;
    const struct chunker_params *p = &ch->p;
    size_t i = 0;
    *cut_len = 0;
    if (ch->pos < p->min_size) {
        size_t skip = min_sz(p->min_size - ch->pos, len);
        ch->pos += skip;
        i = skip;
    }
    bool cut = phase(ch, b, len, &i, p->avg_size, ch->mask_s, ch->mask_s_ls);
    if (!cut)
        cut = phase(ch, b, len, &i, p->max_size, ch->mask_l, ch->mask_l_ls);
    if (cut || ch->pos == p->max_size) {
        assert(i > 0);
        *cut_len = i;
        chunker_reset(ch);
    }
    return 0;
}

int
chunker_finish(struct chunker *ch, size_t *tail_len)
{
    if (!ch || !tail_len)
        return ORBIT_EINVAL;
    *tail_len = ch->pos;
    chunker_reset(ch);
    return 0;
}

size_t
chunker_pending(const struct chunker *ch)
{
    return ch->pos;
}

void
chunker_get_params(const struct chunker *ch, struct chunker_params *out)
{
    *out = ch->p;
}
