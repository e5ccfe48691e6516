/*
 * star_alloc.h - the allocation seam of the star (star_alloc.c): weak
 * definitions a test program replaces with strong ones to fail the Nth
 * allocation. Memory is released with free(). Private to orbit-star.
 */
#ifndef ORBIT_STAR_ALLOC_H
#define ORBIT_STAR_ALLOC_H

#include <stddef.h>

void *star_malloc(size_t size);
void *star_calloc(size_t n, size_t size);
void *star_realloc(void *p, size_t size);
char *star_strdup(const char *s);

#endif
