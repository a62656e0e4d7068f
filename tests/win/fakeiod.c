/* fakeiod: a stand-in daemon for the library's Windows tests (fakeiod.h). */
#include "fakeiod.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "membackend.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"
#include "wire.h"

#define CTL_SLOTS 64
#define CTL_SLOT_SIZE 16
#define MAX_FRAME WIRE_DEFAULT_MAX_FRAME
#define ROOM (8 + 32 + MAX_FRAME)

struct section {
    char name[64];
    HANDLE h;
    uint64_t size;
};

static CRITICAL_SECTION lock;
static INIT_ONCE lock_once = INIT_ONCE_STATIC_INIT;
static struct section sections[32];
static int n_sections;
static HANDLE ctl_area;
static uint64_t next_handle = 1;
static volatile uintptr_t last_ro;
static volatile uint64_t watched_map; /* the last map id granted */

static BOOL CALLBACK init_lock(PINIT_ONCE once, PVOID p, PVOID *ctx)
{
    InitializeCriticalSection(&lock);
    return TRUE;
}

uintptr_t fake_last_ro_grant(void)
{
    return last_ro;
}

/* A section as the daemon makes one (its DACL refuses widening). */
static HANDLE section_new(uint64_t size)
{
    int h = mem_section_new("fakeiod", size, 0);
    return h < 0 ? NULL : (HANDLE)(intptr_t)h;
}

/* The section of anonymous mapping `name` (created when `create`), or
 * NULL. */
static struct section *section_of(const char *name, bool create,
                                  uint64_t size)
{
    struct section *s = NULL;
    EnterCriticalSection(&lock);
    for (int i = 0; i < n_sections && !s; i++)
        if (!strcmp(sections[i].name, name))
            s = &sections[i];
    if (!s && create && size > 0 && n_sections < 32 && strlen(name) < 64) {
        HANDLE h = section_new(size);
        if (h) {
            s = &sections[n_sections++];
            snprintf(s->name, sizeof(s->name), "%s", name);
            s->h = h;
            s->size = size;
        }
    }
    LeaveCriticalSection(&lock);
    return s;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* x86_64: little-endian */
}

/* Sends msg with the handles (values in the client) as one message. */
static bool send_frame(HANDLE pipe, const Mmapio__ServerMessage *msg,
                       const uint64_t *vals, uint32_t n, uint32_t flags)
{
    static __thread uint8_t out[ROOM + 64];
    size_t len = mmapio__server_message__get_packed_size(msg);
    if (8 + 8 * n + len > sizeof(out))
        return false;
    put32(out, n);
    put32(out + 4, flags);
    memcpy(out + 8, vals, 8 * n);
    mmapio__server_message__pack(msg, out + 8 + 8 * n);
    DWORD done;
    return WriteFile(pipe, out, (DWORD)(8 + 8 * n + len), &done, NULL);
}

static bool send_raw(HANDLE pipe, const void *buf, DWORD len)
{
    DWORD done;
    return WriteFile(pipe, buf, len, &done, NULL);
}

/* A broken answer (fake_bad): false when the connection ends here. */
static bool send_bad(HANDLE pipe, enum fake_bad bad, uint64_t id)
{
    static __thread uint8_t out[ROOM + 4096];
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    Mmapio__Reply rep = MMAPIO__REPLY__INIT;
    uint64_t vals[5] = { 0x7ffff000, 0x7ffff004, 0x7ffff008, 0x7ffff00c,
                         0x7ffff010 };
    rep.id = id;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    msg.reply = &rep;
    switch (bad) {
    case FAKE_SHORT_HEADER:
        return send_raw(pipe, "\0\0\0", 3);
    case FAKE_MANY_HANDLES:
        return send_frame(pipe, &msg, vals, 5, 0);
    case FAKE_FLAGS:
        return send_frame(pipe, &msg, NULL, 0, 1);
    case FAKE_GARBAGE:
        memset(out, 0, 8);
        memset(out + 8, 0xff, 64);
        return send_raw(pipe, out, 72);
    case FAKE_HEADER_ONLY:
        memset(out, 0, 8);
        return send_raw(pipe, out, 8);
    case FAKE_HUGE:
        memset(out, 0, sizeof(out));
        out[8] = 0x0a; /* field 1, bytes: long, never whole */
        return send_raw(pipe, out, sizeof(out));
    default:
        return false;
    }
}

/* A MODIFIED event of bytes 8..12 of the mapping opened last, a moment
 * later. */
static bool send_event(HANDLE pipe)
{
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    Mmapio__Event ev = MMAPIO__EVENT__INIT;
    Sleep(200);
    ev.kind = MMAPIO__EVENT_KIND__EVENT_MODIFIED;
    ev.map_id = watched_map;
    ev.has_range = true;
    ev.offset = 8;
    ev.len = 4;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_EVENT;
    msg.event = &ev;
    return send_frame(pipe, &msg, NULL, 0, 0);
}

/* Duplicates h into the client's process: the value there, or 0. */
static uint64_t grant(HANDLE client, HANDLE h, DWORD access)
{
    HANDLE v = NULL;
    if (!DuplicateHandle(GetCurrentProcess(), h, client, &v, access, FALSE, 0))
        return 0;
    return (uint64_t)(uintptr_t)v;
}

static void reply_error(Mmapio__Reply *rep, int err, const char *text)
{
    rep->error = err;
    rep->message = (char *)text;
}

static void open_reply(HANDLE client, ULONG pid, const Mmapio__Open *o,
                       Mmapio__Reply *rep, Mmapio__OpenReply *or,
                       uint64_t *val, uint32_t *n)
{
    struct section *s = o->anonymous && o->path
                            ? section_of(o->path, o->create, o->size)
                            : NULL;
    if (!s) {
        reply_error(rep, MMAPIO_E_NOT_FOUND, "no such anonymous mapping");
        return;
    }
    /* A name starting "carved" is a mapping carved at 4096 bytes into its
     * section, as a small anonymous mapping is from an arena. */
    bool carved = !strncmp(o->path, "carved", 6);
    DWORD access = o->mode == MMAPIO__MODE__MODE_READ_WRITE
                       ? FILE_MAP_READ | FILE_MAP_WRITE
                       : FILE_MAP_READ;
    *val = grant(client, s->h, access);
    if (!*val) {
        reply_error(rep, MMAPIO_E_IO, "DuplicateHandle failed");
        return;
    }
    if (access == FILE_MAP_READ && pid == GetCurrentProcessId())
        last_ro = (uintptr_t)*val;
    *n = 1;
    EnterCriticalSection(&lock);
    or->handle = next_handle++;
    LeaveCriticalSection(&lock);
    or->map_id = (uint64_t)(s - sections) + 1;
    or->size = carved ? s->size - 4096 : s->size;
    or->arena = carved ? or->map_id : 0;
    or->offset = carved ? 4096 : 0;
    or->ctl_slot = (uint32_t)(or->map_id % CTL_SLOTS);
    watched_map = or->map_id;
    rep->result_case = MMAPIO__REPLY__RESULT_OPEN;
    rep->open = or;
}

/* One connection, served on a thread of its own until the client goes. */
struct conn_arg {
    HANDLE pipe;
    enum fake_bad bad;
};

static DWORD WINAPI serve_conn(void *p)
{
    struct conn_arg a = *(struct conn_arg *)p;
    free(p);
    static __thread uint8_t in[ROOM];
    ULONG pid = 0;
    HANDLE client = NULL;
    bool said_hello = false;

    static volatile LONG restarted;
    if (a.bad == FAKE_RESTART)
        a.bad = InterlockedExchange(&restarted, 1) ? FAKE_GOOD : FAKE_HANG_UP;
    if (GetNamedPipeClientProcessId(a.pipe, &pid))
        client = OpenProcess(PROCESS_DUP_HANDLE, FALSE, pid);
    for (;;) {
        DWORD got = 0;
        if (!ReadFile(a.pipe, in, sizeof(in), &got, NULL) || got < 8)
            break;
        uint32_t n_handles;
        memcpy(&n_handles, in, 4);
        if (n_handles > 4 || got < 8 + 8 * n_handles)
            break;
        Mmapio__Request *req = mmapio__request__unpack(
            NULL, got - 8 - 8 * n_handles, in + 8 + 8 * n_handles);
        if (!req)
            break;
        Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
        Mmapio__Reply rep = MMAPIO__REPLY__INIT;
        Mmapio__HelloReply hr = MMAPIO__HELLO_REPLY__INIT;
        Mmapio__OpenReply orep = MMAPIO__OPEN_REPLY__INIT;
        Mmapio__WatchReply watch = MMAPIO__WATCH_REPLY__INIT;
        Mmapio__WokeReply woke = MMAPIO__WOKE_REPLY__INIT;
        bool event_after = false;
        uint64_t val = 0;
        uint32_t n = 0;
        bool answer = true, ok = true;
        msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
        msg.reply = &rep;
        rep.id = req->id;
        switch (req->op_case) {
        case MMAPIO__REQUEST__OP_HELLO:
            if (req->hello->protocol != WIRE_PROTOCOL) {
                reply_error(&rep, MMAPIO_E_PROTOCOL, "protocol not supported");
                break;
            }
            hr.protocol = WIRE_PROTOCOL;
            hr.server_version = "fakeiod";
            hr.max_frame = MAX_FRAME;
            hr.max_inflight = 64;
            hr.max_events = 64;
            hr.ctl_slots = CTL_SLOTS;
            rep.result_case = MMAPIO__REPLY__RESULT_HELLO;
            rep.hello = &hr;
            if (a.bad != FAKE_NO_AREA && (val = grant(client, ctl_area,
                                                      FILE_MAP_READ)))
                n = 1;
            said_hello = true;
            break;
        case MMAPIO__REQUEST__OP_OPEN:
            open_reply(client, pid, req->open, &rep, &orep, &val, &n);
            break;
        case MMAPIO__REQUEST__OP_CLOSE:
            answer = !req->close->no_reply;
            break;
        case MMAPIO__REQUEST__OP_NOTICE:
            answer = false;
            break;
        case MMAPIO__REQUEST__OP_WATCH:
            watch.watch_id = 1;
            rep.result_case = MMAPIO__REPLY__RESULT_WATCH;
            rep.watch = &watch;
            event_after = true;
            break;
        case MMAPIO__REQUEST__OP_WAKE: /* nobody waits here; a Wait is OK at once */
            rep.result_case = MMAPIO__REPLY__RESULT_WOKE;
            rep.woke = &woke;
            break;
        case MMAPIO__REQUEST__OP_WRITE_RING:
            reply_error(&rep, MMAPIO_E_INVALID_ARGUMENT,
                        "not supported on Windows");
            break;
        default:
            break;
        }
        if (said_hello && req->op_case == MMAPIO__REQUEST__OP_PING &&
            a.bad != FAKE_GOOD && a.bad != FAKE_NO_AREA) {
            if (a.bad == FAKE_HANG_UP)
                ok = false;
            else
                ok = send_bad(a.pipe, a.bad, req->id);
        } else if (answer)
            ok = send_frame(a.pipe, &msg, &val, n, 0);
        if (ok && event_after) /* while the client waits in a dispatch */
            ok = send_event(a.pipe);
        mmapio__request__free_unpacked(req, NULL);
        if (!ok)
            break;
    }
    FlushFileBuffers(a.pipe);
    DisconnectNamedPipe(a.pipe);
    CloseHandle(a.pipe);
    if (client)
        CloseHandle(client);
    return 0;
}

struct listen_arg {
    wchar_t name[256];
    enum fake_bad bad;
    HANDLE first;
};

static HANDLE instance(const wchar_t *name, bool first)
{
    return CreateNamedPipeW(name,
        PIPE_ACCESS_DUPLEX | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT |
            PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_UNLIMITED_INSTANCES, ROOM, ROOM, 0, NULL);
}

static DWORD WINAPI listen_loop(void *p)
{
    struct listen_arg *l = p;
    HANDLE pipe = l->first;
    for (;;) {
        if (!ConnectNamedPipe(pipe, NULL) &&
            GetLastError() != ERROR_PIPE_CONNECTED) {
            CloseHandle(pipe);
        } else {
            struct conn_arg *c = malloc(sizeof(*c));
            c->pipe = pipe;
            c->bad = l->bad;
            HANDLE t = CreateThread(NULL, 0, serve_conn, c, 0, NULL);
            if (t)
                CloseHandle(t);
        }
        pipe = instance(l->name, false);
        if (pipe == INVALID_HANDLE_VALUE)
            return 1;
    }
}

int fake_start(const char *name, enum fake_bad bad)
{
    InitOnceExecuteOnce(&lock_once, init_lock, NULL, NULL);
    EnterCriticalSection(&lock);
    if (!ctl_area)
        ctl_area = section_new(CTL_SLOTS * CTL_SLOT_SIZE);
    LeaveCriticalSection(&lock);
    struct listen_arg *l = calloc(1, sizeof(*l));
    if (!ctl_area || !l ||
        !MultiByteToWideChar(CP_UTF8, 0, name, -1, l->name, 256))
        return -1;
    l->bad = bad;
    /* The first instance exists before fake_start returns: a client that
     * connects next finds it. */
    l->first = instance(l->name, true);
    if (l->first == INVALID_HANDLE_VALUE)
        return -1;
    HANDLE t = CreateThread(NULL, 0, listen_loop, l, 0, NULL);
    if (!t)
        return -1;
    CloseHandle(t);
    return 0;
}
