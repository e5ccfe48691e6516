/*
 * Challenge/response authentication: HMAC-SHA256 of the star's random
 * challenge keyed by the shared token, compared in constant time.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire_auth.h"
#include "wire_internal.h"

int
wire_auth_challenge(uint8_t out[WIRE_CHALLENGE_LEN])
{
    if (!out)
        return ORBIT_EINVAL;
    return RAND_bytes(out, WIRE_CHALLENGE_LEN) == 1 ? 0 : ORBIT_ECRYPTO;
}

int
wire_auth_hmac(const uint8_t *key, size_t key_len, const uint8_t *data,
               size_t data_len, uint8_t out[WIRE_MAC_LEN])
{
    unsigned int mac_len = 0;
    if (key_len > WIRE_TOKEN_MAX)
        return ORBIT_EINVAL;
    if (!HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &mac_len) ||
        mac_len != WIRE_MAC_LEN)
        return ORBIT_ECRYPTO;
    return 0;
}

int
wire_auth_respond(const uint8_t *token, size_t token_len,
                  const uint8_t challenge[WIRE_CHALLENGE_LEN],
                  uint8_t out_mac[WIRE_MAC_LEN])
{
    if (!token || token_len == 0 || !challenge || !out_mac)
        return ORBIT_EINVAL;
    return wire_auth_hmac(token, token_len, challenge, WIRE_CHALLENGE_LEN,
                          out_mac);
}

int
wire_auth_verify(const uint8_t *token, size_t token_len,
                 const uint8_t challenge[WIRE_CHALLENGE_LEN],
                 const uint8_t mac[WIRE_MAC_LEN])
{
    uint8_t want[WIRE_MAC_LEN];
    if (!mac)
        return ORBIT_EINVAL;
    int rc = wire_auth_respond(token, token_len, challenge, want);
    if (rc == 0 && CRYPTO_memcmp(want, mac, WIRE_MAC_LEN) != 0)
        rc = ORBIT_EAUTH;
    OPENSSL_cleanse(want, sizeof want);
    return rc;
}

/* Read the whole file (at most cap bytes plus one, to detect overlong). */
static int
read_bounded(int fd, uint8_t *buf, size_t cap, size_t *out_len)
{
    size_t len = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return orbit_err_from_errno(errno);
        if (got == 0)
            break;
        len += (size_t)got;
        if (len == cap)
            break;
    }
    *out_len = len;
    return 0;
}

int
wire_token_load(const char *path, uint8_t *buf, size_t cap, size_t *out_len)
{
    uint8_t raw[WIRE_TOKEN_MAX + 3]; /* token, "\r\n", one byte too many */
    size_t len = 0;
    if (!path || !buf || !out_len)
        return ORBIT_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return orbit_err_from_errno(errno);
    int rc = read_bounded(fd, raw, sizeof raw, &len);
    close(fd);
    while (rc == 0 && len > 0 && (raw[len - 1] == '\n' || raw[len - 1] == '\r'))
        len--;
    if (rc == 0 && len == 0)
        rc = ORBIT_EINVAL;
    else if (rc == 0 && (len > WIRE_TOKEN_MAX || len > cap))
        rc = ORBIT_ETOOBIG;
    if (rc == 0) {
        memcpy(buf, raw, len);
        *out_len = len;
    }
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

int
wire_auth_answer(const struct wire_msg *challenge, const uint8_t *token,
                 size_t token_len, uint32_t request_id, struct wire_msg *out)
{
    if (challenge->type == WIRE_ERROR)
        return challenge->u.error.code;
    if (challenge->type != WIRE_AUTH_CHALLENGE)
        return ORBIT_EPROTO;
    if (challenge->u.challenge.version < WIRE_VERSION)
        return ORBIT_EVERSION;
    memset(out, 0, sizeof *out);
    out->type = WIRE_AUTH_RESPONSE;
    out->request_id = request_id;
    return wire_auth_respond(token, token_len, challenge->u.challenge.challenge,
                             out->u.response.mac);
}

static size_t
name_len(const char *s)
{
    return s ? strnlen(s, WIRE_MAX_NAME + 1) : 0;
}

void
wire_hello_init(struct wire_msg *m, uint32_t request_id, const char *name,
                const char *job_id, const char *traceparent)
{
    memset(m, 0, sizeof *m);
    m->type = WIRE_HELLO;
    m->request_id = request_id;
    m->u.hello.version = WIRE_VERSION;
    m->u.hello.client_name = name ? name : "";
    m->u.hello.client_name_len = name_len(name);
    m->u.hello.job_id = job_id ? job_id : "";
    m->u.hello.job_id_len = name_len(job_id);
    m->u.hello.traceparent = traceparent ? traceparent : "";
    m->u.hello.traceparent_len = name_len(traceparent);
}
