/*
 * host: what mmapioctl asks of the system beyond the library — a user's
 * name, the local time, stopping on ^C. One implementation per platform
 * (cli/platform/<system>/host.c).
 */
#ifndef MMAPIOCTL_HOST_H
#define MMAPIOCTL_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The name of user uid (malloc'ed), or NULL when it has none we know. */
char *host_user_name(uint32_t uid);

/* *tm for t in local time: false when it cannot be told. */
bool host_localtime(time_t t, struct tm *tm);

/* Calls on_stop (from a signal handler: it may only set a flag) at ^C or
 * a request to terminate; a wait in the library returns early. */
void host_on_stop(void (*on_stop)(int));

#endif
