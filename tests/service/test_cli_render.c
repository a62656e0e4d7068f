/*
 * test_cli_render: mmapioctl's output of names no daemon of this version
 * lets in (an older one took any bytes but '/'): newlines, escape
 * sequences, C1 controls, bytes that are not UTF-8. The tables, the JSON
 * documents and the watch lines are rendered into memory as mmapioctl
 * prints them (cli/render.c, cli/escape.c), then checked: a row per
 * mapping, no control byte but the newlines that end rows, valid UTF-8,
 * JSON that python3 parses strictly, with each name as it was (JSON
 * escapes) or with U+FFFD for what is not UTF-8.
 */
#include <criterion/criterion.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "render.h"
#include "svc.h"

/* The odd names, and what JSON must say for each (a Python literal). */
static const struct {
    const char *name;
    const char *json;
} odd[] = {
    { "plain", "'plain'" },
    { "new\nline\nforged 1 anon:x 4096", "'new\\nline\\nforged 1 anon:x 4096'" },
    { "esc\x1b[2J\x1b]0;title\x07", "'esc\\x1b[2J\\x1b]0;title\\x07'" },
    { "bad\xff\xfeutf", "'bad\\ufffd\\ufffdutf'" },
    { "c1\xc2\x9b" "31m", "'c1\\ufffd31m'" },
    { "cr\rtab\tdel\x7f", "'cr\\rtab\\tdel\\x7f'" },
    { "quo\"te\\back", "'quo\"te\\\\back'" },
    { "\xe4\xb8\xad\xe6\x96\x87", "'\\u4e2d\\u6587'" },
    { "overlong\xc0\xaf", "'overlong\\ufffd\\ufffd'" },
};
#define N_ODD (sizeof(odd) / sizeof(odd[0]))

struct mem {
    char *buf;
    size_t len;
    FILE *f;
};

static struct out mem_out(struct mem *m, bool json)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    cr_assert_not_null(m->f);
    return (struct out){ .f = m->f, .json = json };
}

static void mem_close(struct mem *m)
{
    cr_assert_eq(fclose(m->f), 0);
}

static void maps_of_odd_names(mmapio_map_info *v)
{
    memset(v, 0, N_ODD * sizeof(*v));
    for (size_t i = 0; i < N_ODD; i++) {
        v[i].id = i + 1;
        v[i].name = (char *)odd[i].name;
        v[i].anonymous = i % 2;
        v[i].size = 4096;
        v[i].perm = 0600;
        v[i].owner = 4242424;
        v[i].holders = 1;
    }
}

/* Text that reaches a terminal: no control byte but '\n' (no ESC, CR,
 * TAB, DEL, no C1 in UTF-8), and valid UTF-8 throughout. */
static void assert_terminal_safe(const char *t, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char b = (unsigned char)t[i];
        cr_assert(b == '\n' || (b >= 0x20 && b != 0x7f),
                  "control byte 0x%02x at %zu in:\n%s", b, i, t);
        size_t n = b < 0x80 ? 1 : esc_good_char((const unsigned char *)t + i);
        cr_assert_gt(n, 0, "not UTF-8 (or a C1 control) at %zu in:\n%s", i, t);
        i += n;
    }
}

static size_t count_lines(const char *t)
{
    size_t n = 0;
    for (; *t; t++)
        n += *t == '\n';
    return n;
}

Test(render, ls_text_has_one_row_a_mapping)
{
    mmapio_map_info v[N_ODD];
    struct mem m;
    maps_of_odd_names(v);
    struct out o = mem_out(&m, false);
    render_maps(&o, v, N_ODD);
    mem_close(&m);
    assert_terminal_safe(m.buf, m.len);
    cr_expect_eq(count_lines(m.buf), N_ODD + 1, "rows forged:\n%s", m.buf);
    cr_expect(strstr(m.buf, "new\\x0aline") != NULL, "%s", m.buf);
    free(m.buf);

    o = mem_out(&m, false);
    o.raw = true;
    o.noheadings = true;
    render_maps(&o, v, N_ODD);
    mem_close(&m);
    assert_terminal_safe(m.buf, m.len);
    cr_expect_eq(count_lines(m.buf), N_ODD, "%s", m.buf);
    free(m.buf);
}

/* As mmapioctl runs in a UTF-8 terminal (it calls setlocale): the good
 * characters shown as they are, the rest still escaped. */
Test(render, ls_text_in_a_utf8_locale)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        cr_skip_test("no C.UTF-8 locale");
    mmapio_map_info v[N_ODD];
    struct mem m;
    maps_of_odd_names(v);
    struct out o = mem_out(&m, false);
    render_maps(&o, v, N_ODD);
    mem_close(&m);
    assert_terminal_safe(m.buf, m.len);
    cr_expect_eq(count_lines(m.buf), N_ODD + 1, "rows forged:\n%s", m.buf);
    cr_expect(strstr(m.buf, "\xe4\xb8\xad\xe6\x96\x87") != NULL, "%s", m.buf);
    free(m.buf);
}

Test(render, ls_json_is_valid_and_says_each_name)
{
    mmapio_map_info v[N_ODD];
    struct mem m;
    char checks[4096];
    maps_of_odd_names(v);
    struct out o = mem_out(&m, true);
    render_maps(&o, v, N_ODD);
    mem_close(&m);
    size_t len = (size_t)snprintf(checks, sizeof(checks), "want = [");
    for (size_t i = 0; i < N_ODD; i++)
        len += (size_t)snprintf(checks + len, sizeof(checks) - len, "%s, ",
                                odd[i].json);
    snprintf(checks + len, sizeof(checks) - len,
             "]\n"
             "got = [e['name'] for e in d['mappings']]\n"
             "assert got == want, (got, want)\n"
             "e = d['mappings'][0]\n"
             "assert e['owner'] == 4242424 and e['owner_name'] is None, e\n"
             "assert e['last_flush'] is None and e['created'] is None, e\n"
             "assert e['creator_pid'] is None and e['pending_bytes'] is None, e\n"
             "assert e['removed'] is False and e['state'] == 'live', e\n");
    svc_assert_json(m.buf, checks);
    free(m.buf);
}

Test(render, stat_text_has_one_line_a_field)
{
    mmapio_map_info v[N_ODD];
    struct mem m;
    maps_of_odd_names(v);
    for (size_t i = 0; i < N_ODD; i++) {
        struct out o = mem_out(&m, false);
        render_stat(&o, &v[i]);
        mem_close(&m);
        assert_terminal_safe(m.buf, m.len);
        cr_expect_eq(count_lines(m.buf), 20, "stat of name %zu:\n%s", i, m.buf);
        free(m.buf);
    }
}

Test(render, clients_and_held_names)
{
    mmapio_held_info held[N_ODD];
    mmapio_client_info ci[2];
    struct mem m;
    memset(ci, 0, sizeof(ci));
    for (size_t i = 0; i < N_ODD; i++)
        held[i] = (mmapio_held_info){ i + 1, (char *)odd[i].name,
                                      MMAPIO_MODE_READ_ONLY };
    ci[0] = (mmapio_client_info){ .id = 1, .pid = 10, .name = (char *)odd[1].name,
                                  .held_total = N_ODD, .n_held = N_ODD,
                                  .held = held };
    ci[1] = (mmapio_client_info){ .id = 2, .pid = 11, .name = (char *)odd[3].name };
    struct out o = mem_out(&m, false);
    render_clients(&o, ci, 2);
    mem_close(&m);
    assert_terminal_safe(m.buf, m.len);
    cr_expect_eq(count_lines(m.buf), 1 + 2 + N_ODD, "%s", m.buf);
    free(m.buf);

    o = mem_out(&m, true);
    render_clients(&o, ci, 2);
    mem_close(&m);
    svc_assert_json(m.buf,
        "c = d['clients']\n"
        "assert [x['name'] for x in c] == ['new\\nline\\nforged 1 anon:x 4096',\n"
        "                                 'bad\\ufffd\\ufffdutf'], c\n"
        "assert len(c[0]['children']) == 9, c\n"
        "assert c[0]['children'][2]['name'] == 'esc\\x1b[2J\\x1b]0;title\\x07', c\n");
    free(m.buf);
}

Test(render, watch_lines)
{
    struct mem m;
    mmapio_change_event ev = { MMAPIO_CHANGE_MODIFIED, true, 4, 2 };
    for (size_t i = 0; i < N_ODD; i++) {
        struct out o = mem_out(&m, true);
        render_event(&o, odd[i].name, &ev);
        mem_close(&m);
        cr_expect_eq(count_lines(m.buf), 1, "%s", m.buf);
        char checks[512];
        snprintf(checks, sizeof(checks),
                 "assert d['path'] == %s, d\n"
                 "assert d['kind'] == 'modified' and d['offset'] == 4, d\n",
                 odd[i].json);
        svc_assert_json(m.buf, checks);
        /* JSON lines escape every control, C1 too: terminal-safe as well. */
        assert_terminal_safe(m.buf, m.len);
        free(m.buf);
    }
}

Test(render, escape_functions)
{
    char *t = esc_text("a\nb\x1b[m\xff\xc2\x9b\xe4\xb8\xad");
    cr_expect_str_eq(t, "a\\x0ab\\x1b[m\\xff\\xc2\\x9b\xe4\xb8\xad");
    free(t);
    t = esc_text(NULL);
    cr_expect_str_eq(t, "");
    free(t);
    t = esc_utf8("ok\n\xff\xc2\x85\xf4\x90\x80\x80\xed\xa0\x80");
    /* 1 not UTF-8, 1 C1, 4 past U+10FFFF, 3 a surrogate: 9 U+FFFD. */
    cr_expect_str_eq(t, "ok\n\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "\xef\xbf\xbd");
    free(t);
}
