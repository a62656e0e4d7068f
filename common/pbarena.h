/*
 * pbarena: a protobuf-c allocator over a caller's fixed buffer, so that
 * decoding a small message costs no malloc. Allocations bump through the
 * buffer; one that does not fit falls back to malloc. Freeing a piece of
 * the buffer does nothing; the whole buffer is reused at the next
 * pbarena_init. A message decoded with it is freed with
 * pbarena_free_unpacked (which walks it only when something was malloc'ed).
 */
#ifndef MMAPIO_PBARENA_H
#define MMAPIO_PBARENA_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

struct pbarena {
    ProtobufCAllocator alloc; /* pass &a->alloc to *__unpack */
    uint8_t *buf;
    size_t cap, used;
    unsigned spilled;         /* pieces that went to malloc */
};

/* Starts (or restarts) an arena over buf[0..cap). */
void pbarena_init(struct pbarena *a, void *buf, size_t cap);

/* Frees msg (decoded with a's allocator); NULL does nothing. */
void pbarena_free_unpacked(struct pbarena *a, ProtobufCMessage *msg);

#endif
