/* pbarena: a bump allocator for protobuf-c decoding (see pbarena.h). */
#include "pbarena.h"

#include <stdlib.h>

#define PBARENA_ALIGN 16

static void *arena_alloc(void *data, size_t size)
{
    struct pbarena *a = data;
    size_t at = (a->used + PBARENA_ALIGN - 1) & ~(size_t)(PBARENA_ALIGN - 1);
    if (at <= a->cap && size <= a->cap - at) {
        a->used = at + size;
        return a->buf + at;
    }
    void *p = malloc(size);
    a->spilled += p != NULL;
    return p;
}

static void arena_free(void *data, void *p)
{
    struct pbarena *a = data;
    uintptr_t b = (uintptr_t)p, lo = (uintptr_t)a->buf;
    if (p && (b < lo || b - lo >= a->cap))
        free(p);
}

void pbarena_init(struct pbarena *a, void *buf, size_t cap)
{
    a->alloc.alloc = arena_alloc;
    a->alloc.free = arena_free;
    a->alloc.allocator_data = a;
    a->buf = buf;
    a->cap = cap;
    a->used = 0;
    a->spilled = 0;
}

void pbarena_free_unpacked(struct pbarena *a, ProtobufCMessage *msg)
{
    if (msg && a->spilled)
        protobuf_c_message_free_unpacked(msg, &a->alloc);
}
