/*
 * prov_json.c - one provenance event to and from one JSON object (jansson).
 */
#include "orbit/provenance.h"

#include "orbit/error.h"

#include <jansson.h>
#include <string.h>

/* Steals v; a NULL v (failed constructor) is an allocation failure. */
static int
put(json_t *obj, const char *key, json_t *v)
{
    if (!v || json_object_set_new(obj, key, v) != 0)
        return ORBIT_ENOMEM;
    return 0;
}

static int
put_context(json_t *obj, const struct prov_event *ev)
{
    const size_t n = prov_event_context_count(ev);
    if (n == 0)
        return 0;
    json_t *ctx = json_object();
    if (!ctx)
        return ORBIT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        (void)prov_event_context_at(ev, i, &k, &v);
        if (put(ctx, k, json_string(v)) < 0) {
            json_decref(ctx);
            return ORBIT_ENOMEM;
        }
    }
    return put(obj, "context", ctx);
}

static int
put_all(json_t *obj, const struct prov_event *ev)
{
    char ts[PROV_TS_LEN + 1];
    int rc = prov_ts_format(prov_event_ts(ev), ts, sizeof ts);
    if (rc < 0)
        return rc;
    rc = put(obj, "ts", json_string(ts));
    if (rc == 0)
        rc = put(obj, "event_type",
                 json_string(prov_event_type_str(prov_event_type(ev))));
    for (unsigned f = 0; f < PROV_FIELD_COUNT && rc == 0; f++) {
        const char *v = prov_event_get(ev, (enum prov_field)f);
        if (v)
            rc = put(obj, prov_field_name((enum prov_field)f), json_string(v));
    }
    uint64_t n;
    if (rc == 0 && prov_event_bytes(ev, &n))
        rc = put(obj, "bytes", json_integer((json_int_t)n));
    if (rc == 0 && prov_event_duration_ms(ev, &n))
        rc = put(obj, "duration_ms", json_integer((json_int_t)n));
    if (rc == 0)
        rc = put_context(obj, ev);
    return rc;
}

int
prov_event_to_json(const struct prov_event *ev, char **out, size_t *len)
{
    if (!ev || !out)
        return ORBIT_EINVAL;
    json_t *obj = json_object();
    if (!obj)
        return ORBIT_ENOMEM;
    int rc = put_all(obj, ev);
    if (rc == 0) {
        /* Compact output never contains a raw newline: one line per event. */
        char *text = json_dumps(obj, JSON_COMPACT);
        if (!text) {
            rc = ORBIT_ENOMEM;
        } else {
            *out = text;
            if (len)
                *len = strlen(text);
        }
    }
    json_decref(obj);
    return rc;
}

/* ---- decoding ---- */

/* A setter's failure on input data is the input's fault. */
static int
as_format(int rc)
{
    return rc == ORBIT_ENOMEM ? rc : (rc < 0 ? ORBIT_EFORMAT : 0);
}

static int
get_count(json_t *obj, const char *key, bool *present, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return ORBIT_EFORMAT;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int
get_context(json_t *obj, struct prov_event *ev)
{
    json_t *ctx = json_object_get(obj, "context");
    if (!ctx)
        return 0;
    if (!json_is_object(ctx) || json_object_size(ctx) > PROV_MAX_CONTEXT)
        return ORBIT_EFORMAT;
    const char *k;
    json_t *v;
    json_object_foreach(ctx, k, v)
    {
        if (!json_is_string(v))
            return ORBIT_EFORMAT;
        const int rc = prov_event_context_set(ev, k, json_string_value(v));
        if (rc < 0)
            return as_format(rc);
    }
    return 0;
}

static int
get_fields(json_t *obj, struct prov_event *ev)
{
    for (unsigned f = 0; f < PROV_FIELD_COUNT; f++) {
        json_t *v = json_object_get(obj, prov_field_name((enum prov_field)f));
        if (!v)
            continue;
        if (!json_is_string(v))
            return ORBIT_EFORMAT;
        const int rc =
            prov_event_set(ev, (enum prov_field)f, json_string_value(v));
        if (rc < 0)
            return as_format(rc);
    }
    bool present;
    uint64_t n = 0;
    int rc = get_count(obj, "bytes", &present, &n);
    if (rc == 0 && present)
        rc = as_format(prov_event_set_bytes(ev, n));
    if (rc == 0)
        rc = get_count(obj, "duration_ms", &present, &n);
    if (rc == 0 && present)
        rc = as_format(prov_event_set_duration_ms(ev, n));
    if (rc == 0)
        rc = get_context(obj, ev);
    return rc;
}

/* The mandatory ts and event_type of obj. */
static int
get_head(json_t *obj, enum prov_event_type *type, int64_t *ts)
{
    const char *ts_s = json_string_value(json_object_get(obj, "ts"));
    const char *type_s = json_string_value(json_object_get(obj, "event_type"));
    if (!ts_s || !type_s || prov_ts_parse(ts_s, ts) < 0 ||
        prov_event_type_parse(type_s, type) < 0)
        return ORBIT_EFORMAT;
    return 0;
}

int
prov_event_from_json(const char *text, size_t len, struct prov_event **out)
{
    if (!text || !out)
        return ORBIT_EINVAL;
    struct prov_event *ev = NULL;
    json_error_t err;
    json_t *obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    int rc = json_is_object(obj) ? 0 : ORBIT_EFORMAT;
    if (!obj && json_error_code(&err) == json_error_out_of_memory)
        rc = ORBIT_ENOMEM;
    enum prov_event_type type = PROV_CHUNK_CREATED;
    int64_t ts = 0;
    if (rc == 0)
        rc = get_head(obj, &type, &ts);
    if (rc == 0)
        rc = prov_event_new(type, NULL, &ev);
    if (rc == 0) {
        prov_event_set_ts(ev, ts);
        rc = get_fields(obj, ev);
    }
    json_decref(obj);
    if (rc < 0) {
        prov_event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}
