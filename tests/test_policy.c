/*
 * test_policy: flush policies as text and as wire messages
 * (common/policy.c): round trips and refusal of everything else.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

TestSuite(policy, .timeout = 10);

static mmapio_flush_policy pol(mmapio_flush_kind k, uint64_t v)
{
    mmapio_flush_policy p = { k, v };
    return p;
}

Test(policy, parse_every_kind)
{
    static const struct {
        const char *text;
        mmapio_flush_kind kind;
        uint64_t value;
    } cases[] = {
        { "never", MMAPIO_FLUSH_NEVER, 0 },
        { "manual", MMAPIO_FLUSH_MANUAL, 0 },
        { "always", MMAPIO_FLUSH_ALWAYS, 0 },
        { "every-bytes:4096", MMAPIO_FLUSH_EVERY_BYTES, 4096 },
        { "every-writes:1", MMAPIO_FLUSH_EVERY_WRITES, 1 },
        { "every-millis:250", MMAPIO_FLUSH_EVERY_MILLIS, 250 },
        { "every-bytes:72057594037927935", MMAPIO_FLUSH_EVERY_BYTES,
          POLICY_VALUE_MAX },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mmapio_flush_policy p = pol(MMAPIO_FLUSH_ALWAYS, 999);
        cr_assert_eq(policy_parse(cases[i].text, &p), MMAPIO_OK, "%s",
                     cases[i].text);
        cr_assert_eq(p.kind, cases[i].kind, "%s", cases[i].text);
        if (cases[i].value)
            cr_assert_eq(p.value, cases[i].value, "%s", cases[i].text);
        cr_assert(policy_valid(p));
    }
}

Test(policy, bad_text_refused_and_output_untouched)
{
    static const char *const bad[] = {
        "", "Never", "NEVER", "never:1", "manual:0", "always:5",
        "every-bytes", "every-bytes:", "every-bytes:0", "every-bytes:-1",
        "every-bytes:+1", "every-bytes: 1", "every-bytes:1x",
        "every-bytes:0x10", "every-bytes:18446744073709551616",
        "every-bytes:18446744073709551615",
        "every-bytes:72057594037927936", /* POLICY_VALUE_MAX + 1 */
        "every-bytes:99999999999999999999999", "every-byte:1",
        "every-bytes:1:2", "bogus", "never ", " never", "every-millis:1.5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mmapio_flush_policy p = pol(MMAPIO_FLUSH_EVERY_WRITES, 4242);
        cr_assert_eq(policy_parse(bad[i], &p), MMAPIO_E_INVALID_ARGUMENT,
                     "\"%s\" was accepted", bad[i]);
        cr_assert_eq(p.kind, MMAPIO_FLUSH_EVERY_WRITES, "\"%s\"", bad[i]);
        cr_assert_eq(p.value, 4242, "\"%s\" wrote the output", bad[i]);
    }
    mmapio_flush_policy p;
    cr_assert_eq(policy_parse(NULL, &p), MMAPIO_E_INVALID_ARGUMENT);
    cr_assert_eq(policy_parse("never", NULL), MMAPIO_E_INVALID_ARGUMENT);
}

Test(policy, format_parse_round_trip)
{
    const mmapio_flush_policy ps[] = {
        pol(MMAPIO_FLUSH_NEVER, 0),        pol(MMAPIO_FLUSH_MANUAL, 0),
        pol(MMAPIO_FLUSH_ALWAYS, 0),       pol(MMAPIO_FLUSH_EVERY_BYTES, 1),
        pol(MMAPIO_FLUSH_EVERY_BYTES, 1u << 20),
        pol(MMAPIO_FLUSH_EVERY_WRITES, 1000),
        pol(MMAPIO_FLUSH_EVERY_MILLIS, 10),
        pol(MMAPIO_FLUSH_EVERY_MILLIS, POLICY_VALUE_MAX),
    };
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        char buf[64];
        const char *t = policy_format(ps[i], buf, sizeof(buf));
        cr_assert_eq(t, buf);
        mmapio_flush_policy back;
        cr_assert_eq(policy_parse(t, &back), MMAPIO_OK, "\"%s\"", t);
        cr_assert_eq(back.kind, ps[i].kind, "\"%s\"", t);
        if (ps[i].kind >= MMAPIO_FLUSH_EVERY_BYTES)
            cr_assert_eq(back.value, ps[i].value, "\"%s\"", t);
    }
}

Test(policy, format_exact_text)
{
    char buf[64];
    cr_assert_str_eq(policy_format(pol(MMAPIO_FLUSH_NEVER, 0), buf, 64),
                     "never");
    cr_assert_str_eq(policy_format(pol(MMAPIO_FLUSH_ALWAYS, 7), buf, 64),
                     "always");
    cr_assert_str_eq(
        policy_format(pol(MMAPIO_FLUSH_EVERY_WRITES, 12), buf, 64),
        "every-writes:12");
    cr_assert_str_eq(policy_format(pol((mmapio_flush_kind)17, 1), buf, 64),
                     "unknown");
}

Test(policy, format_truncates_safely)
{
    char buf[8];
    memset(buf, 'Z', sizeof(buf));
    policy_format(pol(MMAPIO_FLUSH_EVERY_MILLIS, 123456), buf, 6);
    cr_assert_eq(buf[5], '\0');
    cr_assert_eq(strncmp(buf, "every", 5), 0);
    cr_assert_eq(buf[6], 'Z', "wrote past the size it was given");
}

Test(policy, validity)
{
    cr_assert(policy_valid(pol(MMAPIO_FLUSH_NEVER, 0)));
    cr_assert(policy_valid(pol(MMAPIO_FLUSH_MANUAL, 0)));
    cr_assert(policy_valid(pol(MMAPIO_FLUSH_ALWAYS, 0)));
    cr_assert(policy_valid(pol(MMAPIO_FLUSH_EVERY_BYTES, 1)));
    cr_assert_not(policy_valid(pol(MMAPIO_FLUSH_EVERY_BYTES, 0)));
    cr_assert_not(policy_valid(pol(MMAPIO_FLUSH_EVERY_WRITES, 0)));
    cr_assert_not(policy_valid(pol(MMAPIO_FLUSH_EVERY_MILLIS, 0)));
    cr_assert(policy_valid(pol(MMAPIO_FLUSH_EVERY_MILLIS, POLICY_VALUE_MAX)));
    cr_assert_not(
        policy_valid(pol(MMAPIO_FLUSH_EVERY_MILLIS, POLICY_VALUE_MAX + 1)));
    cr_assert_not(policy_valid(pol(MMAPIO_FLUSH_EVERY_BYTES, UINT64_MAX)));
    cr_assert_not(policy_valid(pol((mmapio_flush_kind)6, 1)));
    cr_assert_not(policy_valid(pol((mmapio_flush_kind)-1, 1)));
}

Test(policy, value_limit)
{
    /* the control area packs kind and value in 64 bits */
    cr_assert_eq(POLICY_VALUE_MAX, (UINT64_C(1) << 56) - 1);
}

Test(policy, wire_round_trip)
{
    Mmapio__FlushPolicy w;
    policy_to_wire(pol(MMAPIO_FLUSH_EVERY_BYTES, 65536), &w);
    cr_assert_eq(w.kind, MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES);
    cr_assert_eq(w.value, 65536);

    /* through the actual encoding, too */
    uint8_t buf[64];
    size_t n = mmapio__flush_policy__pack(&w, buf);
    Mmapio__FlushPolicy *back = mmapio__flush_policy__unpack(NULL, n, buf);
    cr_assert_not_null(back);
    mmapio_flush_policy p = policy_from_wire(back);
    mmapio__flush_policy__free_unpacked(back, NULL);
    cr_assert_eq(p.kind, MMAPIO_FLUSH_EVERY_BYTES);
    cr_assert_eq(p.value, 65536);

    p = policy_from_wire(NULL);
    cr_assert_eq(p.kind, MMAPIO_FLUSH_NEVER);
}

Test(policy, wire_enums_match_api)
{
    /* The conversions cast; this proves the casts are right. */
    cr_assert_eq((int)MMAPIO__FLUSH_KIND__FLUSH_NEVER, MMAPIO_FLUSH_NEVER);
    cr_assert_eq((int)MMAPIO__FLUSH_KIND__FLUSH_MANUAL, MMAPIO_FLUSH_MANUAL);
    cr_assert_eq((int)MMAPIO__FLUSH_KIND__FLUSH_ALWAYS, MMAPIO_FLUSH_ALWAYS);
    cr_assert_eq((int)MMAPIO__FLUSH_KIND__FLUSH_EVERY_BYTES,
                 MMAPIO_FLUSH_EVERY_BYTES);
    cr_assert_eq((int)MMAPIO__FLUSH_KIND__FLUSH_EVERY_WRITES,
                 MMAPIO_FLUSH_EVERY_WRITES);
    cr_assert_eq((int)MMAPIO__FLUSH_KIND__FLUSH_EVERY_MILLIS,
                 MMAPIO_FLUSH_EVERY_MILLIS);
    cr_assert_eq((int)MMAPIO__MODE__MODE_READ_ONLY, MMAPIO_MODE_READ_ONLY);
    cr_assert_eq((int)MMAPIO__MODE__MODE_READ_WRITE, MMAPIO_MODE_READ_WRITE);
    cr_assert_eq((int)MMAPIO__MODE__MODE_COPY_ON_WRITE,
                 MMAPIO_MODE_COPY_ON_WRITE);
}
