/*
 * conn on Windows: a message-mode named pipe (README, "Windows").
 *
 * One pipe message is one frame: an 8-byte little-endian header
 * (uint32 n_handles, 0..4; uint32 flags, 0), n_handles uint64 handle
 * values, then the protobuf bytes. Handles from the daemon are already in
 * this process (it duplicated them into us); the values are ours to
 * close. A frame that is not well formed (short, n_handles > 4, flags,
 * a value that is no handle of 32 bits) is -EBADMSG and none of its
 * values is closed: they may name no handle of ours, or one of ours that
 * is not theirs to give.
 *
 * The pipe is opened overlapped, so that a send that must not wait can be
 * taken back (CancelIoEx) and reads of two threads never block each
 * other's writes. Windows does not signal a pipe's readability, so the
 * read itself is what is waited for: each connection has one overlapped
 * read of a whole frame, started by whoever needs it (conn_wait, or
 * conn_recv finding none) and left in flight when nothing has come yet;
 * its event is set when a message (or the hang-up) arrives, so conn_wait
 * sleeps in WaitForMultipleObjects on it and the wake-up, no polling.
 * The frame it read is taken by the next conn_recv, which starts another
 * read at once if someone is waiting in conn_wait. A read taken back by
 * the system (its thread exited) is started again.
 *
 * A pipe cannot be shut down and stay open; conn_shutdown cancels its
 * I/O and records it, and every later call on it answers as for a
 * peer that hung up, until conn_close.
 */
#include "conn.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "mmapio.h"

#define PIPE_PREFIX "\\\\.\\pipe\\"
#define PIPE_NAME_MAX 256 /* characters, the prefix included */
#define FRAME_HEADER 8
/* A read's room: a whole frame of the protocol's size, its header and
 * handle values (conn_recv's callers pass that cap; a longer message is
 * -EMSGSIZE as it was). */
#define READ_ROOM (FRAME_HEADER + 8 * CONN_MAX_HANDLES + 64 * 1024)
#define BUSY_WAIT_MS 10000 /* every instance busy: wait this long at most */

const bool conn_offer_first = false; /* a frame names handle values at any time */
const char conn_system_path[] = PIPE_PREFIX "mmapio";

int conn_default_path(char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", conn_system_path);
    return n < 0 || (size_t)n >= size ? MMAPIO_E_INVALID_ARGUMENT : MMAPIO_OK;
}

static HANDLE handle_of(int conn)
{
    return (HANDLE)(intptr_t)conn;
}

/* ---- connections: the read in flight, shut down or not ---- */

enum rd_state {
    RD_IDLE,    /* no read in flight */
    RD_PENDING, /* a read in flight; ov.hEvent set when it ends */
    RD_DONE,    /* ended: got bytes, err (0, ERROR_MORE_DATA or a failure) */
};

struct pipe {
    int conn;
    bool shut;
    SRWLOCK lock; /* the read's state (rd, got, err, buf, waiters) */
    OVERLAPPED ov;
    enum rd_state rd;
    DWORD got, err;
    unsigned waiters; /* threads in conn_wait */
    uint8_t buf[READ_ROOM];
};

/* Every open connection; an entry lives until conn_close. */
static pthread_mutex_t pipes_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pipe **pipes;
static size_t n_pipes, cap_pipes;

static struct pipe *find(int conn)
{
    struct pipe *p = NULL;
    pthread_mutex_lock(&pipes_lock);
    for (size_t i = 0; i < n_pipes && !p; i++)
        if (pipes[i]->conn == conn)
            p = pipes[i];
    pthread_mutex_unlock(&pipes_lock);
    return p;
}

static bool is_shut(int conn)
{
    struct pipe *p = find(conn);
    if (!p)
        return true;
    AcquireSRWLockShared(&p->lock);
    bool shut = p->shut;
    ReleaseSRWLockShared(&p->lock);
    return shut;
}

/* Records the pipe h: 0, or -ENOMEM. */
static int add_pipe(HANDLE h)
{
    struct pipe *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->conn = (int)(intptr_t)h;
    InitializeSRWLock(&p->lock);
    p->ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    pthread_mutex_lock(&pipes_lock);
    if (p->ov.hEvent && n_pipes == cap_pipes) {
        size_t cap = cap_pipes ? 2 * cap_pipes : 8;
        struct pipe **v = realloc(pipes, cap * sizeof(*v));
        if (v) {
            pipes = v;
            cap_pipes = cap;
        }
    }
    bool ok = p->ov.hEvent && n_pipes < cap_pipes;
    if (ok)
        pipes[n_pipes++] = p;
    pthread_mutex_unlock(&pipes_lock);
    if (!ok) {
        if (p->ov.hEvent)
            CloseHandle(p->ov.hEvent);
        free(p);
        return -ENOMEM;
    }
    return 0;
}

void conn_shutdown(int conn)
{
    struct pipe *p = find(conn);
    if (!p)
        return;
    AcquireSRWLockExclusive(&p->lock);
    p->shut = true;
    ReleaseSRWLockExclusive(&p->lock);
    CancelIoEx(handle_of(conn), NULL);
}

void conn_close(int conn)
{
    if (conn < 0)
        return;
    struct pipe *p = NULL;
    pthread_mutex_lock(&pipes_lock);
    for (size_t i = 0; i < n_pipes && !p; i++)
        if (pipes[i]->conn == conn) {
            p = pipes[i];
            pipes[i] = pipes[--n_pipes];
        }
    pthread_mutex_unlock(&pipes_lock);
    HANDLE h = handle_of(conn);
    if (p && p->rd == RD_PENDING) { /* the system writes into p until it ends */
        DWORD got;
        CancelIoEx(h, &p->ov);
        GetOverlappedResult(h, &p->ov, &got, TRUE);
    }
    CloseHandle(h);
    if (p) {
        CloseHandle(p->ov.hEvent);
        free(p);
    }
}

/* A handle's value cannot be chosen: the new pipe keeps its own. */
int conn_take_over(int old, int fresh)
{
    conn_close(old);
    return fresh;
}

/* ---- connecting ---- */

static int connect_error(DWORD err, const char **why)
{
    switch (err) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
        *why = "no such pipe (is mmapiod running?)";
        return MMAPIO_E_DISCONNECTED;
    case ERROR_PIPE_BUSY:
    case ERROR_SEM_TIMEOUT:
        *why = "every instance of the pipe stayed busy";
        return MMAPIO_E_DISCONNECTED;
    case ERROR_ACCESS_DENIED:
        *why = "permission denied";
        return MMAPIO_E_PERMISSION;
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_NAME:
        *why = "not a valid pipe name";
        return MMAPIO_E_INVALID_ARGUMENT;
    default:
        *why = "cannot open the pipe";
        return MMAPIO_E_IO;
    }
}

int conn_open(const char *path, int *out, char *why, size_t size)
{
    WCHAR name[PIPE_NAME_MAX + 1];
    size_t plen = strlen(PIPE_PREFIX);
    const char *text;

    if (strlen(path) <= plen || _strnicmp(path, PIPE_PREFIX, plen) != 0 ||
        strlen(path) > PIPE_NAME_MAX ||
        !MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, name,
                             PIPE_NAME_MAX + 1)) {
        snprintf(why, size, "'%.*s%s': not a pipe name (\\\\.\\pipe\\NAME, "
                 "at most %d characters)", 64, path,
                 strlen(path) > 64 ? "..." : "", PIPE_NAME_MAX);
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    for (DWORD waited = 0;;) {
        /* Impersonation is what the daemon needs to act as us (opening
         * files as the peer); nothing is sent before trust_socket. Not
         * GENERIC_WRITE: on a pipe it asks for FILE_CREATE_PIPE_INSTANCE
         * too, which the daemon's pipe refuses its clients. */
        HANDLE h = CreateFileW(name,
                               GENERIC_READ | FILE_WRITE_DATA |
                                   FILE_WRITE_ATTRIBUTES,
                               0, NULL,
                               OPEN_EXISTING,
                               FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT |
                                   SECURITY_IMPERSONATION,
                               NULL);
        if (h != INVALID_HANDLE_VALUE) {
            DWORD mode = PIPE_READMODE_MESSAGE;
            if ((intptr_t)h > INT_MAX ||
                !SetNamedPipeHandleState(h, &mode, NULL, NULL)) {
                CloseHandle(h);
                snprintf(why, size, "%s: not a message-mode pipe", path);
                return MMAPIO_E_PROTOCOL;
            }
            if (add_pipe(h) < 0) {
                CloseHandle(h);
                snprintf(why, size, "%s: out of memory", path);
                return MMAPIO_E_IO;
            }
            *out = (int)(intptr_t)h;
            return MMAPIO_OK;
        }
        DWORD err = GetLastError();
        if (err == ERROR_PIPE_BUSY && waited < BUSY_WAIT_MS) {
            WaitNamedPipeW(name, 500);
            waited += 500;
            continue;
        }
        int r = connect_error(err, &text);
        snprintf(why, size, "%s: %s", path, text);
        return r;
    }
}

/* ---- one overlapped operation ---- */

static int io_errno(DWORD err)
{
    switch (err) {
    case ERROR_BROKEN_PIPE:
    case ERROR_PIPE_NOT_CONNECTED:
    case ERROR_NO_DATA:
    case ERROR_OPERATION_ABORTED:
        return -ECONNRESET;
    case ERROR_INVALID_HANDLE:
        return -EBADF;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
        return -ENOBUFS;
    default:
        return -EIO;
    }
}

/* Writes (or reads) buf on h, waiting unless !wait, when an operation
 * still pending is taken back: its byte count in *done and 0, -EAGAIN
 * (taken back), -EMSGSIZE (a read: more of the message is left), or
 * -errno. */
static int pipe_io(HANDLE h, bool write, void *buf, DWORD len, DWORD *done,
                   bool wait)
{
    OVERLAPPED ov = { 0 };
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ov.hEvent)
        return -ENOBUFS;
    BOOL ok = write ? WriteFile(h, buf, len, NULL, &ov)
                    : ReadFile(h, buf, len, NULL, &ov);
    DWORD err = ok ? 0 : GetLastError();
    if (!ok && err == ERROR_IO_PENDING && !wait)
        CancelIoEx(h, &ov);
    if (ok || err == ERROR_IO_PENDING || err == ERROR_MORE_DATA) {
        ok = GetOverlappedResult(h, &ov, done, TRUE);
        err = ok ? 0 : GetLastError();
    }
    CloseHandle(ov.hEvent);
    if (ok)
        return 0;
    if (err == ERROR_MORE_DATA)
        return -EMSGSIZE;
    if (err == ERROR_OPERATION_ABORTED && !wait)
        return -EAGAIN;
    return io_errno(err);
}

/* ---- frames ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Room for a frame of `len` bytes: `stack` when it fits, else malloc'ed
 * (NULL without memory). */
static uint8_t *frame_room(uint8_t *stack, size_t size, size_t len)
{
    return len <= size ? stack : malloc(len);
}

/* Fills the header before the message at frame + head and sends it. */
static int send_frame(int conn, uint8_t *frame, size_t head, size_t len,
                      int pass_fd, bool wait)
{
    put_le32(frame, pass_fd >= 0 ? 1 : 0);
    put_le32(frame + 4, 0);
    if (pass_fd >= 0) { /* a value in our process; the daemon pulls it */
        put_le32(frame + 8, (uint32_t)pass_fd);
        put_le32(frame + 12, 0);
    }
    DWORD done = 0;
    int r = pipe_io(handle_of(conn), true, frame, (DWORD)(head + len), &done,
                    wait);
    if (r == -ECONNRESET)
        return -EPIPE;
    return r == 0 && done != head + len ? -EIO : r;
}

static size_t head_of(int pass_fd)
{
    return FRAME_HEADER + (pass_fd >= 0 ? 8 : 0);
}

int conn_send(int conn, const void *buf, size_t len, int pass_fd, bool wait)
{
    uint8_t stack[4096];
    size_t head = head_of(pass_fd);

    if (is_shut(conn))
        return -EPIPE;
    if (len > UINT32_MAX - head)
        return -EMSGSIZE;
    uint8_t *frame = frame_room(stack, sizeof(stack), head + len);
    if (!frame)
        return -ENOMEM;
    memcpy(frame + head, buf, len);
    int r = send_frame(conn, frame, head, len, pass_fd, wait);
    if (frame != stack)
        free(frame);
    return r;
}

int conn_send_msg(int conn, const ProtobufCMessage *msg, int pass_fd,
                  size_t max_frame)
{
    uint8_t stack[4096];
    size_t head = head_of(pass_fd);
    size_t len = protobuf_c_message_get_packed_size(msg);

    if (len > max_frame || len > UINT32_MAX - head)
        return -EMSGSIZE;
    if (is_shut(conn))
        return -EPIPE;
    uint8_t *frame = frame_room(stack, sizeof(stack), head + len);
    if (!frame)
        return -ENOMEM;
    protobuf_c_message_pack(msg, frame + head);
    int r = send_frame(conn, frame, head, len, pass_fd, true);
    if (frame != stack)
        free(frame);
    return r;
}

/* Reads what is left of a message too long for us. */
static void drain_message(HANDLE h)
{
    uint8_t junk[4096];
    DWORD done;
    while (pipe_io(h, false, junk, sizeof(junk), &done, true) == -EMSGSIZE)
        ;
}

/* The frame's header and handle values: the count, or -EBADMSG. */
static long frame_handles(const uint8_t *f, size_t n, int *vals)
{
    if (n < FRAME_HEADER)
        return -EBADMSG;
    uint64_t count = get_le(f, 4), flags = get_le(f + 4, 4);
    if (count > CONN_MAX_HANDLES || flags != 0 ||
        n < FRAME_HEADER + 8 * count)
        return -EBADMSG;
    for (size_t i = 0; i < count; i++) {
        uint64_t v = get_le(f + FRAME_HEADER + 8 * i, 8);
        if (v == 0 || v > INT_MAX)
            return -EBADMSG;
        vals[i] = (int)v;
    }
    return (long)count;
}

/* ---- the read in flight (p->lock held) ---- */

/* Starts p's read: RD_PENDING, or RD_DONE when it ended at once. */
static void start_read(struct pipe *p)
{
    HANDLE h = handle_of(p->conn);
    p->got = 0;
    ResetEvent(p->ov.hEvent); /* the last read's, until this one ends */
    BOOL ok = ReadFile(h, p->buf, READ_ROOM, NULL, &p->ov);
    DWORD err = ok ? 0 : GetLastError();
    if (err == ERROR_IO_PENDING) {
        p->rd = RD_PENDING;
        return;
    }
    p->rd = RD_DONE;
    p->err = err;
    if (!ok && err != ERROR_MORE_DATA)
        return;
    if (!GetOverlappedResult(h, &p->ov, &p->got, FALSE))
        p->err = GetLastError();
}

/* Whether p's read has ended (RD_DONE), or still runs (RD_PENDING). */
static void check_read(struct pipe *p)
{
    if (p->rd != RD_PENDING)
        return;
    if (GetOverlappedResult(handle_of(p->conn), &p->ov, &p->got, FALSE)) {
        p->rd = RD_DONE;
        p->err = 0;
        return;
    }
    DWORD err = GetLastError();
    if (err != ERROR_IO_INCOMPLETE) {
        p->rd = RD_DONE;
        p->err = err;
    }
}

/* A read that ended with nothing to say (taken back because the thread
 * that started it exited, not by conn_shutdown) is started again. */
static void settle_read(struct pipe *p)
{
    check_read(p);
    if (p->rd == RD_DONE && p->err == ERROR_OPERATION_ABORTED && !p->shut)
        p->rd = RD_IDLE;
    if (p->rd == RD_IDLE && !p->shut)
        start_read(p);
}

/* The frame in p->buf (`got` bytes, `r` 0 or -EMSGSIZE) to the caller. */
static long take_frame(struct pipe *p, DWORD got, int r, void *buf, size_t cap, int *fds,
                       size_t max_fds, size_t *n_fds)
{
    int vals[CONN_MAX_HANDLES];
    if (r == -EMSGSIZE)
        drain_message(handle_of(p->conn));
    long count = frame_handles(p->buf, got, vals);
    if (count < 0)
        return r == -EMSGSIZE ? r : count;
    size_t pb = got - FRAME_HEADER - 8 * (size_t)count;
    long n = r == -EMSGSIZE || pb > cap ? -EMSGSIZE
             : (size_t)count > max_fds  ? -EBADMSG
             : pb == 0                  ? -EBADMSG
                                        : (long)pb;
    if (n > 0) {
        memcpy(buf, p->buf + got - pb, pb);
        memcpy(fds, vals, (size_t)count * sizeof(int));
        *n_fds = (size_t)count;
    } else {
        for (long i = 0; i < count; i++)
            CloseHandle(handle_of(vals[i]));
    }
    return n;
}

long conn_recv(int conn, void *buf, size_t cap, int *fds, size_t max_fds,
               size_t *n_fds, bool wait)
{
    struct pipe *p = find(conn);

    *n_fds = 0;
    if (!p)
        return -EBADF;
    AcquireSRWLockExclusive(&p->lock);
    for (;;) {
        if (p->shut) {
            ReleaseSRWLockExclusive(&p->lock);
            return -ECONNRESET;
        }
        settle_read(p);
        if (p->rd == RD_DONE)
            break;
        if (!wait) {
            ReleaseSRWLockExclusive(&p->lock);
            return -EAGAIN;
        }
        /* Only the client's lock holder reads, so the read stays ours. */
        ReleaseSRWLockExclusive(&p->lock);
        WaitForSingleObject(p->ov.hEvent, INFINITE);
        AcquireSRWLockExclusive(&p->lock);
    }
    DWORD got = p->got, err = p->err;
    long n;
    if (err && err != ERROR_MORE_DATA)
        n = io_errno(err);
    else
        n = take_frame(p, got, err ? -EMSGSIZE : 0, buf, cap, fds, max_fds, n_fds);
    p->rd = RD_IDLE;
    if (p->waiters > 0 && !p->shut)
        start_read(p); /* a conn_wait sleeps on the next one */
    ReleaseSRWLockExclusive(&p->lock);
    return n;
}

/* ---- waiting ---- */

int conn_wait(int conn, bool out, int wake, int timeout_ms)
{
    if (out)
        return 1; /* a write on the pipe waits for room itself */
    struct pipe *p = find(conn);
    if (!p)
        return 1; /* a read says what is wrong */
    AcquireSRWLockExclusive(&p->lock);
    settle_read(p);
    bool ready = p->shut || p->rd == RD_DONE; /* a frame, or hung up */
    if (!ready)
        p->waiters++;
    ReleaseSRWLockExclusive(&p->lock);
    if (ready)
        return 1;
    HANDLE ev[2] = {p->ov.hEvent, wake >= 0 ? handle_of(wake) : NULL};
    DWORD r = WaitForMultipleObjects(wake >= 0 ? 2 : 1, ev, FALSE,
                                     timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    AcquireSRWLockExclusive(&p->lock);
    p->waiters--;
    ReleaseSRWLockExclusive(&p->lock);
    if (r == WAIT_OBJECT_0 || r == WAIT_OBJECT_0 + 1)
        return 1;
    return r == WAIT_TIMEOUT ? 0 : -EIO;
}

bool conn_hung_up(int conn)
{
    DWORD avail;
    return is_shut(conn) ||
           !PeekNamedPipe(handle_of(conn), NULL, 0, NULL, &avail, NULL);
}

/* ---- the wake-up: an auto-reset event ---- */

int conn_wake_new(void)
{
    HANDLE e = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!e)
        return -ENOBUFS;
    if ((intptr_t)e > INT_MAX) {
        CloseHandle(e);
        return -EMFILE;
    }
    return (int)(intptr_t)e;
}

void conn_wake_signal(int wake)
{
    SetEvent(handle_of(wake));
}
