/*
 * The Windows seams' contracts (daemon/platform/windows/), run under wine
 * by meson. A plain program: each CHECK that fails is printed and the
 * exit status is 1. Run with "child-rw" or "child-ro" it is the other
 * process of the sharing tests: it reads a section handle value (already
 * duplicated into it) from stdin.
 */
#include "membackend.h"
#include "peercred.h"
#include "sidmap.h"
#include "wakeup.h"
#include "watchsys.h"
#include "writeback.h"
#include "wintest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#define SIZE 65536u
static const char pattern[] = "written by the child";

/* The child: maps the handle it was given and checks what it may do. */
static int child(int writable)
{
    unsigned long long v;
    if (scanf("%llx", &v) != 1)
        return 3;
    HANDLE h = (HANDLE)(uintptr_t)v;
    if (writable) {
        char *p = MapViewOfFile(h, FILE_MAP_WRITE, 0, 0, SIZE);
        CHECK(p != NULL);
        if (p) {
            memcpy(p + 4096, pattern, sizeof(pattern));
            UnmapViewOfFile(p);
        }
    } else {
        const char *p = MapViewOfFile(h, FILE_MAP_READ, 0, 0, SIZE);
        CHECK(p != NULL);
        CHECK(p && strcmp(p, "from the parent") == 0);
        if (p)
            UnmapViewOfFile(p);
        CHECK(!wt_can_map(h, FILE_MAP_WRITE, SIZE));
        CHECK(!wt_can_dup(h, FILE_MAP_WRITE));
        CHECK(!wt_can_dup(h, FILE_MAP_ALL_ACCESS));
    }
    return wt_failures ? 1 : 0;
}

/* Runs this program as "child-rw"/"child-ro" and hands it `section`
 * duplicated with `access` into it: the child's exit status, or -1. */
static int run_child(HANDLE section, DWORD access, const char *mode)
{
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .bInheritHandle = TRUE};
    HANDLE rd, wr;
    if (!CreatePipe(&rd, &wr, &sa, 0))
        return -1;
    SetHandleInformation(wr, HANDLE_FLAG_INHERIT, 0);

    char self[MAX_PATH], cmd[MAX_PATH + 32];
    GetModuleFileNameA(NULL, self, sizeof(self));
    snprintf(cmd, sizeof(cmd), "\"%s\" %s", self, mode);
    PROCESS_INFORMATION pi;
    bool ok = wt_spawn(cmd, rd, NULL, 0, &pi);
    CloseHandle(rd);
    if (!ok) {
        CloseHandle(wr);
        return -1;
    }
    /* What the daemon will do: duplicate into the client's process. */
    HANDLE theirs = NULL;
    if (DuplicateHandle(GetCurrentProcess(), section, pi.hProcess, &theirs,
            access, FALSE, 0)) {
        char line[32];
        int n = snprintf(line, sizeof(line), "%llx\n",
            (unsigned long long)(uintptr_t)theirs);
        DWORD put;
        WriteFile(wr, line, (DWORD)n, &put, NULL);
    }
    CloseHandle(wr);
    return wt_wait(&pi, 60000);
}

static void test_section_read_only(void)
{
    int fd = mem_section_new("test", SIZE, 0);
    CHECK(fd > 0);
    HANDLE h = (HANDLE)(intptr_t)fd;
    char *w = MapViewOfFile(h, FILE_MAP_WRITE, 0, 0, SIZE);
    CHECK(w != NULL);
    if (w)
        strcpy(w, "from the parent");
    CHECK(mem_is_section(fd) == 1);

    int ro = mem_reopen(fd, O_RDONLY);
    CHECK(ro > 0);
    HANDLE r = (HANDLE)(intptr_t)ro;
    const char *p = MapViewOfFile(r, FILE_MAP_READ, 0, 0, SIZE);
    CHECK(p && strcmp(p, "from the parent") == 0);
    if (p)
        UnmapViewOfFile(p);
    /* The key property: read-only stays read-only. */
    CHECK(!wt_can_map(r, FILE_MAP_WRITE, SIZE));
    CHECK(!wt_can_map(r, FILE_MAP_ALL_ACCESS, SIZE));
    CHECK(!wt_can_dup(r, FILE_MAP_WRITE));
    CHECK(!wt_can_dup(r, FILE_MAP_ALL_ACCESS));
    CHECK(!wt_can_dup(r, GENERIC_WRITE));
    /* Windows takes the owner's implicit WRITE_DAC away when an OWNER
     * RIGHTS ace is there; wine keeps it (and every process is the owner
     * under wine): only checked on Windows. */
    CHECK(wt_under_wine() || !wt_can_dup(r, WRITE_DAC));
    CHECK(mem_reopen(ro, O_RDWR) == -EACCES);
    CHECK(wt_can_dup(r, FILE_MAP_READ));
    /* The read-write handle may give a read-write copy. */
    int rw = mem_reopen(fd, O_RDWR);
    CHECK(rw > 0);
    CHECK(rw > 0 && wt_can_map((HANDLE)(intptr_t)rw, FILE_MAP_WRITE, SIZE));

    /* Another process: read-only handed over, writes refused there too. */
    CHECK(run_child(h, FILE_MAP_READ, "child-ro") == 0);
    if (w)
        UnmapViewOfFile(w);
    if (rw > 0)
        CloseHandle((HANDLE)(intptr_t)rw);
    CloseHandle(r);
    CloseHandle(h);
}

static void test_two_processes_share(void)
{
    int fd = mem_section_new("share", SIZE, MEM_SEALABLE);
    CHECK(fd > 0);
    HANDLE h = (HANDLE)(intptr_t)fd;
    const char *p = MapViewOfFile(h, FILE_MAP_READ, 0, 0, SIZE);
    CHECK(p != NULL);
    CHECK(run_child(h, FILE_MAP_READ | FILE_MAP_WRITE, "child-rw") == 0);
    /* The child mapped it, wrote and exited: the section lives on. */
    CHECK(p && strcmp(p + 4096, pattern) == 0);
    if (p)
        UnmapViewOfFile(p);
    CloseHandle(h);
}

static void test_section_rules(void)
{
    CHECK(mem_section_new("empty", 0, 0) == -EINVAL);
    CHECK(mem_section_new("huge", 1 << 21, MEM_HUGETLB) == -EOPNOTSUPP);
    int fd = mem_section_new("rules", SIZE, MEM_SEALABLE);
    CHECK(fd > 0);
    CHECK(mem_seal(fd, MEM_SEAL_GROW | MEM_SEAL_SHRINK | MEM_SEAL_SEAL) == 0);
    CHECK(mem_punch(fd, 0, 4096) == -EOPNOTSUPP);
    CHECK(mem_reserve(fd, 0, SIZE) == 0);
    CHECK(mem_reserve(fd, 0, SIZE + 1) == -EFBIG);
    char path[64];
    int n = mem_fd_path(fd, path, sizeof(path));
    CHECK(n > 0 && strncmp(path, "section:", 8) == 0);
    CHECK(mem_fd_path(fd, path, 4) == -ENAMETOOLONG);
    CloseHandle((HANDLE)(intptr_t)fd);
}

static void test_files(void)
{
    char dir[MAX_PATH], name[MAX_PATH];
    GetTempPathA(sizeof(dir), dir);
    CHECK(GetTempFileNameA(dir, "mmp", 0, name) != 0);
    HANDLE f = CreateFileA(name, GENERIC_READ | GENERIC_WRITE,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
        CREATE_ALWAYS, FILE_FLAG_DELETE_ON_CLOSE, NULL);
    CHECK(f != INVALID_HANDLE_VALUE);
    int fd = (int)(intptr_t)f;
    CHECK(mem_is_section(fd) == 0);
    CHECK(mem_seal(fd, MEM_SEAL_GROW) == -EINVAL);
    DWORD put;
    CHECK(WriteFile(f, "0123456789", 10, &put, NULL) && put == 10);

    /* Reserved and grown, or said to be unsupported (and left alone). */
    int rc = mem_reserve(fd, 0, 8192);
    CHECK(rc == 0 || rc == -EOPNOTSUPP);
    LARGE_INTEGER size;
    CHECK(GetFileSizeEx(f, &size) && size.QuadPart == (rc == 0 ? 8192 : 10));
    CHECK(mem_reserve(fd, 0, 4) == rc); /* never shrinks */
    CHECK(GetFileSizeEx(f, &size) && size.QuadPart == (rc == 0 ? 8192 : 10));

    char path[MAX_PATH * 2];
    const char *base = strrchr(name, '\\');
    int n = mem_fd_path(fd, path, sizeof(path));
    CHECK(n > 0 && base && strstr(path, base + 1) != NULL);

    /* A read-only reopen reads and cannot write. */
    int ro = mem_reopen(fd, O_RDONLY);
    CHECK(ro > 0);
    if (ro > 0) {
        HANDLE r = (HANDLE)(intptr_t)ro;
        char buf[4] = {0};
        DWORD got;
        OVERLAPPED at = {0};
        CHECK(ReadFile(r, buf, 3, &got, &at) && got == 3 && memcmp(buf, "012", 3) == 0);
        CHECK(!WriteFile(r, "x", 1, &put, &at));
        CloseHandle(r);
    }
    /* Zeroing a range: done, or said to be unsupported (wine's file
     * systems may not do FSCTL_SET_ZERO_DATA). */
    rc = mem_punch(fd, 0, 4);
    CHECK(rc == 0 || rc == -EOPNOTSUPP);
    if (rc == 0) {
        char buf[6];
        DWORD got;
        OVERLAPPED at = {0};
        CHECK(ReadFile(f, buf, 6, &got, &at) && got == 6 &&
              memcmp(buf, "\0\0\0\0" "45", 6) == 0);
    }
    CHECK(mem_punch(fd, 8, 4) == -EINVAL);
    CloseHandle(f);
}

static void test_wakeup(void)
{
    struct wakeup w;
    CHECK(wakeup_open(&w) == 0);
    HANDLE h = (HANDLE)(intptr_t)w.fd;
    CHECK(WaitForSingleObject(h, 0) == WAIT_TIMEOUT);
    wakeup_signal(&w);
    wakeup_signal(&w); /* merges */
    CHECK(WaitForSingleObject(h, 0) == WAIT_OBJECT_0);
    CHECK(WaitForSingleObject(h, 0) == WAIT_OBJECT_0); /* until drained */
    wakeup_drain(&w);
    CHECK(WaitForSingleObject(h, 0) == WAIT_TIMEOUT);
    wakeup_close(&w);
    CHECK(w.fd == -1 && w.wfd == -1);
    wakeup_close(&w); /* idempotent */
}

static void test_peer_identity(void)
{
    char name[64];
    snprintf(name, sizeof(name), "\\\\.\\pipe\\mmapio-test-%lu",
        (unsigned long)GetCurrentProcessId());
    HANDLE srv = CreateNamedPipeA(name, PIPE_ACCESS_DUPLEX,
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_REJECT_REMOTE_CLIENTS,
        1, 4096, 4096, 0, NULL);
    CHECK(srv != INVALID_HANDLE_VALUE);
    struct peer_cred pc;
    /* Nobody connected yet (wine reports a client pid before any
     * connect: only checked on Windows). */
    CHECK(wt_under_wine() || peer_identity((int)(intptr_t)srv, &pc) < 0);
    HANDLE cli = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL,
        OPEN_EXISTING, SECURITY_IDENTIFICATION, NULL);
    CHECK(cli != INVALID_HANDLE_VALUE);
    CHECK(ConnectNamedPipe(srv, NULL) || GetLastError() == ERROR_PIPE_CONNECTED);
    DWORD n;
    char c;
    CHECK(WriteFile(cli, "x", 1, &n, NULL));
    CHECK(ReadFile(srv, &c, 1, &n, NULL) && n == 1);

    memset(&pc, 0xff, sizeof(pc));
    CHECK(peer_identity((int)(intptr_t)srv, &pc) == 0);
    CHECK(pc.pid == (pid_t)GetCurrentProcessId());

    /* The same user as this process's token. */
    HANDLE tok;
    CHECK(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok));
    union {
        TOKEN_USER user;
        char bytes[256];
    } u;
    DWORD len;
    CHECK(GetTokenInformation(tok, TokenUser, &u, sizeof(u), &len));
    PSID sid = u.user.User.Sid;
    uid_t mine = sid_id(sid); /* the whole SID's number (sidmap.h) */
    CHECK(mine != SIDMAP_NONE && pc.uid == mine);
    union {
        TOKEN_PRIMARY_GROUP group;
        char bytes[256];
    } g;
    CHECK(GetTokenInformation(tok, TokenPrimaryGroup, &g, sizeof(g), &len));
    CHECK(pc.gid == sid_id(g.group.PrimaryGroup));
    CHECK(pc.groups_unknown || pc.n_groups <= PEER_MAX_GROUPS);
    CloseHandle(tok);
    /* Still this process's own identity after the call (reverted). */
    HANDLE thr;
    CHECK(!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &thr) &&
          GetLastError() == ERROR_NO_TOKEN);
    CloseHandle(cli);
    CloseHandle(srv);
}

struct news {
    int token;
    unsigned what;
};

static void on_news(void *arg, int token, unsigned what)
{
    struct news *n = arg;
    if (token == n->token)
        n->what |= what;
}

/* Waits for the set's news of n->token (a minute at most: a failure). */
static unsigned news_of(int set, struct news *n)
{
    n->what = 0;
    for (int i = 0; i < 60 && !n->what; i++)
        if (WaitForSingleObject((HANDLE)(intptr_t)set, 1000) == WAIT_OBJECT_0)
            watchsys_read(set, on_news, n);
    return n->what;
}

/* A file's folder watched: a write through another handle is MODIFIED,
 * a rename METADATA, and the file is followed to its new name. */
static void test_watchsys(void)
{
    char dir[MAX_PATH], name[MAX_PATH], moved[MAX_PATH + 8];
    GetTempPathA(sizeof(dir), dir);
    CHECK(GetTempFileNameA(dir, "mmw", 0, name) != 0);
    snprintf(moved, sizeof(moved), "%s.moved", name);
    DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, put;
    HANDLE f = CreateFileA(name, GENERIC_READ, share, NULL, OPEN_EXISTING, 0, NULL);
    int set = watchsys_open();
    CHECK(set >= 0 && f != INVALID_HANDLE_VALUE);
    CHECK(watchsys_open() == -EBUSY); /* one set per process */
    struct news n = {.token = set >= 0 ? watchsys_add(set, (int)(intptr_t)f) : -1};
    CHECK(n.token >= 0);
    CHECK(n.token == watchsys_add(set, (int)(intptr_t)f)); /* the same file */
    CHECK(watchsys_add(set, 12345) == -EBADF);
    HANDLE wr = CreateFileA(name, GENERIC_WRITE, share, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(WriteFile(wr, "news", 4, &put, NULL) && put == 4);
    CloseHandle(wr);
    CHECK(n.token >= 0 && (news_of(set, &n) & WATCHSYS_MODIFIED));
    CHECK(MoveFileA(name, moved));
    CHECK(n.token >= 0 && (news_of(set, &n) & WATCHSYS_METADATA));
    wr = CreateFileA(moved, GENERIC_WRITE, share, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(WriteFile(wr, "more", 4, &put, NULL) && put == 4);
    CloseHandle(wr);
    CHECK(n.token >= 0 && (news_of(set, &n) & WATCHSYS_MODIFIED));
    watchsys_remove(set, n.token);
    CloseHandle(f);
    DeleteFileA(moved);
    watchsys_close(set);
}

static void test_not_yet(void)
{
    struct writeback_pending wp;
    CHECK(writeback_pending(0, &wp) == -ENOSYS);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "child-rw") == 0)
        return child(1);
    if (argc == 2 && strcmp(argv[1], "child-ro") == 0)
        return child(0);
    test_section_read_only();
    test_two_processes_share();
    test_section_rules();
    test_files();
    test_wakeup();
    test_peer_identity();
    test_watchsys();
    test_not_yet();
    return wt_report(argv[0]);
}
