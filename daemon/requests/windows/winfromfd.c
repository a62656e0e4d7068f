/*
 * winfromfd (Windows): a caller's own file handle as a mapping
 * (winfromfd.h).
 */
#include "winfromfd.h"

#include <stdlib.h>
#include <string.h>
#include <winternl.h>

#include "beneath.h"
#include "filesection.h"
#include "mmapio.h"
#include "names.h"

/* from_fd checks on worker threads at once, in the whole daemon: each may
 * wait as long as a caller's I/O through its handle lasts. */
#define FROMFD_RUNNING_MAX 64

/* What validate() learnt of the handle. */
struct facts {
    uint64_t vol, index, size;
};

/* Whether h is an object of type File (a disk file, a pipe, a device):
 * asked of the object manager, before any file call is made on it. */
static bool is_file_object(HANDLE h)
{
    union {
        PUBLIC_OBJECT_TYPE_INFORMATION info;
        char bytes[sizeof(PUBLIC_OBJECT_TYPE_INFORMATION) + 128];
    } u;
    ULONG len = 0;
    if (NtQueryObject(h, ObjectTypeInformation, &u, sizeof(u), &len) < 0)
        return false;
    static const WCHAR file[] = L"File";
    const UNICODE_STRING *name = &u.info.TypeName;
    return name->Length == sizeof(file) - sizeof(WCHAR) &&
           !memcmp(name->Buffer, file, name->Length);
}

/* The access h grants, as its holder got it. */
static bool granted(HANDLE h, ACCESS_MASK *out)
{
    PUBLIC_OBJECT_BASIC_INFORMATION bi;
    ULONG len = 0;
    if (NtQueryObject(h, ObjectBasicInformation, &bi, sizeof(bi), &len) < 0)
        return false;
    *out = bi.GrantedAccess;
    return true;
}

/* A file of a network share: its opens, queries and last close may wait
 * on another machine (Linux refuses network and FUSE files alike). */
static bool remote(HANDLE h)
{
    FILE_FS_DEVICE_INFORMATION dev;
    IO_STATUS_BLOCK io;
    if (NtQueryVolumeInformationFile(h, &io, &dev, sizeof(dev), FileFsDeviceInformation) < 0)
        return true; /* cannot tell: not touched further */
    return (dev.Characteristics & 0x10 /* FILE_REMOTE_DEVICE */) != 0;
}

/* The handle against the request: MMAPIO_OK with *fa, or an error and *why. */
static int validate(HANDLE f, mmapio_mode mode, uint64_t max_size, struct facts *fa,
                    const char **why)
{
    ACCESS_MASK need = FILE_READ_DATA | FILE_READ_ATTRIBUTES, has = 0;
    if (mode == MMAPIO_MODE_READ_WRITE)
        need |= FILE_WRITE_DATA;
    BY_HANDLE_FILE_INFORMATION fi;
    LARGE_INTEGER size;
    if (!is_file_object(f) || GetFileType(f) != FILE_TYPE_DISK) {
        *why = "not a disk file (a pipe, a device, or no file at all)";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (remote(f)) {
        *why = "a file of a network share, or of no known volume";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (!granted(f, &has) || (has & need) != need) {
        *why = mode == MMAPIO_MODE_READ_WRITE
                   ? "the handle's own access does not allow READ_WRITE (it needs "
                     "FILE_READ_DATA, FILE_WRITE_DATA and FILE_READ_ATTRIBUTES)"
                   : "the handle's own access does not allow mapping it (it needs "
                     "FILE_READ_DATA and FILE_READ_ATTRIBUTES)";
        return MMAPIO_E_PERMISSION;
    }
    if (!GetFileInformationByHandle(f, &fi) || !GetFileSizeEx(f, &size)) {
        *why = "its attributes cannot be read";
        return MMAPIO_E_IO;
    }
    if (fi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) {
        *why = "a directory";
        return MMAPIO_E_INVALID_ARGUMENT;
    }
    if (size.QuadPart == 0) {
        *why = mode != MMAPIO_MODE_READ_ONLY ? "empty file"
                                              : "an empty file cannot be mapped on Windows";
        return mode != MMAPIO_MODE_READ_ONLY ? MMAPIO_E_RESIZE_FAILED
                                             : MMAPIO_E_INVALID_ARGUMENT;
    }
    if ((uint64_t)size.QuadPart > max_size) {
        *why = "size over the daemon's max_map_size";
        return MMAPIO_E_QUOTA;
    }
    fa->vol = fi.dwVolumeSerialNumber;
    fa->index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    fa->size = (uint64_t)size.QuadPart;
    return MMAPIO_OK;
}

/* The daemon's own handle of the caller's file, opened again from it as
 * the caller (its token) with the mode's access: a file object of the
 * daemon's, so that no later query on it waits on the caller's I/O.
 * NULL and *r, *why when it cannot be. */
static HANDLE reopen_as(HANDLE token, HANDLE f, mmapio_mode mode, int *r, const char **why)
{
    if (!SetThreadToken(NULL, token)) {
        *r = MMAPIO_E_PERMISSION;
        *why = "who you are cannot be taken on";
        return NULL;
    }
    HANDLE h = ReOpenFile(f, GENERIC_READ | (mode == MMAPIO_MODE_READ_WRITE ? GENERIC_WRITE : 0),
                          FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, 0);
    DWORD err = GetLastError();
    if (!SetThreadToken(NULL, NULL))
        abort(); /* still the client: nothing after this may run */
    if (h == INVALID_HANDLE_VALUE) {
        *r = err == ERROR_SHARING_VIOLATION ? MMAPIO_E_BUSY : MMAPIO_E_PERMISSION;
        *why = err == ERROR_SHARING_VIOLATION
                   ? "the file is open without sharing (reading, writing and deleting)"
                   : "you cannot open the file again with this mode";
        return NULL;
    }
    return h;
}

/* One from_fd: checked on a worker thread (a caller's handle may make
 * any query on it wait: a synchronous file object is locked while one of
 * the caller's threads does I/O through it), then joined to its entry on
 * the loop. */
struct job {
    struct wsession *s;
    uint64_t id;
    mmapio_mode mode;
    char *path;                 /* the caller's, informational */
    HANDLE f;                   /* the caller's handle, pulled; closed by the worker */
    HANDLE token;               /* the caller's impersonation token */
    HANDLE root;                /* a duplicate of the data root's */
    uint64_t max_size;
    void (*post)(void (*fn)(void *), void *arg);
    /* The worker's results. */
    int r;
    const char *why;
    struct facts fa;
    HANDLE own, sec;            /* the daemon's handle of the file, the section */
    HANDLE by_path;             /* the same file opened by its path beneath
                                 * the root as the caller, or NULL */
    char rel[BENEATH_PATH_MAX + 1];
};

static void job_free(struct job *j)
{
    HANDLE hs[] = {j->f, j->token, j->root, j->own, j->sec, j->by_path};
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        if (hs[i])
            CloseHandle(hs[i]);
    free(j->path);
    free(j);
}

static void job_done(void *arg);

/* On the worker: the same file beneath the root, opened by its path as
 * the caller with the mode, or NULL (then the entry is private). */
static HANDLE reopen_beneath(const struct job *j)
{
    bool created;
    int err = 0;
    BY_HANDLE_FILE_INFORMATION fi;
    HANDLE p = beneath_as(j->token, j->root, j->rel,
                          GENERIC_READ | (j->mode == MMAPIO_MODE_READ_WRITE ? GENERIC_WRITE : 0),
                          BENEATH_OPEN, &created, &err);
    if (p && (!GetFileInformationByHandle(p, &fi) || fi.dwVolumeSerialNumber != j->fa.vol ||
              ((uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow) != j->fa.index)) {
        CloseHandle(p); /* renamed or replaced meanwhile */
        p = NULL;
    }
    return p;
}

static void CALLBACK job_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
    struct job *j = arg;
    (void)inst;
    j->r = validate(j->f, j->mode, j->max_size, &j->fa, &j->why);
    if (!j->r)
        j->own = reopen_as(j->token, j->f, j->mode, &j->r, &j->why);
    if (!j->r && !(j->sec = mem_file_section(j->f, j->mode == MMAPIO_MODE_READ_WRITE))) {
        j->why = "its section cannot be made";
        j->r = MMAPIO_E_IO;
    }
    if (!j->r && beneath_relative(j->root, j->own, j->rel, sizeof(j->rel)) == 0)
        j->by_path = reopen_beneath(j);
    CloseHandle(j->f); /* the caller's file object is never kept */
    j->f = NULL;
    j->post(job_done, j);
}

/* The entry j's file stands for, made when there is none: MMAPIO_OK with
 * *out, or an error and *why. A private entry takes j->own. */
static int entry_of(struct wsession *s, struct job *j, struct wmap **out, const char **why)
{
    struct winops *w = s->w;
    char name[128];
    int err;
    struct wmap *m = find_file(w, j->fa.vol, j->fa.index);
    if (m) {
        m->size = j->fa.size;
        *out = m;
        return MMAPIO_OK;
    }
    HANDLE p = j->by_path;
    j->by_path = NULL;
    if (!p)
        names_escape(j->path && *j->path ? j->path : "(handle)", name, sizeof(name));
    m = map_new(w, s->cred.uid, false, j->fa.size, p ? j->rel : name, &err, why);
    if (!m) {
        if (p)
            CloseHandle(p);
        return err;
    }
    m->file = p ? p : j->own; /* kept for stat and watches */
    if (!p)
        j->own = NULL;
    m->private_map = !p;
    m->creator_pid = (int32_t)s->cred.pid;
    m->vol = j->fa.vol;
    m->index = j->fa.index;
    *out = m;
    return MMAPIO_OK;
}

/* On the loop: the checks' verdict, the entry and the grant. */
static void job_done(void *arg)
{
    struct job *j = arg;
    struct wsession *s = j->s;
    struct wmap *m = NULL;
    s->w->fromfd_running--;
    s->fromfd_busy = false;
    s->flushes--;
    if (s->gone) {
        if (s->flushes == 0 && s->opens == 0)
            free(s);
        job_free(j);
        return;
    }
    if (!j->r && s->n_holders >= s->w->cfg.max_holders_per_client) {
        j->r = MMAPIO_E_QUOTA;
        j->why = "max_holders_per_client reached";
    }
    if (!j->r)
        j->r = entry_of(s, j, &m, &j->why);
    if (j->r) {
        reply_err(s, j->id, j->r, "from_fd: %s", j->why);
        job_free(j);
        return;
    }
    /* A writer's handle for the daemon's own flushes: the daemon's own
     * reopening, whose write access the caller's handle had. */
    HANDLE wsrc = m->file == j->own || !j->own ? m->file : j->own;
    if (j->mode == MMAPIO_MODE_READ_WRITE && !m->wfile &&
        !DuplicateHandle(GetCurrentProcess(), wsrc, GetCurrentProcess(), &m->wfile, 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
        m->wfile = NULL; /* then timed flushes of it are skipped */
    grant(s, j->id, m, j->mode, j->sec);
    job_free(j);
}

void winfromfd_open(struct wsession *s, uint64_t id, const Mmapio__FromFd *q,
                    const uint64_t *handles, unsigned n_handles)
{
    struct winops *w = s->w;
    if (n_handles != 1) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "from_fd carries exactly one handle (%u here)", n_handles);
        return;
    }
    if ((unsigned)q->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE || !names_valid(q->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "bad mode or path");
        return;
    }
    if (s->n_holders >= w->cfg.max_holders_per_client) {
        reply_err(s, id, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        return;
    }
    if (s->fromfd_busy || w->fromfd_running >= FROMFD_RUNNING_MAX) {
        reply_err(s, id, MMAPIO_E_BUSY, "%s", s->fromfd_busy
                  ? "your from_fd before this one is still being checked"
                  : "too many from_fd under way in the daemon");
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j || (q->path && !(j->path = strdup(q->path)))) {
        free(j);
        reply_err(s, id, MMAPIO_E_QUOTA, "out of memory");
        return;
    }
    *j = (struct job){.s = s, .id = id, .mode = (mmapio_mode)q->mode, .path = j->path,
                      .max_size = w->cfg.max_map_size, .post = w->port.post};
    j->f = w->port.pull(s->conn, handles[0]);
    if (!j->f) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "from_fd: %llu names no handle of your process (%lu)",
                  (unsigned long long)handles[0], (unsigned long)GetLastError());
        job_free(j);
        return;
    }
    if (!(j->token = caller_token(s)) ||
        !DuplicateHandle(GetCurrentProcess(), w->cfg.root, GetCurrentProcess(), &j->root, 0,
                         FALSE, DUPLICATE_SAME_ACCESS) ||
        !TrySubmitThreadpoolCallback(job_work, j, NULL)) {
        reply_err(s, id, MMAPIO_E_IO, "from_fd: its checks cannot start (%lu)",
                  (unsigned long)GetLastError());
        job_free(j);
        return;
    }
    s->fromfd_busy = true;
    s->flushes++; /* keeps s until job_done */
    w->fromfd_running++;
}
