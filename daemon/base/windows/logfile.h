/*
 * logfile: the Windows daemon's log file (README, "Windows"). A service
 * has no stderr: with --log FILE, or as a service by default in
 * ROOT\.mmapiod\mmapiod.log, log.c's lines go to a file instead, each
 * with a UTC timestamp and its level, e.g.
 *   2026-12-03T17:20:01.123Z warning: a client turned away: ...
 * A line that would take the file past its limit first moves it to
 * FILE.1 (replacing the previous one) and starts afresh, so the log
 * holds at most twice the limit. Implemented by base/windows/logsink.c.
 */
#ifndef MMAPIOD_LOGFILE_H
#define MMAPIOD_LOGFILE_H

#include <stdbool.h>
#include <stdint.h>

#define LOGFILE_MIN_BYTES 4096u
#define LOGFILE_DEFAULT_BYTES (16u << 20)
#define LOGFILE_NAME "mmapiod.log" /* in the root's .mmapiod, by default */

/*
 * From now on, lines go to `path` (UTF-8), appended, rotated at
 * max_bytes (>= LOGFILE_MIN_BYTES). A file it makes (the log, or after a
 * rotation) has a DACL of its own: this process's account and SYSTEM
 * full control, Administrators read. `private_dir`: the file's folder is
 * made, or its DACL reset, the same way (not inherited), and refused if
 * it is a link or junction. 0, or -errno with stderr still the sink.
 */
int logfile_open(const char *path, uint64_t max_bytes, bool private_dir);

/* Back to stderr; the file closed. */
void logfile_close(void);

#endif
