/*
 * orbit/chunker.h - FastCDC content-defined chunker (normalized chunking,
 * gear hash, two bytes per step), streaming.
 *
 * Feed any slice of a byte stream to chunker_next(); it answers how many bytes
 * of that slice belong to the current chunk up to its cut, or 0 when no cut
 * falls inside the slice (the bytes are consumed into the rolling state; the
 * chunker never keeps the bytes themselves: the caller does). At the end of
 * the stream chunker_finish() gives the length of the tail chunk. Cut points
 * depend only on the content, never on how the stream was sliced.
 *
 * Ownership: chunker_new() returns a heap object freed by chunker_free();
 * chunker_free(NULL) is a no-op. No allocation after chunker_new().
 * Errors: ORBIT_EINVAL for bad parameters or arguments, ORBIT_ENOMEM.
 * Thread-safety: a chunker is used by one thread at a time; distinct chunkers
 * are independent.
 */
#ifndef ORBIT_CHUNKER_H
#define ORBIT_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define CHUNKER_DEFAULT_MIN ((size_t)16 * 1024)
#define CHUNKER_DEFAULT_AVG ((size_t)64 * 1024)
#define CHUNKER_DEFAULT_MAX ((size_t)256 * 1024)
/* Hard limits on the parameters (inclusive). */
#define CHUNKER_MIN_LIMIT ((size_t)64)
#define CHUNKER_AVG_MIN   ((size_t)256)
#define CHUNKER_MAX_LIMIT ((size_t)64 * 1024 * 1024)

struct chunker_params {
    size_t min_size; /* >= CHUNKER_MIN_LIMIT, < avg_size */
    size_t avg_size; /* power of two, >= CHUNKER_AVG_MIN */
    size_t max_size; /* > avg_size, <= CHUNKER_MAX_LIMIT */
};

struct chunker;

/* Fill p with the defaults (16 KiB / 64 KiB / 256 KiB). */
void chunker_params_default(struct chunker_params *p);

/* 0 if p is usable, ORBIT_EINVAL otherwise. */
int chunker_params_validate(const struct chunker_params *p);

/* New chunker with params p (NULL: defaults), at the start of a stream. */
int chunker_new(const struct chunker_params *p, struct chunker **out);
void chunker_free(struct chunker *ch);

/* Forget the current chunk: the next byte fed starts a new stream. */
void chunker_reset(struct chunker *ch);

/*
 * Scan data[0, len). On a cut, *cut_len is the number of bytes of data that
 * end the current chunk (1..len) and the chunker starts a new chunk after
 * them: call again with data + *cut_len. With no cut, *cut_len is 0 and all
 * len bytes were added to the current chunk.
 */
int chunker_next(struct chunker *ch, const void *data, size_t len,
                 size_t *cut_len);

/*
 * End of stream: *tail_len is the length of the last chunk (bytes fed since
 * the last cut, 0 if none) and the chunker is reset.
 */
int chunker_finish(struct chunker *ch, size_t *tail_len);

/* Bytes fed since the last cut. */
size_t chunker_pending(const struct chunker *ch);

/* The parameters in force. */
void chunker_get_params(const struct chunker *ch, struct chunker_params *out);

#endif
