/*
 * pipeserver (Windows): the daemon's listener and connections on a
 * message-mode named pipe, driven by one I/O completion port that is also
 * the daemon's loop (README, "Windows"; the wire in its "The wire" part).
 *
 * One message is one frame: an 8-byte little-endian header (uint32
 * n_handles 0..4, uint32 flags 0), n_handles uint64 handle values, then
 * the protobuf bytes. A frame that breaks these rules, or one longer than
 * the frame limit, closes its connection. Handles sent to a client are
 * duplicated into its process (GetNamedPipeClientProcessId, opened with
 * PROCESS_DUP_HANDLE only) as the frame is queued.
 *
 * Everything runs on the thread that calls ps_run; only ps_stop may be
 * called from another thread.
 */
#ifndef MMAPIOD_PIPESERVER_H
#define MMAPIOD_PIPESERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <windows.h>

#define PS_MAX_HANDLES 4
#define PS_HEADER 8

struct pipeserver;
struct ps_conn;

struct ps_callbacks {
    /* A client connected: its session, or NULL to turn it away. */
    void *(*on_open)(void *arg, struct ps_conn *c);
    /* One well-formed frame: `pb` the protobuf bytes, n_handles the
     * handle values the client named (in its own process). */
    void (*on_message)(void *session, const uint8_t *pb, size_t len,
                       const uint64_t *handles, unsigned n_handles);
    /* The connection is gone; nothing may be sent to it any more. */
    void (*on_close)(void *session);
};

struct ps_limits {
    size_t max_frame;       /* the protobuf part */
    unsigned max_clients;   /* connections at once */
    size_t max_queued;      /* bytes queued toward one client before it is dropped */
    unsigned max_events;    /* events queued toward one client before overflow */
    /* The packed ServerMessage telling a client events were dropped,
     * queued once its queue has drained (ps_send_event). */
    const uint8_t *overflow;
    size_t overflow_len;
    unsigned hello_ms;      /* a connection not admitted (ps_admit) by then is closed */
};

/* Creates the first instance of `name` (\\.\pipe\...; -EADDRINUSE when
 * someone has it) and the completion port: 0 or -errno. */
int ps_new(struct pipeserver **out, const char *name, const struct ps_limits *lim,
           const struct ps_callbacks *cb, void *arg);
/* Serves until ps_stop; then closes every connection (on_close each). */
void ps_run(struct pipeserver *ps);
/* From any thread (a console control handler): ps_run returns soon. */
void ps_stop(struct pipeserver *ps);
void ps_free(struct pipeserver *ps);
/* From any thread: fn(arg) runs on the loop (before ps_run returns, if
 * posted before ps_stop). */
void ps_post(struct pipeserver *ps, void (*fn)(void *), void *arg);

/* Queues a frame: the protobuf bytes and up to PS_MAX_HANDLES of the
 * daemon's handles, each duplicated into the client with access[i] (0:
 * the same access). 0, or -errno (the frame is not sent; a client too
 * slow to read is dropped: -ENOBUFS). */
int ps_send(struct ps_conn *c, const uint8_t *pb, size_t len,
            const HANDLE *handles, const DWORD *access, unsigned n);
/* Queues an event (no handles). One that finds max_events events, or
 * max_queued bytes, queued toward the client is dropped, never waited
 * for; once the queue has drained the client gets `overflow`. 0, or
 * -EPIPE (the connection is gone). */
int ps_send_event(struct ps_conn *c, const uint8_t *pb, size_t len);
/* The client said hello: the hello deadline no longer applies. */
void ps_admit(struct ps_conn *c);
/* Closes the connection once what is queued has been written. */
void ps_close_when_sent(struct ps_conn *c);
/* The server end of the pipe (for the peer's identity, impersonation). */
HANDLE ps_pipe(const struct ps_conn *c);
/* Pulls handle `value` as the client named it, a value in the client's
 * own process (the one that connected), into the daemon with the access
 * it has there: the daemon's duplicate, or NULL with GetLastError (a
 * value that is no 32-bit handle, or a pseudo handle: ERROR_INVALID_HANDLE).
 * Never more than the client's handle grants. */
HANDLE ps_pull(struct ps_conn *c, uint64_t value);

#endif
