/*
 * res_alloc.h - the allocation seam of core-resilience.
 *
 * Every allocation in the library goes through these two functions; memory
 * is released with free(). The library's definitions are weak and call
 * malloc/calloc directly, so a test program can link its own strong
 * definitions to fail the Nth allocation and prove each failure path clean,
 * without any run-time hook or global state in the library.
 */
#ifndef ORBIT_RES_ALLOC_H
#define ORBIT_RES_ALLOC_H

#include <stddef.h>

void *res_malloc(size_t size);
void *res_calloc(size_t n, size_t size);

#endif
