/*
 * token_cmd.h — `rtmd token`: prints an RTM token (006 or 007), for demos,
 * tests and operators.
 *
 *   rtmd token --appid A --certificate C --uid U [--expire S] [--v 006|007]
 *   rtmd token --config FILE --app A --uid U [...]
 *
 * With --config the certificate is app A's in FILE (read with the
 * environment, as rtmd reads it); --app is --appid's other name.
 * Options also take the form --name=value. --expire is 0..86400 seconds
 * (default 86400; 0 = the full 24 h). 007 (default): issue_ts = now,
 * expire = S. 006: ts = now + 24 h and privilege 1000 = now + S (0 when S is 0).
 */
#ifndef RTMD_CLI_TOKEN_CMD_H
#define RTMD_CLI_TOKEN_CMD_H

/* argv[0] is "token". Prints the token and a newline on stdout and returns 0;
 * `--help` prints usage and returns 0; bad usage, a bad config file, or an
 * app that is not in it or has no certificate prints a message on stderr and
 * returns 2; an internal failure returns 1. */
int rtmd_cli_token(int argc, char **argv);

#endif
