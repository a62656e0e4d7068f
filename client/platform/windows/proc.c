/* proc on Windows: handles, its image name (its uid is the daemon's to say). A
 * handle's value cannot be chosen (proc_replace is -ENOTSUP) and a
 * section has no file identity (proc_identify is -ENOTSUP): after a
 * daemon's restart a file mapping is re-attached by the identity the
 * daemon named at its grant (map.c), keeping its section handle. */
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

void proc_close(int h)
{
    if (h > 0)
        CloseHandle((HANDLE)(intptr_t)h);
}

int proc_replace(int fresh, int at)
{
    return -ENOTSUP;
}

int proc_identify(int h, struct proc_object *obj)
{
    BY_HANDLE_FILE_INFORMATION fi;
    if (!GetFileInformationByHandle((HANDLE)(intptr_t)h, &fi))
        return -ENOTSUP;
    obj->dev = fi.dwVolumeSerialNumber;
    obj->ino = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    return 0;
}

void proc_make_blocking(int h)
{
}

const char *proc_getenv(const char *name)
{
    return getenv(name);
}

static char name[MAX_PATH];
static pthread_once_t name_once = PTHREAD_ONCE_INIT;

static void find_name(void)
{
    char path[MAX_PATH];
    DWORD n = GetModuleFileNameA(NULL, path, sizeof(path));
    if (n == 0 || n >= sizeof(path)) {
        strcpy(name, "?");
        return;
    }
    const char *base = path;
    for (const char *p = path; *p; p++)
        if (*p == '\\' || *p == '/')
            base = p + 1;
    snprintf(name, sizeof(name), "%s", base);
    char *dot = strrchr(name, '.');
    if (dot && !_stricmp(dot, ".exe"))
        *dot = '\0';
}

const char *proc_name(void)
{
    pthread_once(&name_once, find_name);
    return name;
}

/* The Windows daemon numbers SIDs in the order it meets them (a local
 * account's RID, any other SID from 0x80000000: daemon/platform/windows/
 * sidmap.h), so the number is learned from its hello reply; until then
 * none, which matches no owner. */
uint32_t proc_uid(void)
{
    return UINT32_MAX;
}

/* No process-wide barrier the daemon could issue: the write ring's cells
 * are extended by compare-and-swap (wring.h). */
bool proc_fence_register(void)
{
    return false;
}
