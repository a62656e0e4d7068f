/*
 * logsink on Windows: stderr ("mmapiod: LEVEL: message"), or the log file
 * of logfile.h. Writes are serialized by a lock (the loop and the thread
 * pool both log). The file lies where only the daemon's account can
 * write (or where the operator put it), so nothing a client controls can
 * hold a write up; a client can only make lines, and the rotation bounds
 * what they take.
 */
#include "dataroot.h"
#include "logfile.h"
#include "logsink.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <aclapi.h>

static SRWLOCK lock = SRWLOCK_INIT;
static HANDLE file;        /* NULL: stderr */
static WCHAR *file_path;   /* FILE, and FILE.1 beside it */
static WCHAR *old_path;
static uint64_t file_size, file_max;

/* The DACL of what logfile makes: the process's account (its user SID)
 * and SYSTEM full control, Administrators read; no inheritance from
 * above (P); a folder's inherited by what is made inside (OICI). */
static PSECURITY_DESCRIPTOR own_sd(bool folder)
{
    return dataroot_sd(folder ? L"D:P(A;OICI;FA;;;%ls)(A;OICI;FA;;;SY)(A;OICI;FR;;;BA)"
                              : L"D:P(A;;FA;;;%ls)(A;;FA;;;SY)(A;;FR;;;BA)");
}

static WCHAR *wide(const char *s, const WCHAR *suffix)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0)
        return NULL;
    WCHAR *w = malloc((n + wcslen(suffix)) * sizeof(WCHAR));
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) == n)
        return wcscat(w, suffix);
    free(w);
    return NULL;
}

/* The log's folder, made or its DACL reset to sd's; refused if a link or
 * someone else's. */
static int private_folder(const WCHAR *path, PSECURITY_DESCRIPTOR sd)
{
    WCHAR *dir = _wcsdup(path), *sep = dir ? wcsrchr(dir, L'\\') : NULL;
    if (!sep) {
        free(dir);
        return -EINVAL;
    }
    *sep = 0;
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .lpSecurityDescriptor = sd};
    int r = 0;
    if (!CreateDirectoryW(dir, &sa) && GetLastError() != ERROR_ALREADY_EXISTS)
        r = -EACCES;
    HANDLE h = r ? INVALID_HANDLE_VALUE
                 : CreateFileW(dir, READ_CONTROL | WRITE_DAC | FILE_READ_ATTRIBUTES, 0, NULL,
                               OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS |
                                   FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    FILE_BASIC_INFO bi;
    if (!r && (h == INVALID_HANDLE_VALUE ||
               !GetFileInformationByHandleEx(h, FileBasicInfo, &bi, sizeof(bi))))
        r = -EACCES;
    else if (!r && (bi.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT ||
                    !(bi.FileAttributes & FILE_ATTRIBUTE_DIRECTORY)))
        r = -ELOOP;
    else if (!r && !dataroot_owned_by_us(h))
        r = -EPERM;
    BOOL present = FALSE, defaulted = FALSE;
    PACL dacl = NULL;
    if (!r && (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted) ||
               SetSecurityInfo(h, SE_FILE_OBJECT,
                               DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                               NULL, NULL, dacl, NULL) != ERROR_SUCCESS))
        r = -EACCES;
    if (h != INVALID_HANDLE_VALUE)
        CloseHandle(h);
    free(dir);
    return r;
}

/* Opens (or makes, with sd) the log at file_path, appending. */
static HANDLE open_log(PSECURITY_DESCRIPTOR sd, uint64_t *size)
{
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .lpSecurityDescriptor = sd};
    /* Readers welcome (and a rotation by rename); no other writer. */
    HANDLE h = CreateFileW(file_path, GENERIC_WRITE | FILE_READ_ATTRIBUTES,
                           FILE_SHARE_READ | FILE_SHARE_DELETE,
                           &sa, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT,
                           NULL);
    LARGE_INTEGER end = {0};
    if (h == INVALID_HANDLE_VALUE)
        return NULL;
    /* A regular file of one name: not a link, not a hard link to a file
     * elsewhere that the log would write into. */
    FILE_STANDARD_INFO si;
    FILE_BASIC_INFO bi;
    if (!GetFileInformationByHandleEx(h, FileStandardInfo, &si, sizeof(si)) ||
        !GetFileInformationByHandleEx(h, FileBasicInfo, &bi, sizeof(bi)) ||
        si.NumberOfLinks != 1 || si.Directory ||
        (bi.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) ||
        !SetFilePointerEx(h, end, &end, FILE_END)) {
        CloseHandle(h);
        return NULL;
    }
    *size = (uint64_t)end.QuadPart;
    return h;
}

int logfile_open(const char *path, uint64_t max_bytes, bool private_dir)
{
    if (!path || max_bytes < LOGFILE_MIN_BYTES)
        return -EINVAL;
    WCHAR *p = wide(path, L""), *o = wide(path, L".1");
    PSECURITY_DESCRIPTOR sd = own_sd(false);
    int r = p && o && sd ? 0 : -ENOMEM;
    if (!r && private_dir) {
        PSECURITY_DESCRIPTOR dir_sd = own_sd(true);
        r = dir_sd ? private_folder(p, dir_sd) : -ENOMEM;
        LocalFree(dir_sd);
    }
    AcquireSRWLockExclusive(&lock);
    WCHAR *was = file_path, *was_old = old_path;
    HANDLE was_file = file;
    if (!r) {
        file_path = p;
        uint64_t size = 0;
        HANDLE h = open_log(sd, &size);
        if (h) {
            file = h;
            file_size = size;
            file_max = max_bytes;
            old_path = o;
            p = o = NULL;
        } else {
            file_path = was;
            r = -EACCES;
        }
    }
    if (!r && was_file) {
        CloseHandle(was_file);
        free(was);
        free(was_old);
    }
    ReleaseSRWLockExclusive(&lock);
    LocalFree(sd);
    free(p);
    free(o);
    return r;
}

void logfile_close(void)
{
    AcquireSRWLockExclusive(&lock);
    if (file)
        CloseHandle(file);
    file = NULL;
    free(file_path);
    free(old_path);
    file_path = old_path = NULL;
    ReleaseSRWLockExclusive(&lock);
}

/* The file moved to FILE.1 and begun afresh (lock held); when it cannot
 * be moved (a reader holds FILE.1 without sharing delete), emptied in
 * place: the bound holds either way. */
static void rotate(void)
{
    CloseHandle(file);
    file = NULL;
    MoveFileExW(file_path, old_path, MOVEFILE_REPLACE_EXISTING);
    PSECURITY_DESCRIPTOR sd = own_sd(false);
    file = sd ? open_log(sd, &file_size) : NULL;
    LocalFree(sd);
    if (file && file_size > 0) {
        LARGE_INTEGER zero = {0};
        if (SetFilePointerEx(file, zero, NULL, FILE_BEGIN) && SetEndOfFile(file))
            file_size = 0;
    }
}

void logsink_line(int prio, const char *level, const char *msg)
{
    (void)prio;
    AcquireSRWLockExclusive(&lock);
    if (!file) {
        ReleaseSRWLockExclusive(&lock);
        fprintf(stderr, "mmapiod: %s: %s\n", level, msg);
        return;
    }
    SYSTEMTIME t;
    GetSystemTime(&t);
    char line[1200];
    int n = snprintf(line, sizeof(line), "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ %s: %s\r\n",
                     t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond,
                     t.wMilliseconds, level, msg);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = n < 0 ? 0 : (int)sizeof(line) - 1;
    if (file_size + (uint64_t)n > file_max && file_size > 0)
        rotate();
    DWORD done = 0;
    if (file && WriteFile(file, line, (DWORD)n, &done, NULL))
        file_size += done;
    ReleaseSRWLockExclusive(&lock);
}
