/* host on Windows: no user names for the RIDs the daemon reports as uids
 * (the number is shown), localtime_s, the UTC offset
 * computed (strftime's %z is the zone's name there), and the C runtime's signal() for ^C
 * (a console control event). */
#include "host.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

char *host_user_name(uint32_t uid)
{
    return NULL;
}

bool host_localtime(time_t t, struct tm *tm)
{
    return localtime_s(tm, &t) == 0;
}

/* The local time read as if it were UTC, less the instant itself. */
void host_zone(time_t t, const struct tm *tm, char *out, size_t size)
{
    struct tm copy = *tm;
    long off = (long)(_mkgmtime(&copy) - t) / 60;
    char sign = off < 0 ? '-' : '+';
    off = off < 0 ? -off : off;
    snprintf(out, size, "%c%02ld%02ld", sign, off / 60 % 100, off % 60);
}

void host_on_stop(void (*on_stop)(int))
{
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
}
