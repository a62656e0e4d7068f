/*
 * mmapioctl's table writer on Windows (cli/platform/windows/table.c),
 * where libsmartcols has no build: text, raw and JSON of one table with a
 * child row, compared with what they must be; and its account names
 * (cli/platform/windows/host.c). A plain program run under
 * wine; a failed CHECK is printed and the exit status is 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "table.h"
#include "wintest.h"

/* The clients table in small: an id, a name (the tree), a boolean. */
static char *render(bool json, bool raw, bool noheadings)
{
    char *buf = NULL;
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    struct table *t = table_new(f, "clients", json, raw, noheadings);
    CHECK(t != NULL);
    if (!t)
        return NULL;
    CHECK(table_column(t, json ? "id" : "ID", TABLE_NUMBER, !json, false));
    CHECK(table_column(t, json ? "name" : "NAME", TABLE_STRING, false, true));
    CHECK(table_column(t, json ? "ok" : "OK", TABLE_BOOLEAN, false, false));
    struct table_row *r = table_row(t, NULL);
    table_set(r, 0, strdup("12"));
    table_set(r, 1, strdup("my app\x1b"));
    table_set(r, 2, strdup("yes"));
    struct table_row *k = table_row(t, r);
    table_set(k, 1, strdup("anon:x"));
    table_set(k, 2, strdup("no"));
    if (!json)
        table_set(k, 0, strdup("-"));
    table_print(t);
    long n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
        buf[0] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    char *text = render(false, false, false);
    CHECK(text && !strcmp(text, "ID NAME       OK\n"
                                "12 my app\\x1b yes\n"
                                " -   anon:x   no\n"));
    char *raw = render(false, true, true);
    CHECK(raw && !strcmp(raw, "12 my\\x20app\\x1b yes\n- anon:x no\n"));
    char *json = render(true, false, false);
    CHECK(json && !strcmp(json,
        "{\n   \"clients\": [\n"
        "      {\n"
        "         \"id\": 12,\n"
        "         \"name\": \"my app\\u001b\",\n"
        "         \"ok\": true,\n"
        "         \"children\": [\n"
        "            {\n"
        "               \"id\": null,\n"
        "               \"name\": \"anon:x\",\n"
        "               \"ok\": false\n"
        "            }\n"
        "         ]\n"
        "      }\n"
        "   ]\n}\n"));
    /* host_user_name: a RID of the account domain (this user's) by its
     * account's name; the daemon's own numbers of other SIDs, a RID of
     * no account and "none" have none. */
    char user[256];
    DWORD un = sizeof(user);
    char *mine = host_user_name(wt_my_rid());
    CHECK(GetUserNameA(user, &un) && mine && !strcmp(mine, user));
    free(mine);
    CHECK(host_user_name(0x80000000u) == NULL && host_user_name(0x80000001u) == NULL);
    CHECK(host_user_name(0x7ffffff0u) == NULL && host_user_name(UINT32_MAX) == NULL);
    if (wt_failures)
        fprintf(stderr, "text:\n%s\nraw:\n%s\njson:\n%s\n", text, raw, json);
    free(text);
    free(raw);
    free(json);
    return wt_report(argv[0]);
}
