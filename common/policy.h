/*
 * policy: flush policies as values, as text ("never", "manual", "always",
 * "every-bytes:N", "every-writes:N", "every-millis:N") and as wire messages.
 * A valid policy has value > 0 for the three "every" kinds.
 */
#ifndef MMAPIO_POLICY_H
#define MMAPIO_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ctlarea.h"
#include "mmapio.h"
#include "mmapio.pb-c.h"

/* Values fit in 56 bits (the control area packs kind and value). */
#define POLICY_VALUE_MAX CTL_POLICY_VALUE_MAX

bool policy_valid(mmapio_flush_policy p);
/* Parses text into *out; MMAPIO_E_INVALID_ARGUMENT when it is not one. */
int policy_parse(const char *text, mmapio_flush_policy *out);
/* Writes text form into buf; returns buf. */
const char *policy_format(mmapio_flush_policy p, char *buf, size_t size);

/* Wire conversions. from_wire of NULL gives NEVER. */
mmapio_flush_policy policy_from_wire(const Mmapio__FlushPolicy *w);
void policy_to_wire(mmapio_flush_policy p, Mmapio__FlushPolicy *w);

#endif
