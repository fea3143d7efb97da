/* yaml_tree.c — YAML text → YNode tree with line numbers (libyaml's document API), tree editing, and a
 * block-style writer for the merged recipe that goes into the run folder. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/yaml_tree.h"

#define MAX_DEPTH 64   /* deeper than any recipe; also stops recursive aliases (&a [*a]) */

YNode *ytree_new(YKind kind, const char *scalar, int line) {
    YNode *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = line;
    if (scalar && !(n->scalar = strdup(scalar))) {
        free(n);
        return NULL;
    }
    return n;
}

void ytree_free(YNode *node) {
    if (!node) return;
    for (int i = 0; i < node->n; i++) {
        if (node->keys) free(node->keys[i]);
        ytree_free(node->items[i]);
    }
    free(node->keys);
    free(node->key_lines);
    free(node->items);
    free(node->scalar);
    if (node->owns_file) free((char *)node->file);
    free(node);
}

/* Grows a map or sequence by one slot; returns the new index or -1. */
static int grow(YNode *node) {
    int n = node->n + 1;
    YNode **items = realloc(node->items, (size_t)n * sizeof *items);
    if (!items) return -1;
    node->items = items;
    if (node->kind == Y_MAP) {
        char **keys = realloc(node->keys, (size_t)n * sizeof *keys);
        if (!keys) return -1;
        node->keys = keys;
        int *lines = realloc(node->key_lines, (size_t)n * sizeof *lines);
        if (!lines) return -1;
        node->key_lines = lines;
    }
    return node->n;
}

int ytree_index(const YNode *map, const char *key) {
    if (!map || map->kind != Y_MAP) return -1;
    for (int i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0) return i;
    return -1;
}

YNode *ytree_get(const YNode *map, const char *key) {
    int i = ytree_index(map, key);
    return i < 0 ? NULL : map->items[i];
}

int ytree_set(YNode *map, const char *key, YNode *value, int line) {
    if (!map || map->kind != Y_MAP) return -1;
    int i = ytree_index(map, key);
    if (i >= 0) {
        ytree_free(map->items[i]);
        map->items[i] = value;
        return 0;
    }
    char *k = strdup(key);
    if (!k || (i = grow(map)) < 0) {
        free(k);
        return -1;
    }
    map->keys[i] = k;
    map->key_lines[i] = line;
    map->items[i] = value;
    map->n++;
    return 0;
}

void ytree_remove(YNode *map, const char *key) {
    int i = ytree_index(map, key);
    if (i < 0) return;
    free(map->keys[i]);
    ytree_free(map->items[i]);
    for (int j = i + 1; j < map->n; j++) {
        map->keys[j - 1] = map->keys[j];
        map->key_lines[j - 1] = map->key_lines[j];
        map->items[j - 1] = map->items[j];
    }
    map->n--;
}

int ytree_append(YNode *seq, YNode *value) {
    if (!seq || seq->kind != Y_SEQ) return -1;
    int i = grow(seq);
    if (i < 0) return -1;
    seq->items[i] = value;
    seq->n++;
    return 0;
}

/* Copies node, pointing every copied node at file. */
static YNode *copy_rec(const YNode *node, const char *file) {
    YNode *c = ytree_new(node->kind, node->scalar, node->line);
    if (!c) return NULL;
    c->file = file;
    c->quoted = node->quoted;
    for (int i = 0; i < node->n; i++) {
        YNode *item = copy_rec(node->items[i], file);
        int ok = item && (node->kind == Y_MAP ? ytree_set(c, node->keys[i], item, node->key_lines[i])
                                              : ytree_append(c, item)) == 0;
        if (!ok) {
            ytree_free(item);
            ytree_free(c);
            return NULL;
        }
    }
    return c;
}

YNode *ytree_copy(const YNode *node) {
    if (!node) return NULL;
    char *file = NULL;
    if (node->file && !(file = strdup(node->file))) return NULL;
    YNode *c = copy_rec(node, file);
    if (!c) {
        free(file);
        return NULL;
    }
    c->owns_file = file != NULL;
    return c;
}

const char *ytree_where(const YNode *node, char *buf, size_t size) {
    if (node && node->line > 0 && node->file)
        snprintf(buf, size, "%s:%d", node->file, node->line);
    else
        snprintf(buf, size, "command line");
    return buf;
}

/* ------------------------------------------------------------------ loading */

static bool is_null_text(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Only YAML's standard tags (and none) are allowed: a recipe names no Python objects. */
static bool standard_tag(const char *tag) {
    static const char *const ok[] = {"str", "int", "float", "bool", "null", "map", "seq", NULL};
    const char *prefix = "tag:yaml.org,2002:";
    if (!tag) return true;
    if (strncmp(tag, prefix, strlen(prefix)) != 0) return false;
    for (int i = 0; ok[i]; i++)
        if (!strcmp(tag + strlen(prefix), ok[i])) return true;
    return false;
}

static YNode *convert(yaml_document_t *doc, yaml_node_t *yn, const char *file, int depth, Error *err) {
    int line = (int)yn->start_mark.line + 1;
    if (depth > MAX_DEPTH) {
        error_set(err, "%s:%d: nested too deeply (or an alias refers to itself)", file, line);
        return NULL;
    }
    if (!standard_tag((const char *)yn->tag)) {
        error_set(err, "%s:%d: unsupported YAML tag '%s'", file, line, (const char *)yn->tag);
        return NULL;
    }
    YNode *n = NULL;
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        const char *text = (const char *)yn->data.scalar.value;
        bool plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        bool null_tag = yn->tag && !strcmp((const char *)yn->tag, YAML_NULL_TAG);
        if (null_tag || (plain && is_null_text(text))) {
            n = ytree_new(Y_NULL, NULL, line);
        } else if ((n = ytree_new(Y_SCALAR, text, line))) {
            n->quoted = !plain;
        }
        break;
    }
    case YAML_SEQUENCE_NODE:
        if (!(n = ytree_new(Y_SEQ, NULL, line))) break;
        for (yaml_node_item_t *it = yn->data.sequence.items.start; it < yn->data.sequence.items.top; it++) {
            YNode *item = convert(doc, yaml_document_get_node(doc, *it), file, depth + 1, err);
            if (!item || ytree_append(n, item) < 0) {
                if (item) error_set(err, "out of memory reading %s", file);
                ytree_free(item);
                ytree_free(n);
                return NULL;
            }
        }
        break;
    case YAML_MAPPING_NODE:
        if (!(n = ytree_new(Y_MAP, NULL, line))) break;
        for (yaml_node_pair_t *p = yn->data.mapping.pairs.start; p < yn->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key);
            int kline = (int)kn->start_mark.line + 1;
            const char *key = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : NULL;
            const char *problem = !key ? "a key must be a plain word, not a list or a map"
                                  : (!strcmp(key, "<<") && kn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
                                      ? "merge keys (<<) are not supported; write the keys out"
                                  : ytree_index(n, key) >= 0 ? "duplicate key"
                                                             : NULL;
            if (problem) {
                error_set(err, "%s:%d: %s%s%s%s", file, kline, problem, key ? " '" : "", key ? key : "",
                          key ? "'" : "");
                ytree_free(n);
                return NULL;
            }
            YNode *value = convert(doc, yaml_document_get_node(doc, p->value), file, depth + 1, err);
            if (!value || ytree_set(n, key, value, kline) < 0) {
                if (value) error_set(err, "out of memory reading %s", file);
                ytree_free(value);
                ytree_free(n);
                return NULL;
            }
        }
        break;
    default:
        break;
    }
    if (!n && !err->msg[0]) error_set(err, "out of memory reading %s", file);
    if (n) n->file = file;
    return n;
}

/* Formats libyaml's parser error as "file:line: problem (context at line N)". */
static int parser_error(const yaml_parser_t *p, const char *name, Error *err) {
    const char *problem = p->problem ? p->problem : "cannot parse YAML";
    if (p->error == YAML_READER_ERROR || p->error == YAML_MEMORY_ERROR)
        return error_set(err, "%s: %s", name, problem);
    int line = (int)p->problem_mark.line + 1;
    if (p->context)
        return error_set(err, "%s:%d: %s (%s at line %d)", name, line, problem, p->context,
                         (int)p->context_mark.line + 1);
    return error_set(err, "%s:%d: %s", name, line, problem);
}

/* Runs a prepared parser: one document, converted to a YNode tree owned by *out. */
static int load(yaml_parser_t *parser, const char *name, YNode **out, Error *err) {
    Error local;
    if (!err) err = &local;
    *out = NULL;
    err->msg[0] = 0;
    char *file = strdup(name);
    if (!file) return error_set(err, "out of memory");
    yaml_document_t doc;
    if (!yaml_parser_load(parser, &doc)) {
        free(file);
        return parser_error(parser, name, err);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    YNode *tree = root ? convert(&doc, root, file, 0, err) : ytree_new(Y_MAP, NULL, 1);
    yaml_document_delete(&doc);
    if (tree) {
        yaml_document_t next;
        if (!yaml_parser_load(parser, &next)) {
            parser_error(parser, name, err);
            ytree_free(tree);
            tree = NULL;
        } else {
            yaml_node_t *second = yaml_document_get_root_node(&next);
            if (second) {
                error_set(err, "%s:%d: a recipe holds one YAML document, this file has more", name,
                          (int)second->start_mark.line + 1);
                ytree_free(tree);
                tree = NULL;
            }
            yaml_document_delete(&next);
        }
    }
    if (!tree) {
        if (!err->msg[0]) error_set(err, "out of memory reading %s", name);
        free(file);
        return -1;
    }
    tree->file = file;
    tree->owns_file = true;
    *out = tree;
    return 0;
}

int ytree_load_file(const char *path, YNode **out, Error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return error_set(err, "out of memory");
    }
    yaml_parser_set_input_file(&parser, f);
    int rc = load(&parser, path, out, err);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int ytree_load_string(const char *text, const char *name, YNode **out, Error *err) {
    *out = NULL;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return error_set(err, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    int rc = load(&parser, name, out, err);
    yaml_parser_delete(&parser);
    return rc;
}

/* ------------------------------------------------------------------ writing */

/* True when text can be written without quotes and reads back as the same characters. */
static bool plain_safe(const char *s) {
    if (!*s || is_null_text(s)) return false;
    if (!isalnum((unsigned char)s[0]) && !strchr("_./+~", s[0]) && !(s[0] == '-' && s[1] && s[1] != ' '))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-./+~", *p)) return false;
    return true;
}

/* Writes text double-quoted, escaping what YAML needs escaped. */
static void emit_quoted(const char *text, FILE *out) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", out);
        else if (*p == '\t') fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f) fprintf(out, "\\x%02x", *p);
        else fputc(*p, out);
    }
    fputc('"', out);
}

void ytree_emit_scalar(const char *text, FILE *out) {
    if (plain_safe(text)) fputs(text, out);
    else emit_quoted(text, out);
}

/* Writes a value that fits on the current line (scalar, null, {} or []); false for non-empty collections. */
static bool emit_inline(const YNode *n, FILE *out) {
    if (!n || n->kind == Y_NULL) fputs("null", out);
    else if (n->kind == Y_SCALAR) {
        if (n->quoted) emit_quoted(n->scalar, out);   /* stays a string on reload ("8ep", "true") */
        else ytree_emit_scalar(n->scalar, out);
    } else if (n->n == 0) fputs(n->kind == Y_MAP ? "{}" : "[]", out);
    else return false;
    return true;
}

/* Writes a non-empty map or sequence at indent; the first line continues the current one when inline_first. */
static void emit_block(const YNode *n, int indent, bool inline_first, FILE *out) {
    for (int i = 0; i < n->n; i++) {
        if (i > 0 || !inline_first) fprintf(out, "%*s", indent, "");
        const YNode *v = n->items[i];
        if (n->kind == Y_MAP) {
            ytree_emit_scalar(n->keys[i], out);
            fputc(':', out);
            if (v && (v->kind == Y_MAP || v->kind == Y_SEQ) && v->n > 0) {
                fputc('\n', out);
                emit_block(v, indent + 2, false, out);
                continue;
            }
        } else {
            fputc('-', out);
            if (v && (v->kind == Y_MAP || v->kind == Y_SEQ) && v->n > 0) {
                fputc(' ', out);
                emit_block(v, indent + 2, true, out);
                continue;
            }
        }
        fputc(' ', out);
        emit_inline(v, out);
        fputc('\n', out);
    }
}

void ytree_emit(const YNode *node, int indent, FILE *out) {
    if (node && (node->kind == Y_MAP || node->kind == Y_SEQ) && node->n > 0) {
        emit_block(node, indent, false, out);
        return;
    }
    fprintf(out, "%*s", indent, "");
    emit_inline(node, out);
    fputc('\n', out);
}
