/*
 * orbit_via.c - `orbit copy|sync ... --via http://HOST:PORT`: hand the job
 * to a running `orbit serve` (POST /api/jobs) instead of running it here.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "orbit/error.h"
#include "orbit_cli.h"

#define VIA_RESPONSE_MAX 65536

static int
connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        struct timeval tv = {30, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

static int
send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ORBIT_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* POST body to http://host:port/path; *status and the response body. */
static int
http_post(const char *host, const char *port, const char *path,
          const char *body, int *status, char *resp, size_t cap)
{
    int fd = connect_to(host, port);
    if (fd < 0)
        return ORBIT_ECONNECT;
    const char *token = getenv("ORBIT_API_TOKEN");
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n"
                      "%s%s%s\r\n",
                      path, host, port, strlen(body),
                      token ? "Authorization: Bearer " : "", token ? token : "",
                      token ? "\r\n" : "");
    int rc = (hn > 0 && (size_t)hn < sizeof head) ? 0 : ORBIT_EINVAL;
    if (rc == 0)
        rc = send_all(fd, head, (size_t)hn);
    if (rc == 0)
        rc = send_all(fd, body, strlen(body));
    size_t len = 0;
    while (rc == 0 && len + 1 < cap) {
        ssize_t n = recv(fd, resp + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = ORBIT_EIO;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    resp[len] = '\0';
    if (rc == 0 && sscanf(resp, "HTTP/1.%*d %d", status) != 1)
        rc = ORBIT_EPROTO;
    return rc;
}

/* The control plane runs elsewhere: relative paths are made absolute here
 * (a trailing '/' kept, it means "the contents of"). */
static json_t *
abs_path(const char *p)
{
    char cwd[4096], buf[8192];
    if (p[0] == '/' || strncmp(p, "star://", 7) == 0 ||
        !getcwd(cwd, sizeof cwd))
        return json_string(p);
    snprintf(buf, sizeof buf, "%s/%s", cwd, p);
    return json_string(buf);
}

static json_t *
job_body(const struct cli_opts *o, size_t nsrc)
{
    json_t *srcs = json_array();
    json_t *opts = json_object();
    for (size_t i = 0; i < nsrc; i++)
        json_array_append_new(srcs, abs_path(o->sources[i]));
    if (o->delete_extraneous)
        json_object_set_new(opts, "delete", json_true());
    if (o->checksum)
        json_object_set_new(opts, "checksum", json_true());
    json_t *inc = json_array(), *exc = json_array(), *to = json_array();
    for (size_t i = 0; i < o->nincludes; i++)
        json_array_append_new(inc, json_string(o->includes[i]));
    for (size_t i = 0; i < o->nexcludes; i++)
        json_array_append_new(exc, json_string(o->excludes[i]));
    for (size_t i = 0; i < o->nextra_dests; i++)
        json_array_append_new(to, json_string(o->extra_dests[i]));
    json_object_set_new(opts, "include", inc);
    json_object_set_new(opts, "exclude", exc);
    json_object_set_new(opts, "to", to);
    if (o->token_file)
        json_object_set_new(opts, "token_file", abs_path(o->token_file));
    const char *const texts[][2] = {
        {"compress", o->compress_arg},
        {"bwlimit", o->bwlimit_arg},
        {"retries", o->retries_arg},
        {"jobs", o->jobs_arg},
        {"chunk_size", o->chunk_arg},
        {"prioritize", o->prioritize},
        {"reconnect_wait", o->reconnect_wait_arg},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (texts[i][1])
            json_object_set_new(opts, texts[i][0], json_string(texts[i][1]));
    return json_pack("{s:s, s:o, s:o, s:o}", "kind", o->command, "sources",
                     srcs, "destination", abs_path(o->sources[nsrc]), "options",
                     opts);
}

/* Parse http://HOST:PORT[/] into host and port. */
static int
parse_via(const char *url, char *host, size_t hostcap, char *port,
          size_t portcap)
{
    if (strncmp(url, "http://", 7) != 0)
        return ORBIT_EINVAL;
    char hp[300];
    snprintf(hp, sizeof hp, "%s", url + 7);
    char *slash = strchr(hp, '/');
    if (slash)
        *slash = '\0';
    uint16_t p = 0;
    if (cli_parse_hostport(hp, host, hostcap, &p) != 0 || p == 0)
        return ORBIT_EINVAL;
    snprintf(port, portcap, "%u", (unsigned)p);
    return 0;
}

int
cli_submit_via(const struct cli_opts *o, size_t nsrc)
{
    char host[256], port[8];
    if (parse_via(o->via, host, sizeof host, port, sizeof port) != 0) {
        fprintf(stderr, "orbit: --via wants http://HOST:PORT, not '%s'\n",
                o->via);
        return ORBIT_EXIT_USAGE;
    }
    json_t *body = job_body(o, nsrc);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    char *resp = malloc(VIA_RESPONSE_MAX);
    int status = 0;
    int rc = text && resp ? http_post(host, port, "/api/jobs", text, &status,
                                      resp, VIA_RESPONSE_MAX)
                          : ORBIT_ENOMEM;
    free(text);
    int code = ORBIT_EXIT_FATAL;
    const char *json = resp ? strstr(resp, "\r\n\r\n") : NULL;
    json_t *reply = json ? json_loads(json + 4, 0, NULL) : NULL;
    json_t *id = json_object_get(reply, "id");
    if (rc != 0) {
        fprintf(stderr, "orbit: cannot submit to %s: %s\n", o->via,
                orbit_strerror(rc));
    } else if (status / 100 != 2 || !json_is_string(id)) {
        json_t *err = json_object_get(reply, "detail");
        fprintf(stderr, "orbit: %s refused the job (HTTP %d)%s%s\n", o->via,
                status, json_is_string(err) ? ": " : "",
                json_is_string(err) ? json_string_value(err) : "");
        code = status == 400 ? ORBIT_EXIT_USAGE : ORBIT_EXIT_FATAL;
    } else {
        printf("submitted job %s to %s (see GET /api/jobs/%s)\n",
               json_string_value(id), o->via, json_string_value(id));
        code = ORBIT_EXIT_OK;
    }
    json_decref(reply);
    free(resp);
    return code;
}
