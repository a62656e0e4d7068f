/*
 * winopen (Windows): opens of files on worker threads (README,
 * "Windows"). The walk beneath the root (as the client, by a copy of its
 * impersonation token set on the worker), the file's attributes, its size
 * and its section are made off the loop; the loop checks the table
 * between the two steps and, at the end, makes or finds the file's entry
 * and grants the section. Per-client and per-uid bounds, a round robin of
 * uids for the workers. Deletes of files go the same way.
 */
#ifndef MMAPIOD_WINOPEN_H
#define MMAPIOD_WINOPEN_H

#include "winstate.h"

/* A checked Open of a file (not anonymous): answered when its work is done. */
void winopen_request(struct wsession *s, uint64_t id, const Mmapio__Open *o);
/* A checked Delete of a file: on a worker too (the walk as the client,
 * then the file's disposition); answered when done. */
void winopen_delete(struct wsession *s, uint64_t id, const char *path);
/* The daemon stops: opens on workers are waited for a moment, then
 * abandoned to the process's end; waiting ones are dropped. */
void winopen_final(struct winops *w);

#endif
