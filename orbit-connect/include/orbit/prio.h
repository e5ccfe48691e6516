/*
 * orbit/prio.h - composable prioritizers and the bounded ready window they
 * order.
 *
 * A chain is a list of comparators; the first one that tells two items
 * apart decides, and items equal under every comparator keep their arrival
 * order. Comparators: "tier" (semantic tier by glob rules: the index of
 * the first rule that matches the path, unmatched paths last; the default
 * rules put manifests and small configuration first), "smallest",
 * "largest", "oldest", "newest", "fewest-retries". prio_chain_parse()
 * reads them from a comma-separated CLI string ("tier,smallest").
 *
 * The window is a binary heap of at most capacity items: the scheduler
 * pushes ready files until it is full and pops the best one to dispatch,
 * so ordering costs O(log n) per item and memory is bounded by capacity.
 *
 * Ownership: the window copies items by value; an item's path (and data)
 * is borrowed and must stay valid until the item is popped. A window
 * borrows its chain, which must outlive it. Tier rules are copied.
 * Errors: ORBIT_EINVAL (unknown or repeated comparator, empty spec, bad
 * argument), ORBIT_ETOOBIG (more than PRIO_CHAIN_MAX comparators or
 * PRIO_TIERS_MAX rules), ORBIT_EFULL (push into a full window), ORBIT_ENOENT
 * (pop from an empty window), ORBIT_ENOMEM.
 * Thread-safety: a chain is immutable once built and may be shared; a
 * window is used by one thread at a time.
 */
#ifndef ORBIT_PRIO_H
#define ORBIT_PRIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRIO_CHAIN_MAX 8u
#define PRIO_TIERS_MAX 64u

enum prio_key {
    PRIO_TIER = 0,
    PRIO_SMALLEST,
    PRIO_LARGEST,
    PRIO_OLDEST,
    PRIO_NEWEST,
    PRIO_FEWEST_RETRIES,
    PRIO_KEY_COUNT
};

struct prio_item {
    const char *path; /* relative path, for tier rules; may be NULL */
    uint64_t size;
    int64_t mtime_ns;
    uint32_t retries;
    void *data; /* the caller's */
};

struct prio_chain;
struct prio_window;

/* An empty chain (every item equal: arrival order), with the default tier
 * rules. */
int prio_chain_new(struct prio_chain **out);
void prio_chain_free(struct prio_chain *c);
int prio_chain_add(struct prio_chain *c, enum prio_key key);
/* "smallest,oldest": names separated by commas, spaces ignored; "" and
 * NULL are refused (use an empty chain for arrival order). */
int prio_chain_parse(const char *spec, struct prio_chain **out);
/* Replaces the tier rules (walker glob rules: a pattern without '/'
 * matches the base name). Tier = index of the first match, n if none. */
int prio_chain_set_tiers(struct prio_chain *c, const char *const *globs,
                         size_t n);
size_t prio_chain_len(const struct prio_chain *c);
/* Writes "tier,smallest" into buf (NUL-terminated, truncated to cap). */
void prio_chain_describe(const struct prio_chain *c, char *buf, size_t cap);

uint32_t prio_tier_of(const struct prio_chain *c, const char *path);
/* <0 when a goes first, >0 when b does, 0 when the chain ties them. */
int prio_compare(const struct prio_chain *c, const struct prio_item *a,
                 const struct prio_item *b);

const char *prio_key_str(enum prio_key key);
int prio_key_parse(const char *name, size_t len, enum prio_key *out);

int prio_window_new(const struct prio_chain *c, size_t capacity,
                    struct prio_window **out);
void prio_window_free(struct prio_window *w);
int prio_window_push(struct prio_window *w, const struct prio_item *item);
int prio_window_pop(struct prio_window *w, struct prio_item *out);
/* The best item without removing it, or NULL when empty. */
const struct prio_item *prio_window_peek(const struct prio_window *w);
size_t prio_window_count(const struct prio_window *w);
size_t prio_window_capacity(const struct prio_window *w);
bool prio_window_full(const struct prio_window *w);

/* Invariant checker (heap order, count within capacity): 0 or
 * ORBIT_ECORRUPT. */
int prio_window_check(const struct prio_window *w);

#endif
