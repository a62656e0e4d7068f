/* logsink on Linux: stderr; under systemd ($JOURNAL_STREAM) with the
 * <N> prefix that gives the journal the priority. */
#include "logsink.h"

#include <stdio.h>
#include <stdlib.h>

void logsink_line(int prio, const char *level, const char *msg)
{
    if (getenv("JOURNAL_STREAM"))
        fprintf(stderr, "<%d>%s\n", prio, msg);
    else
        fprintf(stderr, "mmapiod: %s: %s\n", level, msg);
}
