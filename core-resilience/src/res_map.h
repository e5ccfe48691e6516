/*
 * res_map.h - private hash map with byte-string keys, shared by the
 * core-resilience modules (penalty box and backpressure registry keyed by
 * strings, ref-count map keyed by 32-byte chunk ids).
 *
 * The map copies keys; values are caller pointers the map never touches
 * except to hand them to free_val in res_map_free. Bounded: insert fails with
 * ORBIT_EFULL past max_entries. Not thread-safe: the owning module locks.
 */
#ifndef ORBIT_RES_MAP_H
#define ORBIT_RES_MAP_H

#include <stddef.h>

struct res_map;

typedef int (*res_map_visit_fn)(const void *key, size_t len, void *val,
                                void *ctx);

int res_map_new(size_t max_entries, struct res_map **out);
void res_map_free(struct res_map *m, void (*free_val)(void *));
void *res_map_get(const struct res_map *m, const void *key, size_t len);
int res_map_insert(struct res_map *m, const void *key, size_t len, void *val);
void *res_map_remove(struct res_map *m, const void *key, size_t len);
size_t res_map_count(const struct res_map *m);
size_t res_map_max(const struct res_map *m);
/* Calls fn on every entry until it returns non-zero, which is returned. */
int res_map_foreach(const struct res_map *m, res_map_visit_fn fn, void *ctx);
/* 0 when every node sits in its bucket and the count matches. */
int res_map_check(const struct res_map *m);

#endif
