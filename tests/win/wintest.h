/*
 * What the Windows test programs (tests/win/) share: CHECK and the
 * closing verdict, paths as wine sees them, child processes (this
 * program again, or another), this process's user, and mmapiod.exe
 * started on a fresh root and pipe of its own and stopped by its stop
 * event. Plain programs run under wine: criterion has no mingw build.
 */
#ifndef WINTEST_H
#define WINTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* __MINGW_PRINTF_FORMAT */
#include <windows.h>

/* The CHECKs that failed so far. */
extern int wt_failures;

/* Said after a failed CHECK's GetLastError: NULL, or the test's own
 * words (the library's tests set mmapio_last_error). */
extern const char *(*wt_detail)(void);

/* Prints a failed CHECK (file, line, the condition, GetLastError) and
 * counts it. */
void wt_fail(const char *file, int line, const char *cond);

#define CHECK(cond)                                   \
    do {                                              \
        if (!(cond))                                  \
            wt_fail(__FILE__, __LINE__, #cond);       \
    } while (0)

/* Prints "NAME: ok|FAIL (N failed checks)": the exit status, 1 when a
 * CHECK failed. */
int wt_report(const char *name);

/* Whether this runs under wine rather than Windows. */
bool wt_under_wine(void);

/* A Unix path ("/a/b", as meson gives it) as wine's Z: drive sees it
 * ("Z:\a\b"); a Windows path as it is. */
void wt_windows_path(char *out, size_t size, const char *path);

/* Whether a view of `size` bytes of section h with `access` can be made
 * (it is unmapped again). */
bool wt_can_map(HANDLE h, DWORD access, size_t size);

/* Whether h can be duplicated with `access` (the copy is closed). */
bool wt_can_dup(HANDLE h, DWORD access);

/* This process's user SID (kept until exit), or NULL. */
PSID wt_my_sid(void);

/* The last sub-authority of wt_my_sid() (a local account's RID), or
 * UINT32_MAX. */
uint32_t wt_my_rid(void);

/* Starts command line `cmd`. Standard input from `in`, output and errors
 * to `out` (NULL: this process's own; either given, handles marked
 * inheritable are inherited). */
bool wt_spawn(const char *cmd, HANDLE in, HANDLE out, DWORD flags, PROCESS_INFORMATION *pi);

/* Waits up to `ms` for pi's process and closes its handles: its exit
 * status, or -1 when it had not ended (it is killed). */
int wt_wait(PROCESS_INFORMATION *pi, DWORD ms);

/* Runs this program again with the arguments `fmt` makes, to its end:
 * its exit status, or -1. */
int wt_run_self(const char *fmt, ...) __attribute__((format(__MINGW_PRINTF_FORMAT, 1, 2)));

/* Makes a new empty folder %TEMP%\mmapio-TAG-PID-TICK, its path in out:
 * false (and why, on stderr) when it cannot. */
bool wt_temp_dir(char *out, size_t size, const char *tag);

/* mmapiod.exe under test. */
struct wt_daemon {
    char root[MAX_PATH];    /* its data root */
    char pipe[128];         /* its pipe, \\.\pipe\mmapio-TAG-PID-TICK */
    char cmd[3 * MAX_PATH]; /* the command line that started it */
    PROCESS_INFORMATION pi;
};

/* Starts daemon `exe` (a Unix or Windows path) on a pipe of its own,
 * named for `tag`, with data root `root` (NULL: a new one by
 * wt_temp_dir) and `args` after --socket and --root (or NULL); waits
 * until its pipe is up. False (and why, on stderr) when it could not
 * start or died first. */
bool wt_daemon_start(struct wt_daemon *d, const char *exe, const char *tag, const char *root,
                     const char *args);

/* Starts d's daemon again, as before (its pipe and root), once the
 * last one ended: whether its pipe came up. */
bool wt_daemon_restart(struct wt_daemon *d);

/* Sets the daemon's stop event (wine has no console here for
 * Ctrl-Break): whether it was there. */
bool wt_daemon_signal(const struct wt_daemon *d);

/* Waits a minute for the daemon to end: its exit status, or -1 (it is
 * killed). */
int wt_daemon_wait(struct wt_daemon *d);

/* Both: the stop event CHECKed to be there, then the exit status. */
int wt_daemon_stop(struct wt_daemon *d);

/* A client's end of pipe `name`, in message mode, opened for what the
 * daemon's DACL gives clients (GENERIC_WRITE would ask for
 * FILE_CREATE_PIPE_INSTANCE too, which it refuses) at
 * SECURITY_IMPERSONATION; NULL when it cannot be. */
HANDLE wt_pipe_open(const char *name);

/* The whole file (at most 1 MiB), NUL-ended, malloc'd; NULL if it
 * cannot be read. Its size in *n. */
char *wt_slurp(const char *path, size_t *n);

/* Removes folder `dir` and everything in it; links are removed, never
 * followed. */
void wt_remove_tree(const char *dir);

/* The performance counter in milliseconds (benchmark modes). */
double wt_now_ms(void);

/* Sorts n timings, smallest first (for their median and range). */
void wt_sort_ms(double *v, size_t n);

#endif
