/* copy: file to file under the data root, off the loop (see copy.h). */
#include "copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "copier.h"
#include "errmap.h"
#include "names.h"
#include "open.h"
#include "quota.h"
#include "registry.h"
#include "ringdrain.h"
#include "session.h"
#include "watch.h"

struct copy_ctx {
    struct copy_job job;
    struct handlers *h;
    uint64_t session_id, id;
    struct mapping *src, *dst; /* references, pinned */
};

static void release(struct handlers *h, struct mapping *m)
{
    if (!m)
        return;
    mapping_unpin(m);
    registry_retire_if_unused(h->reg, m);
    mapping_unref(m);
}

static struct session *find_session(struct handlers *h, uint64_t sid)
{
    for (struct session *s = h->sessions; s; s = s->next)
        if (s->id == sid)
            return s;
    return NULL;
}

static void copy_done(struct copy_job *job)
{
    struct copy_ctx *x = (struct copy_ctx *)job;
    struct handlers *h = x->h;
    if (job->result == 0)
        watch_notify(h->watches, x->dst, MMAPIO__EVENT_KIND__EVENT_MODIFIED,
                     true, 0, job->len);
    struct session *s = find_session(h, x->session_id);
    if (s) {
        s->busy--;
        s->port->busy_changed(s);
        if (job->result)
            session_reply_err(s, x->id, errmap_from_errno(-job->result),
                              "copy failed: %s", strerror(-job->result));
        else
            session_reply_ok(s, x->id);
    }
    release(h, x->src);
    release(h, x->dst);
    free(x);
}

/* Opens path as the peer (open.c), pinned. MMAPIO_OK or an error. */
static int open_one(struct session *s, const char *path, bool dst,
                    uint64_t size, uint32_t perm, struct mapping **out,
                    const char **why)
{
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = (char *)path;
    o.mode = dst ? MMAPIO__MODE__MODE_READ_WRITE : MMAPIO__MODE__MODE_READ_ONLY;
    o.create = dst;
    o.size = size;
    o.perm = perm;
    int r = open_mapping(s->h, s, &o, out, why);
    if (r == MMAPIO_OK)
        mapping_pin(*out); /* registered while the copy runs */
    return r;
}

/* dst to src's size without faulting a holder (copy.h). */
static int fit_dst(struct session *s, struct mapping *dst, uint64_t size,
                   const char **why)
{
    uint64_t old = mapping_sync_size(dst);
    if (old == size)
        return MMAPIO_OK;
    if (size < old)
        ringdrain_settle(dst, s); /* releases recorded, not yet read */
    if (size < old && dst->n_holders > 0)
        session_reap_gone(dst, s); /* holders whose process just exited */
    if (size < old && dst->n_holders > 0) {
        *why = "the destination is held and larger than the source; "
               "shrinking it would fault its holders";
        return MMAPIO_E_BUSY;
    }
    int r = quota_set_size(s->h->quota, dst, size, s->cred.uid, why);
    if (!r)
        mapping_changed(dst, MAPPING_RESIZED, NULL);
    return r;
}

static int start(struct session *s, struct copy_ctx *x, const Mmapio__Copy *q,
                 const char **why)
{
    int r = open_one(s, q->src, false, 0, 0, &x->src, why);
    if (r)
        return r;
    uint64_t size = mapping_sync_size(x->src);
    if (size == 0) {
        *why = "the source is empty";
        return MMAPIO_E_RESIZE_FAILED;
    }
    r = open_one(s, q->dst, true, size, x->src->perm & 0777, &x->dst, why);
    if (r)
        return r;
    if (x->dst == x->src) {
        *why = "source and destination are the same file";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (!x->dst->fd_writable) {
        *why = "the daemon cannot write the destination";
        return MMAPIO_E_PERMISSION;
    }
    r = fit_dst(s, x->dst, size, why);
    if (r)
        return r;
    x->job.src = x->src->fd;
    x->job.dst = x->dst->fd;
    x->job.len = size;
    x->job.done = copy_done;
    x->job.uid = s->cred.uid;
    int e = copier_submit(s->h->copier, &x->job);
    if (e == -EBUSY) {
        *why = "too many copies running (one uid's at most half of "
               "them); try again";
        return MMAPIO_E_BUSY;
    }
    if (e < 0) {
        *why = strerror(-e);
        return MMAPIO_E_QUOTA;
    }
    return MMAPIO_OK;
}

void copy_request(struct session *s, uint64_t id, const Mmapio__Copy *q)
{
    const char *why = "";
    if (!names_valid(q->src) || !names_valid(q->dst) || !*q->src || !*q->dst) {
        session_reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "bad path");
        return;
    }
    struct copy_ctx *x = calloc(1, sizeof(*x));
    if (!x || !s->h->copier) {
        free(x);
        session_reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    x->h = s->h;
    x->session_id = s->id;
    x->id = id;
    int r = start(s, x, q, &why);
    if (r) {
        release(s->h, x->src);
        release(s->h, x->dst);
        free(x);
        session_reply_err(s, id, r, "copy %s to %s: %s", q->src, q->dst, why);
        return;
    }
    s->busy++; /* the answer is owed: counts as a request in flight */
    s->port->busy_changed(s);
}
