/*
 * The library (libmmapio.dll) against the real daemon (mmapiod.exe),
 * under wine: built once both are in the tree (tests/win/meson.build).
 * Two processes share an anonymous and a file mapping through the public
 * API; a read-only map refuses writes; a deleted name is gone.
 *
 *   test_interop_win DAEMON.exe
 *   test_interop_win child PIPE      (the second process)
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"

static int failures;

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                   \
        }                                                                 \
    } while (0)

static int child(const char *pipe)
{
    mmapio_client *c = NULL;
    if (mmapio_connect(pipe, &c))
        return 2;
    mmapio_map *a = NULL, *f = NULL;
    char buf[8] = "";
    CHECK(mmapio_anon_open(c, "interop", &a) == MMAPIO_OK);
    CHECK(a && mmapio_read_into(a, 0, buf, 6) == MMAPIO_OK && !memcmp(buf, "anon!", 6));
    CHECK(mmapio_open_ro(c, "interop.dat", &f) == MMAPIO_OK);
    CHECK(f && mmapio_read_into(f, 0, buf, 6) == MMAPIO_OK && !memcmp(buf, "file!", 6));
    CHECK(f && mmapio_update_region(f, 0, "x", 1) != MMAPIO_OK); /* read-only */
    mmapio_unmap(a);
    mmapio_unmap(f);
    mmapio_disconnect(c);
    return failures ? 3 : 0;
}

static int run_child(const char *pipe)
{
    char self[MAX_PATH], cmd[2 * MAX_PATH];
    GetModuleFileNameA(NULL, self, sizeof(self));
    snprintf(cmd, sizeof(cmd), "\"%s\" child %s", self, pipe);
    STARTUPINFOA si = {.cb = sizeof(si)};
    PROCESS_INFORMATION pi;
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
        return -1;
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD status = 99;
    GetExitCodeProcess(pi.hProcess, &status);
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    return (int)status;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "child"))
        return child(argv[2]);
    if (argc != 2)
        return 2;
    char daemon[MAX_PATH], tmp[MAX_PATH], root[MAX_PATH], pipe[128], cmd[3 * MAX_PATH];
    snprintf(daemon, sizeof(daemon), "%s%s", argv[1][0] == '/' ? "Z:" : "", argv[1]);
    for (char *p = daemon; *p; p++)
        if (*p == '/')
            *p = '\\';
    GetTempPathA(sizeof(tmp), tmp);
    DWORD id = GetCurrentProcessId() ^ GetTickCount();
    snprintf(root, sizeof(root), "%smmapio-interop-%lu", tmp, (unsigned long)id);
    snprintf(pipe, sizeof(pipe), "\\\\.\\pipe\\mmapio-interop-%lu", (unsigned long)id);
    CHECK(CreateDirectoryA(root, NULL));
    snprintf(cmd, sizeof(cmd), "\"%s\" --socket %s --root \"%s\"", daemon, pipe, root);
    STARTUPINFOA si = {.cb = sizeof(si)};
    PROCESS_INFORMATION pi;
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
        return 1;
    bool up = false;
    while (!up && WaitForSingleObject(pi.hProcess, 50) == WAIT_TIMEOUT)
        up = WaitNamedPipeA(pipe, 0) || GetLastError() == ERROR_SEM_TIMEOUT;
    CHECK(up);

    mmapio_client *c = NULL;
    CHECK(up && mmapio_connect(pipe, &c) == MMAPIO_OK);
    if (c) {
        CHECK(mmapio_ping(c) == MMAPIO_OK);
        mmapio_map *a = NULL, *f = NULL, *g = NULL;
        CHECK(mmapio_anon_create(c, "interop", 4096, &a) == MMAPIO_OK);
        CHECK(a && mmapio_update_region(a, 0, "anon!", 6) == MMAPIO_OK);
        CHECK(mmapio_create_rw(c, "interop.dat", 4096, &f) == MMAPIO_OK);
        CHECK(f && mmapio_update_region(f, 0, "file!", 6) == MMAPIO_OK);
        CHECK(f && mmapio_flush(f) == MMAPIO_OK);
        CHECK(run_child(pipe) == 0);
        CHECK(mmapio_unmap(a) == MMAPIO_OK);
        CHECK(mmapio_unmap(f) == MMAPIO_OK);
        CHECK(mmapio_anon_delete(c, "interop") == MMAPIO_OK);
        CHECK(mmapio_anon_open(c, "interop", &g) == MMAPIO_E_NOT_FOUND);
        CHECK(mmapio_delete(c, "interop.dat") == MMAPIO_OK);
        mmapio_disconnect(c);
    }

    char ev_name[200];
    snprintf(ev_name, sizeof(ev_name), "Local\\mmapiod-stop-%s", pipe + 9);
    HANDLE ev = OpenEventA(EVENT_MODIFY_STATE, FALSE, ev_name);
    CHECK(ev && SetEvent(ev));
    if (ev)
        CloseHandle(ev);
    if (WaitForSingleObject(pi.hProcess, 60000) != WAIT_OBJECT_0) {
        TerminateProcess(pi.hProcess, 1);
        failures++;
    }
    CloseHandle(pi.hProcess);
    CloseHandle(pi.hThread);
    RemoveDirectoryA(root);
    printf("%s (%d failures)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
