/* log: leveled one-line messages, handed to the system's sink (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

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
