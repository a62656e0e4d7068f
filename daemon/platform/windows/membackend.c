/*
 * membackend on Windows: a section is a pagefile-backed file mapping
 * object (CreateFileMapping on INVALID_HANDLE_VALUE), passed on as a
 * HANDLE in the int of the seam (ptypes.h).
 *
 * Every section gets an explicit DACL granting nobody any right to map
 * it (SECTION_DACL): the creator's handle holds all rights from the
 * creation, and a duplicate asking for more than its source has is
 * checked against that DACL and refused. Without it, the default DACL
 * lets a holder of a read-only handle duplicate it writable.
 *
 * What Windows does differently, decided here:
 * - a section's size is fixed at creation: it can never grow or shrink,
 *   so every seal holds from the start and mem_seal only checks that fd
 *   is a section (mem_seal can add nothing, MEM_SEAL_SEAL included);
 *   a section of size 0 cannot exist (-EINVAL);
 * - sections are unnamed (a name would put them in a namespace others can
 *   open); the label is not kept;
 * - large-page sections need SeLockMemoryPrivilege: MEM_HUGETLB is
 *   -EOPNOTSUPP;
 * - a section's pages cannot be freed while it lives (DiscardVirtualMemory
 *   works on one view and leaves the contents undefined, not zero):
 *   mem_punch on a section is -EOPNOTSUPP; on a file it zeroes the range
 *   (FSCTL_SET_ZERO_DATA, which frees the blocks of a sparse file);
 * - a section is committed in whole at creation (SEC_COMMIT charges the
 *   commit limit), so mem_reserve on one has nothing left to do within its
 *   size and cannot grow it (-EFBIG).
 */
#include "membackend.h"
#include "filesection.h"
#include "ptypes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <windows.h>
#include <winioctl.h>
#include <winternl.h>
#include <sddl.h>

/* Owner rights: read the DACL only (no WRITE_DAC, no map rights). */
#define SECTION_DACL L"D:P(A;;RC;;;OW)"

/* ntdll's section query (not in mingw's headers). */
typedef struct {
    PVOID base;
    ULONG attributes;
    LARGE_INTEGER size;
} section_basic_info;
NTSTATUS NTAPI NtQuerySection(HANDLE, int, PVOID, ULONG, PULONG);

static int errno_of(DWORD err)
{
    switch (err) {
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
        return -EACCES;
    case ERROR_INVALID_HANDLE:
        return -EBADF;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
        return -ENOMEM;
    case ERROR_DISK_FULL:
    case ERROR_HANDLE_DISK_FULL:
        return -ENOSPC;
    case ERROR_INSUFFICIENT_BUFFER:
        return -ENAMETOOLONG;
    case ERROR_INVALID_FUNCTION:
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
        return -EOPNOTSUPP;
    default:
        return -EINVAL;
    }
}

int mem_section_new(const char *label, uint64_t size, unsigned flags)
{
    (void)label;
    if (flags & MEM_HUGETLB)
        return -EOPNOTSUPP;
    if (size == 0)
        return -EINVAL;
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .bInheritHandle = FALSE};
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(SECTION_DACL,
            SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL))
        return errno_of(GetLastError());
    HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, &sa,
        PAGE_READWRITE | SEC_COMMIT, (DWORD)(size >> 32), (DWORD)size, NULL);
    DWORD err = GetLastError();
    LocalFree(sa.lpSecurityDescriptor);
    return h ? PLATFORM_FD(h) : errno_of(err);
}

int mem_is_section(int fd)
{
    /* Big enough for the type name "Section" after the struct. */
    union {
        PUBLIC_OBJECT_TYPE_INFORMATION info;
        char bytes[sizeof(PUBLIC_OBJECT_TYPE_INFORMATION) + 128];
    } u;
    ULONG len = 0;
    if (NtQueryObject(PLATFORM_HANDLE(fd), ObjectTypeInformation, &u,
            sizeof(u), &len) < 0)
        return -EBADF;
    const UNICODE_STRING *name = &u.info.TypeName;
    static const WCHAR section[] = L"Section";
    return name->Length == sizeof(section) - sizeof(WCHAR) &&
        memcmp(name->Buffer, section, name->Length) == 0;
}

/* The size of a section, or -errno. */
static int64_t section_size(HANDLE h)
{
    section_basic_info info;
    if (NtQuerySection(h, 0 /* SectionBasicInformation */, &info,
            sizeof(info), NULL) < 0)
        return -EACCES;
    return info.size.QuadPart;
}

int mem_seal(int fd, unsigned seals)
{
    int is = mem_is_section(fd);
    if (is < 0)
        return is;
    return is ? 0 : -EINVAL;
}

int mem_reopen(int fd, int flags)
{
    HANDLE src = PLATFORM_HANDLE(fd), out = NULL;
    bool rw = (flags & O_ACCMODE) == O_RDWR;
    if ((flags & O_ACCMODE) == O_WRONLY)
        return -EINVAL;
    int is = mem_is_section(fd);
    if (is < 0)
        return is;
    if (is) {
        /* Asking for more than src holds is checked against the DACL,
         * which grants nothing: a read-only handle stays read-only. */
        DWORD access = SECTION_QUERY | FILE_MAP_READ | (rw ? FILE_MAP_WRITE : 0);
        if (!DuplicateHandle(GetCurrentProcess(), src, GetCurrentProcess(),
                &out, access, FALSE, 0))
            return errno_of(GetLastError());
        return PLATFORM_FD(out);
    }
    out = ReOpenFile(src, GENERIC_READ | (rw ? GENERIC_WRITE : 0),
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, 0);
    return out != INVALID_HANDLE_VALUE ? PLATFORM_FD(out)
                                       : errno_of(GetLastError());
}

int mem_fd_path(int fd, char *buf, size_t cap)
{
    int is = mem_is_section(fd);
    if (is < 0)
        return is;
    if (is) {
        /* Sections are unnamed: the platform's own name for one. */
        int n = snprintf(buf, cap, "section:%#x", (unsigned)fd);
        return n < 0 ? -EINVAL : (size_t)n >= cap ? -ENAMETOOLONG : n;
    }
    if (cap > MAXDWORD)
        cap = MAXDWORD;
    DWORD n = GetFinalPathNameByHandleA(PLATFORM_HANDLE(fd), buf, (DWORD)cap,
        FILE_NAME_NORMALIZED);
    if (n == 0)
        return errno_of(GetLastError());
    return n >= cap ? -ENAMETOOLONG : (int)n;
}

int mem_punch(int fd, uint64_t from, uint64_t to)
{
    if (from > to || to > INT64_MAX)
        return -EINVAL;
    int is = mem_is_section(fd);
    if (is != 0)
        return is < 0 ? is : -EOPNOTSUPP;
    FILE_ZERO_DATA_INFORMATION z;
    z.FileOffset.QuadPart = (LONGLONG)from;
    z.BeyondFinalZero.QuadPart = (LONGLONG)to;
    DWORD got;
    if (!DeviceIoControl(PLATFORM_HANDLE(fd), FSCTL_SET_ZERO_DATA, &z,
            sizeof(z), NULL, 0, &got, NULL))
        return errno_of(GetLastError());
    return 0;
}

int mem_reserve(int fd, uint64_t from, uint64_t to)
{
    if (from > to || to > INT64_MAX)
        return -EINVAL;
    HANDLE h = PLATFORM_HANDLE(fd);
    int is = mem_is_section(fd);
    if (is < 0)
        return is;
    if (is) {
        int64_t size = section_size(h);
        if (size < 0)
            return (int)size;
        return to <= (uint64_t)size ? 0 : -EFBIG;
    }
    /* Blocks for the whole file up to `to` (Windows allocates from 0),
     * then the size. */
    IO_STATUS_BLOCK io;
    LARGE_INTEGER cur, want = {.QuadPart = (LONGLONG)to};
    NTSTATUS st = NtSetInformationFile(h, &io, &want, sizeof(want),
        19 /* FileAllocationInformation */);
    if (st < 0)
        return st == (NTSTATUS)0xC0000002L /* NOT_IMPLEMENTED */ ||
                st == (NTSTATUS)0xC00000BBL /* NOT_SUPPORTED */
            ? -EOPNOTSUPP : errno_of(RtlNtStatusToDosError(st));
    if (!GetFileSizeEx(h, &cur))
        return errno_of(GetLastError());
    if (cur.QuadPart < want.QuadPart &&
        (st = NtSetInformationFile(h, &io, &want, sizeof(want),
             20 /* FileEndOfFileInformation */)) < 0)
        return errno_of(RtlNtStatusToDosError(st));
    return 0;
}

HANDLE mem_file_section(HANDLE file, bool writable)
{
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .bInheritHandle = FALSE};
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(SECTION_DACL,
            SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL))
        return NULL;
    HANDLE h = CreateFileMappingW(file, &sa, writable ? PAGE_READWRITE : PAGE_READONLY,
        0, 0, NULL);
    DWORD err = GetLastError();
    LocalFree(sa.lpSecurityDescriptor);
    SetLastError(err);
    return h;
}
