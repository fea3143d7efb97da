/* schema.c — the field-table engine: YNode tree → typed option structs (defaults, types, ranges, registries,
 * unknown-key errors with suggestions), freeing them, and writing them back out as YAML. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/schema.h"

static void *at(void *base, const FieldSpec *f) { return (char *)base + f->offset; }
static const void *cat(const void *base, const FieldSpec *f) { return (const char *)base + f->offset; }

/* "prefix.name", or "name" at the top level. */
static void join(char *buf, size_t size, const char *prefix, const char *name) {
    if (prefix && *prefix) snprintf(buf, size, "%s.%s", prefix, name);
    else snprintf(buf, size, "%s", name);
}

/* "file:line" for a line of node's document (0: "command line"). */
static const char *where_line(const YNode *doc_node, int line, char *buf, size_t size) {
    if (doc_node && doc_node->file && line > 0) snprintf(buf, size, "%s:%d", doc_node->file, line);
    else snprintf(buf, size, "command line");
    return buf;
}

static const char *describe(const YNode *n) {
    return !n || n->kind == Y_NULL ? "nothing" : n->kind == Y_MAP ? "a map" : n->kind == Y_SEQ ? "a list" : "a value";
}

/* ------------------------------------------------------------------ scalars */

static bool parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on", NULL}, *const no[] = {"false", "no", "off", NULL};
    for (int i = 0; yes[i]; i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *out = !strcasecmp(s, yes[i]);
            return true;
        }
    }
    return false;
}

static bool parse_int64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || isspace((unsigned char)s[0])) return false;
    *out = v;
    return true;
}

/* A decimal number (YAML int or float, no hex/inf/nan). */
static bool parse_double(const char *s, double *out) {
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s)) return false;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

int time_parse(const char *text, TimeSpec *out, Error *err) {
    static const char *const units[] = {"ep", "ba", "sp", "dur"};
    memset(out, 0, sizeof *out);
    /* the number: decimal digits only (strtod alone would also take hex, inf and nan) */
    char num[64];
    size_t len = strspn(text, "0123456789.eE+-");
    if (len >= sizeof num || !(isdigit((unsigned char)text[0]) || text[0] == '.')) goto bad;
    memcpy(num, text, len);
    num[len] = 0;
    char *num_end;
    double v = strtod(num, &num_end);
    if (num_end == num || !isfinite(v)) goto bad;
    const char *end = text + (num_end - num);
    if (!*end) { /* a bare number means epochs */
        if (v != floor(v)) goto bad;
        *out = (TimeSpec){v, TIME_EPOCH, true};
        return 0;
    }
    for (int u = 0; u < 4; u++) {
        if (strcasecmp(end, units[u]) != 0) continue;
        if (u != TIME_DURATION && v != floor(v))
            return error_set(err, "'%s': %s times must be whole numbers", text, units[u]);
        *out = (TimeSpec){v, (TimeUnit)u, true};
        return 0;
    }
    if (!strcasecmp(end, "tok")) return error_set(err, "'%s': token times are not supported by ctrain", text);
bad:
    return error_set(err, "expected a time such as 90ep, 100ba, 2048sp or 0.5dur, got '%s'", text);
}

/* Shortest text that reads back as x, always looking like a float ("2048.0", "1.0e-12"). */
static void format_double(double x, char *buf, size_t size) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!isfinite(x) || strchr(buf, '.')) return;
    char *e = strchr(buf, 'e');
    char tail[40] = "";
    if (e) {
        snprintf(tail, sizeof tail, "%s", e);
        *e = 0;
    }
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, ".0%s", tail);
}

void time_format(const TimeSpec *t, char *buf, size_t size) {
    static const char *const units[] = {"ep", "ba", "sp", "dur"};
    if (!t->set) {
        snprintf(buf, size, "none");
        return;
    }
    const char *unit = units[t->unit];
    if (t->value == floor(t->value) && fabs(t->value) < 1e15) {
        snprintf(buf, size, "%lld%s", (long long)t->value, unit);
        return;
    }
    char num[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(num, sizeof num, "%.*g", p, t->value);
        if (strtod(num, NULL) == t->value) break;
    }
    snprintf(buf, size, "%s%s", num, unit);
}

/* ------------------------------------------------------------------ notes, suggestions, registries */

void notes_add(Notes *notes, const char *fmt, ...) {
    if (!notes) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int i = 0; i < notes->n; i++)
        if (!strcmp(notes->v[i], buf)) return;
    int cap = (int)(sizeof notes->v / sizeof notes->v[0]);
    if (notes->n < cap && (notes->v[notes->n] = strdup(buf))) notes->n++;
}

void notes_free(Notes *notes) {
    for (int i = 0; i < notes->n; i++) free(notes->v[i]);
    notes->n = 0;
}

/* Levenshtein distance, case-insensitive. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 255 || lb > 255) return INT_MAX;
    int row[256];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *suggest_closest(const char *word, const char *const *candidates, int n) {
    int limit = (int)strlen(word) / 4; /* a typo or two, not a different word (augmix is not cutmix) */
    if (limit < 1) limit = 1;
    if (limit > 3) limit = 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

const RegistryEntry *registry_find(const Registry *r, const char *name) {
    for (int i = 0; r && i < r->n; i++)
        if (!strcmp(r->entries[i].name, name)) return &r->entries[i];
    return NULL;
}

const Choice *choice_list_find(const ChoiceList *list, const char *name) {
    for (int i = 0; i < list->n; i++)
        if (list->items[i].entry && !strcmp(list->items[i].entry->name, name)) return &list->items[i];
    return NULL;
}

/* ------------------------------------------------------------------ filling */

static int fill(const FieldSpec *fields, const YNode *node, const char *path, void *options, Notes *notes,
                Error *err);

/* Parses one scalar item of type t (F_*_LIST items use the element type) into dst. */
static int parse_scalar(const FieldSpec *f, FieldType t, const YNode *v, const char *path, void *dst, Error *err) {
    char w[512];
    ytree_where(v, w, sizeof w);
    if (v->kind != Y_SCALAR)
        return error_set(err, "%s: %s: expected a single value, got %s", w, path, describe(v));
    const char *s = v->scalar;
    double x = 0;
    switch (t) {
    case F_BOOL:
        if (!parse_bool(s, dst)) return error_set(err, "%s: %s: expected true or false, got '%s'", w, path, s);
        return 0;
    case F_INT:
    case F_INT64: {
        int64_t i;
        if (!parse_int64(s, &i) || (t == F_INT && (i < INT_MIN || i > INT_MAX)))
            return error_set(err, "%s: %s: expected an integer, got '%s'", w, path, s);
        if (t == F_INT) *(int *)dst = (int)i;
        else *(int64_t *)dst = i;
        x = (double)i;
        break;
    }
    case F_DOUBLE:
        if (!parse_double(s, &x)) return error_set(err, "%s: %s: expected a number, got '%s'", w, path, s);
        *(double *)dst = x;
        break;
    case F_STRING:
        if (!(*(char **)dst = strdup(s))) return error_set(err, "out of memory");
        return 0;
    case F_TIME:
        if (time_parse(s, dst, err) < 0) return error_prefix(err, "%s: %s", w, path);
        return 0;
    case F_ENUM: {
        char names[512] = "";
        for (int i = 0; f->enum_values && f->enum_values[i]; i++) {
            if (!strcasecmp(s, f->enum_values[i])) {
                *(int *)dst = i;
                return 0;
            }
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", f->enum_values[i]);
        }
        return error_set(err, "%s: %s: expected one of %s, got '%s'", w, path, names, s);
    }
    default:
        return error_set(err, "%s: %s: internal error: field type %d is not a scalar", w, path, (int)t);
    }
    if (f->min < f->max && (x < f->min || x > f->max)) {
        if (f->max >= INT_MAX) return error_set(err, "%s: %s: must be >= %g, got %s", w, path, f->min, s);
        return error_set(err, "%s: %s: must be between %g and %g, got %s", w, path, f->min, f->max, s);
    }
    return 0;
}

/* Fills a list field from a sequence (or one scalar = a one-item list). */
static int fill_list(const FieldSpec *f, const YNode *v, const char *path, void *dst, Error *err) {
    char w[512];
    int n = v->kind == Y_SEQ ? v->n : 1;
    if (v->kind == Y_MAP)
        return error_set(err, "%s: %s: expected a list, got a map", ytree_where(v, w, sizeof w), path);
    if (n > LIST_MAX)
        return error_set(err, "%s: %s: at most %d items, got %d", ytree_where(v, w, sizeof w), path, LIST_MAX, n);
    for (int i = 0; i < n; i++) {
        const YNode *item = v->kind == Y_SEQ ? v->items[i] : v;
        int rc;
        if (f->type == F_DOUBLE_LIST) {
            DoubleList *l = dst;
            if ((rc = parse_scalar(f, F_DOUBLE, item, path, &l->v[i], err)) == 0) l->n = i + 1;
        } else if (f->type == F_TIME_LIST) {
            TimeList *l = dst;
            if ((rc = parse_scalar(f, F_TIME, item, path, &l->v[i], err)) == 0) l->n = i + 1;
        } else {
            StringList *l = dst;
            if ((rc = parse_scalar(f, F_STRING, item, path, &l->v[i], err)) == 0) l->n = i + 1;
        }
        if (rc < 0) return -1;
    }
    return 0;
}

/* "a, b, c" of a registry's names. */
static void registry_names(const Registry *r, char *buf, size_t size) {
    buf[0] = 0;
    for (int i = 0; i < r->n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i ? ", " : "", r->entries[i].name);
    }
}

/* Chooses entry `name` of f's registry into c and fills its options from value (a map, or NULL). doc is any
 * node of the same document (for the file name); line is the entry key's line. */
static int fill_entry(const FieldSpec *f, const char *name, const YNode *value, const YNode *doc, int line,
                      const char *path, Choice *c, Notes *notes, Error *err) {
    const Registry *r = f->registry;
    char w[512], sub[512];
    where_line(doc, line, w, sizeof w);
    const RegistryEntry *e = registry_find(r, name);
    if (!e) {
        char names[1024];
        registry_names(r, names, sizeof names);
        const char *cands[64];
        int n = 0;
        for (int i = 0; i < r->n && n < 64; i++) cands[n++] = r->entries[i].name;
        const char *close = suggest_closest(name, cands, n);
        error_set(err, "%s: %s: unknown %s '%s' (ctrain has: %s)", w, path, r->what, name, names);
        if (close) {
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof err->msg - len, "; did you mean '%s'?", close);
        }
        return -1;
    }
    join(sub, sizeof sub, path, name);
    c->entry = e;
    c->line = doc && doc->file ? line : 0;
    if (e->ignored) notes_add(notes, "%s: accepted, no effect in ctrain (%s)", sub, e->help ? e->help : "ignored");
    if (e->ignored && e->open) return 0;
    if (value && value->kind == Y_NULL) value = NULL;
    if (value && value->kind != Y_MAP)
        return error_set(err, "%s: %s: expected a map of options, got %s", w, sub, describe(value));
    if (e->options_size && !(c->options = calloc(1, e->options_size))) return error_set(err, "out of memory");
    if (!e->fields || !c->options) {
        if (value && value->n > 0)
            return error_set(err, "%s: unknown key '%s.%s' (%s takes no options)",
                             where_line(value, value->key_lines[0], w, sizeof w), sub, value->keys[0], name);
        return 0;
    }
    if (fill(e->fields, value, sub, c->options, notes, err) < 0) return -1;
    if (e->check && e->check(c->options, err) < 0) return error_prefix(err, "%s: %s", w, sub);
    return 0;
}

/* Adds one item (entry name + options) to a choice list, refusing duplicates. */
static int list_add(const FieldSpec *f, ChoiceList *cl, const char *name, const YNode *value, const YNode *doc,
                    int line, const char *path, Notes *notes, Error *err) {
    char w[512];
    if (choice_list_find(cl, name))
        return error_set(err, "%s: %s: '%s' is given twice", where_line(doc, line, w, sizeof w), path, name);
    if (cl->n >= LIST_MAX)
        return error_set(err, "%s: %s: at most %d entries", where_line(doc, line, w, sizeof w), path, LIST_MAX);
    Choice *c = &cl->items[cl->n++];
    memset(c, 0, sizeof *c);
    return fill_entry(f, name, value, doc, line, path, c, notes, err);
}

/* Fills one field from a given (non-null) value node. */
static int fill_value(const FieldSpec *f, const YNode *v, const char *path, void *options, Notes *notes,
                      Error *err) {
    char w[512];
    void *dst = at(options, f);
    switch (f->type) {
    case F_DOUBLE_LIST:
    case F_STRING_LIST:
    case F_TIME_LIST:
        return fill_list(f, v, path, dst, err);
    case F_STRUCT:
        return fill(f->sub, v, path, dst, notes, err);
    case F_CHOICE: {
        if (v->kind != Y_MAP)
            return error_set(err, "%s: %s: expected one %s as a map ({name: {options}}), got %s",
                             ytree_where(v, w, sizeof w), path, f->registry->what, describe(v));
        if (v->n == 0) return 0;
        if (v->n > 1)
            return error_set(err, "%s: %s: give one %s, not %d ('%s', '%s'%s)", ytree_where(v, w, sizeof w),
                             path, f->registry->what, v->n, v->keys[0], v->keys[1], v->n > 2 ? ", ..." : "");
        return fill_entry(f, v->keys[0], v->items[0], v, v->key_lines[0], path, dst, notes, err);
    }
    case F_CHOICE_LIST: {
        ChoiceList *cl = dst;
        if (v->kind == Y_MAP) { /* Composer 0.7's dict form, or a single scheduler given as a map */
            for (int i = 0; i < v->n; i++)
                if (list_add(f, cl, v->keys[i], v->items[i], v, v->key_lines[i], path, notes, err) < 0) return -1;
            return 0;
        }
        if (v->kind != Y_SEQ)
            return error_set(err, "%s: %s: expected a list of {name: {options}} items, got '%s'",
                             ytree_where(v, w, sizeof w), path, v->scalar);
        for (int i = 0; i < v->n; i++) {
            const YNode *it = v->items[i];
            int rc;
            if (it->kind == Y_SCALAR)
                rc = list_add(f, cl, it->scalar, NULL, it, it->line, path, notes, err);
            else if (it->kind == Y_MAP && it->n == 1)
                rc = list_add(f, cl, it->keys[0], it->items[0], it, it->key_lines[0], path, notes, err);
            else
                rc = error_set(err, "%s: %s: each item is one {name: {options}} map, got %s",
                               ytree_where(it, w, sizeof w), path,
                               it->kind == Y_MAP ? "a map with several keys" : describe(it));
            if (rc < 0) return -1;
        }
        return 0;
    }
    default:
        return parse_scalar(f, f->type, v, path, dst, err);
    }
}

/* The field a recipe key names (by name or old_name), or NULL. */
static const FieldSpec *find_field(const FieldSpec *fields, const char *key) {
    for (const FieldSpec *f = fields; f && f->name; f++)
        if (!strcmp(f->name, key) || (f->old_name && !strcmp(f->old_name, key))) return f;
    return NULL;
}

static bool is_none_string(const YNode *v) {
    return v->kind == Y_SCALAR && (!v->scalar[0] || !strcasecmp(v->scalar, "none"));
}

static int fill(const FieldSpec *fields, const YNode *node, const char *path, void *options, Notes *notes,
                Error *err) {
    char w[512], sub[512];
    if (node && node->kind == Y_NULL) node = NULL;
    if (node && node->kind != Y_MAP)
        return error_set(err, "%s: %s: expected a map of options, got '%s'", ytree_where(node, w, sizeof w),
                         *path ? path : "recipe", node->kind == Y_SCALAR ? node->scalar : "a list");
    for (int i = 0; node && i < node->n; i++) {
        const FieldSpec *f = find_field(fields, node->keys[i]);
        join(sub, sizeof sub, path, node->keys[i]);
        where_line(node, node->key_lines[i], w, sizeof w);
        if (!f) {
            const char *cands[128];
            int n = 0;
            for (const FieldSpec *g = fields; g && g->name && n < 128; g++) cands[n++] = g->name;
            const char *close = suggest_closest(node->keys[i], cands, n);
            if (close) return error_set(err, "%s: unknown key '%s'; did you mean '%s'?", w, sub, close);
            return error_set(err, "%s: unknown key '%s'", w, sub);
        }
        if (f->old_name && ytree_index(node, f->name) >= 0 && ytree_index(node, f->old_name) >= 0)
            return error_set(err, "%s: '%s' and its older spelling '%s' are both given; keep one", w, f->name,
                             f->old_name);
    }
    for (const FieldSpec *f = fields; f && f->name; f++) {
        join(sub, sizeof sub, path, f->name);
        const YNode *v = ytree_get(node, f->name);
        if (!v && f->old_name) v = ytree_get(node, f->old_name);
        if (f->type == F_IGNORED) {
            if (v) notes_add(notes, "%s: accepted, no effect in ctrain (%s)", sub, f->help ? f->help : "ignored");
            continue;
        }
        bool given = v && v->kind != Y_NULL && !(f->type == F_STRING && is_none_string(v));
        int rc = 0;
        if (!given && v && f->type == F_STRING && !f->required) continue; /* none/null unsets, over a default too */
        if (given) {
            rc = fill_value(f, v, sub, options, notes, err);
        } else if (f->def) {
            YNode *d;
            if (ytree_load_string(f->def, "<default>", &d, err) < 0) return error_prefix(err, "%s", sub);
            rc = d->kind == Y_NULL ? 0 : fill_value(f, d, sub, options, notes, err);
            ytree_free(d);
        } else if (f->required) {
            if (node) return error_set(err, "%s: %s: missing required key '%s'", ytree_where(node, w, sizeof w),
                                       *path ? path : "recipe", f->name);
            return error_set(err, "%s: missing required key '%s'", *path ? path : "recipe", f->name);
        } else if (f->type == F_STRUCT) {
            rc = fill(f->sub, NULL, sub, at(options, f), notes, err);
        }
        if (rc < 0) return -1;
    }
    return 0;
}

int schema_fill(const FieldSpec *fields, const YNode *node, const char *path, void *options, Notes *notes,
                Error *err) {
    if (fill(fields, node, path ? path : "", options, notes, err) == 0) return 0;
    schema_free(fields, options);
    return -1;
}

/* ------------------------------------------------------------------ freeing */

static void choice_free(Choice *c) {
    if (c->entry && c->options) schema_free(c->entry->fields, c->options);
    free(c->options);
    memset(c, 0, sizeof *c);
}

void schema_free(const FieldSpec *fields, void *options) {
    if (!options) return;
    for (const FieldSpec *f = fields; f && f->name; f++) {
        void *p = at(options, f);
        switch (f->type) {
        case F_STRING:
            free(*(char **)p);
            *(char **)p = NULL;
            break;
        case F_STRING_LIST: {
            StringList *l = p;
            for (int i = 0; i < l->n; i++) free(l->v[i]);
            l->n = 0;
            break;
        }
        case F_STRUCT:
            schema_free(f->sub, p);
            break;
        case F_CHOICE:
            choice_free(p);
            break;
        case F_CHOICE_LIST: {
            ChoiceList *l = p;
            for (int i = 0; i < l->n; i++) choice_free(&l->items[i]);
            l->n = 0;
            break;
        }
        default:
            break;
        }
    }
}

/* ------------------------------------------------------------------ writing */

/* True when the table has something schema_emit writes (F_IGNORED fields hold no value). */
static bool has_values(const FieldSpec *fields) {
    for (const FieldSpec *f = fields; f && f->name; f++)
        if (f->type != F_IGNORED && (f->type != F_STRUCT || has_values(f->sub))) return true;
    return false;
}

static void emit_entry_options(const Choice *c, int indent, FILE *out) {
    if (c->options && has_values(c->entry->fields)) {
        fputc('\n', out);
        schema_emit(c->entry->fields, c->options, indent, out);
    } else {
        fputs(" {}\n", out);
    }
}

void schema_emit(const FieldSpec *fields, const void *options, int indent, FILE *out) {
    char buf[64];
    for (const FieldSpec *f = fields; f && f->name; f++) {
        if (f->type == F_IGNORED || (f->type == F_STRUCT && !has_values(f->sub))) continue;
        const void *p = cat(options, f);
        fprintf(out, "%*s%s:", indent, "", f->name);
        switch (f->type) {
        case F_BOOL:
            fprintf(out, " %s\n", *(const bool *)p ? "true" : "false");
            break;
        case F_INT:
            fprintf(out, " %d\n", *(const int *)p);
            break;
        case F_INT64:
            fprintf(out, " %lld\n", (long long)*(const int64_t *)p);
            break;
        case F_DOUBLE:
            format_double(*(const double *)p, buf, sizeof buf);
            fprintf(out, " %s\n", buf);
            break;
        case F_STRING:
            fputc(' ', out);
            if (*(char *const *)p) ytree_emit_scalar(*(char *const *)p, out);
            else fputs("null", out);
            fputc('\n', out);
            break;
        case F_TIME:
            time_format(p, buf, sizeof buf);
            fprintf(out, " %s\n", ((const TimeSpec *)p)->set ? buf : "null");
            break;
        case F_ENUM:
            fprintf(out, " %s\n", f->enum_values[*(const int *)p]);
            break;
        case F_DOUBLE_LIST:
        case F_STRING_LIST:
        case F_TIME_LIST: {
            int n = f->type == F_DOUBLE_LIST ? ((const DoubleList *)p)->n
                    : f->type == F_TIME_LIST ? ((const TimeList *)p)->n
                                             : ((const StringList *)p)->n;
            fputs(" [", out);
            for (int i = 0; i < n; i++) {
                if (i) fputs(", ", out);
                if (f->type == F_DOUBLE_LIST) {
                    format_double(((const DoubleList *)p)->v[i], buf, sizeof buf);
                    fputs(buf, out);
                } else if (f->type == F_TIME_LIST) {
                    time_format(&((const TimeList *)p)->v[i], buf, sizeof buf);
                    fputs(buf, out);
                } else {
                    ytree_emit_scalar(((const StringList *)p)->v[i], out);
                }
            }
            fputs("]\n", out);
            break;
        }
        case F_STRUCT:
            fputc('\n', out);
            schema_emit(f->sub, p, indent + 2, out);
            break;
        case F_CHOICE: {
            const Choice *c = p;
            if (!c->entry) {
                fputs(" null\n", out);
                break;
            }
            fprintf(out, "\n%*s%s:", indent + 2, "", c->entry->name);
            emit_entry_options(c, indent + 4, out);
            break;
        }
        case F_CHOICE_LIST: {
            const ChoiceList *l = p;
            if (l->n == 0) {
                fputs(" []\n", out);
                break;
            }
            fputc('\n', out);
            for (int i = 0; i < l->n; i++) {
                fprintf(out, "%*s- %s:", indent + 2, "", l->items[i].entry->name);
                emit_entry_options(&l->items[i], indent + 6, out);
            }
            break;
        }
        default:
            fputs(" null\n", out);
            break;
        }
    }
}
