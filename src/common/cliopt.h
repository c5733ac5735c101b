/*
 * cliopt.h - command-line option matching shared by the programs.
 */
#ifndef WSE_CLIOPT_H
#define WSE_CLIOPT_H

/*
 * 1 when arg is the option name, as "--name" or "--name=value"; then
 * *inline_val points at the value after '=' (or is NULL).  0 otherwise.
 */
int cli_opt_matches(const char *arg, const char *name,
    const char **inline_val);

#endif
