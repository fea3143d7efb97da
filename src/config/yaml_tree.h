/* yaml_tree.h — a YAML document as a small tree (built with libyaml), with the line of every node.
 *
 * Recipes are read into this tree first; command-line overrides edit the tree; schema.c then turns the
 * tree into typed structs. Keeping lines lets every error say "recipe.yaml:12". Anchors/aliases are
 * resolved by copying; merge keys and tags other than the standard ones are rejected. */
#ifndef CTRAIN_CONFIG_YAML_TREE_H
#define CTRAIN_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stdio.h>

#include "core/error.h"

typedef enum YKind { Y_NULL = 0, Y_SCALAR, Y_MAP, Y_SEQ } YKind;

typedef struct YNode {
    YKind kind;
    int line;                 /* 1-based line in file, 0 for nodes made from the command line */
    const char *file;         /* the document's name (shared, owned by the root) */
    char *scalar;             /* Y_SCALAR: the text */
    bool quoted;              /* Y_SCALAR: written in quotes (so always a string) */
    int n;                    /* Y_MAP: pairs; Y_SEQ: items */
    char **keys;              /* Y_MAP: keys[n] */
    int *key_lines;           /* Y_MAP: line of each key */
    struct YNode **items;     /* Y_MAP: values[n]; Y_SEQ: items[n] */
    bool owns_file;           /* this node frees file (the root of a loaded or copied tree) */
} YNode;

/* Parses a YAML file (one document) into *out. Errors name the file and line. */
int ytree_load_file(const char *path, YNode **out, Error *err);
/* Parses YAML text; name is used in messages. */
int ytree_load_string(const char *text, const char *name, YNode **out, Error *err);
/* Frees a tree (NULL is fine). */
void ytree_free(YNode *node);

/* The value of key in a map, or NULL (also NULL when node is not a map). */
YNode *ytree_get(const YNode *map, const char *key);
/* Index of key in a map, or -1. */
int ytree_index(const YNode *map, const char *key);
/* Makes a new node. scalar may be NULL for maps/sequences. */
YNode *ytree_new(YKind kind, const char *scalar, int line);
/* Sets map[key] = value (replacing and freeing an old value), taking ownership of value; map must be Y_MAP.
 * Returns -1 on out of memory. */
int ytree_set(YNode *map, const char *key, YNode *value, int line);
/* Removes key from a map (frees its value); no-op when absent. */
void ytree_remove(YNode *map, const char *key);
/* Appends value to a sequence, taking ownership. */
int ytree_append(YNode *seq, YNode *value);
/* Deep copy. */
YNode *ytree_copy(const YNode *node);
/* Writes the tree as YAML (block style) at the given indent. */
void ytree_emit(const YNode *node, int indent, FILE *out);
/* Writes one scalar: plain when that reads back as the same text, else double-quoted with escapes. */
void ytree_emit_scalar(const char *text, FILE *out);
/* "file:line" of a node for messages, or "command line" for nodes made from overrides (line 0). */
const char *ytree_where(const YNode *node, char *buf, size_t size);

#endif
