/* policy: flush policy values, text and wire form (see policy.h). */
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    mmapio_flush_kind kind;
    bool has_value;
} kinds[] = {
    { "never", MMAPIO_FLUSH_NEVER, false },
    { "manual", MMAPIO_FLUSH_MANUAL, false },
    { "always", MMAPIO_FLUSH_ALWAYS, false },
    { "every-bytes", MMAPIO_FLUSH_EVERY_BYTES, true },
    { "every-writes", MMAPIO_FLUSH_EVERY_WRITES, true },
    { "every-millis", MMAPIO_FLUSH_EVERY_MILLIS, true },
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

bool policy_valid(mmapio_flush_policy p)
{
    if ((unsigned)p.kind >= N_KINDS || p.value > POLICY_VALUE_MAX)
        return false;
    return !kinds[p.kind].has_value || p.value > 0;
}

int policy_parse(const char *text, mmapio_flush_policy *out)
{
    if (!text || !out)
        return MMAPIO_E_INVALID_ARGUMENT;
    const char *colon = strchr(text, ':');
    size_t name_len = colon ? (size_t)(colon - text) : strlen(text);
    for (size_t i = 0; i < N_KINDS; i++) {
        if (strlen(kinds[i].name) != name_len ||
            strncmp(kinds[i].name, text, name_len) != 0)
            continue;
        mmapio_flush_policy p = { kinds[i].kind, 0 };
        if (kinds[i].has_value != (colon != NULL))
            return MMAPIO_E_INVALID_ARGUMENT;
        if (colon) {
            char *end;
            if (colon[1] < '0' || colon[1] > '9')
                return MMAPIO_E_INVALID_ARGUMENT;
            errno = 0;
            unsigned long long v = strtoull(colon + 1, &end, 10);
            if (errno || *end || v == 0 || v > POLICY_VALUE_MAX)
                return MMAPIO_E_INVALID_ARGUMENT;
            p.value = v;
        }
        *out = p;
        return MMAPIO_OK;
    }
    return MMAPIO_E_INVALID_ARGUMENT;
}

const char *policy_format(mmapio_flush_policy p, char *buf, size_t size)
{
    if ((unsigned)p.kind >= N_KINDS)
        snprintf(buf, size, "unknown");
    else if (kinds[p.kind].has_value)
        snprintf(buf, size, "%s:%" PRIu64, kinds[p.kind].name, p.value);
    else
        snprintf(buf, size, "%s", kinds[p.kind].name);
    return buf;
}

mmapio_flush_policy policy_from_wire(const Mmapio__FlushPolicy *w)
{
    mmapio_flush_policy p = { MMAPIO_FLUSH_NEVER, 0 };
    if (w) {
        p.kind = (mmapio_flush_kind)w->kind;
        p.value = w->value;
    }
    return p;
}

void policy_to_wire(mmapio_flush_policy p, Mmapio__FlushPolicy *w)
{
    mmapio__flush_policy__init(w);
    w->kind = (Mmapio__FlushKind)p.kind;
    w->value = p.value;
}
