/* log: leveled one-line messages, handed to the system's sink (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "logsink.h"

static enum log_level max_level = LOG_LVL_INFO;

void log_set_level(enum log_level max)
{
    max_level = max;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = {
        [LOG_LVL_ERR] = "error", [LOG_LVL_WARN] = "warning",
        [LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
    };
    char line[1024];
    va_list ap;

    if (lvl > max_level)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    logsink_line((int)lvl, names[lvl], line);
}

void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    long long now = (long long)time(NULL);

    if (lvl > max_level)
        return;
    if (l->at && now == l->at) {
        l->quiet++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (l->quiet)
        log_msg(lvl, "%s (%llu more like it unlogged)", line, l->quiet);
    else
        log_msg(lvl, "%s", line);
    l->at = now;
    l->quiet = 0;
}
