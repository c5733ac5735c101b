/*
 * cliopt.c - command-line option matching shared by the programs.
 */
#include "cliopt.h"

#include <string.h>

int
cli_opt_matches(const char *arg, const char *name, const char **inline_val)
{
	size_t n = strlen(name);

	*inline_val = NULL;
	if (strncmp(arg, name, n) != 0)
		return 0;
	if (arg[n] == '\0')
		return 1;
	if (arg[n] == '=') {
		*inline_val = arg + n + 1;
		return 1;
	}
	return 0;
}
