/*
 * fence: a full memory barrier on every thread of every process that
 * registered for it (the write ring's fenced cells, wring.h: writers
 * extend a cell with plain stores, and the daemon fences before it reads
 * what it took). One implementation per system (platform/<system>/).
 */
#ifndef MMAPIO_FENCE_H
#define MMAPIO_FENCE_H

#include <stdbool.h>

/* Whether this system has such a barrier (asked once). */
bool fence_available(void);

/* Issues it: true when every registered thread passed a barrier. */
bool fence_all(void);

#endif
