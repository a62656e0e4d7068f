/*
 * mmapiod.exe end to end, run under wine by meson: the daemon is started
 * on a fresh data root and a pipe name of its own, and spoken to in the
 * frames of the Windows wire (README, "Windows") with requests packed by
 * protobuf-c. A plain program: each CHECK that fails is printed and the
 * exit status is 1.
 *
 *   test_daemon_win DAEMON.exe [ROOT]    (ROOT: an empty data root, or one
 *                                         holding only `link`, a link out of it)
 *   test_daemon_win child PIPE writer|reader anon|file NAME   (the sharing tests' other processes)
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <aclapi.h>

#include "ctlarea.h"
#include "mmapio.pb-c.h"
#include "wintest.h"
#include "wtraw.h"

#define MAP_SIZE 4096u
#define E_INVALID_ARGUMENT (-11)
#define E_NOT_FOUND (-12)
#define E_PERMISSION (-14)
static const char message[] = "written through mmapiod.exe";

/* ---- the wire ------------------------------------------------------------ */

static bool send_raw(HANDLE h, const void *buf, size_t len)
{
    DWORD put = 0;
    return WriteFile(h, buf, (DWORD)len, &put, NULL) && put == len;
}

static uint64_t next_id = 1;

/* Sends one request (no handles); its id is set here and returned. */
static uint64_t send_req(HANDLE h, Mmapio__Request *q)
{
    q->id = next_id++;
    size_t n = mmapio__request__get_packed_size(q);
    uint8_t *buf = calloc(1, 8 + n);
    mmapio__request__pack(q, buf + 8);
    bool ok = send_raw(h, buf, 8 + n);
    free(buf);
    return ok ? q->id : 0;
}

/* A round trip: the reply to `q` (its error in *err), its handle if any. */
static Mmapio__Reply *call(HANDLE h, Mmapio__Request *q, int *err, HANDLE *handle)
{
    HANDLE hs[4];
    unsigned n = 0;
    uint64_t id = send_req(h, q);
    Mmapio__ServerMessage *m = id ? wt_raw_recv(h, hs, &n) : NULL;
    *err = 1;
    if (handle)
        *handle = NULL;
    if (!m || m->body_case != MMAPIO__SERVER_MESSAGE__BODY_REPLY || m->reply->id != id)
        return NULL;
    *err = m->reply->error;
    if (m->reply->error)
        fprintf(stderr, "  (reply %d: %s)\n", m->reply->error, m->reply->message);
    if (n && handle)
        *handle = hs[0];
    else
        for (unsigned i = 0; i < n; i++)
            CloseHandle(hs[i]);
    Mmapio__Reply *r = m->reply;
    m->reply = NULL; /* kept; the envelope goes */
    mmapio__server_message__free_unpacked(m, NULL);
    return r;
}

static void reply_free(Mmapio__Reply *r)
{
    if (r)
        mmapio__reply__free_unpacked(r, NULL);
}

/* A request of OP, its body in the oneof's `member`:
 * REQUEST(CLOSE, close, &cl). */
#define REQUEST(OP, member, body)                                                        \
    ((Mmapio__Request){.base = PROTOBUF_C_MESSAGE_INIT(&mmapio__request__descriptor),   \
                       .op_case = MMAPIO__REQUEST__OP_##OP, .member = (body)})

/* A round trip whose reply is dropped: its error (1: no reply). */
static int ask(HANDLE h, Mmapio__Request q)
{
    int err;
    reply_free(call(h, &q, &err, NULL));
    return err;
}

/* A round trip of `q` whose frame names n handle values (in our
 * process): the reply's error (1: no reply). */
static int ask_with(HANDLE h, Mmapio__Request q, const uint64_t *vals, uint32_t n)
{
    HANDLE hs[4];
    unsigned got = 0;
    q.id = next_id++;
    size_t len = mmapio__request__get_packed_size(&q), head = 8 + 8 * (size_t)n;
    uint8_t *buf = calloc(1, head + len);
    if (!buf)
        return 1;
    memcpy(buf, &n, 4);
    memcpy(buf + 8, vals, 8 * (size_t)n);
    mmapio__request__pack(&q, buf + head);
    bool ok = send_raw(h, buf, head + len);
    free(buf);
    Mmapio__ServerMessage *m = ok ? wt_raw_recv(h, hs, &got) : NULL;
    int err = m && m->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY && m->reply->id == q.id
                  ? m->reply->error : 1;
    for (unsigned i = 0; i < got; i++)
        CloseHandle(hs[i]);
    if (m)
        mmapio__server_message__free_unpacked(m, NULL);
    return err;
}

/* from_fd's frames: FdOffer answered OK (it means nothing on Windows);
 * FromFd naming no value, two, a pseudo handle's, one past 32 bits or
 * 0 refused; a handle on any other request is a protocol error; a file
 * of ours named alone is granted. */
static void check_from_fd_frames(HANDLE h, const char *root)
{
    Mmapio__FdOffer offer = MMAPIO__FD_OFFER__INIT;
    CHECK(ask(h, REQUEST(FD_OFFER, fd_offer, &offer)) == 0);
    char path[MAX_PATH];
    snprintf(path, sizeof(path), "%s\\frames.dat", root);
    HANDLE f = CreateFileA(path, GENERIC_READ | GENERIC_WRITE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           CREATE_NEW, 0, NULL);
    DWORD put = 0;
    CHECK(f != INVALID_HANDLE_VALUE && WriteFile(f, "frames", 6, &put, NULL) && put == 6);
    Mmapio__FromFd ff = MMAPIO__FROM_FD__INIT;
    ff.mode = MMAPIO__MODE__MODE_READ_ONLY;
    uint64_t v = (uint64_t)(uintptr_t)f, two[2] = {v, v};
    const uint64_t bad[] = {0, 0xffffffffu, 0xfffffffau, (uint64_t)1 << 32 | v};
    CHECK(ask_with(h, REQUEST(FROM_FD, from_fd, &ff), NULL, 0) == E_INVALID_ARGUMENT);
    CHECK(ask_with(h, REQUEST(FROM_FD, from_fd, &ff), two, 2) == E_INVALID_ARGUMENT);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(ask_with(h, REQUEST(FROM_FD, from_fd, &ff), &bad[i], 1) == E_INVALID_ARGUMENT);
    Mmapio__Ping pg = MMAPIO__PING__INIT;
    CHECK(ask_with(h, REQUEST(PING, ping, &pg), &v, 1) == -18); /* PROTOCOL */
    Mmapio__Reattach ra = MMAPIO__REATTACH__INIT; /* carries no handle on Windows */
    ra.path = (char *)"frames.dat";
    CHECK(ask_with(h, REQUEST(REATTACH, reattach, &ra), &v, 1) == -18);
    CHECK(ask_with(h, REQUEST(FROM_FD, from_fd, &ff), &v, 1) == 0);
    CHECK(ask(h, REQUEST(PING, ping, &pg)) == 0);
    CloseHandle(f);
}

/* A one-way request (a notice): whether it was sent. */
static bool tell(HANDLE h, Mmapio__Request q)
{
    return send_req(h, &q) != 0;
}

static bool ping(HANDLE h)
{
    Mmapio__Ping p = MMAPIO__PING__INIT;
    return ask(h, REQUEST(PING, ping, &p)) == 0;
}

/* A notice of `kind` from holder `handle` (a WRITE one: of [off,
 * off+len), and the hold it asks): whether it was sent. */
static bool notice(HANDLE h, uint64_t handle, Mmapio__NoticeKind kind, uint64_t off,
                   uint64_t len, uint32_t hold_ms)
{
    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    n.handle = handle;
    n.kind = kind;
    n.offset = off;
    n.len = len;
    n.hold_ms = hold_ms;
    return tell(h, REQUEST(NOTICE, notice, &n));
}

/* A write notice of [off, off+len) from holder `wh` on wr. */
static bool notice_write(HANDLE wr, uint64_t wh, uint64_t off, uint64_t len, uint32_t hold_ms)
{
    return notice(wr, wh, MMAPIO__NOTICE_KIND__NOTICE_WRITE, off, len, hold_ms);
}

/* SetPolicy, Close, Flush, Delete and Watch (its id in *watch_id): the
 * error. */
static int set_policy(HANDLE h, uint64_t handle, Mmapio__FlushKind kind, uint64_t value)
{
    Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
    pol.kind = kind;
    pol.value = value;
    Mmapio__SetPolicy sp = MMAPIO__SET_POLICY__INIT;
    sp.handle = handle;
    sp.policy = &pol;
    return ask(h, REQUEST(SET_POLICY, set_policy, &sp));
}

static int close_holder(HANDLE h, uint64_t handle)
{
    Mmapio__Close cl = MMAPIO__CLOSE__INIT;
    cl.handle = handle;
    return ask(h, REQUEST(CLOSE, close, &cl));
}

static int flush(HANDLE h, uint64_t handle, uint64_t offset, uint64_t len)
{
    Mmapio__Flush fl = MMAPIO__FLUSH__INIT;
    fl.handle = handle;
    fl.offset = offset;
    fl.len = len;
    return ask(h, REQUEST(FLUSH, flush, &fl));
}

static int delete_map(HANDLE h, const char *path, bool anonymous)
{
    Mmapio__Delete del = MMAPIO__DELETE__INIT;
    del.path = (char *)path;
    del.anonymous = anonymous;
    return ask(h, REQUEST(DELETE_MAP, delete_map, &del));
}

static int watch(HANDLE h, uint64_t handle, uint64_t *watch_id)
{
    Mmapio__Watch wa = MMAPIO__WATCH__INIT;
    wa.handle = handle;
    Mmapio__Request q = REQUEST(WATCH, watch, &wa);
    int err;
    Mmapio__Reply *r = call(h, &q, &err, NULL);
    if (r && !err) {
        CHECK(r->result_case == MMAPIO__REPLY__RESULT_WATCH);
        if (watch_id)
            *watch_id = r->watch->watch_id;
    }
    reply_free(r);
    return err;
}

/* A hello as this test: the reply (its error in *err), the control
 * area's section in *ctl. */
static Mmapio__Reply *say_hello(HANDLE h, int *err, HANDLE *ctl)
{
    Mmapio__Hello he = MMAPIO__HELLO__INIT;
    he.protocol = 2;
    he.client_name = "test_daemon_win";
    Mmapio__Request q = REQUEST(HELLO, hello, &he);
    return call(h, &q, err, ctl);
}

/* A hello, its reply checked (our uid, the control area read-only):
 * 0 or the error. */
static int hello(HANDLE h)
{
    int err;
    HANDLE ctl;
    Mmapio__Reply *r = say_hello(h, &err, &ctl);
    if (r && !err) {
        CHECK(r->result_case == MMAPIO__REPLY__RESULT_HELLO && r->hello->ctl_slots > 0);
        /* Our uid, as the daemon numbers SIDs: the RID of a local account
         * (wine's user is one), else from 0x80000000. */
        uint32_t rid = wt_my_rid();
        CHECK(r->hello && r->hello->uid_known);
        CHECK(r->hello && (r->hello->uid == rid || r->hello->uid >= 0x80000000u) &&
              r->hello->uid != UINT32_MAX);
        CHECK(ctl != NULL); /* the control area, read-only */
        if (ctl) {
            void *p = MapViewOfFile(ctl, FILE_MAP_READ, 0, 0, 0);
            CHECK(p != NULL);
            if (p)
                UnmapViewOfFile(p);
            CHECK(MapViewOfFile(ctl, FILE_MAP_WRITE, 0, 0, 0) == NULL);
            CloseHandle(ctl);
        }
    }
    reply_free(r);
    return r ? err : 1;
}

/* Open: the error, *section the grant's handle and *handle the holder. */
static int open_map(HANDLE h, const char *path, bool anonymous, int mode, bool create,
                    HANDLE *section, uint64_t *handle)
{
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = (char *)path;
    o.anonymous = anonymous;
    o.mode = (Mmapio__Mode)mode;
    o.create = create;
    o.size = MAP_SIZE;
    Mmapio__Request q = REQUEST(OPEN, open, &o);
    int err;
    HANDLE sec = NULL;
    Mmapio__Reply *r = call(h, &q, &err, &sec);
    if (r && !err) {
        CHECK(r->result_case == MMAPIO__REPLY__RESULT_OPEN && r->open->size == MAP_SIZE);
        CHECK(sec != NULL);
        if (handle)
            *handle = r->open->handle;
    }
    if (section)
        *section = sec;
    else if (sec)
        CloseHandle(sec);
    reply_free(r);
    return err;
}

/* A hello that keeps the control area: its view, read-only, or NULL. */
static const struct ctl_slot *hello_ctl(HANDLE h)
{
    int err;
    HANDLE ctl = NULL;
    reply_free(say_hello(h, &err, &ctl));
    const struct ctl_slot *slots = ctl ? MapViewOfFile(ctl, FILE_MAP_READ, 0, 0, 0) : NULL;
    if (ctl)
        CloseHandle(ctl);
    return err ? NULL : slots;
}

static HANDLE connect_hello(const char *pipe)
{
    HANDLE h = wt_pipe_open(pipe);
    if (h && hello(h) != 0) {
        CloseHandle(h);
        h = NULL;
    }
    return h;
}

/* ---- the other processes ------------------------------------------------- */

static int child(const char *pipe, const char *role, const char *kind, const char *name)
{
    bool writer = !strcmp(role, "writer");
    HANDLE h = connect_hello(pipe);
    HANDLE sec = NULL;
    if (!h || open_map(h, name, !strcmp(kind, "anon"), writer ? 1 : 0, writer, &sec, NULL) ||
        !sec)
        return 2;
    char *p = MapViewOfFile(sec, writer ? FILE_MAP_WRITE : FILE_MAP_READ, 0, 0, MAP_SIZE);
    if (!p)
        return 3;
    int rc = 0;
    if (writer)
        memcpy(p, message, sizeof(message));
    else
        rc = memcmp(p, message, sizeof(message)) ? 4 : 0;
    UnmapViewOfFile(p);
    CloseHandle(sec);
    CloseHandle(h);
    return rc;
}

static int run_child(const char *pipe, const char *role, const char *kind, const char *name)
{
    return wt_run_self("child %s %s %s %s", pipe, role, kind, name);
}

/* ---- the checks ------------------------------------------------------------ */

/* Whether the pipe's owner is this process's user (the daemon runs as
 * it here): clients judge the daemon by the pipe's owner. */
static bool owned_by_me(HANDLE pipe)
{
    PSID owner = NULL, me = wt_my_sid();
    PSECURITY_DESCRIPTOR sd = NULL;
    bool ok = GetSecurityInfo(pipe, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner,
                              NULL, NULL, NULL, &sd) == ERROR_SUCCESS && owner && me &&
              EqualSid(owner, me);
    LocalFree(sd);
    return ok;
}

static void check_hello_ping(const char *pipe)
{
    HANDLE h = wt_pipe_open(pipe);
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(owned_by_me(h));
    /* Ping (with no body) before hello: refused, and the connection closed. */
    CHECK(ask(h, REQUEST(PING, ping, NULL)) == -18);
    CloseHandle(h);

    h = connect_hello(pipe);
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(ping(h));
    CloseHandle(h);
}

static void check_sharing(const char *pipe, const char *root)
{
    /* Anonymous: made by the writer, read by the reader. */
    CHECK(run_child(pipe, "writer", "anon", "shared") == 0);
    CHECK(run_child(pipe, "reader", "anon", "shared") == 0);
    /* A file beneath the root, in a folder. */
    CHECK(run_child(pipe, "writer", "file", "sub/shared.dat") == 0);
    CHECK(run_child(pipe, "reader", "file", "sub/shared.dat") == 0);
    /* The file holds it too. */
    char path[MAX_PATH], buf[sizeof(message)] = "";
    snprintf(path, sizeof(path), "%s\\sub\\shared.dat", root);
    HANDLE f = CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, 0, NULL);
    DWORD got = 0;
    CHECK(f != INVALID_HANDLE_VALUE && ReadFile(f, buf, sizeof(buf), &got, NULL) &&
          got == sizeof(buf) && !memcmp(buf, message, sizeof(message)));
    if (f != INVALID_HANDLE_VALUE)
        CloseHandle(f);
}

static void check_read_only(const char *pipe)
{
    HANDLE h = connect_hello(pipe);
    CHECK(h != NULL);
    if (!h)
        return;
    const char *names[] = {"shared", "sub/shared.dat"};
    for (int i = 0; i < 2; i++) {
        HANDLE ro = NULL, cow = NULL;
        CHECK(open_map(h, names[i], i == 0, 0, false, &ro, NULL) == 0 && ro);
        if (ro) {
            CHECK(wt_can_map(ro, FILE_MAP_READ, MAP_SIZE));
            CHECK(!wt_can_map(ro, FILE_MAP_WRITE, MAP_SIZE));
            CHECK(!wt_can_dup(ro, FILE_MAP_WRITE));
            CHECK(!wt_can_dup(ro, FILE_MAP_ALL_ACCESS));
            CloseHandle(ro);
        }
        /* Copy-on-write: a private copy; the mapping keeps its bytes. */
        CHECK(open_map(h, names[i], i == 0, 2, false, &cow, NULL) == 0 && cow);
        if (cow) {
            char *p = MapViewOfFile(cow, FILE_MAP_COPY, 0, 0, MAP_SIZE);
            CHECK(p != NULL);
            if (p) {
                p[0] = 'X';
                UnmapViewOfFile(p);
            }
            CHECK(!wt_can_map(cow, FILE_MAP_WRITE, MAP_SIZE));
            CloseHandle(cow);
        }
        HANDLE rw = NULL;
        CHECK(open_map(h, names[i], i == 0, 1, false, &rw, NULL) == 0 && rw);
        if (rw) {
            char *p = MapViewOfFile(rw, FILE_MAP_READ, 0, 0, MAP_SIZE);
            CHECK(p && !memcmp(p, message, sizeof(message)));
            if (p)
                UnmapViewOfFile(p);
            CloseHandle(rw);
        }
    }
    CloseHandle(h);
}

static void check_confinement(const char *pipe, const char *root)
{
    HANDLE h = connect_hello(pipe);
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(open_map(h, "../outside.dat", false, 1, true, NULL, NULL) == E_PERMISSION);
    CHECK(open_map(h, "sub/../../outside.dat", false, 1, true, NULL, NULL) == E_PERMISSION);
    CHECK(open_map(h, "/etc/passwd", false, 0, false, NULL, NULL) == E_PERMISSION);
    CHECK(open_map(h, "C:\\windows\\win.ini", false, 0, false, NULL, NULL) == E_PERMISSION);
    CHECK(open_map(h, "sub\\..\\..\\outside.dat", false, 1, true, NULL, NULL) == E_PERMISSION);
    CHECK(open_map(h, "sub/shared.dat:stream", false, 1, true, NULL, NULL) ==
          E_INVALID_ARGUMENT);
    CHECK(open_map(h, "missing.dat", false, 0, false, NULL, NULL) == E_NOT_FOUND);

    /* A link inside the root to a folder outside it: refused. Under wine
     * the link is a Unix one that tests/win/daemon_win.sh made (wine shows
     * it as a reparse point; its CreateSymbolicLink says yes and makes
     * nothing); on Windows the test makes it. */
    char outside[MAX_PATH], link[MAX_PATH], escaped[MAX_PATH];
    snprintf(outside, sizeof(outside), "%s-outside", root);
    snprintf(link, sizeof(link), "%s\\link", root);
    snprintf(escaped, sizeof(escaped), "%s\\escaped.dat", link);
    bool made = false, ours = false;
    if (GetFileAttributesA(link) == INVALID_FILE_ATTRIBUTES) {
        CreateDirectoryA(outside, NULL);
        ours = made = CreateSymbolicLinkA(link, outside, SYMBOLIC_LINK_FLAG_DIRECTORY) &&
                      GetFileAttributesA(link) != INVALID_FILE_ATTRIBUTES;
    } else {
        made = true;
    }
    if (made) {
        CHECK(GetFileAttributesA(link) & FILE_ATTRIBUTE_REPARSE_POINT);
        CHECK(open_map(h, "link/escaped.dat", false, 1, true, NULL, NULL) == E_PERMISSION);
        /* The link itself: refused (a folder under wine, which follows it). */
        CHECK(open_map(h, "link", false, 0, false, NULL, NULL) != 0);
        CHECK(GetFileAttributesA(escaped) == INVALID_FILE_ATTRIBUTES);
        if (ours)
            RemoveDirectoryA(link);
    } else {
        printf("skip: no symbolic link to a folder could be made here (%lu)\n",
               (unsigned long)GetLastError());
    }
    if (ours || !made)
        RemoveDirectoryA(outside);
    /* Links to files (made by daemon_win.sh under wine): one to a file
     * outside, one to a file outside that does not exist yet. */
    snprintf(link, sizeof(link), "%s\\flink", root);
    if (GetFileAttributesA(link) != INVALID_FILE_ATTRIBUTES) {
        CHECK(open_map(h, "flink", false, 0, false, NULL, NULL) == E_PERMISSION);
        CHECK(open_map(h, "flink", false, 1, true, NULL, NULL) == E_PERMISSION);
        CHECK(open_map(h, "dlink", false, 1, true, NULL, NULL) != 0);
        Mmapio__Open o = MMAPIO__OPEN__INIT; /* truncating through it */
        o.path = "flink";
        o.mode = MMAPIO__MODE__MODE_READ_WRITE;
        o.truncate = true;
        o.size = 1;
        CHECK(ask(h, REQUEST(OPEN, open, &o)) == E_PERMISSION);
    } else {
        printf("skip: no links to files here\n");
    }
    CloseHandle(h);
}

static void check_requests(const char *pipe, const char *root)
{
    HANDLE h = connect_hello(pipe);
    CHECK(h != NULL);
    if (!h)
        return;
    HANDLE sec = NULL;
    uint64_t handle = 0;
    int err;
    CHECK(open_map(h, "shared", true, 1, false, &sec, &handle) == 0);
    if (sec)
        CloseHandle(sec);

    Mmapio__Stat st = MMAPIO__STAT__INIT;
    st.handle = handle;
    Mmapio__Request q = REQUEST(STAT, stat, &st);
    Mmapio__Reply *r = call(h, &q, &err, NULL);
    CHECK(r && err == 0 && r->result_case == MMAPIO__REPLY__RESULT_STAT &&
          r->stat->size == MAP_SIZE && r->stat->holders == 1);
    reply_free(r);

    /* Resize: refused with the reason (a section's size is fixed). */
    Mmapio__Resize rz = MMAPIO__RESIZE__INIT;
    rz.handle = handle;
    rz.size = 2 * MAP_SIZE;
    q = REQUEST(RESIZE, resize, &rz);
    r = call(h, &q, &err, NULL);
    CHECK(r && err == -5 && strstr(r->message, "fixed on Windows")); /* RESIZE_FAILED */
    reply_free(r);

    /* Admin requests are served (winadmin; their end-to-end test is
     * ctl_win): a status that counts the mappings made above. */
    Mmapio__AdminStatus as = MMAPIO__ADMIN_STATUS__INIT;
    q = REQUEST(ADMIN_STATUS, admin_status, &as);
    r = call(h, &q, &err, NULL);
    CHECK(r && err == 0 && r->result_case == MMAPIO__REPLY__RESULT_STATUS &&
          r->status->pid > 0 && r->status->clients >= 1 && r->status->all);
    reply_free(r);

    /* A copy is served (its end-to-end test is copy_win): a missing
     * source is NOT_FOUND, with both paths in its words. */
    Mmapio__Copy cp = MMAPIO__COPY__INIT;
    cp.src = (char *)"a";
    cp.dst = (char *)"b";
    q = REQUEST(COPY, copy, &cp);
    r = call(h, &q, &err, NULL);
    CHECK(r && err == E_NOT_FOUND && r->message && strstr(r->message, "copy a to b"));
    reply_free(r);
    /* A reattach is served (its end-to-end test is reconnect_win): a
     * missing file is NOT_FOUND; an anonymous mapping never comes back. */
    Mmapio__Reattach ra = MMAPIO__REATTACH__INIT;
    ra.path = (char *)"a";
    q = REQUEST(REATTACH, reattach, &ra);
    r = call(h, &q, &err, NULL);
    CHECK(r && err == E_NOT_FOUND && r->message && strstr(r->message, "a: "));
    reply_free(r);
    ra.anonymous = true;
    r = call(h, &q, &err, NULL);
    CHECK(r && err == E_NOT_FOUND && r->message && strstr(r->message, "no state file"));
    reply_free(r);
    check_from_fd_frames(h, root);

    CHECK(close_holder(h, handle) == 0);
    CHECK(close_holder(h, handle) == E_NOT_FOUND);

    /* Flushes of a file: done on a worker thread, answered. */
    uint64_t fh = 0, roh = 0;
    CHECK(open_map(h, "sub/shared.dat", false, 1, false, NULL, &fh) == 0);
    CHECK(open_map(h, "sub/shared.dat", false, 0, false, NULL, &roh) == 0);
    CHECK(flush(h, fh, 0, 0) == 0); /* all of it */
    CHECK(flush(h, fh, 100, 10) == 0);
    CHECK(flush(h, fh, 100, MAP_SIZE) == -3); /* OUT_OF_BOUNDS */
    CHECK(flush(h, roh, 0, 0) == -2);         /* INVALID_MODE: not a writer's */

    /* Deleted: the name is gone. */
    CHECK(delete_map(h, "shared", true) == 0);
    CHECK(open_map(h, "shared", true, 0, false, NULL, NULL) == E_NOT_FOUND);
    CloseHandle(h);
}

/* Sends a notice (one-way) and waits until the slot's flush generation
 * moves (the daemon's flush began); a ping after it must be answered
 * next, so the notice got no reply. */
static bool notice_flushes(HANDLE h, uint64_t handle, Mmapio__NoticeKind kind,
                           const struct ctl_slot *slot)
{
    uint32_t gen = atomic_load(&slot->flush_gen);
    if (!notice(h, handle, kind, 0, 0, 0) || !ping(h))
        return false;
    /* A hang guard, not a measure: the flush is due within milliseconds. */
    for (int i = 0; i < 6000 && atomic_load(&slot->flush_gen) == gen; i++)
        Sleep(10);
    return atomic_load(&slot->flush_gen) != gen;
}

static void check_policies(const char *pipe)
{
    HANDLE h = wt_pipe_open(pipe);
    const struct ctl_slot *slots = h ? hello_ctl(h) : NULL;
    CHECK(slots != NULL);
    if (!slots)
        return;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = "sub/shared.dat";
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    Mmapio__Request q = REQUEST(OPEN, open, &o);
    int err;
    HANDLE sec = NULL;
    Mmapio__Reply *r = call(h, &q, &err, &sec);
    CHECK(r && err == 0 && sec);
    if (r && !err) {
        uint64_t handle = r->open->handle;
        const struct ctl_slot *slot = &slots[r->open->ctl_slot];
        CHECK(set_policy(h, handle, MMAPIO__FLUSH_KIND__FLUSH_EVERY_MILLIS, 20) == 0);
        mmapio_flush_policy p = ctl_unpack_policy(atomic_load(&slot->policy));
        CHECK(p.kind == MMAPIO_FLUSH_EVERY_MILLIS && p.value == 20);
        /* The first write's DIRTY notice: a timed flush follows. */
        CHECK(notice_flushes(h, handle, MMAPIO__NOTICE_KIND__NOTICE_DIRTY, slot));
        /* A writer's threshold (every_bytes): flushed when it says so. */
        CHECK(set_policy(h, handle, MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES, 100) == 0);
        CHECK(notice_flushes(h, handle, MMAPIO__NOTICE_KIND__NOTICE_FLUSH, slot));
        /* A writer leaves with a write not yet flushed (the policy's
         * pace is an hour): flushed as it goes. */
        CHECK(set_policy(h, handle, MMAPIO__FLUSH_KIND__FLUSH_EVERY_MILLIS, 3600000) == 0);
        CHECK(notice(h, handle, MMAPIO__NOTICE_KIND__NOTICE_DIRTY, 0, 0, 0));
        uint32_t gen = atomic_load(&slot->flush_gen);
        CHECK(close_holder(h, handle) == 0);
        CHECK(atomic_load(&slot->flush_gen) != gen);
    }
    reply_free(r);
    if (sec)
        CloseHandle(sec);
    UnmapViewOfFile((void *)slots);
    CloseHandle(h);
}

/* The next message on h, which must be an event: its kind, or -1. */
static int next_event(HANDLE h, Mmapio__Event *out)
{
    HANDLE hs[4];
    unsigned n = 0;
    Mmapio__ServerMessage *m = wt_raw_recv(h, hs, &n);
    int kind = -1;
    if (m && m->body_case == MMAPIO__SERVER_MESSAGE__BODY_EVENT) {
        kind = (int)m->event->kind;
        *out = *m->event;
        out->policy = NULL;
    }
    if (m)
        mmapio__server_message__free_unpacked(m, NULL);
    return kind;
}

/* Whether the next message on h is a MODIFIED of [off, off+len). */
static bool next_modified(HANDLE h, uint64_t off, uint64_t len)
{
    Mmapio__Event ev;
    return next_event(h, &ev) == MMAPIO__EVENT_KIND__EVENT_MODIFIED && ev.has_range &&
           ev.offset == off && ev.len == len;
}

static void check_watches(const char *pipe)
{
    HANDLE w = wt_pipe_open(pipe);
    const struct ctl_slot *slots = w ? hello_ctl(w) : NULL;
    HANDLE wr = connect_hello(pipe);
    CHECK(slots && wr);
    if (!slots || !wr)
        return;
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = "watched";
    o.anonymous = true;
    o.create = true;
    o.size = MAP_SIZE;
    o.mode = MMAPIO__MODE__MODE_READ_WRITE;
    Mmapio__Request q = REQUEST(OPEN, open, &o);
    int err;
    Mmapio__Reply *r = call(w, &q, &err, NULL);
    CHECK(r && err == 0);
    uint64_t map_id = r && !err ? r->open->map_id : 0;
    uint32_t slot = r && !err ? r->open->ctl_slot : 0;
    uint64_t handle = r && !err ? r->open->handle : 0;
    reply_free(r);

    uint64_t watch_id = 0;
    CHECK(watch(w, handle, &watch_id) == 0);
    CHECK(atomic_load(&slots[slot].watchers) == 1); /* writers notice now */

    /* Another client writes and says so; then changes the policy; then
     * deletes the name. The watcher hears each, in order. */
    uint64_t wh = 0;
    CHECK(open_map(wr, "watched", true, 1, false, NULL, &wh) == 0);
    CHECK(notice_write(wr, wh, 10, 20, 0));
    CHECK(notice_write(wr, wh, MAP_SIZE, 20, 0)); /* out of bounds: dropped, no event */
    CHECK(set_policy(wr, wh, MMAPIO__FLUSH_KIND__FLUSH_MANUAL, 0) == 0);
    CHECK(delete_map(wr, "watched", true) == 0);

    Mmapio__Event ev;
    CHECK(next_event(w, &ev) == MMAPIO__EVENT_KIND__EVENT_MODIFIED && ev.map_id == map_id &&
          ev.has_range && ev.offset == 10 && ev.len == 20);
    CHECK(next_event(w, &ev) == MMAPIO__EVENT_KIND__EVENT_POLICY && ev.map_id == map_id);
    CHECK(next_event(w, &ev) == MMAPIO__EVENT_KIND__EVENT_REMOVED && ev.map_id == map_id);

    Mmapio__Unwatch un = MMAPIO__UNWATCH__INIT;
    un.watch_id = watch_id;
    CHECK(ask(w, REQUEST(UNWATCH, unwatch, &un)) == 0);
    CHECK(atomic_load(&slots[slot].watchers) == 0);
    CHECK(ask(w, REQUEST(UNWATCH, unwatch, &un)) == E_NOT_FOUND);
    UnmapViewOfFile((void *)slots);
    CloseHandle(wr);
    CloseHandle(w);
}

/* A message waits on h within about ms (a hang guard, not a measure). */
static bool readable(HANDLE h, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        DWORD avail = 0;
        if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
            return false;
        if (avail)
            return true;
        Sleep(10);
    }
    return false;
}

/* A watch of a new anonymous mapping `name` on w, and a writer's holder
 * of it on wr: 0 or the failure. */
static int watch_pair(HANDLE w, HANDLE wr, const char *name, uint64_t *wh)
{
    uint64_t handle = 0;
    if (open_map(w, name, true, 1, true, NULL, &handle) != 0 ||
        open_map(wr, name, true, 1, false, NULL, wh) != 0)
        return 1;
    return watch(w, handle, NULL);
}

/* A watcher that stops reading while a writer says 4000 writes: the
 * writer and a third client are served on; the watcher's events beyond
 * its bound are dropped and it is told OVERFLOW once it reads again, its
 * connection alive; then it hears ranged writes again. (The daemon runs
 * with --max_events 16; the pipe's own buffer holds some hundreds.) */
static void check_overflow(const char *pipe)
{
    enum { NOTICES = 4000 };
    HANDLE w = connect_hello(pipe), wr = connect_hello(pipe);
    uint64_t wh = 0;
    CHECK(w && wr && watch_pair(w, wr, "flood", &wh) == 0);
    if (!w || !wr || !wh)
        return;
    bool sent = true;
    for (int i = 0; i < NOTICES && sent; i++)
        sent = notice_write(wr, wh, (uint64_t)i % MAP_SIZE, 1, 0);
    CHECK(sent);
    CHECK(ping(wr)); /* every notice handled, the writer never held up */
    HANDLE other = connect_hello(pipe);
    CHECK(other && ping(other));
    if (other)
        CloseHandle(other);

    int modified = 0, overflow = 0, other_msgs = 0;
    while (readable(w, 5000)) {
        HANDLE hs[4];
        unsigned n = 0;
        Mmapio__ServerMessage *m = wt_raw_recv(w, hs, &n);
        if (!m)
            break;
        if (m->body_case == MMAPIO__SERVER_MESSAGE__BODY_EVENT &&
            m->event->kind == MMAPIO__EVENT_KIND__EVENT_MODIFIED)
            modified++;
        else if (m->body_case == MMAPIO__SERVER_MESSAGE__BODY_EVENT &&
                 m->event->kind == MMAPIO__EVENT_KIND__EVENT_OVERFLOW)
            overflow++;
        else
            other_msgs++;
        mmapio__server_message__free_unpacked(m, NULL);
        if (overflow && !readable(w, 100))
            break;
    }
    printf("  %d of %d MODIFIED, %d OVERFLOW\n", modified, NOTICES, overflow);
    CHECK(overflow == 1 && modified < NOTICES && other_msgs == 0);
    /* Alive, and hearing writes again. */
    CHECK(ping(w));
    CHECK(notice_write(wr, wh, 5, 6, 0));
    CHECK(next_modified(w, 5, 6));
    CloseHandle(wr);
    CloseHandle(w);
}

/* A writer's hold (a WRITE notice's hold_ms): the ranged MODIFIED now,
 * and MODIFIED without a range once the hold has passed. A writer that
 * lost notices (`lost`) gets its watchers OVERFLOW: of one holder, or of
 * all it holds read-write (handle 0). */
static void check_hold_lost(const char *pipe)
{
    HANDLE w = connect_hello(pipe), wr = connect_hello(pipe);
    uint64_t wh = 0;
    CHECK(w && wr && watch_pair(w, wr, "held", &wh) == 0);
    if (!w || !wr || !wh)
        return;
    Mmapio__Event ev;
    CHECK(notice_write(wr, wh, 0, 8, 50));
    CHECK(next_modified(w, 0, 8));
    /* readable: a hang guard (it is due after 70 ms) */
    CHECK(readable(w, 10000) &&
          next_event(w, &ev) == MMAPIO__EVENT_KIND__EVENT_MODIFIED && !ev.has_range);

    Mmapio__Notice n = MMAPIO__NOTICE__INIT;
    n.handle = 0;
    n.lost = true;
    CHECK(tell(wr, REQUEST(NOTICE, notice, &n)));
    CHECK(next_event(w, &ev) == MMAPIO__EVENT_KIND__EVENT_OVERFLOW && ev.map_id != 0);
    n.handle = wh;
    n.kind = MMAPIO__NOTICE_KIND__NOTICE_WRITE;
    n.offset = 1;
    n.len = 2;
    CHECK(tell(wr, REQUEST(NOTICE, notice, &n)));
    CHECK(next_event(w, &ev) == MMAPIO__EVENT_KIND__EVENT_OVERFLOW);
    CHECK(next_modified(w, 1, 2));
    /* Nothing more: no hold was asked. */
    CHECK(ping(w));
    CloseHandle(wr);
    CloseHandle(w);
}

/* Frames the daemon closes the connection on (after an error reply,
 * where `error` is set), each sent on a connection of its own. */
static const struct {
    const char *what;
    bool after_hello; /* sent after a hello, else first */
    size_t len;       /* bytes sent: `bytes`, zeros after them */
    uint8_t bytes[12];
    int error;
} bad_frames[] = {
    {"too many handles", true, 8, {99, 0, 0, 0, 0, 0, 0, 0}},
    {"flags set", false, 8, {0, 0, 0, 0, 1, 0, 0, 0}},
    {"shorter than its header", false, 3, "abc"},
    {"longer than the frame limit (64 KiB of protobuf)", true, 8 + 64 * 1024 + 100, {0}},
    {"not protobuf, before hello", false, 12, {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
     -18},
    {"nothing: closed at the hello deadline", false, 0, {0}},
};

static void check_malformed(const char *pipe)
{
    for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); i++) {
        printf("  %s\n", bad_frames[i].what);
        HANDLE h = bad_frames[i].after_hello ? connect_hello(pipe) : wt_pipe_open(pipe);
        CHECK(h != NULL);
        if (!h)
            continue;
        size_t len = bad_frames[i].len;
        uint8_t *buf = calloc(1, len + sizeof(bad_frames[i].bytes));
        CHECK(buf != NULL);
        if (buf && len) {
            memcpy(buf, bad_frames[i].bytes, sizeof(bad_frames[i].bytes));
            CHECK(send_raw(h, buf, len));
        }
        free(buf);
        HANDLE hs[4];
        unsigned n;
        if (bad_frames[i].error) {
            Mmapio__ServerMessage *m = wt_raw_recv(h, hs, &n);
            CHECK(m && m->reply && m->reply->error == bad_frames[i].error);
            if (m)
                mmapio__server_message__free_unpacked(m, NULL);
        }
        CHECK(wt_raw_recv(h, hs, &n) == NULL);
        CloseHandle(h);
    }
    /* Valid requests with bytes flipped, after hello: whatever they
     * decode to is answered or refused; the daemon serves on. */
    HANDLE h = connect_hello(pipe);
    CHECK(h != NULL);
    if (h) {
        uint32_t seed = 12345;
        Mmapio__FlushPolicy pol = MMAPIO__FLUSH_POLICY__INIT;
        pol.kind = MMAPIO__FLUSH_KIND__FLUSH_EVERY_MILLIS;
        pol.value = 5;
        Mmapio__Open o = MMAPIO__OPEN__INIT;
        o.path = "fuzz/f";
        o.create = true;
        o.size = 64;
        o.policy = &pol;
        Mmapio__Request q = REQUEST(OPEN, open, &o);
        q.id = 7;
        uint8_t buf[8 + 64];
        size_t n = mmapio__request__get_packed_size(&q);
        memset(buf, 0, 8);
        mmapio__request__pack(&q, buf + 8);
        int sent = 0;
        for (int i = 0; i < 500; i++) {
            uint8_t frame[sizeof(buf)];
            memcpy(frame, buf, sizeof(buf));
            for (int k = 0; k < 1 + i % 3; k++) {
                seed = seed * 1103515245u + 12345u;
                frame[8 + (seed >> 16) % n] ^= (uint8_t)(1u << ((seed >> 8) % 8));
            }
            if (send_raw(h, frame, 8 + n))
                sent++;
        }
        CHECK(sent > 0);
        /* All of them handled before the ping's reply (or the connection
         * closed, which a bad one may do). */
        Mmapio__Ping p = MMAPIO__PING__INIT;
        q = REQUEST(PING, ping, &p);
        uint64_t id = send_req(h, &q);
        int replies = 0;
        for (;;) {
            HANDLE hs[4];
            unsigned k = 0;
            Mmapio__ServerMessage *m = wt_raw_recv(h, hs, &k);
            if (!m)
                break;
            for (unsigned j = 0; j < k; j++)
                CloseHandle(hs[j]);
            bool last = m->body_case == MMAPIO__SERVER_MESSAGE__BODY_REPLY &&
                        m->reply->id == id;
            replies++;
            mmapio__server_message__free_unpacked(m, NULL);
            if (last)
                break;
        }
        printf("  %d of 500 flipped requests sent, %d messages back\n", sent, replies);
        CloseHandle(h);
    }
    /* The daemon still serves. */
    h = connect_hello(pipe);
    CHECK(h != NULL);
    if (h)
        CloseHandle(h);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 6 && !strcmp(argv[1], "child"))
        return child(argv[2], argv[3], argv[4], argv[5]);
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: test_daemon_win DAEMON.exe [ROOT]\n");
        return 2;
    }
    /* The data root: the one given (its owner removes it), else a new one. */
    bool own_root = argc < 3;
    struct wt_daemon d;
    bool up = wt_daemon_start(&d, argv[1], "test", own_root ? NULL : argv[2],
                              "--hello_timeout_ms 1000 --max_events 16");
    CHECK(up);
    const char *pipe = d.pipe, *root = d.root;
    char sub[MAX_PATH];
    snprintf(sub, sizeof(sub), "%s\\sub", root);
    CHECK(CreateDirectoryA(sub, NULL));
    if (up) {
        printf("a second daemon on the same pipe\n");
        PROCESS_INFORMATION pi2;
        bool started = wt_spawn(d.cmd, NULL, NULL, 0, &pi2);
        CHECK(started);
        if (started)
            CHECK(wt_wait(&pi2, 60000) == 1); /* refused: the pipe is taken */
        printf("hello, ping\n");
        check_hello_ping(pipe);
        printf("two processes share an anonymous and a file mapping\n");
        check_sharing(pipe, root);
        printf("read-only and copy-on-write grants\n");
        check_read_only(pipe);
        printf("confinement beneath the root\n");
        check_confinement(pipe, root);
        printf("stat, close, delete, requests not served\n");
        check_requests(pipe, root);
        printf("flush policies\n");
        check_policies(pipe);
        printf("watches\n");
        check_watches(pipe);
        printf("a watcher that does not read: OVERFLOW\n");
        check_overflow(pipe);
        printf("a writer's hold, lost notices\n");
        check_hold_lost(pipe);
        printf("malformed frames\n");
        check_malformed(pipe);
    }

    /* Stopped by its stop event (wine has no console here for Ctrl-Break):
     * a clean exit. */
    printf("stop\n");
    CHECK(wt_daemon_stop(&d) == 0);
    if (own_root)
        wt_remove_tree(root); /* and the odd names the flipped requests made */
    return wt_report(argv[0]);
}
