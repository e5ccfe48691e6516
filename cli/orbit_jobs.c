/*
 * orbit_jobs.c - `orbit dlq` and `orbit status`: read the job journal.
 */
#include <stdio.h>

#include "orbit_cli.h"

int
cli_cmd_dlq(const struct cli_opts *o, const char *action)
{
    (void)o;
    (void)action;
    fprintf(stderr, "orbit: dlq: the job journal is not built into this "
                    "version yet; dead letters are listed in each run's "
                    "report\n");
    return ORBIT_EXIT_FATAL;
}

int
cli_cmd_status(const struct cli_opts *o)
{
    (void)o;
    fprintf(stderr, "orbit: status: the job journal is not built into this "
                    "version yet\n");
    return ORBIT_EXIT_FATAL;
}
