/*
 * orbit/wire.h - the Orbit wire protocol codec (docs/protocol.md is the spec).
 *
 * Frames are a fixed 12-byte big-endian header followed by a payload:
 *
 *   u8 version (WIRE_VERSION) | u8 type | u16 flags | u32 request_id |
 *   u32 payload_len (<= WIRE_MAX_PAYLOAD)
 *
 * Receiving: wire_frame_peek() looks at the first bytes of a stream buffer
 * (for a libevent evbuffer: evbuffer_pullup(buf, WIRE_HDR_LEN)) and says
 * whether a header is complete and acceptable; once WIRE_HDR_LEN +
 * payload_len bytes are buffered, wire_decode() parses the payload into a
 * struct wire_msg. Sending: wire_encoded_len() and wire_encode() write a
 * whole frame (header + payload) into a caller buffer (for example space
 * from evbuffer_reserve_space()).
 *
 * Ownership: the codec never allocates. A decoded message is a set of views
 * into the payload passed to wire_decode(): every pointer in it (strings,
 * chunk ids, chunk data, bitmaps, raw entry lists) is valid only while that
 * payload buffer is. Decoded strings are NUL-terminated in place (the wire
 * carries a terminating zero byte, checked by the decoder) and contain no
 * interior NUL. For encoding, the message's pointers belong to the caller and
 * are only read during the call.
 *
 * Paths (COMMIT, DELETE, LIST, PUT hints, LIST_REPLY entries) are checked
 * with wire_path_check() by both the encoder and the decoder.
 *
 * Errors: ORBIT_ETRUNC (need more bytes), ORBIT_EVERSION (frame version),
 * ORBIT_ETOOBIG (a length or count above its hard maximum), ORBIT_EPROTO
 * (unknown type, malformed payload, trailing bytes), ORBIT_EPATH (a path
 * field refused), ORBIT_EINVAL (bad argument to an encoder), ORBIT_EFULL
 * (output buffer too small).
 *
 * Thread-safety: all functions are pure; any number of threads may use them.
 */
#ifndef ORBIT_WIRE_H
#define ORBIT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION     1
#define WIRE_HDR_LEN     12
#define WIRE_MAX_PAYLOAD ((16u << 20) + (4u << 10)) /* 16 MiB + 4 KiB */

#define WIRE_ID_LEN        32 /* chunk id: SHA-256 of the raw chunk bytes */
#define WIRE_DIGEST_LEN    32 /* whole-file SHA-256 */
#define WIRE_CHALLENGE_LEN 32
#define WIRE_MAC_LEN       32 /* HMAC-SHA256 */

#define WIRE_MAX_STR           4096 /* any string field, excluding its NUL */
#define WIRE_MAX_NAME          255  /* client name, star name, job id */
#define WIRE_MAX_PATH          4096 /* relative path, excluding its NUL */
#define WIRE_MAX_CHUNK         (1u << 20) /* raw and stored length of one chunk */
#define WIRE_MAX_HAVE          16384      /* chunk ids in one HAVE */
#define WIRE_MAX_COMMIT_CHUNKS 262144     /* chunk refs in one COMMIT frame */
#define WIRE_MAX_LIST          4096       /* entries in one LIST_REPLY */
#define WIRE_NO_ITEM           UINT32_MAX /* ERROR: no batch item concerned */
#define WIRE_MAX_PACK_RAW      (1u << 20) /* frames carried by one PACKED */

/* HELLO / HELLO_OK feature bits (u32): what this side accepts. */
#define WIRE_FEATURE_PACKED 0x01u /* PACKED frames (zstd stream) */

/* Message types. A request's reply type is the request type + 1. */
enum wire_type {
    WIRE_ERROR = 0x01,          /* either way: reply to any request */
    WIRE_AUTH_CHALLENGE = 0x02, /* star -> client, first frame */
    WIRE_AUTH_RESPONSE = 0x04,  /* client -> star */
    WIRE_AUTH_OK = 0x05,        /* star -> client */
    WIRE_HELLO = 0x10,
    WIRE_HELLO_OK = 0x11,
    WIRE_HAVE = 0x12,
    WIRE_HAVE_REPLY = 0x13,
    WIRE_PUT = 0x14,
    WIRE_PUT_OK = 0x15,
    WIRE_COMMIT = 0x16,
    WIRE_COMMIT_OK = 0x17,
    WIRE_LIST = 0x18,
    WIRE_LIST_REPLY = 0x19,
    WIRE_DELETE = 0x1a,
    WIRE_DELETE_OK = 0x1b,
    WIRE_HEALTH = 0x1c,
    WIRE_HEALTH_REPLY = 0x1d,
    WIRE_GOODBYE = 0x1e,
    WIRE_GOODBYE_OK = 0x1f,
    WIRE_BULLETIN = 0x20, /* star -> client, unsolicited, request_id 0 */
    WIRE_PACKED = 0x22,   /* either way, request_id 0, no reply: frames */
};

/* Star lifecycle state as carried on the wire (u8). */
enum wire_star_state {
    WIRE_STATE_STARTING = 0,
    WIRE_STATE_READY = 1,
    WIRE_STATE_DEGRADED = 2, /* serving, with advisories raised */
    WIRE_STATE_DRAINING = 3, /* finishing current work, refusing new jobs */
    WIRE_STATE_STOPPING = 4,
};

/* HEALTH_REPLY / BULLETIN advisories bitmask (u32). */
enum wire_advisory {
    WIRE_ADV_DISK_WARNING = 1u << 0,
    WIRE_ADV_DISK_CRITICAL = 1u << 1,
    WIRE_ADV_DISK_EXHAUSTION = 1u << 2, /* predicted within the horizon */
    WIRE_ADV_THROUGHPUT_LOW = 1u << 3,
    WIRE_ADV_ERROR_RATE_HIGH = 1u << 4,
};

enum wire_codec {
    WIRE_CODEC_RAW = 0,
    WIRE_CODEC_ZSTD = 1,
};

enum wire_ftype {
    WIRE_FT_REGULAR = 1,
    WIRE_FT_SYMLINK = 2,
    WIRE_FT_DIRECTORY = 3,
};

enum wire_bulletin_severity {
    WIRE_SEV_INFO = 0,
    WIRE_SEV_WARNING = 1,
    WIRE_SEV_ERROR = 2,
};

/* DELETE flags (u8). */
#define WIRE_DELETE_RECURSIVE 0x01u

struct wire_hdr {
    uint8_t version;
    uint8_t type;
    uint16_t flags; /* the frame check (see wire_frame_seal) */
    uint32_t request_id;
    uint32_t payload_len;
};

/* ERROR: code is an ORBIT_E* value (negative). */
struct wire_error {
    int32_t code;
    bool retryable;
    uint32_t item; /* index of the failing batch item, or WIRE_NO_ITEM */
    const char *message;
    size_t message_len;
};

struct wire_auth_challenge {
    uint16_t version; /* highest protocol version the star speaks */
    uint8_t challenge[WIRE_CHALLENGE_LEN];
};

struct wire_auth_response {
    uint8_t mac[WIRE_MAC_LEN];
};

struct wire_hello {
    uint16_t version;
    const char *traceparent; /* W3C traceparent, may be empty */
    size_t traceparent_len;
    const char *client_name;
    size_t client_name_len;
    const char *job_id;
    size_t job_id_len;
    uint32_t features; /* WIRE_FEATURE_* the client accepts */
};

struct wire_hello_ok {
    uint16_t version; /* the version both sides now speak */
    const char *star_name;
    size_t star_name_len;
    uint8_t state; /* enum wire_star_state */
    uint32_t max_payload;
    uint32_t max_have;
    uint32_t max_chunk;
    uint32_t max_inflight; /* requests the star is happy to have queued */
    uint32_t features;     /* WIRE_FEATURE_* the star accepts */
};

/* HAVE: n contiguous ids of WIRE_ID_LEN bytes. */
struct wire_have {
    uint32_t n;
    const uint8_t *ids;
};

/* HAVE_REPLY: bit i (LSB first within byte i / 8) set = id i is missing. */
struct wire_have_reply {
    uint32_t n;
    const uint8_t *bitmap; /* (n + 7) / 8 bytes, unused high bits zero */
};

/*
 * PUT: one chunk. With has_hint, path/offset say where the chunk lives in the
 * file being sent, so the star may write it straight into that file's
 * staging file; the hint is advisory and the chunk stays addressable by id.
 */
struct wire_put {
    uint8_t id[WIRE_ID_LEN];
    uint8_t codec; /* enum wire_codec */
    uint32_t raw_len;
    bool has_hint;
    const char *hint_path;
    size_t hint_path_len;
    uint64_t hint_offset;
    const uint8_t *data; /* stored bytes */
    uint32_t data_len;
};

struct wire_put_ok {
    uint8_t id[WIRE_ID_LEN];
    bool existed; /* the star already held this chunk */
};

struct wire_chunk_ref {
    uint8_t id[WIRE_ID_LEN];
    uint32_t raw_len;
};

/*
 * COMMIT: a file manifest. A manifest with more than WIRE_MAX_COMMIT_CHUNKS
 * chunks spans several COMMIT frames with identical metadata: chunk_first is
 * the index of this frame's first chunk, chunk_total the length of the whole
 * list; the frame that reaches chunk_total commits the file, earlier ones are
 * answered COMMIT_OK with complete = false. Encoding reads `chunks`, or
 * `chunks_raw` when `chunks` is NULL; decoding sets `chunks_raw` (n records
 * of 36 bytes) and `chunks` = NULL; read either with wire_commit_chunk().
 */
struct wire_commit {
    const char *path;
    size_t path_len;
    uint8_t ftype; /* enum wire_ftype */
    uint64_t size;
    uint32_t mode;
    int64_t mtime_sec;
    uint32_t mtime_nsec; /* < 1e9 */
    const char *target;  /* symlink target; empty otherwise */
    size_t target_len;
    uint8_t digest[WIRE_DIGEST_LEN]; /* zero for non-regular files */
    uint64_t chunk_first;
    uint64_t chunk_total;
    uint32_t n;
    const struct wire_chunk_ref *chunks; /* encode side */
    const uint8_t *chunks_raw;           /* decode side */
};

struct wire_commit_ok {
    bool complete;
};

/* LIST flags (u8). */
#define WIRE_LIST_DIGESTS 0x01u /* read and hash every regular file listed */

/* LIST: path "" is the root; cursor "" starts from the beginning. */
struct wire_list {
    const char *path;
    size_t path_len;
    const char *cursor;
    size_t cursor_len;
    uint32_t max_entries; /* 0: the star's default */
    uint8_t flags;        /* WIRE_LIST_* */
};

struct wire_list_entry {
    const char *path;
    size_t path_len;
    uint8_t ftype;
    uint64_t size;
    uint32_t mode;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    bool has_digest;
    uint8_t digest[WIRE_DIGEST_LEN];
};

/*
 * LIST_REPLY: next_cursor "" means the listing is complete. Encoding reads
 * `entries`, or `entries_raw` when `entries` is NULL; decoding sets
 * `entries_raw` and `entries` = NULL; walk either with wire_list_next().
 */
struct wire_list_reply {
    const char *next_cursor;
    size_t next_cursor_len;
    uint32_t n;
    const struct wire_list_entry *entries; /* encode side */
    const uint8_t *entries_raw;            /* decode side */
    size_t entries_raw_len;
};

struct wire_delete {
    const char *path;
    size_t path_len;
    uint8_t flags; /* WIRE_DELETE_* */
};

struct wire_delete_ok {
    bool existed;
};

struct wire_health_reply {
    uint64_t disk_total;
    uint64_t disk_used;
    uint64_t bytes_received;
    uint64_t chunks_received;
    uint64_t errors_total;
    uint64_t errors_io;
    uint64_t errors_proto;
    uint64_t errors_auth;
    uint64_t uptime_sec;
    uint32_t connections;
    uint8_t state;       /* enum wire_star_state */
    uint32_t advisories; /* enum wire_advisory bits */
};

struct wire_bulletin {
    uint8_t severity; /* enum wire_bulletin_severity */
    uint32_t advisories;
    const char *category;
    size_t category_len;
    const char *message;
    size_t message_len;
};

/*
 * PACKED: a run of whole frames (raw_len bytes whose CRC-32C is raw_crc),
 * compressed as the next segment of the sender's zstd stream for this
 * connection (codec WIRE_CODEC_ZSTD); orbit/wire_pack.h packs and unpacks.
 */
struct wire_packed {
    uint8_t codec; /* enum wire_codec; only WIRE_CODEC_ZSTD */
    uint32_t raw_len;
    uint32_t raw_crc;
    const uint8_t *data; /* the compressed segment */
    uint32_t data_len;
};

/* One frame. Types with an empty payload (AUTH_OK, HEALTH, GOODBYE, ...)
 * use no union member. */
struct wire_msg {
    uint8_t type; /* enum wire_type */
    uint16_t flags;
    uint32_t request_id;
    union {
        struct wire_error error;
        struct wire_auth_challenge challenge;
        struct wire_auth_response response;
        struct wire_hello hello;
        struct wire_hello_ok hello_ok;
        struct wire_have have;
        struct wire_have_reply have_reply;
        struct wire_put put;
        struct wire_put_ok put_ok;
        struct wire_commit commit;
        struct wire_commit_ok commit_ok;
        struct wire_list list;
        struct wire_list_reply list_reply;
        struct wire_delete del;
        struct wire_delete_ok delete_ok;
        struct wire_health_reply health;
        struct wire_bulletin bulletin;
        struct wire_packed packed;
    } u;
};

/*
 * Parse the header at the start of buf. Returns 0 and fills *out when
 * WIRE_HDR_LEN bytes are there and acceptable (the whole frame is then
 * WIRE_HDR_LEN + out->payload_len bytes); ORBIT_ETRUNC if len < WIRE_HDR_LEN
 * (wait for more); ORBIT_EVERSION or ORBIT_ETOOBIG if the stream is unusable.
 * The type is not checked here, so a reply ERROR can name the request id.
 */
int wire_frame_peek(const uint8_t *buf, size_t len, struct wire_hdr *out);

/*
 * Peek and, if the whole frame is in buf, decode it: *out_frame_len is the
 * number of bytes the frame occupies (to drain). Returns ORBIT_ETRUNC until
 * the frame is complete, otherwise as wire_frame_peek() and wire_decode().
 * A complete frame with a bad payload still sets *out_frame_len and
 * out->type / out->request_id, so the receiver can drain it and answer
 * ERROR to that request.
 */
int wire_frame_decode(const uint8_t *buf, size_t len, struct wire_msg *out,
                      size_t *out_frame_len);

/* Decode the payload (hdr->payload_len bytes) of a frame whose header was
 * accepted by wire_frame_peek(). out->type, flags and request_id are set
 * from hdr even when the payload is refused. */
int wire_decode(const struct wire_hdr *hdr, const uint8_t *payload,
                struct wire_msg *out);

/*
 * The header's flags field carries a check of the frame (bit 15 set, a
 * CRC-32C of the other header fields and the payload's metadata in bits
 * 0-14; chunk data is left to its SHA-256 id). wire_encode() writes it and
 * wire_decode() refuses a frame whose check does not match with
 * ORBIT_ECORRUPT. wire_frame_seal() writes the check into a complete frame
 * (header + payload_len bytes) built by hand, e.g. by a test; the payload
 * must decode.
 */
int wire_frame_seal(uint8_t *frame, size_t len);

/* Size of the whole frame wire_encode() will write for m. */
int wire_encoded_len(const struct wire_msg *m, size_t *out_len);

/* Write m as a frame into buf; ORBIT_EFULL if cap is too small, nothing
 * useful written then. Validates every bound the decoder checks. */
int wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap,
                size_t *out_len);

/* The reply type of a request type, or 0 if type is not a request. */
uint8_t wire_reply_type(uint8_t type);

/* A static name for a type ("HAVE"), "UNKNOWN" if not a known type. */
const char *wire_type_name(uint8_t type);

/* Chunk ref i (< c->n) of a decoded COMMIT. */
void wire_commit_chunk(const struct wire_commit *c, uint32_t i,
                       struct wire_chunk_ref *out);

/*
 * Walk the entries of a decoded LIST_REPLY: start with *pos = 0; returns 0
 * and fills *out while entries remain, ORBIT_ENOENT at the end.
 */
int wire_list_next(const struct wire_list_reply *r, size_t *pos,
                   struct wire_list_entry *out);

/*
 * Encoded size of one LIST_REPLY entry, so a star can fill a page up to
 * WIRE_MAX_PAYLOAD: a LIST_REPLY payload is 7 + next_cursor_len bytes plus
 * the sum of its entries' sizes. Errors as wire_encode().
 */
int wire_list_entry_size(const struct wire_list_entry *e, size_t *out_len);

/* CRC-32C (Castagnoli) of len bytes, as the frame check computes it: with
 * SSE4.2's crc32 instruction where the CPU has it, else a table. The
 * portable form always uses the table (tests compare the two). */
uint32_t wire_crc32c(const void *data, size_t len);
uint32_t wire_crc32c_portable(const void *data, size_t len);

/* HAVE_REPLY bitmap helpers: the bitmap holds (n + 7) / 8 bytes. */
bool wire_bitmap_get(const uint8_t *bitmap, uint32_t i);
void wire_bitmap_set(uint8_t *bitmap, uint32_t i);

/* Fill an ERROR reply to request_id (message may be NULL). */
void wire_error_init(struct wire_msg *m, uint32_t request_id, int code,
                     const char *message, uint32_t item);

#endif
