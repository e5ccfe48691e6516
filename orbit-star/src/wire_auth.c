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
