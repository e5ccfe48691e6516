/*
 * prio.c - comparator chains and the bounded heap of ready items.
 */
#include "orbit/prio.h"

#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/walker.h"
#include "prio_internal.h"

struct prio_chain {
    enum prio_key keys[PRIO_CHAIN_MAX];
    size_t nkeys;
    char *tiers[PRIO_TIERS_MAX];
    size_t ntiers;
};

struct prio_slot {
    struct prio_item item;
    uint32_t tier;
    uint64_t seq; /* arrival order, the last tie-breaker */
};

struct prio_window {
    const struct prio_chain *chain;
    struct prio_slot *heap;
    size_t count;
    size_t cap;
    uint64_t next_seq;
};

__attribute__((weak)) void *
prio_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
prio_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

static char *
prio_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = prio_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static const char *const prio_key_names[PRIO_KEY_COUNT] = {
    "tier", "smallest", "largest", "oldest", "newest", "fewest-retries"};

/* Manifests and small configuration first: they make a partial tree
 * usable soonest. */
static const char *const prio_default_tiers[] = {
    "MANIFEST*", "*.manifest", "*.json", "*.toml", "*.yaml",
    "*.yml",     "*.ini",      "*.conf", "*.cfg",  "*.lock"};

const char *
prio_key_str(enum prio_key key)
{
    return (unsigned)key < PRIO_KEY_COUNT ? prio_key_names[key] : "unknown";
}

int
prio_key_parse(const char *name, size_t len, enum prio_key *out)
{
    if (!name || !out)
        return ORBIT_EINVAL;
    for (unsigned i = 0; i < PRIO_KEY_COUNT; i++) {
        const char *k = prio_key_names[i];
        if (strlen(k) == len && memcmp(k, name, len) == 0) {
            *out = (enum prio_key)i;
            return 0;
        }
    }
    if (len == 14 && memcmp(name, "fewest_retries", len) == 0) {
        *out = PRIO_FEWEST_RETRIES;
        return 0;
    }
    return ORBIT_EINVAL;
}

static void
prio_tiers_clear(struct prio_chain *c)
{
    for (size_t i = 0; i < c->ntiers; i++)
        free(c->tiers[i]);
    c->ntiers = 0;
}

int
prio_chain_set_tiers(struct prio_chain *c, const char *const *globs, size_t n)
{
    char *copy[PRIO_TIERS_MAX];
    if (!c || (n && !globs))
        return ORBIT_EINVAL;
    if (n > PRIO_TIERS_MAX)
        return ORBIT_ETOOBIG;
    for (size_t i = 0; i < n; i++) {
        copy[i] = globs[i] && *globs[i] ? prio_strdup(globs[i]) : NULL;
        if (!copy[i]) {
            int rc = globs[i] && *globs[i] ? ORBIT_ENOMEM : ORBIT_EINVAL;
            while (i-- > 0)
                free(copy[i]);
            return rc;
        }
    }
    prio_tiers_clear(c);
    memcpy(c->tiers, copy, n * sizeof *copy);
    c->ntiers = n;
    return 0;
}

int
prio_chain_new(struct prio_chain **out)
{
    if (!out)
        return ORBIT_EINVAL;
    struct prio_chain *c = prio_calloc(1, sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    int rc = prio_chain_set_tiers(c, prio_default_tiers,
                                  sizeof prio_default_tiers /
                                      sizeof *prio_default_tiers);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
prio_chain_free(struct prio_chain *c)
{
    if (!c)
        return;
    prio_tiers_clear(c);
    free(c);
}

int
prio_chain_add(struct prio_chain *c, enum prio_key key)
{
    if (!c || (unsigned)key >= PRIO_KEY_COUNT)
        return ORBIT_EINVAL;
    for (size_t i = 0; i < c->nkeys; i++)
        if (c->keys[i] == key)
            return ORBIT_EINVAL;
    if (c->nkeys == PRIO_CHAIN_MAX)
        return ORBIT_ETOOBIG;
    c->keys[c->nkeys++] = key;
    return 0;
}

static int
prio_chain_parse_into(struct prio_chain *c, const char *spec)
{
    const char *p = spec;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        enum prio_key key;
        int rc = prio_key_parse(p, (size_t)(last - p), &key);
        if (rc == 0)
            rc = prio_chain_add(c, key);
        if (rc != 0)
            return rc;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

int
prio_chain_parse(const char *spec, struct prio_chain **out)
{
    struct prio_chain *c = NULL;
    if (!spec || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    int rc = prio_chain_new(&c);
    if (rc == 0)
        rc = prio_chain_parse_into(c, spec);
    if (rc != 0) {
        prio_chain_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

size_t
prio_chain_len(const struct prio_chain *c)
{
    return c ? c->nkeys : 0;
}

void
prio_chain_describe(const struct prio_chain *c, char *buf, size_t cap)
{
    size_t len = 0;
    if (!buf || cap == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; c && i < c->nkeys; i++) {
        const char *name = prio_key_str(c->keys[i]);
        size_t n = strlen(name) + (i ? 1 : 0);
        if (len + n >= cap)
            return;
        if (i)
            buf[len++] = ',';
        memcpy(buf + len, name, strlen(name) + 1);
        len += strlen(name);
    }
}

uint32_t
prio_tier_of(const struct prio_chain *c, const char *path)
{
    if (!c || !path)
        return c ? (uint32_t)c->ntiers : 0;
    for (size_t i = 0; i < c->ntiers; i++)
        if (walker_rule_matches(c->tiers[i], path, false))
            return (uint32_t)i;
    return (uint32_t)c->ntiers;
}

static int
prio_cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

static int
prio_cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int
prio_cmp_key(enum prio_key key, const struct prio_item *a, uint32_t ta,
             const struct prio_item *b, uint32_t tb)
{
    switch (key) {
    case PRIO_TIER:
        return prio_cmp_u64(ta, tb);
    case PRIO_SMALLEST:
        return prio_cmp_u64(a->size, b->size);
    case PRIO_LARGEST:
        return prio_cmp_u64(b->size, a->size);
    case PRIO_OLDEST:
        return prio_cmp_i64(a->mtime_ns, b->mtime_ns);
    case PRIO_NEWEST:
        return prio_cmp_i64(b->mtime_ns, a->mtime_ns);
    case PRIO_FEWEST_RETRIES:
        return prio_cmp_u64(a->retries, b->retries);
    default:
        return 0;
    }
}

static int
prio_cmp_tiered(const struct prio_chain *c, const struct prio_item *a,
                uint32_t ta, const struct prio_item *b, uint32_t tb)
{
    for (size_t i = 0; i < c->nkeys; i++) {
        int r = prio_cmp_key(c->keys[i], a, ta, b, tb);
        if (r)
            return r;
    }
    return 0;
}

int
prio_compare(const struct prio_chain *c, const struct prio_item *a,
             const struct prio_item *b)
{
    if (!c || !a || !b)
        return 0;
    return prio_cmp_tiered(c, a, prio_tier_of(c, a->path), b,
                           prio_tier_of(c, b->path));
}

/* ---- the window --------------------------------------------------------- */

static bool
prio_before(const struct prio_window *w, const struct prio_slot *a,
            const struct prio_slot *b)
{
    int r = prio_cmp_tiered(w->chain, &a->item, a->tier, &b->item, b->tier);
    return r ? r < 0 : a->seq < b->seq;
}

int
prio_window_new(const struct prio_chain *c, size_t capacity,
                struct prio_window **out)
{
    if (!c || !out || capacity == 0 || capacity > SIZE_MAX / 2 / 64)
        return ORBIT_EINVAL;
    struct prio_window *w = prio_calloc(1, sizeof *w);
    if (!w)
        return ORBIT_ENOMEM;
    w->heap = prio_calloc(capacity, sizeof *w->heap);
    if (!w->heap) {
        free(w);
        return ORBIT_ENOMEM;
    }
    w->chain = c;
    w->cap = capacity;
    *out = w;
    return 0;
}

void
prio_window_free(struct prio_window *w)
{
    if (!w)
        return;
    free(w->heap);
    free(w);
}

static void
prio_swap(struct prio_slot *a, struct prio_slot *b)
{
    struct prio_slot t = *a;
    *a = *b;
    *b = t;
}

int
prio_window_push(struct prio_window *w, const struct prio_item *item)
{
    if (!w || !item)
        return ORBIT_EINVAL;
    if (w->count == w->cap)
        return ORBIT_EFULL;
    bool tiered = false;
    for (size_t i = 0; i < w->chain->nkeys; i++)
        tiered |= w->chain->keys[i] == PRIO_TIER;
    size_t i = w->count++;
    w->heap[i] = (struct prio_slot){
        *item, tiered ? prio_tier_of(w->chain, item->path) : 0, w->next_seq++};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!prio_before(w, &w->heap[i], &w->heap[parent]))
            break;
        prio_swap(&w->heap[i], &w->heap[parent]);
        i = parent;
    }
    return 0;
}

int
prio_window_pop(struct prio_window *w, struct prio_item *out)
{
    if (!w || !out)
        return ORBIT_EINVAL;
    if (w->count == 0)
        return ORBIT_ENOENT;
    *out = w->heap[0].item;
    w->heap[0] = w->heap[--w->count];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < w->count && prio_before(w, &w->heap[l], &w->heap[best]))
            best = l;
        if (r < w->count && prio_before(w, &w->heap[r], &w->heap[best]))
            best = r;
        if (best == i)
            return 0;
        prio_swap(&w->heap[i], &w->heap[best]);
        i = best;
    }
}

const struct prio_item *
prio_window_peek(const struct prio_window *w)
{
    return w && w->count ? &w->heap[0].item : NULL;
}

size_t
prio_window_count(const struct prio_window *w)
{
    return w ? w->count : 0;
}

size_t
prio_window_capacity(const struct prio_window *w)
{
    return w ? w->cap : 0;
}

bool
prio_window_full(const struct prio_window *w)
{
    return w && w->count == w->cap;
}

int
prio_window_check(const struct prio_window *w)
{
    if (!w || w->count > w->cap)
        return ORBIT_ECORRUPT;
    for (size_t i = 1; i < w->count; i++)
        if (prio_before(w, &w->heap[i], &w->heap[(i - 1) / 2]))
            return ORBIT_ECORRUPT;
    return 0;
}
