/*
 * mmapiod.exe's log file (base/windows/logfile.h), under wine: started
 * with --log FILE and a small --log_max_bytes, made to log by clients
 * (connections with broken frames, one without hello), stopped by its
 * stop event; then every line has a UTC timestamp and a level, the lines
 * clients caused are there, the file was moved once to FILE.1 and
 * neither is past the limit. A log that is a hard link to another file
 * is refused. Also: the daemon's own folder (.mmapiod, where a service
 * logs) is no client path, in any case.
 *
 *   test_log_win DAEMON.exe
 *   test_log_win check-log FILE WORD...   (service_win.sh: FILE's lines
 *                                          are well formed and hold each WORD,
 *                                          and its folder's DACL is the daemon's)
 *   test_log_win check-root DIR           (service_win.sh: a service's default
 *                                          data root's owner and DACL)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <aclapi.h>

#include "mmapio.h"
#include "wintest.h"

#define LIMIT 4096

/* Every line: "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL: text\r\n". The count of
 * lines, or -1 at the first that is not. */
static int lines_ok(const char *text)
{
    static const char *const levels[] = {"error: ", "warning: ", "info: ", "debug: "};
    int n = 0;
    for (const char *p = text; *p; n++) {
        const char *end = strstr(p, "\r\n");
        if (!end)
            return -1;
        const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ ";
        for (size_t i = 0; shape[i]; i++)
            if (p + i >= end || (shape[i] == 'd' ? p[i] < '0' || p[i] > '9' : p[i] != shape[i]))
                return -1;
        const char *lv = p + strlen(shape);
        bool known = false;
        for (int i = 0; i < 4; i++)
            known |= !strncmp(lv, levels[i], strlen(levels[i]));
        if (!known)
            return -1;
        p = end + 2;
    }
    return n;
}

/* Only this account and SYSTEM (and with `admins` Administrators) may
 * write `path`; on Windows its DACL also inherits nothing from above.
 * Wine keeps no DACL of its own but shows one made from the file's mode
 * bits (the daemon's made those owner-only writable), so there the
 * writers are checked, not the protection. With `users` (a service's
 * data root): on Windows authenticated users also list and traverse it,
 * and no more, on it alone; its owner is this account, SYSTEM or
 * Administrators. */
static bool writers_only(const char *path, bool admins, bool users)
{
    PACL dacl = NULL;
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    if (GetNamedSecurityInfoA(path, SE_FILE_OBJECT,
                              DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION, &owner,
                              NULL, &dacl, NULL, &sd) != ERROR_SUCCESS)
        return false;
    SECURITY_DESCRIPTOR_CONTROL ctl = 0;
    DWORD rev;
    GetSecurityDescriptorControl(sd, &ctl, &rev);
    bool wine = wt_under_wine();
    PSID me = wt_my_sid();
    BYTE sys[SECURITY_MAX_SID_SIZE], adm[SECURITY_MAX_SID_SIZE], au[SECURITY_MAX_SID_SIZE];
    DWORD ns = sizeof(sys), na = sizeof(adm), nu = sizeof(au);
    CreateWellKnownSid(WinLocalSystemSid, NULL, sys, &ns);
    CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, adm, &na);
    CreateWellKnownSid(WinAuthenticatedUserSid, NULL, au, &nu);
    bool ok = dacl && me && (wine || (ctl & SE_DACL_PROTECTED));
    if (users && !(owner && (EqualSid(owner, me) || EqualSid(owner, sys) ||
                             EqualSid(owner, adm)))) {
        fprintf(stderr, "%s: owned by someone else\n", path);
        ok = false;
    }
    bool users_list = false;
    for (DWORD i = 0; ok && i < dacl->AceCount; i++) {
        ACCESS_ALLOWED_ACE *ace;
        if (!GetAce(dacl, i, (void **)&ace)) {
            ok = false;
            break;
        }
        if (ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE)
            continue;
        PSID who = &ace->SidStart;
        bool writes = ace->Mask & (FILE_WRITE_DATA | FILE_APPEND_DATA | WRITE_DAC |
                                   WRITE_OWNER | DELETE | GENERIC_WRITE | GENERIC_ALL);
        if (writes && !EqualSid(who, me) && !EqualSid(who, sys) &&
            !(admins && EqualSid(who, adm))) {
            fprintf(stderr, "%s: ace %lu lets someone else write (0x%lx)\n", path,
                    (unsigned long)i, (unsigned long)ace->Mask);
            ok = false;
        }
        if (users && EqualSid(who, au))
            users_list = ace->Mask == (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE) &&
                         !(ace->Header.AceFlags & (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE));
    }
    if (ok && users && !wine && !users_list) {
        fprintf(stderr, "%s: authenticated users do not just list and traverse it\n", path);
        ok = false;
    }
    LocalFree(sd);
    return ok;
}

static bool only_we_write(const char *path)
{
    return writers_only(path, false, false);
}

static int check_log(int argc, char **argv)
{
    size_t n = 0;
    char *text = wt_slurp(argv[2], &n);
    CHECK(text != NULL);
    if (!text)
        return 1;
    int lines = lines_ok(text);
    CHECK(lines > 0);
    for (int i = 3; i < argc; i++)
        if (!strstr(text, argv[i])) {
            fprintf(stderr, "no line with \"%s\" in:\n%s", argv[i], text);
            wt_failures++;
        }
    char dir[MAX_PATH];
    snprintf(dir, sizeof(dir), "%s", argv[2]);
    char *sep = NULL;
    for (char *p = dir; *p; p++)
        if (*p == '/' || *p == '\\')
            sep = p;
    if (sep)
        *sep = 0;
    CHECK(sep && only_we_write(dir));
    CHECK(only_we_write(argv[2]));
    printf("%s: %d lines, %zu bytes; it and its folder writable by the daemon only\n",
           argv[2], lines, n);
    free(text);
    return wt_failures ? 1 : 0;
}

/* A client that connects and sends a frame shorter than its header. */
static bool broken_client(const char *pipe)
{
    HANDLE h = CreateFileA(pipe, GENERIC_READ | FILE_WRITE_DATA, 0, NULL, OPEN_EXISTING, 0,
                           NULL);
    if (h == INVALID_HANDLE_VALUE)
        return false;
    DWORD done = 0, mode = PIPE_READMODE_MESSAGE;
    SetNamedPipeHandleState(h, &mode, NULL, NULL);
    bool ok = WriteFile(h, "bad", 3, &done, NULL) && done == 3;
    char buf[64];
    ReadFile(h, buf, sizeof(buf), &done, NULL); /* until the daemon closes it */
    CloseHandle(h);
    return ok;
}

int main(int argc, char **argv)
{
    wt_detail = mmapio_last_error;
    if (argc >= 3 && !strcmp(argv[1], "check-log"))
        return check_log(argc, argv);
    if (argc == 3 && !strcmp(argv[1], "check-root")) {
        CHECK(writers_only(argv[2], true, true));
        return wt_report(argv[0]);
    }
    if (argc != 2)
        return 2;
    char daemon[MAX_PATH], root[MAX_PATH], log[MAX_PATH + 16], old[MAX_PATH + 16],
        cmd[4 * MAX_PATH];
    wt_windows_path(daemon, sizeof(daemon), argv[1]);
    CHECK(wt_temp_dir(root, sizeof(root), "log"));
    snprintf(log, sizeof(log), "%s\\d.log", root);
    snprintf(old, sizeof(old), "%s\\d.log.1", root);
    /* The daemon's own folder, as a service makes it, with a file in it. */
    char own[MAX_PATH + 32];
    snprintf(own, sizeof(own), "%s\\.mmapiod", root);
    CHECK(CreateDirectoryA(own, NULL));
    snprintf(own, sizeof(own), "%s\\.mmapiod\\secret.dat", root);
    HANDLE sf = CreateFileA(own, GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
    DWORD wrote = 0;
    CHECK(sf != INVALID_HANDLE_VALUE && WriteFile(sf, "secret", 6, &wrote, NULL));
    if (sf != INVALID_HANDLE_VALUE)
        CloseHandle(sf);

    /* A log that is a hard link to another file: refused (the daemon
     * does not start), the file untouched. */
    char target[MAX_PATH + 16], linked[MAX_PATH + 16];
    snprintf(target, sizeof(target), "%s\\target.txt", root);
    snprintf(linked, sizeof(linked), "%s\\linked.log", root);
    HANDLE tf = CreateFileA(target, GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
    CHECK(tf != INVALID_HANDLE_VALUE && WriteFile(tf, "keep", 4, &wrote, NULL));
    if (tf != INVALID_HANDLE_VALUE)
        CloseHandle(tf);
    CHECK(CreateHardLinkA(linked, target, NULL));
    snprintf(cmd, sizeof(cmd), "\"%s\" --socket \\\\.\\pipe\\mmapio-log-link-%lu --root \"%s\" "
             "--log \"%s\"", daemon, (unsigned long)GetCurrentProcessId(), root, linked);
    PROCESS_INFORMATION lpi;
    bool started = wt_spawn(cmd, NULL, NULL, 0, &lpi);
    CHECK(started);
    CHECK(started && wt_wait(&lpi, 60000) == 4); /* the log refused */
    size_t tn = 0;
    char *kept = wt_slurp(target, &tn);
    CHECK(kept && tn == 4 && !memcmp(kept, "keep", 4));
    free(kept);
    DeleteFileA(linked);
    DeleteFileA(target);

    char args[MAX_PATH + 100];
    snprintf(args, sizeof(args), "--log \"%s\" --log_max_bytes %d --verbose "
             "--hello_timeout_ms 100", log, LIMIT);
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "log", root, args);
    CHECK(up);
    const char *pipe = d.pipe;

    /* .mmapiod is no client path, in any case. */
    mmapio_client *c = NULL;
    CHECK(up && mmapio_connect(pipe, &c) == MMAPIO_OK);
    static const char *const hidden[] = {".mmapiod/secret.dat", ".MMAPIOD/secret.dat",
                                         ".Mmapiod/secret.dat"};
    for (size_t i = 0; c && i < sizeof(hidden) / sizeof(hidden[0]); i++) {
        mmapio_map *m = NULL;
        int r = mmapio_open_ro(c, hidden[i], &m);
        if (r != MMAPIO_E_PERMISSION)
            fprintf(stderr, "%s: %d\n", hidden[i], r);
        CHECK(r == MMAPIO_E_PERMISSION);
        if (m)
            mmapio_unmap(m);
    }
    /* Names the lexical check lets by that a file system might take for
     * it (a trailing dot or space): refused wherever they open it, by the
     * final-path fence (under wine they open nothing; a short 8.3 name,
     * the alias Windows does have, cannot be made here). */
    static const char *const alias[] = {".mmapiod./secret.dat", ".mmapiod /secret.dat"};
    for (size_t i = 0; c && i < sizeof(alias) / sizeof(alias[0]); i++) {
        mmapio_map *m = NULL;
        int r = mmapio_open_ro(c, alias[i], &m);
        printf("  %s: %s\n", alias[i], mmapio_strerror(r));
        CHECK(r != MMAPIO_OK);
        if (m)
            mmapio_unmap(m);
    }
    if (c)
        mmapio_disconnect(c);

    /* A client that never says hello: dropped after 100 ms, logged. */
    HANDLE mute = CreateFileA(pipe, GENERIC_READ | FILE_WRITE_DATA, 0, NULL, OPEN_EXISTING,
                              0, NULL);
    CHECK(mute != INVALID_HANDLE_VALUE);
    if (mute != INVALID_HANDLE_VALUE) {
        char buf[64];
        DWORD done;
        ReadFile(mute, buf, sizeof(buf), &done, NULL); /* returns once dropped */
        CloseHandle(mute);
    }
    /* Enough broken frames (two lines each, with --verbose) to pass the
     * limit a few times. */
    int sent = 0;
    for (int i = 0; i < 120; i++)
        sent += broken_client(pipe);
    CHECK(sent == 120);

    CHECK(wt_daemon_stop(&d) == 0);

    size_t n = 0, n_old = 0;
    char *text = wt_slurp(log, &n), *text_old = wt_slurp(old, &n_old);
    CHECK(text && text_old); /* rotated once at least */
    if (text && text_old) {
        printf("  %s: %zu bytes, %d lines; .1: %zu bytes, %d lines (limit %d)\n", log, n,
               lines_ok(text), n_old, lines_ok(text_old), LIMIT);
        CHECK(n <= LIMIT && n_old <= LIMIT);
        CHECK(n_old > LIMIT / 2); /* moved when full, not early */
        CHECK(lines_ok(text) > 0 && lines_ok(text_old) > 0);
        CHECK(strstr(text, "info: stopped\r\n"));
        CHECK(strstr(text, "broken frame") || strstr(text_old, "broken frame"));
        CHECK(strstr(text, "debug: process ") || strstr(text_old, "debug: process "));
    }
    free(text);
    free(text_old);
    wt_remove_tree(root);
    return wt_report(argv[0]);
}
