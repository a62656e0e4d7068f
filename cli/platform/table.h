/*
 * table: the rows and columns mmapioctl prints, as aligned text for people
 * (raw: one row a line, columns split by single spaces; no headings on
 * request) or as one JSON document ({"NAME": [rows]}, a row's children
 * under "children"). One implementation per platform
 * (cli/platform/<system>/table.c): libsmartcols on Linux, a writer of its
 * own on Windows, where libsmartcols has no build.
 */
#ifndef MMAPIOCTL_TABLE_H
#define MMAPIOCTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct table;
struct table_row;

/* What a column's values are in JSON (in text every value is text). */
enum table_type { TABLE_STRING, TABLE_NUMBER, TABLE_BOOLEAN };

/* A table printed to f: NULL without memory. */
struct table *table_new(FILE *f, const char *name, bool json, bool raw,
                        bool noheadings);

/* Adds a column headed `head`, its values right-aligned in text when
 * `right`; `tree`: the column that shows a row's children under it.
 * false without memory. */
bool table_column(struct table *t, const char *head, enum table_type type,
                  bool right, bool tree);

/* A new row, last under `parent` (NULL: at the top): NULL without
 * memory. */
struct table_row *table_row(struct table *t, struct table_row *parent);

/* Sets a cell to v, taking it (NULL: no value, null in JSON). */
void table_set(struct table_row *r, size_t col, char *v);

/* Prints the table and frees it. */
void table_print(struct table *t);

#endif
