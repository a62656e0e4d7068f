/*
 * filesection (Windows only): a section of a file, with the same DACL as
 * every other section (membackend.c), so that a read-only grant of it
 * cannot be widened either. Implemented in platform/windows/membackend.c.
 */
#ifndef MMAPIOD_FILESECTION_H
#define MMAPIOD_FILESECTION_H

#include <stdbool.h>
#include <windows.h>

/* A section of the whole of `file` (its current size, which must not be
 * 0), writable or read-only as the file's handle allows: the section, or
 * NULL with GetLastError(). */
HANDLE mem_file_section(HANDLE file, bool writable);

#endif
