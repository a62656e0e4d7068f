/*
 * guard: the library's copying calls survive a mapping truncated under
 * them (see guard.c for how).
 *
 * A copy names the mapping it touches by its range and by the handle's
 * "poisoned from" word: the offset from which the guard has put private
 * zero pages in the mapping (UINT64_MAX: none), lowered by the SIGBUS
 * handler and raised again by whoever maps the file afresh.
 */
#ifndef MMAPIO_CLIENT_GUARD_H
#define MMAPIO_CLIENT_GUARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmapio.h"

/* Installs the SIGBUS handler once per process (at the first grant). */
void guard_install(void);

/*
 * memcpy(dst, src, n) where one side lies at offset `off` of a mapping
 * [base, base+len) mapped read-only or `writable`: MMAPIO_E_IO instead of
 * dying when the file was truncated under it (*poisoned_from is then
 * lowered to the first stand-in page), and MMAPIO_E_IO at once when the
 * range reaches *poisoned_from already. MMAPIO_OK otherwise.
 */
int guard_copy(_Atomic uint64_t *poisoned_from, bool writable, uint8_t *base,
               uint64_t len, uint64_t off, void *dst, const void *src,
               size_t n);

#endif
