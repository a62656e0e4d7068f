/* What the Windows test programs share (wintest.h). */
#include "wintest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int wt_failures;
const char *(*wt_detail)(void);

void wt_fail(const char *file, int line, const char *cond)
{
    DWORD err = GetLastError(); /* before anything here sets it */
    const char *more = wt_detail ? wt_detail() : NULL;
    if (more && !*more)
        more = NULL;
    fprintf(stderr, "%s:%d: CHECK failed: %s (GetLastError %lu%s%s)\n", file, line, cond,
            (unsigned long)err, more ? "; " : "", more ? more : "");
    wt_failures++;
}

int wt_report(const char *name)
{
    printf("%s: %s (%d failed checks)\n", name, wt_failures ? "FAIL" : "ok", wt_failures);
    return wt_failures ? 1 : 0;
}

bool wt_under_wine(void)
{
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    return nt && GetProcAddress(nt, "wine_get_version") != NULL;
}

void wt_windows_path(char *out, size_t size, const char *path)
{
    snprintf(out, size, "%s%s", path[0] == '/' ? "Z:" : "", path);
    for (char *p = out; *p; p++)
        if (*p == '/')
            *p = '\\';
}

bool wt_can_map(HANDLE h, DWORD access, size_t size)
{
    void *p = MapViewOfFile(h, access, 0, 0, size);
    if (p)
        UnmapViewOfFile(p);
    return p != NULL;
}

bool wt_can_dup(HANDLE h, DWORD access)
{
    HANDLE out = NULL;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &out, access, FALSE, 0))
        return false;
    CloseHandle(out);
    return true;
}

PSID wt_my_sid(void)
{
    static union {
        TOKEN_USER user;
        char room[SECURITY_MAX_SID_SIZE + sizeof(TOKEN_USER)];
    } me;
    static bool known;
    HANDLE tok;
    DWORD len;
    if (!known && OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) {
        known = GetTokenInformation(tok, TokenUser, &me, sizeof(me), &len);
        CloseHandle(tok);
    }
    return known ? me.user.User.Sid : NULL;
}

uint32_t wt_my_rid(void)
{
    PSID me = wt_my_sid();
    return me ? *GetSidSubAuthority(me, *GetSidSubAuthorityCount(me) - 1u) : UINT32_MAX;
}

bool wt_spawn(const char *cmd, HANDLE in, HANDLE out, DWORD flags, PROCESS_INFORMATION *pi)
{
    char line[4096]; /* CreateProcessA may write to its command line */
    snprintf(line, sizeof(line), "%s", cmd);
    STARTUPINFOA si = {.cb = sizeof(si)};
    bool redirect = in || out;
    if (redirect) {
        si.dwFlags = STARTF_USESTDHANDLES;
        si.hStdInput = in ? in : GetStdHandle(STD_INPUT_HANDLE);
        si.hStdOutput = out ? out : GetStdHandle(STD_OUTPUT_HANDLE);
        si.hStdError = out ? out : GetStdHandle(STD_ERROR_HANDLE);
    }
    memset(pi, 0, sizeof(*pi));
    return CreateProcessA(NULL, line, NULL, NULL, redirect, flags, NULL, NULL, &si, pi);
}

int wt_wait(PROCESS_INFORMATION *pi, DWORD ms)
{
    DWORD status = (DWORD)-1;
    if (WaitForSingleObject(pi->hProcess, ms) != WAIT_OBJECT_0) {
        TerminateProcess(pi->hProcess, 1);
        WaitForSingleObject(pi->hProcess, INFINITE);
    } else if (!GetExitCodeProcess(pi->hProcess, &status)) {
        status = (DWORD)-1;
    }
    CloseHandle(pi->hProcess);
    CloseHandle(pi->hThread);
    memset(pi, 0, sizeof(*pi));
    return (int)status;
}

int wt_run_self(const char *fmt, ...)
{
    char self[MAX_PATH], args[3 * MAX_PATH], cmd[4 * MAX_PATH];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    GetModuleFileNameA(NULL, self, sizeof(self));
    snprintf(cmd, sizeof(cmd), "\"%s\" %s", self, args);
    PROCESS_INFORMATION pi;
    return wt_spawn(cmd, NULL, NULL, 0, &pi) ? wt_wait(&pi, INFINITE) : -1;
}

bool wt_temp_dir(char *out, size_t size, const char *tag)
{
    char tmp[MAX_PATH];
    GetTempPathA(sizeof(tmp), tmp);
    snprintf(out, size, "%smmapio-%s-%lu-%lu", tmp, tag, (unsigned long)GetCurrentProcessId(),
             (unsigned long)GetTickCount());
    if (CreateDirectoryA(out, NULL))
        return true;
    fprintf(stderr, "cannot make %s (%lu)\n", out, (unsigned long)GetLastError());
    return false;
}

/* Its pipe, once it is up (or it died). */
static bool wt_daemon_up(const struct wt_daemon *d)
{
    bool up = false;
    while (!up && WaitForSingleObject(d->pi.hProcess, 50) == WAIT_TIMEOUT)
        up = WaitNamedPipeA(d->pipe, 0) || GetLastError() == ERROR_SEM_TIMEOUT;
    if (!up)
        fprintf(stderr, "the daemon ended before its pipe was up: %s\n", d->cmd);
    return up;
}

bool wt_daemon_start(struct wt_daemon *d, const char *exe, const char *tag, const char *root,
                     const char *args)
{
    char daemon[MAX_PATH];
    unsigned long pid = GetCurrentProcessId(), tick = GetTickCount();
    memset(d, 0, sizeof(*d));
    wt_windows_path(daemon, sizeof(daemon), exe);
    if (root)
        wt_windows_path(d->root, sizeof(d->root), root);
    else if (!wt_temp_dir(d->root, sizeof(d->root), tag))
        return false;
    snprintf(d->pipe, sizeof(d->pipe), "\\\\.\\pipe\\mmapio-%s-%lu-%lu", tag, pid, tick);
    snprintf(d->cmd, sizeof(d->cmd), "\"%s\" --socket %s --root \"%s\"%s%s", daemon, d->pipe,
             d->root, args ? " " : "", args ? args : "");
    if (!wt_spawn(d->cmd, NULL, NULL, CREATE_NEW_PROCESS_GROUP, &d->pi)) {
        fprintf(stderr, "cannot start %s (%lu)\n", daemon, (unsigned long)GetLastError());
        return false;
    }
    return wt_daemon_up(d);
}

bool wt_daemon_restart(struct wt_daemon *d)
{
    if (!wt_spawn(d->cmd, NULL, NULL, CREATE_NEW_PROCESS_GROUP, &d->pi)) {
        fprintf(stderr, "cannot start %s (%lu)\n", d->cmd, (unsigned long)GetLastError());
        return false;
    }
    return wt_daemon_up(d);
}

bool wt_daemon_signal(const struct wt_daemon *d)
{
    char ev_name[200];
    snprintf(ev_name, sizeof(ev_name), "Local\\mmapiod-stop-%s", d->pipe + 9);
    HANDLE ev = OpenEventA(EVENT_MODIFY_STATE, FALSE, ev_name);
    bool set = ev != NULL && SetEvent(ev);
    if (ev)
        CloseHandle(ev);
    return set;
}

int wt_daemon_wait(struct wt_daemon *d)
{
    if (!d->pi.hProcess)
        return -1;
    int status = wt_wait(&d->pi, 60000);
    if (status == -1)
        fprintf(stderr, "the daemon did not stop on its event%s\n",
                wt_under_wine() ? " (under wine)" : "");
    return status;
}

int wt_daemon_stop(struct wt_daemon *d)
{
    CHECK(wt_daemon_signal(d));
    return wt_daemon_wait(d);
}

HANDLE wt_pipe_open(const char *name)
{
    HANDLE h = CreateFileA(name, GENERIC_READ | FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES,
                           0, NULL, OPEN_EXISTING, SECURITY_SQOS_PRESENT |
                           SECURITY_IMPERSONATION, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return NULL;
    DWORD mode = PIPE_READMODE_MESSAGE;
    if (!SetNamedPipeHandleState(h, &mode, NULL, NULL)) {
        CloseHandle(h);
        return NULL;
    }
    return h;
}

char *wt_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    *n = 0;
    if (!f)
        return NULL;
    char *buf = malloc(1 << 20);
    *n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[*n] = 0;
    return buf;
}

void wt_remove_tree(const char *dir)
{
    char pat[MAX_PATH], path[MAX_PATH];
    snprintf(pat, sizeof(pat), "%s\\*", dir);
    WIN32_FIND_DATAA fd;
    HANDLE it = FindFirstFileA(pat, &fd);
    if (it != INVALID_HANDLE_VALUE) {
        do {
            if (!strcmp(fd.cFileName, ".") || !strcmp(fd.cFileName, ".."))
                continue;
            snprintf(path, sizeof(path), "%s\\%s", dir, fd.cFileName);
            if (fd.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)
                RemoveDirectoryA(path); /* a link: never followed */
            else if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
                wt_remove_tree(path);
            else
                DeleteFileA(path);
        } while (FindNextFileA(it, &fd));
        FindClose(it);
    }
    RemoveDirectoryA(dir);
}

double wt_now_ms(void)
{
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart * 1000.0 / (double)f.QuadPart;
}

static int by_ms(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void wt_sort_ms(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), by_ms);
}
