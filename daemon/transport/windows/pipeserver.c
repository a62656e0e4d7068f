/*
 * pipeserver (Windows): overlapped named-pipe I/O on one completion port
 * (pipeserver.h). One instance always waits in ConnectNamedPipe; each
 * connection has at most one read and one write in flight. A connection
 * is freed once it is dead and its last operation has completed.
 */
#include "pipeserver.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <sddl.h>

#include "log.h"

/* SYSTEM, administrators and the daemon's own account: everything;
 * authenticated users: FILE_GENERIC_READ and FILE_GENERIC_WRITE but for
 * FILE_APPEND_DATA, which on a pipe is FILE_CREATE_PIPE_INSTANCE (0x4),
 * so no client can add a server instance of the name and impersonate the
 * daemon. A client must therefore open with GENERIC_READ |
 * FILE_WRITE_DATA | FILE_WRITE_ATTRIBUTES, not GENERIC_WRITE. */
#define PIPE_DACL L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)(A;;0x0012019b;;;AU)"
#define PIPE_BUFFER (64u * 1024u)
#define KEY_STOP ((ULONG_PTR)1)

enum op_kind { OP_CONNECT, OP_READ, OP_WRITE };

struct op {
    OVERLAPPED ov;
    enum op_kind kind;
    struct ps_conn *c;
};

struct frame {
    struct frame *next;
    size_t len;
    bool event;      /* counted in n_events */
    unsigned n_dup;
    uint64_t dup[PS_MAX_HANDLES]; /* the client's values, closed there if never sent */
    uint8_t bytes[];
};

struct ps_conn {
    struct pipeserver *ps;
    struct ps_conn *prev, *next;
    HANDLE pipe;
    HANDLE proc; /* the client's process, PROCESS_DUP_HANDLE only */
    struct op cn, rd, wr;
    int pending;
    bool connected, dead, broken, close_when_sent, writing, admitted;
    ULONGLONG since; /* connected at (GetTickCount64) */
    unsigned long pid; /* the client's process id, for the log */
    struct frame *q_head, *q_tail;
    size_t queued;
    unsigned n_events; /* events among the queued frames */
    bool overflowed;   /* an event was dropped: tell the client once drained */
    void *session;
    uint8_t *rbuf;
    size_t rcap;
};

struct pipeserver {
    HANDLE iocp;
    WCHAR *wname;
    struct ps_limits lim;
    struct ps_callbacks cb;
    void *arg;
    SECURITY_ATTRIBUTES sa;
    struct ps_conn *listening;
    struct ps_conn *conns;
    unsigned n_conns;
};

static int errno_of(DWORD e)
{
    switch (e) {
    case ERROR_ACCESS_DENIED: return -EADDRINUSE; /* another server owns the name */
    case ERROR_PIPE_BUSY: return -EADDRINUSE;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY: return -ENOMEM;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME: return -EINVAL;
    default: return -EIO;
    }
}

/* A new instance waiting for a client: NULL on failure. */
static struct ps_conn *instance_new(struct pipeserver *ps, bool first, int *err)
{
    struct ps_conn *c = calloc(1, sizeof(*c));
    size_t cap = PS_HEADER + 8 * PS_MAX_HANDLES + ps->lim.max_frame;
    if (c)
        c->rbuf = malloc(cap);
    if (!c || !c->rbuf) {
        if (c)
            free(c);
        *err = -ENOMEM;
        return NULL;
    }
    c->rcap = cap;
    c->ps = ps;
    c->cn = (struct op){.kind = OP_CONNECT, .c = c};
    c->rd = (struct op){.kind = OP_READ, .c = c};
    c->wr = (struct op){.kind = OP_WRITE, .c = c};
    c->pipe = CreateNamedPipeW(ps->wname,
        PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
            (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
        PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT |
            PIPE_REJECT_REMOTE_CLIENTS,
        PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER, PIPE_BUFFER, 0, &ps->sa);
    if (c->pipe == INVALID_HANDLE_VALUE) {
        *err = errno_of(GetLastError());
        free(c->rbuf);
        free(c);
        return NULL;
    }
    if (!CreateIoCompletionPort(c->pipe, ps->iocp, 0, 0)) {
        *err = -EIO;
        CloseHandle(c->pipe);
        free(c->rbuf);
        free(c);
        return NULL;
    }
    if (ConnectNamedPipe(c->pipe, &c->cn.ov) || GetLastError() == ERROR_IO_PENDING) {
        c->pending++;
    } else if (GetLastError() == ERROR_PIPE_CONNECTED) {
        /* Connected before we asked: no completion comes by itself. */
        PostQueuedCompletionStatus(ps->iocp, 0, 0, &c->cn.ov);
        c->pending++;
    } else {
        *err = errno_of(GetLastError());
        CloseHandle(c->pipe);
        free(c->rbuf);
        free(c);
        return NULL;
    }
    return c;
}

static void listen_again(struct pipeserver *ps)
{
    int err = 0;
    if (!ps->listening && !(ps->listening = instance_new(ps, false, &err)))
        log_err("cannot make a new pipe instance (%d); retrying at the next event", err);
}

static void frame_drop(struct ps_conn *c, struct frame *f)
{
    for (unsigned i = 0; c->proc && i < f->n_dup; i++)
        DuplicateHandle(c->proc, (HANDLE)(uintptr_t)f->dup[i], NULL, NULL, 0,
                        FALSE, DUPLICATE_CLOSE_SOURCE);
    free(f);
}

static void conn_free(struct ps_conn *c)
{
    while (c->q_head) { /* a dead connection's frame whose write ended */
        struct frame *f = c->q_head;
        c->q_head = f->next;
        free(f);
    }
    free(c->rbuf);
    free(c);
}

/* Ends the connection: its session is told, its I/O cancelled. */
static void conn_kill(struct ps_conn *c)
{
    struct pipeserver *ps = c->ps;
    if (c->dead)
        return;
    c->dead = true;
    if (c->session)
        ps->cb.on_close(c->session);
    c->session = NULL;
    /* The frame in flight stays until its write completes (the system may
     * still read its bytes); it may reach the client, so its handles are
     * the client's. The others never will: their handles are closed there. */
    struct frame *inflight = c->writing ? c->q_head : NULL;
    struct frame *f = inflight ? inflight->next : c->q_head;
    while (f) {
        struct frame *next = f->next;
        frame_drop(c, f);
        f = next;
    }
    if (inflight)
        inflight->next = NULL;
    c->q_head = c->q_tail = inflight;
    if (c->connected) {
        if (c->prev)
            c->prev->next = c->next;
        else
            ps->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        ps->n_conns--;
    }
    /* No DisconnectNamedPipe: it would discard what the client has not
     * read yet (the last word to a client turned away). */
    CancelIoEx(c->pipe, NULL);
    CloseHandle(c->pipe);
    c->pipe = NULL;
    if (c->proc)
        CloseHandle(c->proc);
    c->proc = NULL;
    if (c->pending == 0)
        conn_free(c);
}

static void start_read(struct ps_conn *c)
{
    if (c->dead || c->broken || c->close_when_sent)
        return;
    if (!ReadFile(c->pipe, c->rbuf, (DWORD)c->rcap, NULL, &c->rd.ov) &&
        GetLastError() != ERROR_IO_PENDING && GetLastError() != ERROR_MORE_DATA) {
        c->broken = true;
        return;
    }
    c->pending++;
}

static void start_write(struct ps_conn *c)
{
    if (c->dead || c->broken || c->writing || !c->q_head)
        return;
    struct frame *f = c->q_head;
    if (!WriteFile(c->pipe, f->bytes, (DWORD)f->len, NULL, &c->wr.ov) &&
        GetLastError() != ERROR_IO_PENDING) {
        c->broken = true;
        return;
    }
    c->writing = true;
    c->pending++;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* A whole message read: checked, then handed on. */
static void got_frame(struct ps_conn *c, size_t n)
{
    if (n < PS_HEADER) {
        log_info("process %lu sent a broken frame: its connection closed", c->pid);
        c->broken = true;
        return;
    }
    uint32_t n_handles = le32(c->rbuf), flags = le32(c->rbuf + 4);
    size_t head = PS_HEADER + 8 * (size_t)n_handles;
    if (n_handles > PS_MAX_HANDLES || flags != 0 || n < head ||
        n - head > c->ps->lim.max_frame) {
        log_info("process %lu sent a broken frame: its connection closed", c->pid);
        c->broken = true;
        return;
    }
    uint64_t handles[PS_MAX_HANDLES];
    for (uint32_t i = 0; i < n_handles; i++) {
        const uint8_t *p = c->rbuf + PS_HEADER + 8 * i;
        handles[i] = le32(p) | (uint64_t)le32(p + 4) << 32;
    }
    c->ps->cb.on_message(c->session, c->rbuf + head, n - head, handles, n_handles);
}

static void connected(struct pipeserver *ps, struct ps_conn *c)
{
    ps->listening = NULL;
    listen_again(ps);
    ULONG pid = 0;
    if (ps->n_conns >= ps->lim.max_clients) {
        log_warn("a client turned away: max_clients (%u) reached", ps->lim.max_clients);
    } else if (!GetNamedPipeClientProcessId(c->pipe, &pid) || pid == 0 ||
               !(c->proc = OpenProcess(PROCESS_DUP_HANDLE, FALSE, pid))) {
        log_warn("a client turned away: its process cannot be opened to give it handles");
    } else {
        c->connected = true;
        c->pid = pid;
        c->since = GetTickCount64();
        log_debug("process %lu connected", c->pid);
        c->next = ps->conns;
        if (ps->conns)
            ps->conns->prev = c;
        ps->conns = c;
        ps->n_conns++;
        c->session = ps->cb.on_open(ps->arg, c);
        if (c->session) {
            start_read(c);
            return;
        }
    }
    c->broken = true;
}

/* An event's frame at the queue's tail (no handles); false without memory. */
static bool queue_event(struct ps_conn *c, const uint8_t *pb, size_t len)
{
    struct frame *f = malloc(sizeof(*f) + PS_HEADER + len);
    if (!f)
        return false;
    *f = (struct frame){.len = PS_HEADER + len, .event = true};
    memset(f->bytes, 0, PS_HEADER);
    memcpy(f->bytes + PS_HEADER, pb, len);
    if (c->q_tail)
        c->q_tail->next = f;
    else
        c->q_head = f;
    c->q_tail = f;
    c->queued += f->len;
    c->n_events++;
    return true;
}

static void complete(struct pipeserver *ps, struct op *op, BOOL ok, DWORD n)
{
    struct ps_conn *c = op->c;
    DWORD err = ok ? 0 : GetLastError();
    c->pending--;
    if (op->kind == OP_WRITE)
        c->writing = false;
    if (c->dead) {
        if (c->pending == 0)
            conn_free(c);
        return;
    }
    switch (op->kind) {
    case OP_CONNECT:
        if (ok || err == ERROR_PIPE_CONNECTED)
            connected(ps, c);
        else {
            ps->listening = NULL;
            listen_again(ps);
            c->broken = true;
        }
        break;
    case OP_READ:
        if (!ok) { /* ERROR_MORE_DATA: longer than any frame may be */
            c->broken = true;
            break;
        }
        got_frame(c, n);
        start_read(c);
        break;
    case OP_WRITE: {
        struct frame *f = c->q_head;
        if (!ok || !f || n != f->len) {
            c->broken = true;
            break;
        }
        c->q_head = f->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->queued -= f->len;
        c->n_events -= f->event;
        free(f); /* its handles are the client's now */
        if (!c->q_head && c->overflowed) /* without memory: at the next drain */
            c->overflowed = !queue_event(c, c->ps->lim.overflow, c->ps->lim.overflow_len);
        start_write(c);
        break;
    }
    }
    if (!c->dead && (c->broken || (c->close_when_sent && !c->q_head && !c->writing)))
        conn_kill(c);
}

HANDLE ps_pull(struct ps_conn *c, uint64_t value)
{
    /* Handle values fit in 32 bits; the negative ones are pseudo handles
     * (the current process, thread, token), which would name the
     * daemon's own. */
    if (c->dead || c->broken || value == 0 || value > INT32_MAX) {
        SetLastError(ERROR_INVALID_HANDLE);
        return NULL;
    }
    HANDLE v = NULL;
    if (!DuplicateHandle(c->proc, (HANDLE)(uintptr_t)value, GetCurrentProcess(), &v, 0,
                         FALSE, DUPLICATE_SAME_ACCESS))
        return NULL;
    return v;
}

int ps_send(struct ps_conn *c, const uint8_t *pb, size_t len,
            const HANDLE *handles, const DWORD *access, unsigned n)
{
    if (c->dead || c->broken)
        return -EPIPE;
    if (n > PS_MAX_HANDLES)
        return -EINVAL;
    size_t total = PS_HEADER + 8 * (size_t)n + len;
    if (c->queued + total > c->ps->lim.max_queued) {
        c->broken = true; /* a client that does not read its replies */
        return -ENOBUFS;
    }
    struct frame *f = malloc(sizeof(*f) + total);
    if (!f)
        return -ENOMEM;
    f->next = NULL;
    f->len = total;
    f->event = false;
    f->n_dup = 0;
    uint8_t *p = f->bytes;
    memset(p, 0, PS_HEADER);
    p[0] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        HANDLE v = NULL;
        if (!DuplicateHandle(GetCurrentProcess(), handles[i], c->proc, &v,
                             access[i], FALSE, access[i] ? 0 : DUPLICATE_SAME_ACCESS)) {
            frame_drop(c, f);
            return -EACCES;
        }
        uint64_t u = (uint64_t)(uintptr_t)v;
        f->dup[f->n_dup++] = u;
        for (int b = 0; b < 8; b++)
            p[PS_HEADER + 8 * i + (unsigned)b] = (uint8_t)(u >> (8 * b));
    }
    memcpy(p + PS_HEADER + 8 * n, pb, len);
    if (c->q_tail)
        c->q_tail->next = f;
    else
        c->q_head = f;
    c->q_tail = f;
    c->queued += total;
    start_write(c);
    return 0;
}

int ps_send_event(struct ps_conn *c, const uint8_t *pb, size_t len)
{
    if (c->dead || c->broken)
        return -EPIPE;
    /* A slow reader's events are dropped, not its connection: the bound
     * leaves room for its replies (max_queued is far above). */
    if (c->n_events >= c->ps->lim.max_events ||
        c->queued + PS_HEADER + len > c->ps->lim.max_queued ||
        !queue_event(c, pb, len)) {
        c->overflowed = true;
        return 0;
    }
    start_write(c);
    return 0;
}

void ps_admit(struct ps_conn *c)
{
    c->admitted = true;
}

/* Connections past the hello deadline: closed. */
static void sweep(struct pipeserver *ps)
{
    ULONGLONG now = GetTickCount64();
    for (struct ps_conn *c = ps->conns, *next; c; c = next) {
        next = c->next;
        if (!c->admitted && !c->dead && now - c->since >= ps->lim.hello_ms) {
            log_info("process %lu closed: no hello within %u ms", c->pid, ps->lim.hello_ms);
            conn_kill(c);
        }
    }
}

void ps_close_when_sent(struct ps_conn *c)
{
    c->close_when_sent = true;
}

HANDLE ps_pipe(const struct ps_conn *c)
{
    return c->pipe;
}

/* The pipe's security descriptor: PIPE_DACL, and the daemon's own user
 * as the owner, named explicitly (clients judge the pipe by its owner;
 * wine would otherwise make the primary group the owner). */
static bool pipe_security(PSECURITY_DESCRIPTOR *out)
{
    union {
        TOKEN_USER user;
        char room[SECURITY_MAX_SID_SIZE + sizeof(TOKEN_USER)];
    } info;
    HANDLE tok;
    DWORD len;
    WCHAR *sid = NULL, sddl[512];
    bool ok = OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok);
    if (ok) {
        ok = GetTokenInformation(tok, TokenUser, &info, sizeof(info), &len) &&
             ConvertSidToStringSidW(info.user.User.Sid, &sid);
        CloseHandle(tok);
    }
    ok = ok && wcslen(sid) + wcslen(PIPE_DACL) + 3 <= sizeof(sddl) / sizeof(sddl[0]);
    if (ok) {
        wcscpy(sddl, L"O:");
        wcscat(sddl, sid);
        wcscat(sddl, PIPE_DACL);
    }
    ok = ok && ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1,
                                                                      out, NULL);
    LocalFree(sid);
    return ok;
}

int ps_new(struct pipeserver **out, const char *name, const struct ps_limits *lim,
           const struct ps_callbacks *cb, void *arg)
{
    static const char prefix[] = "\\\\.\\pipe\\";
    if (strncmp(name, prefix, sizeof(prefix) - 1) || !name[sizeof(prefix) - 1])
        return -EINVAL;
    struct pipeserver *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return -ENOMEM;
    ps->lim = *lim;
    ps->cb = *cb;
    ps->arg = arg;
    int wn = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, NULL, 0);
    int err = -EINVAL;
    if (wn <= 0 || !(ps->wname = calloc((size_t)wn, sizeof(WCHAR))))
        goto fail;
    MultiByteToWideChar(CP_UTF8, 0, name, -1, ps->wname, wn);
    ps->sa = (SECURITY_ATTRIBUTES){.nLength = sizeof(ps->sa), .bInheritHandle = FALSE};
    err = -ENOMEM;
    if (!pipe_security(&ps->sa.lpSecurityDescriptor))
        goto fail;
    err = -EIO;
    if (!(ps->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1)))
        goto fail;
    if (!(ps->listening = instance_new(ps, true, &err)))
        goto fail;
    *out = ps;
    return 0;
fail:
    ps_free(ps);
    return err;
}

void ps_run(struct pipeserver *ps)
{
    ULONGLONG swept = GetTickCount64();
    for (;;) {
        DWORD n = 0;
        ULONG_PTR key = 0;
        OVERLAPPED *ov = NULL;
        /* Awake once a second while anyone may miss the hello deadline. */
        bool waiting = false;
        for (struct ps_conn *c = ps->conns; c && !waiting; c = c->next)
            waiting = !c->admitted;
        BOOL ok = GetQueuedCompletionStatus(ps->iocp, &n, &key, &ov,
                                            waiting ? 1000 : INFINITE);
        if (key == KEY_STOP && !ov)
            break;
        if (key > KEY_STOP)
            ((void (*)(void *))key)(ov); /* ps_post */
        else if (ov)
            complete(ps, (struct op *)ov, ok, n);
        if (!ps->listening)
            listen_again(ps);
        if (GetTickCount64() - swept >= 1000) {
            sweep(ps);
            swept = GetTickCount64();
        }
    }
    /* Stopping: every connection ends, then their I/O drains. */
    while (ps->conns)
        conn_kill(ps->conns);
    if (ps->listening) {
        struct ps_conn *l = ps->listening;
        ps->listening = NULL;
        conn_kill(l);
    }
    for (;;) {
        DWORD n = 0;
        ULONG_PTR key = 0;
        OVERLAPPED *ov = NULL;
        BOOL ok = GetQueuedCompletionStatus(ps->iocp, &n, &key, &ov, 1000);
        if (key > KEY_STOP) {
            ((void (*)(void *))key)(ov);
            continue;
        }
        if (!ov)
            break; /* nothing left within a second: all cancelled ones came */
        struct op *op = (struct op *)ov;
        (void)ok;
        if (--op->c->pending == 0)
            conn_free(op->c);
    }
}

void ps_post(struct pipeserver *ps, void (*fn)(void *), void *arg)
{
    PostQueuedCompletionStatus(ps->iocp, 0, (ULONG_PTR)fn, arg);
}

void ps_stop(struct pipeserver *ps)
{
    PostQueuedCompletionStatus(ps->iocp, 0, KEY_STOP, NULL);
}

void ps_free(struct pipeserver *ps)
{
    if (!ps)
        return;
    if (ps->listening) {
        ps->listening->session = NULL;
        conn_kill(ps->listening);
    }
    if (ps->iocp)
        CloseHandle(ps->iocp);
    LocalFree(ps->sa.lpSecurityDescriptor);
    free(ps->wname);
    free(ps);
}
