// baoctl's exit codes, the same for every command (and listed in `baoctl --help`):
// 0 success; 1 a runtime failure (a device that cannot be opened, a daemon that is not running,
// a failed shutdown); 2 a usage or config error (unknown option, missing argument, invalid or
// unreadable config): fix the command line or the file and run again.

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export const EXIT_CODES_HELP = 'Exit codes: 0 success, 1 runtime failure, 2 usage or config error.';
