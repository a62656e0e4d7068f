/*
 * winstate (Windows): the table, budgets and replies (winstate.h).
 */
#include "winstate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aclapi.h>

#include "names.h"
#include "reqmsg.h"
#include "sidmap.h"

void send_reply(struct wsession *s, Mmapio__Reply *r, HANDLE h, DWORD access)
{
    Mmapio__ServerMessage msg = MMAPIO__SERVER_MESSAGE__INIT;
    msg.body_case = MMAPIO__SERVER_MESSAGE__BODY_REPLY;
    msg.reply = r;
    size_t n = mmapio__server_message__get_packed_size(&msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        s->w->port.close_when_sent(s->conn);
        return;
    }
    mmapio__server_message__pack(&msg, buf);
    if (s->w->port.send(s->conn, buf, n, &h, &access, h ? 1 : 0) < 0)
        s->w->port.close_when_sent(s->conn);
    free(buf);
}

void reply_ok(struct wsession *s, uint64_t id)
{
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    send_reply(s, &r, NULL, 0);
}

void reply_err(struct wsession *s, uint64_t id, int err, const char *fmt, ...)
{
    char text[512], safe[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    Mmapio__Reply r = MMAPIO__REPLY__INIT;
    r.id = id;
    r.error = err;
    s->w->errors++;
    r.message = names_escape(text, safe, sizeof(safe)); /* a client's path may be in it */
    send_reply(s, &r, NULL, 0);
}

/* -errno from the seams and the walk, as the public error codes. */
int public_err(int e)
{
    switch (e) {
    case -ENOENT: case -ENOTDIR: return MMAPIO_E_NOT_FOUND;
    case -EEXIST: return MMAPIO_E_EXISTS;
    case -EACCES: case -EPERM: case -ELOOP: case -EXDEV: return MMAPIO_E_PERMISSION;
    case -EBUSY: return MMAPIO_E_BUSY;
    case -ENOMEM: case -ENOSPC: return MMAPIO_E_QUOTA;
    case -EINVAL: case -EISDIR: case -EOPNOTSUPP: return MMAPIO_E_INVALID_ARGUMENT;
    default: return MMAPIO_E_IO;
    }
}

const char *errno_text(int e)
{
    switch (e) {
    case -ELOOP: return "a junction or link on the way (refused beneath the root)";
    case -EBUSY: return "someone holds an opportunistic lock on it";
    case -EISDIR: return "a directory";
    default: return strerror(-e);
    }
}

struct uidq *uidq_of(struct winops *w, uint32_t uid, bool make)
{
    for (struct uidq *q = w->uids; q; q = q->next)
        if (q->uid == uid)
            return q;
    struct uidq *q = make ? calloc(1, sizeof(*q)) : NULL;
    if (q) {
        q->uid = uid;
        q->next = w->uids;
        w->uids = q;
    }
    return q;
}

struct wmap *find_anon(struct winops *w, const char *name)
{
    for (struct wmap *m = w->maps; m; m = m->next)
        if (m->anonymous && m->named && !strcmp(m->name, name))
            return m;
    return NULL;
}

struct wmap *find_file(struct winops *w, uint64_t vol, uint64_t index)
{
    for (struct wmap *m = w->maps; m; m = m->next)
        if (!m->anonymous && !m->private_map && m->vol == vol && m->index == index)
            return m;
    return NULL;
}

struct wmap *find_id(struct winops *w, uint64_t id)
{
    for (struct wmap *m = w->maps; m; m = m->next)
        if (m->id == id)
            return m;
    return NULL;
}

/* A new entry charged to `uid` (anonymous bytes, mappings): NULL with
 * *err and *why when a budget says no. */
struct wmap *map_new(struct winops *w, uint32_t uid, bool anonymous,
                            uint64_t size, const char *name, int *err, const char **why)
{
    struct uidq *q = uidq_of(w, uid, true);
    *err = MMAPIO_E_QUOTA;
    if (!q || w->n_free == 0 || w->n_maps >= w->cfg.max_mappings) {
        *why = "max_mappings reached";
        return NULL;
    }
    if (q->maps >= w->cfg.max_mappings_per_uid) {
        *why = "max_mappings_per_uid reached";
        return NULL;
    }
    if (anonymous && q->bytes + size > w->cfg.max_bytes_per_uid) {
        *why = "max_bytes_per_uid reached";
        return NULL;
    }
    struct wmap *m = calloc(1, sizeof(*m));
    if (!m || !(m->name = strdup(name))) {
        free(m);
        *why = "out of memory";
        return NULL;
    }
    m->id = ++w->next_id;
    m->created = (int64_t)time(NULL);
    m->anonymous = anonymous;
    m->named = true;
    m->owner = uid;
    m->size = size;
    m->slot = w->free_slots[--w->n_free];
    m->policy = (mmapio_flush_policy){MMAPIO_FLUSH_NEVER, 0};
    atomic_store(&w->slots[m->slot].policy, ctl_pack_policy(m->policy));
    atomic_store(&w->slots[m->slot].watchers, 0);
    q->maps++;
    if (anonymous)
        q->bytes += size;
    m->next = w->maps;
    w->maps = m;
    w->n_maps++;
    return m;
}

/* Gone from the table once it has no holder and no name (files: no holder). */
void map_maybe_free(struct winops *w, struct wmap *m)
{
    if (m->holders || m->watchers || (m->anonymous && m->named))
        return;
    for (struct wmap **p = &w->maps; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    w->n_maps--;
    if (w->map_gone && (m->waits || m->wview))
        w->map_gone(w, m);
    struct uidq *q = uidq_of(w, m->owner, false);
    if (q) {
        q->maps--;
        if (m->anonymous)
            q->bytes -= m->size;
    }
    PTP_TIMER timers[] = {m->timer, m->hold};
    for (int i = 0; i < 2; i++)
        if (timers[i]) {
            SetThreadpoolTimer(timers[i], NULL, 0, 0);
            WaitForThreadpoolTimerCallbacks(timers[i], TRUE);
            CloseThreadpoolTimer(timers[i]);
        }
    free(m->tctx);
    if (m->wfile)
        CloseHandle(m->wfile);
    /* The slot keeps its policy until map_new reuses it: a holder that
     * outlives a stopping daemon reads there the policy it brings back
     * (mmapio_reconnect). */
    w->free_slots[w->n_free++] = m->slot;
    if (m->section)
        CloseHandle(m->section);
    if (m->file)
        CloseHandle(m->file);
    free(m->name);
    free(m);
}

struct wholder *find_holder(struct wsession *s, uint64_t id, uint64_t handle)
{
    for (struct wholder *h = s->holders; h; h = h->next)
        if (h->handle == handle)
            return h;
    reply_err(s, id, MMAPIO_E_NOT_FOUND, "no such handle");
    return NULL;
}

/* beneath_open as the client (its token decides every access). */
HANDLE open_as_caller(struct wsession *s, const char *path, ACCESS_MASK access,
                             enum beneath_how how, bool *created, int *err)
{
    if (!ImpersonateNamedPipeClient(s->pipe)) {
        *err = -EACCES;
        return NULL;
    }
    HANDLE h = beneath_open(s->w->cfg.root, path, access, how, created, err);
    if (!RevertToSelf())
        abort(); /* still the client: nothing after this may run */
    return h;
}

/* A new holder and its OpenReply (winstate.h). */
void grant(struct wsession *s, uint64_t id, struct wmap *m, mmapio_mode mode, HANDLE section)
{
    struct wholder *h = calloc(1, sizeof(*h));
    if (!h) {
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        map_maybe_free(s->w, m);
        return;
    }
    h->handle = ++s->next_handle;
    h->m = m;
    h->mode = mode;
    h->next = s->holders;
    s->holders = h;
    s->n_holders++;
    m->holders++;

    struct reqmsg b;
    Mmapio__Reply *rep = reqmsg_open(&b, id, h->handle, m->id, m->size, m->slot, m->policy);
    /* Which file: a section cannot tell the client, whose Reattach names it. */
    Mmapio__FileIdentity file = MMAPIO__FILE_IDENTITY__INIT;
    if (!m->anonymous && !m->private_map) {
        file.dev = m->vol;
        file.ino = m->index;
        rep->open->file = &file;
    }
    send_reply(s, rep, section, mode == MMAPIO_MODE_READ_WRITE ? GRANT_RW : GRANT_RO);
}

HANDLE caller_token(struct wsession *s)
{
    if (!s->token) {
        /* Impersonating through the pipe works only on the loop, which
         * owns the pipe: the token is taken once, here. */
        if (!ImpersonateNamedPipeClient(s->pipe))
            return NULL;
        if (!OpenThreadToken(GetCurrentThread(), TOKEN_IMPERSONATE | TOKEN_QUERY, TRUE,
                             &s->token))
            s->token = NULL;
        if (!RevertToSelf())
            abort(); /* still the client: nothing after this may run */
    }
    HANDLE dup = NULL;
    if (s->token && !DuplicateHandle(GetCurrentProcess(), s->token, GetCurrentProcess(), &dup,
                                     0, FALSE, DUPLICATE_SAME_ACCESS))
        dup = NULL;
    return dup;
}

HANDLE beneath_as(HANDLE token, HANDLE root, const char *path, ACCESS_MASK access,
                  enum beneath_how how, bool *created, int *err)
{
    if (!SetThreadToken(NULL, token)) {
        *err = -EACCES;
        return NULL;
    }
    HANDLE h = beneath_open(root, path, access, how, created, err);
    if (!SetThreadToken(NULL, NULL))
        abort(); /* still the client: nothing after this may run */
    return h;
}

/* The uid of a file's owner (sidmap.h, as a client's), or SIDMAP_NONE. */
uint32_t file_owner(HANDLE f)
{
    PSID sid = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    uint32_t uid = SIDMAP_NONE;
    if (GetSecurityInfo(f, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &sid,
                        NULL, NULL, NULL, &sd) == ERROR_SUCCESS)
        uid = sid_id(sid);
    LocalFree(sd);
    return uid;
}

/* An anonymous mapping's permission bits for this caller, as on Linux. */
bool anon_allows(const struct wsession *s, const struct wmap *m, mmapio_mode mode)
{
    unsigned shift = s->cred.uid == m->owner ? 6 : s->cred.gid == m->group ? 3 : 0;
    unsigned bits = (m->perm >> shift) & 7u;
    return mode == MMAPIO_MODE_READ_WRITE ? (bits & 6u) == 6u : (bits & 4u) != 0;
}


PTP_TIMER map_timer(struct winops *w, struct wmap *m, PTP_TIMER_CALLBACK fn)
{
    if (!m->tctx && (m->tctx = malloc(sizeof(*m->tctx))))
        *m->tctx = (struct wtimer){w, m->id};
    return m->tctx ? CreateThreadpoolTimer(fn, m->tctx, NULL) : NULL;
}

void wtimer_post(const struct wtimer *t, void (*fn)(void *))
{
    struct wtimer *copy = malloc(sizeof(*copy));
    if (copy) {
        *copy = *t;
        t->w->port.post(fn, copy);
    }
}

FILETIME due_in_ms(uint64_t ms)
{
    ULARGE_INTEGER due; /* relative, in 100 ns units (at most ~29,000 years) */
    ms = ms < INT64_MAX / 10000 ? ms : INT64_MAX / 10000;
    due.QuadPart = (ULONGLONG)-(LONGLONG)(ms * 10000u);
    return (FILETIME){due.LowPart, due.HighPart};
}
