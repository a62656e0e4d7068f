/*
 * vmem: the library's control operations on its own address space —
 * mapping a file's bytes, resizing and dropping a mapping, writing it
 * back, advice, locking pages in RAM. One implementation per platform
 * (client/platform/<system>/vmem.c, chosen by meson). The data path
 * (loads, stores, atomics on mapped bytes) never comes here.
 *
 * Calls returning int give 0 or -errno, and leave errno set on failure.
 */
#ifndef MMAPIO_VMEM_H
#define MMAPIO_VMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* vmem_map modes. */
enum {
    VMEM_WRITE = 1,   /* writable (otherwise read only) */
    VMEM_PRIVATE = 2, /* writes stay in this process (copy on write) */
};

/* vmem_advise advice. */
enum vmem_advice {
    VMEM_NORMAL,
    VMEM_RANDOM,
    VMEM_SEQUENTIAL,
    VMEM_WILL_NEED,
    VMEM_DONT_NEED, /* a private mapping's pages read the file again */
};

/* The size of a page: what mappings and the calls below round to. */
size_t vmem_page(void);

/* len bytes of fd from offset (a multiple of the page), shared with every
 * other mapping of the file unless VMEM_PRIVATE: the address, or NULL
 * with errno set. With `at` non-NULL the mapping replaces whatever was
 * mapped at [at, at+len). */
void *vmem_map(void *at, int fd, uint64_t offset, size_t len, unsigned mode);

/* Undoes a vmem_map of [p, p+len): 0 or -errno. */
int vmem_unmap(void *p, size_t len);

/* Resizes the mapping at p from old to len bytes where it is, never
 * moving it: 0 or -errno (-ENOMEM when the space after it is taken). */
int vmem_resize(void *p, size_t old, size_t len);

/* Writes the changed pages of [p, p+len) back to the file; waits until
 * they are on the disk when `wait`. p on a page. 0 or -errno. */
int vmem_flush(void *p, size_t len, bool wait);

/* Tells the system how [p, p+len) will be used. p on a page. 0 or -errno. */
int vmem_advise(void *p, size_t len, enum vmem_advice advice);

/* Keeps [p, p+len) in RAM (lock) or lets it go again (unlock): 0 or
 * -errno. Never intercepted by a sanitizer's no-op. */
int vmem_lock(void *p, size_t len);
int vmem_unlock(void *p, size_t len);

#endif
