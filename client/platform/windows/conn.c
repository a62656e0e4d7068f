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
 * other's writes. conn_wait cannot wait on a pipe's readability, which
 * Windows does not signal: it looks (PeekNamedPipe) every few
 * milliseconds while it waits on the wake-up event.
 *
 * A pipe cannot be shut down and stay open; conn_shutdown cancels its
 * I/O and records its value, and every later call on it answers as for a
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
#define WAIT_SLICE_MS 5 /* conn_wait looks at the pipe this often */
#define BUSY_WAIT_MS 10000 /* every instance busy: wait this long at most */

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

/* ---- shut down connections ---- */

static pthread_mutex_t shut_lock = PTHREAD_MUTEX_INITIALIZER;
static int *shut;
static size_t n_shut, cap_shut;

static bool is_shut(int conn)
{
    bool found = false;
    pthread_mutex_lock(&shut_lock);
    for (size_t i = 0; i < n_shut && !found; i++)
        found = shut[i] == conn;
    pthread_mutex_unlock(&shut_lock);
    return found;
}

void conn_shutdown(int conn)
{
    CancelIoEx(handle_of(conn), NULL);
    if (is_shut(conn))
        return;
    pthread_mutex_lock(&shut_lock);
    if (n_shut == cap_shut) {
        size_t cap = cap_shut ? 2 * cap_shut : 8;
        int *v = realloc(shut, cap * sizeof(*v));
        if (v) {
            shut = v;
            cap_shut = cap;
        }
    }
    if (n_shut < cap_shut)
        shut[n_shut++] = conn;
    pthread_mutex_unlock(&shut_lock);
}

void conn_close(int conn)
{
    if (conn < 0)
        return;
    pthread_mutex_lock(&shut_lock);
    for (size_t i = 0; i < n_shut; i++)
        if (shut[i] == conn)
            shut[i] = shut[--n_shut];
    pthread_mutex_unlock(&shut_lock);
    CloseHandle(handle_of(conn));
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

long conn_recv(int conn, void *buf, size_t cap, int *fds, size_t max_fds,
               size_t *n_fds, bool wait)
{
    HANDLE h = handle_of(conn);
    size_t room = FRAME_HEADER + 8 * CONN_MAX_HANDLES + cap;
    int vals[CONN_MAX_HANDLES];
    DWORD avail = 0, done = 0;

    *n_fds = 0;
    if (is_shut(conn))
        return -ECONNRESET;
    if (!wait) {
        if (!PeekNamedPipe(h, NULL, 0, NULL, &avail, NULL))
            return io_errno(GetLastError());
        if (avail == 0)
            return -EAGAIN;
    }
    if (room > UINT32_MAX)
        return -EINVAL;
    uint8_t *frame = malloc(room);
    if (!frame)
        return -ENOMEM;
    int r = pipe_io(h, false, frame, (DWORD)room, &done, true);
    if (r == -EMSGSIZE)
        drain_message(h);
    if (r < 0 && r != -EMSGSIZE) {
        free(frame);
        return r;
    }
    long count = frame_handles(frame, done, vals);
    if (count < 0) {
        free(frame);
        return r == -EMSGSIZE ? r : count;
    }
    size_t pb = done - FRAME_HEADER - 8 * (size_t)count;
    long n = r == -EMSGSIZE || pb > cap ? -EMSGSIZE
             : (size_t)count > max_fds  ? -EBADMSG
             : pb == 0                  ? -EBADMSG
                                        : (long)pb;
    if (n > 0) {
        memcpy(buf, frame + done - pb, pb);
        memcpy(fds, vals, (size_t)count * sizeof(int));
        *n_fds = (size_t)count;
    } else {
        for (long i = 0; i < count; i++)
            CloseHandle(handle_of(vals[i]));
    }
    free(frame);
    return n;
}

/* ---- waiting ---- */

int conn_wait(int conn, bool out, int wake, int timeout_ms)
{
    ULONGLONG deadline = timeout_ms < 0 ? 0 : GetTickCount64() + timeout_ms;
    if (out)
        return 1; /* a write on the pipe waits for room itself */
    for (;;) {
        DWORD avail = 0;
        if (is_shut(conn) ||
            !PeekNamedPipe(handle_of(conn), NULL, 0, NULL, &avail, NULL) ||
            avail > 0)
            return 1; /* readable, or hung up: a read says which */
        DWORD slice = WAIT_SLICE_MS;
        if (timeout_ms >= 0) {
            ULONGLONG now = GetTickCount64();
            if (now >= deadline)
                return 0;
            if (deadline - now < slice)
                slice = (DWORD)(deadline - now);
        }
        if (wake < 0)
            Sleep(slice);
        else if (WaitForSingleObject(handle_of(wake), slice) == WAIT_OBJECT_0)
            return 1;
    }
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
