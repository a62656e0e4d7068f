/* table on Linux: libsmartcols (util-linux; Debian libsmartcols-dev). */
#include "table.h"

#include <libsmartcols.h>
#include <stdlib.h>

/* libsmartcols' own objects stand for ours. */
struct table *table_new(FILE *f, const char *name, bool json, bool raw,
                        bool noheadings)
{
    struct libscols_table *tb = scols_new_table();
    if (!tb)
        return NULL;
    scols_table_set_stream(tb, f);
    scols_table_set_name(tb, name);
    scols_table_enable_json(tb, json);
    scols_table_enable_raw(tb, raw);
    scols_table_enable_noheadings(tb, noheadings);
    return (struct table *)tb;
}

bool table_column(struct table *t, const char *head, enum table_type type,
                  bool right, bool tree)
{
    int flags = (right ? SCOLS_FL_RIGHT : 0) | (tree ? SCOLS_FL_TREE : 0);
    struct libscols_column *c =
        scols_table_new_column((struct libscols_table *)t, head, 0, flags);
    if (!c)
        return false;
    scols_column_set_json_type(c, type == TABLE_NUMBER    ? SCOLS_JSON_NUMBER
                                  : type == TABLE_BOOLEAN ? SCOLS_JSON_BOOLEAN
                                                          : SCOLS_JSON_STRING);
    return true;
}

struct table_row *table_row(struct table *t, struct table_row *parent)
{
    return (struct table_row *)scols_table_new_line(
        (struct libscols_table *)t, (struct libscols_line *)parent);
}

void table_set(struct table_row *r, size_t col, char *v)
{
    if (v)
        scols_line_refer_data((struct libscols_line *)r, col, v);
}

void table_print(struct table *t)
{
    scols_print_table((struct libscols_table *)t);
    scols_unref_table((struct libscols_table *)t);
}
