/*
 * orbit - the source-side command: copy, sync, dead letters, status, verify.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>

#include "orbit/star.h"
#include "orbit_cli.h"

static int
dispatch(const struct cli_opts *o, const char *self)
{
    const char *cmd = o->command;
    if (strcmp(cmd, "copy") == 0 || strcmp(cmd, "sync") == 0)
        return cli_cmd_transfer(o);
    if (strcmp(cmd, "dlq") == 0) {
        if (o->nsources != 1) {
            fprintf(stderr, "orbit: usage: orbit dlq list|retry|purge "
                            "[--job ID]\n");
            return ORBIT_EXIT_USAGE;
        }
        return cli_cmd_dlq(o, o->sources[0]);
    }
    if (strcmp(cmd, "status") == 0)
        return cli_cmd_status(o);
    if (strcmp(cmd, "verify") == 0)
        return cli_cmd_verify(o);
    if (strcmp(cmd, "demo") == 0)
        return cli_cmd_demo(o, self);
    if (strcmp(cmd, "serve") == 0)
        return cli_cmd_serve(o);
    if (strcmp(cmd, "help") == 0) {
        cli_usage(NULL, 0);
        return ORBIT_EXIT_OK;
    }
    fprintf(stderr, "orbit: unknown command '%s' (see orbit --help)\n", cmd);
    return ORBIT_EXIT_USAGE;
}

int
main(int argc, char **argv)
{
    struct cli_opts o;
    signal(SIGPIPE, SIG_IGN);
    star_raise_nofile(); /* a local destination is an in-process star */
    if (getenv("ORBIT_SERVE_CHILD"))
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a job of `orbit serve` */
    int rc = cli_parse_args(argc, argv, &o);
    if (rc == 1)
        return ORBIT_EXIT_OK;
    if (rc != 0)
        return ORBIT_EXIT_USAGE;
    return dispatch(&o, argv[0]);
}
