/*
 * winfromfd (Windows): mmapio_from_fd — a file handle of the caller's own
 * as a mapping, the Windows daemon's counterpart of requests/fromfd.c.
 *
 * The FromFd frame names one handle value in the client's process; the
 * daemon pulls it (the transport's DuplicateHandle from the process that
 * connected, with the access it has there: never more) and checks it on
 * a worker thread (a query on a synchronous handle waits while the
 * caller's own I/O through it lasts; at most one from_fd per client and
 * 64 in the daemon are under way, else BUSY): an
 * object of type File, a disk file (GetFileType) of a local volume, no
 * directory, the access it grants (NtQueryObject) allowing the mode
 * (FILE_READ_DATA and FILE_READ_ATTRIBUTES; READ_WRITE also
 * FILE_WRITE_DATA: else PERMISSION), not empty for READ_WRITE or
 * COPY_ON_WRITE (RESIZE_FAILED; an empty one read-only is
 * INVALID_ARGUMENT, as an open's: Windows maps no empty file), at most
 * max_map_size; then it is opened again from that handle as the caller
 * (ReOpenFile with the caller's token and the mode's access), so that the
 * daemon keeps a file object of its own and never the caller's. The
 * section is made from the caller's handle, so a grant is never wider
 * than that handle. Which entry it joins, as on Linux:
 *   - the entry of the same file (volume serial, file index) if the
 *     table has one;
 *   - a file beneath the data root (its final path beneath the root's)
 *     that the caller can open by that path with the mode, as the caller,
 *     and that is the same file: a new entry any later open of the path
 *     finds;
 *   - anything else: a private entry of this client's, found by no path
 *     or identity and listed nowhere, holding the daemon's reopening; it
 *     lives while its holders do. Flushes of it go through that handle.
 * Budgets as an open's: holders per client, mappings in the daemon and
 * per uid.
 */
#ifndef MMAPIOD_WINFROMFD_H
#define MMAPIOD_WINFROMFD_H

#include <stdint.h>
#include <windows.h>

#include "mmapio.pb-c.h"
#include "winstate.h"

/* FromFd with the frame's handle values: refused at once, or checked on
 * a worker thread and then, on the loop, granted (winstate's grant) or
 * refused. The session lives until then (its `flushes` count). */
void winfromfd_open(struct wsession *s, uint64_t id, const Mmapio__FromFd *q,
                    const uint64_t *handles, unsigned n_handles);

#endif
