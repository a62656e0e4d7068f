/*
 * winops (Windows): the requests the Windows daemon serves so far, and
 * its mappings (README, "Windows"): hello, ping, open of an anonymous
 * mapping (a pagefile section) or of a file beneath the data root (a
 * section of the file), close, delete, stat, resize (refused but to the
 * same size), flush, set_policy and the notices that drive the policies,
 * watch and unwatch, from_fd (winfromfd; fd_offer is answered OK), and
 * the admin requests (winadmin). Every other
 * request is answered MMAPIO_E_INVALID_ARGUMENT, "not supported on
 * Windows".
 *
 * The Linux daemon's model and services hold POSIX fds (fstat, ftruncate,
 * mmap on them); until they sit behind seams, winstate keeps a small
 * table of mappings of its own with the same rules: per-uid budgets, owners,
 * holders, a control-area slot each.
 *
 * Replies leave through a winops_port the transport implements, so this
 * layer never calls the transport.
 */
#ifndef MMAPIOD_WINOPS_H
#define MMAPIOD_WINOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <windows.h>

#include "winport.h"

struct winops;
struct wsession;

int winops_new(struct winops **out, const struct winops_config *cfg,
               const struct winops_port *port);
void winops_free(struct winops *w);

/* A connection's session: `conn` is handed back to the port, `pipe` is
 * the server end (the peer's identity, impersonation). NULL when out of
 * memory. */
struct wsession *winops_session_new(struct winops *w, void *conn, HANDLE pipe);
/* One request's bytes; handles[n_handles] the values the client named
 * with it, in its own process (only from_fd takes one). */
void winops_request(struct wsession *s, const uint8_t *pb, size_t len,
                    const uint64_t *handles, unsigned n_handles);
/* The connection is gone: its holders are released. */
void winops_session_end(struct wsession *s);

#endif
