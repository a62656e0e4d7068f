/*
 * winport (Windows): what the Windows daemon's requests layer is given —
 * the transport's side (a winops_port: replies out, posts to the loop)
 * and its settings. Types only.
 */
#ifndef MMAPIOD_WINPORT_H
#define MMAPIOD_WINPORT_H

#include <stddef.h>
#include <stdint.h>
#include <windows.h>

struct winops_port {
    /* Queues the packed ServerMessage `pb` with handles duplicated into
     * the client with access[i]: 0 or -errno. */
    int (*send)(void *conn, const uint8_t *pb, size_t len, const HANDLE *handles,
                const DWORD *access, unsigned n);
    /* Queues the packed ServerMessage of an event: never waits and never
     * fails the connection; a client too slow to read loses events and is
     * told OVERFLOW once it has read the rest. */
    void (*send_event)(void *conn, const uint8_t *pb, size_t len);
    /* Closes the connection once its replies are written. */
    void (*close_when_sent)(void *conn);
    /* The client said hello (the hello deadline is over for it). */
    void (*admitted)(void *conn);
    /* A handle the client named (a value in its own process) duplicated
     * into the daemon with the access it has there, or NULL with
     * GetLastError (from_fd: winfromfd). */
    HANDLE (*pull)(void *conn, uint64_t value);
    /* From any thread: fn(arg) is called on the loop. */
    void (*post)(void (*fn)(void *), void *arg);
};

struct winops_config {
    HANDLE root;                /* the data root, a directory handle */
    uint32_t max_frame;
    uint32_t max_inflight;
    uint32_t max_events;
    uint64_t max_map_size;      /* one mapping's size */
    uint32_t max_mappings;      /* in the daemon (and control-area slots) */
    uint32_t max_mappings_per_uid;
    uint64_t max_bytes_per_uid; /* anonymous mappings' bytes */
    uint32_t max_holders_per_client;
    uint32_t max_clients_per_uid;
    /* For AdminStatus only (the transport's and main's settings). */
    const char *pipe_name;
    const char *root_path;
    uint32_t max_clients;
    uint32_t hello_timeout_ms;
};

#endif
