/*
 * Fuzz target: the HTTP API's query-string parser. Whatever it accepts
 * must decode to non-empty keys, unique, at most API_QUERY_MAX_PARAMS of
 * them, with no key or value longer than the input; whatever it refuses
 * must leave the query empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/api.h"
#include "orbit/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_accepted(const struct api_query *q, size_t size)
{
    if (q->n > API_QUERY_MAX_PARAMS)
        abort();
    for (size_t i = 0; i < q->n; i++) {
        const char *k = q->params[i].key, *v = q->params[i].value;
        if (!k || !v || !*k || strlen(k) > size || strlen(v) > size)
            abort();
        /* Keys are unique: the lookup finds this very pair. */
        if (api_query_get(q, k) != v)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct api_query q;
    int rc = api_query_parse((const char *)data, size, &q);
    if (rc == 0) {
        check_accepted(&q, size);
    } else {
        if (q.n != 0 || q.buf != NULL)
            abort();
        if (rc != ORBIT_EFORMAT && rc != ORBIT_ETOOBIG && rc != ORBIT_EEXIST &&
            rc != ORBIT_ENOMEM)
            abort();
    }
    api_query_release(&q);
    return 0;
}
