/*
 * Dead letters end to end: a source file that cannot be read and a
 * directory that cannot be listed become dead letters with their reason,
 * the run ends with exit 3, and every other file arrives intact.
 *
 * The unreadable entries are mode 000; root reads anything, so as root
 * orbit runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_dlq, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

static void
make_bad_tree(struct e2e_tree *tree)
{
    e2e_make_tree(t->src, 40, 2u << 20, tree);
    e2e_add_unreadable(t);
}

static void
others_intact(void)
{
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, 0, "bad"), 0,
                 "files other than the dead letters differ");
    char a[E2E_PATH * 2], b[E2E_PATH * 2];
    snprintf(a, sizeof a, "%s/bad/ok.txt", t->src);
    snprintf(b, sizeof b, "%s/bad/ok.txt", t->dst);
    size_t na = 0, nb = 0;
    uint8_t *x = e2e_read_all(a, &na), *y = e2e_read_all(b, &nb);
    cr_assert(na == nb && memcmp(x, y, na) == 0, "bad/ok.txt differs");
    free(x);
    free(y);
    snprintf(b, sizeof b, "%s/bad/secret.bin", t->dst);
    cr_assert_not(e2e_exists(b), "an unreadable file appeared at DST");
}

Test(cli_dlq, unreadable_entries_are_dead_letters_and_the_rest_arrives)
{
    struct e2e_tree tree;
    make_bad_tree(&tree);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", t->src_slash, t->dst);
    cr_assert_eq(code, 3, "exit %d (want 3)\nstdout:\n%s\nstderr:\n%s", code,
                 p.out, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "no report:\n%s", p.out);
    cr_expect_eq(r.files_dead, 2, "%s", p.out);
    const char *dl = strstr(p.out, "dead letters:\n");
    cr_assert_not_null(dl, "the report lists no dead letters:\n%s", p.out);
    const char *line = strstr(dl, "bad/secret.bin");
    cr_assert_not_null(line, "bad/secret.bin not in the report:\n%s", p.out);
    const char *eol = strchr(line, '\n');
    cr_expect_not_null(strstr(line, "Permission denied"),
                       "no reason for bad/secret.bin:\n%s", p.out);
    cr_expect(strstr(line, "Permission denied") < eol,
              "the reason is not on the line of bad/secret.bin:\n%s", p.out);
    cr_expect_not_null(strstr(dl, "bad/locked"),
                       "bad/locked not in the report:\n%s", p.out);
    cr_expect_not_null(strstr(p.out, "orbit dlq retry"), "%s", p.out);
    cr_expect_not_null(strstr(p.err, "bad/secret.bin"), "%s", p.err);
    e2e_proc_free(&p);
    others_intact();
}

/* The same run with --json: one chunk_dead_lettered event per dead letter,
 * with its reason and error. */
Test(cli_dlq, json_names_each_dead_letter_with_its_reason)
{
    struct e2e_tree tree;
    make_bad_tree(&tree);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--json", t->src_slash, t->dst);
    cr_assert_eq(code, 3, "exit %d\n%s", code, p.err);
    unsigned dead = 0;
    bool secret = false;
    for (const char *l = p.out; *l;) {
        const char *nl = strchr(l, '\n');
        cr_assert_not_null(nl);
        json_t *ev = json_loadb(l, (size_t)(nl - l), 0, NULL);
        cr_assert_not_null(ev, "not JSON: %.*s", (int)(nl - l), l);
        const char *type = json_string_value(json_object_get(ev, "event_type"));
        const char *path = json_string_value(json_object_get(ev, "dest_path"));
        if (type && !strcmp(type, "chunk_dead_lettered")) {
            dead++;
            json_t *ctx = json_object_get(ev, "context");
            const char *reason =
                json_string_value(json_object_get(ctx, "reason"));
            const char *err = json_string_value(json_object_get(ev, "error"));
            cr_expect_not_null(reason, "no reason: %.*s", (int)(nl - l), l);
            cr_expect_not_null(err, "no error: %.*s", (int)(nl - l), l);
            if (path && !strcmp(path, "bad/secret.bin")) {
                secret = true;
                cr_expect_str_eq(reason, "permanent_error");
                cr_expect_not_null(strstr(err, "Permission denied"), "%s", err);
            }
        }
        json_decref(ev);
        l = nl + 1;
    }
    cr_expect_eq(dead, 2, "%u dead-letter events:\n%s", dead, p.out);
    cr_expect(secret, "no dead-letter event for bad/secret.bin:\n%s", p.out);
    e2e_proc_free(&p);
    others_intact();
}
