#include "res_alloc.h"
#include "res_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"

#define RES_MAP_MIN_BUCKETS 16u

struct res_node {
    struct res_node *next;
    uint64_t hash;
    void *val;
    size_t len;
    unsigned char key[];
};

struct res_map {
    struct res_node **buckets;
    size_t nbuckets; /* always a power of two */
    size_t count;
    size_t max_entries;
};

static uint64_t
res_hash(const void *key, size_t len)
{
    /* FNV-1a: keys are paths and SHA-256 ids, neither adversarial here. */
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int
res_map_new(size_t max_entries, struct res_map **out)
{
    struct res_map *m = NULL;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (max_entries == 0)
        return ORBIT_EINVAL;
    m = res_calloc(1, sizeof *m);
    if (!m)
        return ORBIT_ENOMEM;
    m->buckets = res_calloc(RES_MAP_MIN_BUCKETS, sizeof *m->buckets);
    if (!m->buckets) {
        free(m);
        return ORBIT_ENOMEM;
    }
    m->nbuckets = RES_MAP_MIN_BUCKETS;
    m->max_entries = max_entries;
    *out = m;
    return ORBIT_OK;
}

void
res_map_free(struct res_map *m, void (*free_val)(void *))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct res_node *n = m->buckets[i];
        while (n) {
            struct res_node *next = n->next;
            if (free_val)
                free_val(n->val);
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    free(m);
}

static struct res_node **
res_slot(const struct res_map *m, const void *key, size_t len, uint64_t h)
{
    struct res_node **pp = &m->buckets[h & (m->nbuckets - 1)];

    while (*pp) {
        const struct res_node *n = *pp;
        if (n->hash == h && n->len == len && memcmp(n->key, key, len) == 0)
            break;
        pp = &(*pp)->next;
    }
    return pp;
}

void *
res_map_get(const struct res_map *m, const void *key, size_t len)
{
    struct res_node **pp = res_slot(m, key, len, res_hash(key, len));
    return *pp ? (*pp)->val : NULL;
}

/* Doubling is best effort: on allocation failure chains just grow longer. */
static void
res_grow(struct res_map *m)
{
    size_t nb = m->nbuckets * 2;
    struct res_node **b;

    if (nb < m->nbuckets || nb > SIZE_MAX / sizeof *b)
        return;
    b = res_calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct res_node *n = m->buckets[i];
        while (n) {
            struct res_node *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

int
res_map_insert(struct res_map *m, const void *key, size_t len, void *val)
{
    uint64_t h = res_hash(key, len);
    struct res_node **pp = res_slot(m, key, len, h);
    struct res_node *n;

    if (!val)
        return ORBIT_EINVAL;
    if (*pp)
        return ORBIT_EEXIST;
    if (m->count >= m->max_entries)
        return ORBIT_EFULL;
    if (len > SIZE_MAX - sizeof *n)
        return ORBIT_ETOOBIG;
    n = res_malloc(sizeof *n + len);
    if (!n)
        return ORBIT_ENOMEM;
    n->hash = h;
    n->val = val;
    n->len = len;
    memcpy(n->key, key, len);
    n->next = NULL;
    *pp = n;
    m->count++;
    if (m->count > m->nbuckets / 4 * 3)
        res_grow(m);
    return ORBIT_OK;
}

void *
res_map_remove(struct res_map *m, const void *key, size_t len)
{
    struct res_node **pp = res_slot(m, key, len, res_hash(key, len));
    struct res_node *n = *pp;
    void *val;

    if (!n)
        return NULL;
    *pp = n->next;
    val = n->val;
    free(n);
    m->count--;
    return val;
}

size_t
res_map_count(const struct res_map *m)
{
    return m->count;
}

size_t
res_map_max(const struct res_map *m)
{
    return m->max_entries;
}

int
res_map_foreach(const struct res_map *m, res_map_visit_fn fn, void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (const struct res_node *n = m->buckets[i]; n; n = n->next) {
            int rc = fn(n->key, n->len, n->val, ctx);
            if (rc != 0)
                return rc;
        }
    }
    return ORBIT_OK;
}

int
res_map_check(const struct res_map *m)
{
    size_t seen = 0;

    if (!m || !m->buckets || m->nbuckets < RES_MAP_MIN_BUCKETS ||
        (m->nbuckets & (m->nbuckets - 1)) != 0)
        return ORBIT_ECORRUPT;
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (const struct res_node *n = m->buckets[i]; n; n = n->next) {
            if ((n->hash & (m->nbuckets - 1)) != i ||
                n->hash != res_hash(n->key, n->len) || !n->val)
                return ORBIT_ECORRUPT;
            seen++;
        }
    }
    if (seen != m->count || m->count > m->max_entries)
        return ORBIT_ECORRUPT;
    return ORBIT_OK;
}
