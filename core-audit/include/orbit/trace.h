/*
 * orbit/trace.h - W3C Trace Context: the traceparent header value.
 *
 *     traceparent = version "-" trace-id "-" parent-id "-" trace-flags
 *     00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 *
 * Version 00 is exactly TRACE_PARENT_LEN characters of lowercase hex and
 * dashes; the trace id (16 bytes) and the parent (span) id (8 bytes) must not
 * be all zero; version ff is invalid. A higher version is read by its first
 * four fields, as the W3C text asks, if what follows them starts with '-'.
 *
 * A trace context is a small value type: copy it freely. Ids come from the
 * kernel CSPRNG (getrandom).
 *
 * Ownership: callers own every buffer; nothing is allocated.
 * Errors: ORBIT_EFORMAT (malformed traceparent), ORBIT_EVERSION (version ff),
 * ORBIT_EINVAL (NULL argument, buffer too small), ORBIT_EIO (getrandom
 * failed).
 * Thread-safety: all functions are reentrant.
 */
#ifndef ORBIT_TRACE_H
#define ORBIT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_ID_LEN       16 /* bytes of a trace id */
#define TRACE_SPAN_LEN     8  /* bytes of a span (parent) id */
#define TRACE_PARENT_LEN   55 /* characters of a version 00 traceparent */
#define TRACE_FLAG_SAMPLED 0x01

struct trace_ctx {
    uint8_t trace_id[TRACE_ID_LEN];
    uint8_t span_id[TRACE_SPAN_LEN];
    uint8_t flags;
};

/* Parse a traceparent value (a NUL-terminated string). */
int trace_parse(const char *traceparent, struct trace_ctx *out);

/* Write the version 00 traceparent of ctx; cap >= TRACE_PARENT_LEN + 1. */
int trace_format(const struct trace_ctx *ctx, char *buf, size_t cap);

/* A new trace: random trace id and span id, flags as given. */
int trace_new(uint8_t flags, struct trace_ctx *out);

/* A child span of parent: same trace id and flags, a new random span id. */
int trace_child(const struct trace_ctx *parent, struct trace_ctx *out);

/* The trace id as 32 lowercase hex digits; cap >= 2 * TRACE_ID_LEN + 1. */
int trace_id_hex(const struct trace_ctx *ctx, char *buf, size_t cap);

/* The span id as 16 lowercase hex digits; cap >= 2 * TRACE_SPAN_LEN + 1. */
int trace_span_hex(const struct trace_ctx *ctx, char *buf, size_t cap);

/* Whether the sampled flag is set. */
bool trace_sampled(const struct trace_ctx *ctx);

#endif
