/* host on Windows: no user names for the RIDs the daemon reports as uids
 * (the number is shown), localtime_s, and the C runtime's signal() for ^C
 * (a console control event). */
#include "host.h"

#include <signal.h>
#include <stdlib.h>

char *host_user_name(uint32_t uid)
{
    return NULL;
}

bool host_localtime(time_t t, struct tm *tm)
{
    return localtime_s(tm, &t) == 0;
}

void host_on_stop(void (*on_stop)(int))
{
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
}
