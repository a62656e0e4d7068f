/* reattach: holders of the previous instance come back (see reattach.h). */
#include "reattach.h"

#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>

#include "closer.h"
#include "log.h"
#include "membackend.h"
#include "names.h"
#include "open.h"
#include "registry.h"
#include "resolve.h"
#include "session.h"
#include "statefile.h"

/* A section of the daemon's naming, told by its label alone: nothing that
 * could block (a FUSE file's getattr) is asked of an fd that is not. */
static bool looks_like_ours(int fd)
{
    char label[32];
    if (mem_section_label(fd, label, sizeof(label)) < 0)
        return false;
    return !strncmp(label, "mmapio:", 7) ||
           !strcmp(label, "mmapio-arena"); /* model/arena.c */
}

/* The mapping is the object the holder had: device and inode, and for a
 * carved one the slot in that arena. */
static bool same_object(const struct mapping *m, const Mmapio__Reattach *q)
{
    struct stat st;
    if (m->kind == MAPPING_FILE)
        return (uint64_t)m->dev == q->dev && (uint64_t)m->ino == q->ino;
    if (q->carved != (m->arena != NULL) || m->offset != q->offset)
        return false;
    return fstat(m->fd, &st) == 0 && (uint64_t)st.st_dev == q->dev &&
           (uint64_t)st.st_ino == q->ino;
}

/* The fields, each checked: MMAPIO_OK or INVALID_ARGUMENT with *why. */
static int check(const Mmapio__Reattach *q, int fd, const char **why)
{
    if ((unsigned)q->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE) {
        *why = "bad mode";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (!q->path || !names_valid(q->path) ||
        (q->anonymous ? resolve_check_name(q->path)
                      : resolve_check_path(q->path))) {
        *why = "bad path or name";
        return resolve_check_path(q->path) == MMAPIO_E_PERMISSION &&
                       !q->anonymous
                   ? MMAPIO_E_PERMISSION : MMAPIO_E_INVALID_ARGUMENT;
    }
    if (q->carved ? !q->anonymous : q->offset != 0) {
        *why = "only a carved anonymous mapping lies at an offset";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (fd >= 0 && !q->anonymous) {
        *why = "only an anonymous mapping's memfd may ride on a reattach";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    return MMAPIO_OK;
}

void reattach_request(struct session *s, uint64_t id,
                      const Mmapio__Reattach *q, int fd)
{
    const char *why = "";
    struct mapping *m = NULL;
    int grant = -1;
    s->fd_wanted = false;
    int r = check(q, fd, &why);
    /* An arena this instance lost: its holder's fd brings back every
     * mapping recorded in it (once per arena; the others find theirs). */
    if (!r && q->carved && fd >= 0) {
        size_t n = 0;
        why = "registered already";
        if (s->h->state && !registry_find_anon(s->h->reg, q->path) &&
            looks_like_ours(fd))
            (void)statefile_adopt_arena(s->h->state, fd, q->dev, q->ino,
                                        &s->h->reg->env.arenas, &n, &why);
        /* One line per arena a holder offers (not per mapping); an offer
         * that took nothing back, which anyone can make, one a second. */
        static struct log_limit fruitless;
        if (n)
            log_info("client %llu offered an arena fd with '%s': %zu "
                     "mappings taken back", (unsigned long long)s->id,
                     q->path, n);
        else
            log_limited(&fruitless, LOG_LVL_INFO, "client %llu offered an "
                        "arena fd with '%s': none taken back: %s",
                        (unsigned long long)s->id, q->path, why);
    }
    /* An anonymous mapping this instance lost: its holder's memfd. */
    if (!r && q->anonymous && !q->carved && fd >= 0 && s->h->state &&
        !registry_find_anon(s->h->reg, q->path) && looks_like_ours(fd)) {
        struct mapping *back;
        if (statefile_adopt(s->h->state, q->path, fd, q->dev, q->ino,
                            q->offset, &back, &why) == MMAPIO_OK)
            mapping_unref(back); /* the registry keeps it */
    }
    if (fd >= 0)
        closer_give(s->cred.uid, fd);
    if (r) {
        session_reply_err(s, id, r, "reattach: %s", why);
        return;
    }
    /* An Open without create: access, owner and budgets as for one. */
    Mmapio__Open o = MMAPIO__OPEN__INIT;
    o.path = q->path;
    o.anonymous = q->anonymous;
    o.mode = q->mode;
    r = open_mapping_fd(s->h, s, &o, &m, &grant, &why);
    if (r) {
        session_reply_err(s, id, r, "%s: %s", q->path, why);
        return;
    }
    if (!same_object(m, q)) {
        if (grant >= 0)
            close(grant);
        registry_retire_if_unused(s->h->reg, m);
        mapping_unref(m);
        session_reply_err(s, id, MMAPIO_E_NOT_FOUND,
                          "%s: another object has that name now", q->path);
        return;
    }
    session_grant_fd(s, id, m, (mmapio_mode)q->mode, grant, q->path);
}
