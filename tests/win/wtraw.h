/*
 * A client of mmapiod.exe in raw frames (the Windows wire: an 8-byte
 * header, the handle values, the packed message), for tests that send
 * requests without waiting for their replies.
 */
#ifndef WTRAW_H
#define WTRAW_H

#include <stdbool.h>
#include <stdint.h>
#include <windows.h>

#include "mmapio.pb-c.h"

/* A frame of q (no handles): whether it was written. */
bool wt_raw_send(HANDLE h, Mmapio__Request *q);

/* A request `op` (its message `msg`) of id `id` sent: whether it was. */
bool wt_raw_op(HANDLE h, uint64_t id, Mmapio__Request__OpCase op, void *msg);

/* Reads one ServerMessage (free it with
 * mmapio__server_message__free_unpacked) and the handle values it
 * carried, ours now (at most 4); NULL when the pipe closed or the frame
 * was broken. */
Mmapio__ServerMessage *wt_raw_recv(HANDLE h, HANDLE *handles, unsigned *n_handles);

/* The next reply's id and error, and (handle not NULL) an OpenReply's
 * handle or 0; the handles it carried, ours now, closed. False when no
 * reply came. */
bool wt_raw_reply(HANDLE h, uint64_t *id, int *err, uint64_t *handle);

/* Pipe `name` opened and its Hello (id 1) answered; NULL when not. */
HANDLE wt_raw_connect(const char *name, const char *client_name);

#endif
