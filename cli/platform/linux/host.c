/* host on Linux: the passwd database, localtime_r, sigaction. */
#include "host.h"

#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

char *host_user_name(uint32_t uid)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) || !res)
        return NULL;
    return strdup(res->pw_name);
}

bool host_localtime(time_t t, struct tm *tm)
{
    return localtime_r(&t, tm) != NULL;
}

void host_zone(time_t t, const struct tm *tm, char *out, size_t size)
{
    (void)t;
    if (!strftime(out, size, "%z", tm) && size)
        out[0] = '\0';
}

/* Without SA_RESTART: the dispatch's wait ends at the signal. */
void host_on_stop(void (*on_stop)(int))
{
    struct sigaction sa = { .sa_handler = on_stop };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
