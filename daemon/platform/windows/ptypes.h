/*
 * The system types the seam headers use, on Windows. mingw has pid_t but
 * no uid_t/gid_t: here they hold the number the daemon gives an
 * account's or group's SID, one per whole SID (platform/windows/sidmap.h:
 * a local account's RID, any other SID from 0x80000000).
 *
 * Where a seam takes an `int fd`, Windows passes a kernel HANDLE: Windows
 * keeps handle values within 32 bits (so 32- and 64-bit processes can
 * share them) and never returns a negative one from a create or
 * duplicate, so an int carries it and -errno stays apart.
 */
#ifndef MMAPIOD_PTYPES_H
#define MMAPIOD_PTYPES_H

#include <stdint.h>
#include <sys/types.h>

typedef uint32_t uid_t;
typedef uint32_t gid_t;

#define PLATFORM_HANDLE(fd) ((void *)(intptr_t)(fd))
#define PLATFORM_FD(h) ((int)(intptr_t)(h))

#endif
