/*
 * logsink: where log.c's lines go, one file per system chosen by meson
 * (base/<system>/logsink.c). Linux: stderr, which systemd hands to the
 * journal. Windows: stderr, or the log file logfile_open named
 * (base/windows/logfile.h).
 */
#ifndef MMAPIOD_LOGSINK_H
#define MMAPIOD_LOGSINK_H

/* One formatted message (no newline) of syslog priority `prio` (log.h's
 * LOG_LVL_*), named `level` ("error", "warning", "info", "debug"). Any
 * thread. */
void logsink_line(int prio, const char *level, const char *msg);

#endif
