/*
 * walker_glob.c - the walker's pattern language: fnmatch(3) with
 * FNM_PATHNAME semantics plus "**", and the rsync-like rule of what a
 * pattern is matched against.
 */
#include <stdbool.h>
#include <string.h>

#include "orbit/walker.h"

/* Matches a bracket class at *pp against c; advances *pp past ']'.
 * Returns -1 when the class is unterminated (then '[' is a literal). */
static int
walker_glob_class(const char **pp, char c)
{
    const char *p = *pp + 1;
    bool neg = false, hit = false;
    if (*p == '!' || *p == '^') {
        neg = true;
        p++;
    }
    const char *first = p;
    while (*p && (*p != ']' || p == first)) {
        char lo = *p, hi = *p;
        if (lo == '\\' && p[1])
            lo = hi = *++p;
        if (p[1] == '-' && p[2] && p[2] != ']') {
            hi = p[2];
            p += 2;
        }
        if ((unsigned char)c >= (unsigned char)lo &&
            (unsigned char)c <= (unsigned char)hi)
            hit = true;
        p++;
    }
    if (*p != ']')
        return -1;
    *pp = p + 1;
    return hit != neg && c != '/';
}

static bool
walker_glob_rec(const char *p, const char *s, unsigned *budget)
{
    if (*budget == 0)
        return false;
    (*budget)--;
    for (;;) {
        switch (*p) {
        case '\0':
            return *s == '\0';
        case '*':
            if (p[1] == '*') {
                const char *rest = p + 2;
                while (*rest == '*')
                    rest++;
                if (*rest == '/' && walker_glob_rec(rest + 1, s, budget))
                    return true;
                for (const char *t = s;; t++) {
                    if (walker_glob_rec(rest, t, budget))
                        return true;
                    if (!*t)
                        return false;
                }
            }
            for (const char *t = s;; t++) {
                if (walker_glob_rec(p + 1, t, budget))
                    return true;
                if (!*t || *t == '/')
                    return false;
            }
        case '?':
            if (!*s || *s == '/')
                return false;
            break;
        case '[': {
            const char *q = p;
            int m = *s ? walker_glob_class(&q, *s) : 0;
            if (m == 0)
                return false;
            if (m == 1) {
                p = q;
                s++;
                continue;
            }
            if (*s != '[') /* unterminated: a literal '[' */
                return false;
            break;
        }
        case '\\':
            if (p[1])
                p++;
            /* fallthrough */
        default:
            if (*p != *s)
                return false;
            break;
        }
        p++;
        s++;
    }
}

bool
walker_glob_match(const char *pattern, const char *path)
{
    if (!pattern || !path)
        return false;
    /* The budget bounds backtracking on hostile patterns. */
    unsigned budget = 100000;
    return walker_glob_rec(pattern, path, &budget);
}

bool
walker_rule_matches(const char *pattern, const char *relpath, bool is_dir)
{
    char pat[4096];
    size_t n = pattern ? strlen(pattern) : 0;
    if (n == 0 || n >= sizeof pat || !relpath)
        return false;
    memcpy(pat, pattern, n + 1);
    if (pat[n - 1] == '/') {
        if (!is_dir)
            return false;
        pat[--n] = '\0';
        if (n == 0)
            return false;
    }
    const char *p = pat;
    bool whole = strchr(p, '/') != NULL || strstr(p, "**") != NULL;
    while (*p == '/')
        p++;
    if (whole)
        return walker_glob_match(p, relpath);
    const char *base = strrchr(relpath, '/');
    return walker_glob_match(p, base ? base + 1 : relpath);
}
