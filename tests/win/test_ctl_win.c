/*
 * mmapioctl.exe against mmapiod.exe under wine: the daemon on a fresh
 * root and pipe, the commands API.md fixes run as child processes (the
 * pipe by --socket or $MMAPIO_SOCKET), their output and exit codes
 * checked; this process holds a file read-write through the library so
 * that holders, clients and flushes have something to show.
 *
 *   test_ctl_win DAEMON.exe MMAPIOCTL.exe
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"
#include "wintest.h"

static char ctl[MAX_PATH];

/* Runs mmapioctl with `args`; its stdout and stderr together in out.
 * Returns its exit code, or -1. */
static int run(char *out, size_t size, const char *fmt, ...)
{
    char args[1024], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "\"%s\" %s", ctl, args);
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .bInheritHandle = TRUE};
    HANDLE rd, wr;
    if (!CreatePipe(&rd, &wr, &sa, 0))
        return -1;
    SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
    PROCESS_INFORMATION pi;
    bool ok = wt_spawn(cmd, NULL, wr, 0, &pi);
    CloseHandle(wr);
    size_t n = 0;
    DWORD got;
    while (ok && n + 1 < size && ReadFile(rd, out + n, (DWORD)(size - 1 - n), &got, NULL) &&
           got)
        n += got;
    out[n] = '\0';
    CloseHandle(rd);
    if (!ok)
        return -1;
    int code = wt_wait(&pi, INFINITE);
    printf("$ mmapioctl %s -> %d\n%s", args, code, out);
    return code;
}

/* `mmapioctl watch TARGET` in the background, to a file, until the
 * daemon counts its watch; then `rm TARGET` must end it (exit 0) with a
 * "removed" line. */
static void watch_until_removed(mmapio_client *c, const char *root, const char *target,
                                const char *name, bool anonymous)
{
    static char out[65536];
    char wout[MAX_PATH], cmd[2 * MAX_PATH];
    mmapio_map_info *info;
    snprintf(wout, sizeof(wout), "%s\\watch.txt", root);
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .bInheritHandle = TRUE};
    HANDLE wf = CreateFileA(wout, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, &sa,
                            CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, NULL);
    CHECK(wf != INVALID_HANDLE_VALUE);
    snprintf(cmd, sizeof(cmd), "\"%s\" watch %s", ctl, target);
    PROCESS_INFORMATION wpi;
    bool watching = wt_spawn(cmd, NULL, wf, 0, &wpi);
    CloseHandle(wf);
    CHECK(watching);
    /* Until the daemon counts the watch (or the watcher is gone). */
    bool counted = false;
    while (watching && !counted &&
           WaitForSingleObject(wpi.hProcess, 20) == WAIT_TIMEOUT) {
        info = NULL;
        counted = mmapio_admin_stat(c, name, anonymous, &info) == MMAPIO_OK &&
                  info->watchers == 1;
        if (info)
            mmapio_map_info_free(info, 1);
    }
    CHECK(counted);
    CHECK(run(out, sizeof(out), "rm %s", target) == 0 && out[0] == '\0');
    CHECK(watching && wt_wait(&wpi, 60000) == 0); /* killed if still waiting */
    FILE *f = fopen(wout, "r");
    size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    printf("watch %s said:\n%s", target, out);
    CHECK(strstr(out, "removed") != NULL);
    DeleteFileA(wout);
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc != 3)
        return 2;
    static char out[65536];
    wt_windows_path(ctl, sizeof(ctl), argv[2]);
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "ctl", NULL, NULL);
    CHECK(up);
    const char *pipe = d.pipe, *root = d.root;
    SetEnvironmentVariableA("MMAPIO_SOCKET", pipe); /* the children's default */

    /* A writer of held.dat, through the library. */
    mmapio_client *c = NULL;
    mmapio_map *held = NULL;
    CHECK(up && mmapio_connect(pipe, &c) == MMAPIO_OK);
    CHECK(c && mmapio_create_rw(c, "held.dat", 4096, &held) == MMAPIO_OK);
    CHECK(held && mmapio_update_region(held, 0, "held", 5) == MMAPIO_OK);

    CHECK(run(out, sizeof(out), "status") == 0 && strstr(out, "clients_total") &&
          strstr(out, pipe + 9));
    CHECK(run(out, sizeof(out), "--socket %s --json status", pipe) == 0 &&
          strstr(out, "\"all\": true") && strstr(out, "\"max_map_size\""));
    CHECK(run(out, sizeof(out), "create anon:a1 64K") == 0 && strstr(out, "65536"));
    CHECK(run(out, sizeof(out), "create anon:a1 64K") == 6 && strstr(out, "exists"));
    CHECK(run(out, sizeof(out), "create f1.dat 8K --policy always") == 0 &&
          strstr(out, "8192"));
    CHECK(run(out, sizeof(out), "ls") == 0 && strstr(out, "anon:a1") &&
          strstr(out, "held.dat"));
    CHECK(run(out, sizeof(out), "--json ls") == 0 && strstr(out, "\"name\": \"a1\""));
    /* Owners by account name: this process's user made both (its uid is
     * a RID of the machine's account domain, which mmapioctl looks up). */
    char user[256], want[300];
    DWORD un = sizeof(user);
    CHECK(GetUserNameA(user, &un));
    snprintf(want, sizeof(want), "\"owner_name\": \"%s\"", user);
    CHECK(run(out, sizeof(out), "--json ls") == 0 && strstr(out, want));
    if (!strstr(out, want))
        fprintf(stderr, "%s\n", out);
    CHECK(run(out, sizeof(out), "clients") == 0 && strstr(out, "test_ctl_win") &&
          strstr(out, "held.dat"));
    CHECK(run(out, sizeof(out), "--json stat held.dat") == 0 &&
          strstr(out, "\"rw_holders\": 1") && strstr(out, "\"size\": 4096"));
    CHECK(run(out, sizeof(out), "flush held.dat") == 0 && strstr(out, "flushed 1"));
    CHECK(run(out, sizeof(out), "flush --all") == 0 && strstr(out, "flushed 1"));
    CHECK(run(out, sizeof(out), "flush anon:a1") == 0 && strstr(out, "flushed 0"));
    /* Both flushes counted, for the file and the daemon (a policy's may
     * add to them, never take away). */
    mmapio_map_info *fi = NULL;
    mmapio_status *st = NULL;
    CHECK(c && mmapio_admin_stat(c, "held.dat", false, &fi) == MMAPIO_OK && fi &&
          fi->flushes >= 2 && fi->last_flush > 0);
    CHECK(c && mmapio_admin_status(c, &st) == MMAPIO_OK && st && st->flushes >= 2 &&
          st->flush_failures == 0);
    if (fi)
        mmapio_map_info_free(fi, 1);
    if (st)
        mmapio_status_free(st);
    CHECK(run(out, sizeof(out), "--json status") == 0 && strstr(out, "\"flushes\": ") &&
          !strstr(out, "\"flushes\": 0"));
    CHECK(run(out, sizeof(out), "policy anon:a1 every-millis:100") == 0);
    CHECK(run(out, sizeof(out), "--json stat anon:a1") == 0 &&
          strstr(out, "\"policy\": \"every-millis:100\""));
    CHECK(run(out, sizeof(out), "policy held.dat every-writes:3") == 0);
    mmapio_map_info *info = NULL;
    CHECK(c && mmapio_admin_stat(c, "held.dat", false, &info) == MMAPIO_OK && info &&
          info->policy.kind == MMAPIO_FLUSH_EVERY_WRITES && info->policy.value == 3);
    if (info)
        mmapio_map_info_free(info, 1);
    CHECK(run(out, sizeof(out), "policy held.dat sometimes") == 2);

    /* Pages: more mappings than a page holds (512), each listed once, by id. */
    enum { MANY = 700 };
    bool made = true;
    for (int i = 0; made && c && i < MANY; i++) {
        char name[32];
        mmapio_map *m = NULL;
        snprintf(name, sizeof(name), "page%d", i);
        made = mmapio_anon_create(c, name, 4096, &m) == MMAPIO_OK && !mmapio_unmap(m);
    }
    CHECK(made);
    mmapio_map_info *all = NULL;
    size_t n_all = 0, n_page = 0;
    CHECK(c && mmapio_admin_list(c, &all, &n_all) == MMAPIO_OK);
    bool ascending = true;
    for (size_t i = 0; i < n_all; i++) {
        ascending &= i == 0 || all[i].id > all[i - 1].id;
        n_page += !strncmp(all[i].name, "page", 4);
    }
    printf("listed %zu, %zu of them page*\n", n_all, n_page);
    CHECK(ascending && n_page == MANY && n_all == MANY + 2); /* and a1, held.dat */
    mmapio_map_info_free(all, n_all);
    for (int i = 0; made && i < MANY; i++) {
        char name[32];
        snprintf(name, sizeof(name), "page%d", i);
        CHECK(mmapio_anon_delete(c, name) == MMAPIO_OK);
    }

    /* Errors: readable, non-zero. */
    CHECK(run(out, sizeof(out), "rm anon:nope") != 0 &&
          strstr(out, "no such anonymous mapping"));
    CHECK(run(out, sizeof(out), "stat nope.dat") != 0 && strstr(out, "nope.dat"));
    CHECK(run(out, sizeof(out), "flush f1.dat") != 0 && strstr(out, "not mapped"));
    CHECK(run(out, sizeof(out), "--socket \\\\.\\pipe\\mmapio-nobody-%lu status",
              (unsigned long)GetCurrentProcessId()) != 0);

    watch_until_removed(c, root, "anon:a1", "a1", true);
    watch_until_removed(c, root, "f1.dat", "f1.dat", false); /* nobody maps it */

    CHECK(run(out, sizeof(out), "stat f1.dat") != 0);
    CHECK(run(out, sizeof(out), "stat anon:a1") != 0);

    if (held)
        CHECK(mmapio_unmap(held) == MMAPIO_OK);
    CHECK(c && mmapio_delete(c, "held.dat") == MMAPIO_OK);
    if (c)
        mmapio_disconnect(c);
    CHECK(wt_daemon_stop(&d) == 0);
    wt_remove_tree(root);
    return wt_report(argv[0]);
}
