/*
 * winfromfd (Windows): a caller's own file handle as a mapping
 * (winfromfd.h).
 */
#include "winfromfd.h"

#include <string.h>
#include <winternl.h>

#include "beneath.h"
#include "filesection.h"
#include "mmapio.h"
#include "names.h"

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
static int validate(const struct wsession *s, HANDLE f, mmapio_mode mode,
                    struct facts *fa, const char **why)
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
    if ((uint64_t)size.QuadPart > s->w->cfg.max_map_size) {
        *why = "size over the daemon's max_map_size";
        return MMAPIO_E_QUOTA;
    }
    fa->vol = fi.dwVolumeSerialNumber;
    fa->index = (uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow;
    fa->size = (uint64_t)size.QuadPart;
    return MMAPIO_OK;
}

/* The same file beneath the root, opened by its path as the caller with
 * the mode: that handle, and the path in rel[]; else NULL (private). */
static HANDLE reopen_beneath(struct wsession *s, HANDLE f, mmapio_mode mode,
                             const struct facts *fa, char *rel, size_t cap)
{
    bool created;
    int err = 0;
    BY_HANDLE_FILE_INFORMATION fi;
    if (beneath_relative(s->w->cfg.root, f, rel, cap) < 0)
        return NULL;
    HANDLE p = open_as_caller(s, rel, GENERIC_READ |
                              (mode == MMAPIO_MODE_READ_WRITE ? GENERIC_WRITE : 0),
                              BENEATH_OPEN, &created, &err);
    if (p && (!GetFileInformationByHandle(p, &fi) || fi.dwVolumeSerialNumber != fa->vol ||
              ((uint64_t)fi.nFileIndexHigh << 32 | fi.nFileIndexLow) != fa->index)) {
        CloseHandle(p); /* renamed or replaced meanwhile */
        p = NULL;
    }
    return p;
}

/* The entry f stands for, made when there is none: MMAPIO_OK with *out
 * (f is then kept by a private entry, *kept), or an error and *why. */
static int entry_of(struct wsession *s, HANDLE f, mmapio_mode mode, const char *path,
                    const struct facts *fa, struct wmap **out, bool *kept,
                    const char **why)
{
    struct winops *w = s->w;
    char rel[BENEATH_PATH_MAX + 1], name[128];
    int err;
    *kept = false;
    struct wmap *m = find_file(w, fa->vol, fa->index);
    if (m) {
        m->size = fa->size;
        *out = m;
        return MMAPIO_OK;
    }
    HANDLE p = reopen_beneath(s, f, mode, fa, rel, sizeof(rel));
    if (!p)
        names_escape(path && *path ? path : "(handle)", name, sizeof(name));
    m = map_new(w, s->cred.uid, false, fa->size, p ? rel : name, &err, why);
    if (!m) {
        if (p)
            CloseHandle(p);
        return err;
    }
    m->file = p ? p : f; /* kept for stat and watches */
    m->private_map = !p;
    *kept = !p;
    m->creator_pid = (int32_t)s->cred.pid;
    m->vol = fa->vol;
    m->index = fa->index;
    *out = m;
    return MMAPIO_OK;
}

struct wmap *winfromfd_open(struct wsession *s, uint64_t id, const Mmapio__FromFd *q,
                            const uint64_t *handles, unsigned n_handles,
                            HANDLE *section)
{
    const char *why = "";
    struct facts fa;
    struct wmap *m = NULL;
    bool kept = false;
    if (n_handles != 1) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "from_fd carries exactly one handle (%u here)", n_handles);
        return NULL;
    }
    if ((unsigned)q->mode > MMAPIO__MODE__MODE_COPY_ON_WRITE || !names_valid(q->path)) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT, "bad mode or path");
        return NULL;
    }
    if (s->n_holders >= s->w->cfg.max_holders_per_client) {
        reply_err(s, id, MMAPIO_E_QUOTA, "max_holders_per_client reached");
        return NULL;
    }
    mmapio_mode mode = (mmapio_mode)q->mode;
    HANDLE f = s->w->port.pull(s->conn, handles[0]);
    if (!f) {
        reply_err(s, id, MMAPIO_E_INVALID_ARGUMENT,
                  "from_fd: %llu names no handle of your process (%lu)",
                  (unsigned long long)handles[0], (unsigned long)GetLastError());
        return NULL;
    }
    int r = validate(s, f, mode, &fa, &why);
    HANDLE sec = NULL;
    if (!r && !(sec = mem_file_section(f, mode == MMAPIO_MODE_READ_WRITE))) {
        why = "its section cannot be made";
        r = MMAPIO_E_IO;
    }
    if (!r)
        r = entry_of(s, f, mode, q->path, &fa, &m, &kept, &why);
    if (r) {
        if (sec)
            CloseHandle(sec);
        CloseHandle(f);
        reply_err(s, id, r, "from_fd: %s", why);
        return NULL;
    }
    /* A writer's handle for the daemon's own flushes: the caller's, whose
     * write access was checked. */
    if (mode == MMAPIO_MODE_READ_WRITE && !m->wfile &&
        !DuplicateHandle(GetCurrentProcess(), f, GetCurrentProcess(), &m->wfile, 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
        m->wfile = NULL; /* then timed flushes of it are skipped */
    if (!kept)
        CloseHandle(f);
    *section = sec;
    return m;
}
