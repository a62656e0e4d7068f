/*
 * table on Windows, where libsmartcols has no build: a writer of its own
 * with libsmartcols' shapes. Text: a heading line (unless noheadings),
 * columns padded to their widest cell and split by one space, numbers
 * right-aligned, a row's children indented by two spaces per level in the
 * tree column, every cell through esc_text (no byte reaches the terminal
 * as a control); raw: cells split by single spaces, blanks as \x20. JSON:
 * {"NAME": [ {"col": value, ..., "children": [...]}, ... ]}, strings
 * through esc_json_put, NUMBER cells bare, BOOLEAN cells false when
 * empty or starting with 0, N or n (libsmartcols' rule), no value null.
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "escape.h"

struct column {
    char *head;
    enum table_type type;
    bool right, tree;
};

struct table_row {
    char **cells; /* one a column (as many as when the row was made) */
    size_t n_cells;
    struct table_row **kids;
    size_t n_kids, cap_kids;
};

struct table {
    FILE *f;
    char *name;
    bool json, raw, noheadings;
    struct column *cols;
    size_t n_cols;
    struct table_row top; /* its kids are the table's rows */
};

struct table *table_new(FILE *f, const char *name, bool json, bool raw,
                        bool noheadings)
{
    struct table *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    t->f = f;
    t->json = json;
    t->raw = raw;
    t->noheadings = noheadings;
    return t;
}

bool table_column(struct table *t, const char *head, enum table_type type,
                  bool right, bool tree)
{
    struct column *v = realloc(t->cols, (t->n_cols + 1) * sizeof(*v));
    if (!v)
        return false;
    t->cols = v;
    char *h = strdup(head);
    if (!h)
        return false;
    v[t->n_cols++] = (struct column){ h, type, right, tree };
    return true;
}

struct table_row *table_row(struct table *t, struct table_row *parent)
{
    struct table_row *p = parent ? parent : &t->top;
    struct table_row *r = calloc(1, sizeof(*r));
    if (!r || !(r->cells = calloc(t->n_cols ? t->n_cols : 1, sizeof(char *)))) {
        free(r);
        return NULL;
    }
    r->n_cells = t->n_cols;
    if (p->n_kids == p->cap_kids) {
        size_t cap = p->cap_kids ? 2 * p->cap_kids : 8;
        struct table_row **k = realloc(p->kids, cap * sizeof(*k));
        if (!k) {
            free(r->cells);
            free(r);
            return NULL;
        }
        p->kids = k;
        p->cap_kids = cap;
    }
    p->kids[p->n_kids++] = r;
    return r;
}

void table_set(struct table_row *r, size_t col, char *v)
{
    if (col >= r->n_cells) {
        free(v);
        return;
    }
    free(r->cells[col]);
    r->cells[col] = v;
}

/* ---- text ---- */

/* A cell as shown: escaped, blanks too when raw; "" for none. */
static char *shown(const struct table *t, const char *v)
{
    char *e = esc_text(v ? v : "");
    if (!e || !t->raw)
        return e;
    size_t blanks = 0;
    for (const char *p = e; *p; p++)
        blanks += *p == ' ' || *p == '\t';
    char *out = malloc(strlen(e) + 3 * blanks + 1), *o = out;
    for (const char *p = e; out && *p; p++) {
        if (*p == ' ' || *p == '\t')
            o += sprintf(o, "\\x%02x", (unsigned char)*p);
        else
            *o++ = *p;
    }
    if (out)
        *o = '\0';
    free(e);
    return out;
}

static size_t cell_width(const struct table *t, const struct table_row *r,
                         size_t col, int depth)
{
    char *s = shown(t, col < r->n_cells ? r->cells[col] : NULL);
    size_t w = (s ? strlen(s) : 0) + (t->cols[col].tree ? 2 * depth : 0);
    free(s);
    return w;
}

static void widths(const struct table *t, const struct table_row *r,
                   int depth, size_t *w)
{
    for (size_t i = 0; i < r->n_kids; i++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t n = cell_width(t, r->kids[i], c, depth);
            if (n > w[c])
                w[c] = n;
        }
        widths(t, r->kids[i], depth + 1, w);
    }
}

static void put_cell(const struct table *t, size_t col, const char *s,
                     int depth, const size_t *w)
{
    const struct column *c = &t->cols[col];
    bool last = col + 1 == t->n_cols;
    size_t indent = c->tree ? 2 * (size_t)depth : 0;
    size_t n = strlen(s) + indent;
    if (col > 0)
        fputc(' ', t->f);
    if (t->raw) {
        fputs(s, t->f);
        return;
    }
    size_t pad = w && w[col] > n ? w[col] - n : 0;
    if (c->right)
        fprintf(t->f, "%*s", (int)pad, "");
    fprintf(t->f, "%*s%s", (int)indent, "", s);
    if (!c->right && !last)
        fprintf(t->f, "%*s", (int)pad, "");
}

static void text_rows(const struct table *t, const struct table_row *r,
                      int depth, const size_t *w)
{
    for (size_t i = 0; i < r->n_kids; i++) {
        const struct table_row *k = r->kids[i];
        for (size_t c = 0; c < t->n_cols; c++) {
            char *s = shown(t, c < k->n_cells ? k->cells[c] : NULL);
            put_cell(t, c, s ? s : "", depth, w);
            free(s);
        }
        fputc('\n', t->f);
        text_rows(t, k, depth + 1, w);
    }
}

static void print_text(const struct table *t)
{
    size_t *w = calloc(t->n_cols ? t->n_cols : 1, sizeof(*w));
    if (!w)
        return;
    if (!t->noheadings)
        for (size_t c = 0; c < t->n_cols; c++)
            w[c] = strlen(t->cols[c].head);
    widths(t, &t->top, 0, w);
    if (!t->noheadings) {
        for (size_t c = 0; c < t->n_cols; c++)
            put_cell(t, c, t->cols[c].head, 0, w);
        fputc('\n', t->f);
    }
    text_rows(t, &t->top, 0, w);
    free(w);
}

/* ---- JSON ---- */

static void json_value(const struct table *t, size_t col, const char *v)
{
    switch (v ? t->cols[col].type : TABLE_STRING) {
    case TABLE_NUMBER:
        fputs(*v ? v : "null", t->f);
        return;
    case TABLE_BOOLEAN:
        fputs(!*v || *v == '0' || *v == 'N' || *v == 'n' ? "false" : "true",
              t->f);
        return;
    default:
        if (v)
            esc_json_put(t->f, v);
        else
            fputs("null", t->f);
    }
}

static void json_rows(const struct table *t, const struct table_row *r,
                      int indent)
{
    for (size_t i = 0; i < r->n_kids; i++) {
        const struct table_row *k = r->kids[i];
        fprintf(t->f, "%*s{\n", indent, "");
        for (size_t c = 0; c < t->n_cols; c++) {
            fprintf(t->f, "%*s", indent + 3, "");
            esc_json_put(t->f, t->cols[c].head);
            fputs(": ", t->f);
            json_value(t, c, c < k->n_cells ? k->cells[c] : NULL);
            fputs(c + 1 < t->n_cols || k->n_kids ? ",\n" : "\n", t->f);
        }
        if (k->n_kids) {
            fprintf(t->f, "%*s\"children\": [\n", indent + 3, "");
            json_rows(t, k, indent + 6);
            fprintf(t->f, "%*s]\n", indent + 3, "");
        }
        fprintf(t->f, "%*s}%s\n", indent, "", i + 1 < r->n_kids ? "," : "");
    }
}

static void print_json(const struct table *t)
{
    fputs("{\n   ", t->f);
    esc_json_put(t->f, t->name);
    fputs(": [\n", t->f);
    json_rows(t, &t->top, 6);
    fputs("   ]\n}\n", t->f);
}

static void row_free(struct table_row *r)
{
    for (size_t i = 0; i < r->n_kids; i++) {
        row_free(r->kids[i]);
        free(r->kids[i]);
    }
    for (size_t c = 0; c < r->n_cells; c++)
        free(r->cells[c]);
    free(r->cells);
    free(r->kids);
}

void table_print(struct table *t)
{
    if (t->json)
        print_json(t);
    else
        print_text(t);
    row_free(&t->top);
    for (size_t c = 0; c < t->n_cols; c++)
        free(t->cols[c].head);
    free(t->cols);
    free(t->name);
    free(t);
}
