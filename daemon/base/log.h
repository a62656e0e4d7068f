/*
 * log: one-line messages with a level, written by the system's sink
 * (logsink.h). Linux: stderr, prefixed "mmapiod: " and the level; under
 * systemd stderr goes to the journal, and the <N> prefix gives the
 * journal the priority when $JOURNAL_STREAM is set. Windows: the same on
 * stderr, or a log file with a UTC timestamp on each line
 * (base/windows/logfile.h).
 */
#ifndef MMAPIOD_LOG_H
#define MMAPIOD_LOG_H

enum log_level { LOG_LVL_ERR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_set_level(enum log_level max);
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A line a client can cause as often as it likes: at most one a second
 * per limiter (one per call site), the next one that goes telling how
 * many were left out. */
struct log_limit {
    long long at;             /* the second its last line went (0: none) */
    unsigned long long quiet; /* lines left out since */
};
void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
