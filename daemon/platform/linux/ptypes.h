/* The system types the seam headers use, on Linux: POSIX's own. */
#ifndef MMAPIOD_PTYPES_H
#define MMAPIOD_PTYPES_H

#include <sys/types.h>

#endif
