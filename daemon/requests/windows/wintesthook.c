/* wintesthook (Windows): the tests' hold on a worker (wintesthook.h). */
#include "wintesthook.h"

#ifdef MMAPIOD_TEST_HOOKS
#include <stdio.h>
#include <string.h>
#include <windows.h>

void test_hold(const char *var, const char *path)
{
    char want[128], name[192];
    DWORD n = GetEnvironmentVariableA(var, want, sizeof(want));
    if (!n || n >= sizeof(want) || strcmp(want, path))
        return;
    snprintf(name, sizeof(name), "Local\\mmapiod-test-release-%s", path);
    HANDLE rel = OpenEventA(SYNCHRONIZE, FALSE, name);
    snprintf(name, sizeof(name), "Local\\mmapiod-test-entered-%s", path);
    HANDLE ent = OpenSemaphoreA(SEMAPHORE_MODIFY_STATE, FALSE, name);
    if (ent)
        ReleaseSemaphore(ent, 1, NULL);
    if (rel)
        WaitForSingleObject(rel, 60000);
    if (ent)
        CloseHandle(ent);
    if (rel)
        CloseHandle(rel);
}
#else
void test_hold(const char *var, const char *path)
{
    (void)var;
    (void)path;
}
#endif
