/*
 * host: what mmapioctl asks of the system beyond the library — a user's
 * name, the local time, stopping on ^C. One implementation per platform
 * (cli/platform/<system>/host.c).
 */
#ifndef MMAPIOCTL_HOST_H
#define MMAPIOCTL_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The name of user uid (malloc'ed), or NULL when it has none we know. */
char *host_user_name(uint32_t uid);

/* *tm for t in local time: false when it cannot be told. */
bool host_localtime(time_t t, struct tm *tm);

/* The offset of tm (t in local time) from UTC as ISO 8601's "+hhmm",
 * into out (at least 6 bytes): strftime's %z, which Windows' C runtime
 * spells as the zone's name. */
void host_zone(time_t t, const struct tm *tm, char *out, size_t size);

/* Calls on_stop (from a signal handler: it may only set a flag) at ^C or
 * a request to terminate; a wait in the library returns early. */
void host_on_stop(void (*on_stop)(int));

#endif
