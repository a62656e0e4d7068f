/*
 * winopen (Windows): opens of files on worker threads (README,
 * "Windows"). The walk beneath the root (as the client, by a copy of its
 * impersonation token set on the worker), the file's attributes, its size
 * and its section are made off the loop; the loop checks the table
 * between the two steps and, at the end, makes or finds the file's entry
 * and grants the section. Per-client and per-uid bounds, a round robin of
 * uids for the workers. Reattaches (an open of the very file a holder
 * had before a restart), deletes and copies of files, and the admin
 * requests' look at a file by its path, go the same way.
 */
#ifndef MMAPIOD_WINOPEN_H
#define MMAPIOD_WINOPEN_H

#include "winstate.h"

/* A checked Open of a file (not anonymous): answered when its work is done. */
void winopen_request(struct wsession *s, uint64_t id, const Mmapio__Open *o);
/* A checked Reattach of a file (after a restart): an open without create
 * as the caller in its mode, of the very file it names (volume serial as
 * dev, file index as ino), else MMAPIO_E_NOT_FOUND; answered as an Open. */
void winopen_reattach(struct wsession *s, uint64_t id, const Mmapio__Reattach *req);
/* A checked Delete of a file: on a worker too (the walk as the client,
 * then the file's disposition); answered when done. */
void winopen_delete(struct wsession *s, uint64_t id, const char *path);
/* A Copy (mmapio_copy) of file src to file dst, both beneath the root:
 * on a worker, as the client, src opened for reading and dst for writing
 * (made when missing, with what its folder gives, as any file the client
 * makes); on the loop, dst's entry checked (a mapped dst keeps its size);
 * on a worker again, dst sized and the bytes written into it in place;
 * then dst's watchers get MODIFIED and the answer. In the opens' bounds. */
void winopen_copy(struct wsession *s, uint64_t id, const char *src, const char *dst);
/* What a lookup found: the file opened (the callback's to keep or
 * close), its identity, size and owner; or code and why. */
struct wlookup {
    const char *path;
    int code;              /* MMAPIO_OK or the reply's error */
    const char *why;
    HANDLE f;
    bool known;            /* vol, index and size were read */
    uint64_t vol, index, size;
    uint32_t owner;        /* SIDMAP_NONE when unknown */
};
/* On the loop, when a lookup is done (not called if the session went:
 * then the file is closed and ctx freed). ctx is freed after it. */
typedef void (*wlookup_fn)(struct wsession *s, uint64_t id, void *ctx, struct wlookup *r);
/* The file `path` (checked here) opened as the caller with `access` on a
 * worker — and, for an admin the file's ACL refuses, as the daemon with
 * attributes only — then fn(s, id, ctx, result) on the loop. ctx is
 * malloc'd memory, owned from here. In the opens' bounds. */
void winopen_lookup(struct wsession *s, uint64_t id, const char *path, ACCESS_MASK access,
                    bool admin, wlookup_fn fn, void *ctx);
/* The daemon stops: opens on workers are waited for a moment, then
 * abandoned to the process's end; waiting ones are dropped. */
void winopen_final(struct winops *w);

#endif
