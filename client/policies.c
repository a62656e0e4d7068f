/*
 * policies: flush policies as text, for programs (mmapio_policy_parse and
 * mmapio_policy_format). The grammar and the checks live once, in
 * common/policy.c, shared with the daemon; here they get the public
 * contract: argument checks, outputs only on success, a recorded text for
 * every failure.
 */
#include <string.h>

#include "errors.h"
#include "mmapio.h"
#include "policy.h"

int mmapio_policy_parse(const char *text, mmapio_flush_policy *out)
{
    mmapio_flush_policy p;

    if (!text || !out || policy_parse(text, &p) != MMAPIO_OK)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    *out = p;
    return MMAPIO_OK;
}

int mmapio_policy_format(mmapio_flush_policy p, char *buf, size_t size)
{
    char text[MMAPIO_POLICY_TEXT_MAX];

    if (!buf || !policy_valid(p))
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    policy_format(p, text, sizeof(text));
    size_t len = strlen(text);
    if (len >= size)
        return error_set(MMAPIO_E_INVALID_ARGUMENT, NULL);
    memcpy(buf, text, len + 1);
    return MMAPIO_OK;
}
