/*
 * dirs: the directories the daemon makes for itself (its socket's, its
 * data root), created with their missing parents as `mkdir -p` would.
 */
#ifndef MMAPIOD_DIRS_H
#define MMAPIOD_DIRS_H

#include <sys/types.h>

/* Creates path and its missing parents with `mode`. 0 or -errno. */
int dirs_mkdir_p(const char *path, mode_t mode);

#endif
