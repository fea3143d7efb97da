/* schema.h — typed, validated configuration from YAML: field tables that map recipe keys onto C structs.
 *
 * Every module that takes options from a recipe (model, datasets, optimizers, schedulers, algorithms)
 * describes them with a NULL-terminated FieldSpec table over its own options struct; config.c holds the
 * top-level table (Composer 0.9's TrainerHparams). The engine in schema.c fills structs from a YAML tree,
 * applies defaults, rejects unknown keys (file:line, key, "did you mean"), and writes the resolved values
 * back out as YAML.
 *
 * Registries ("one of these names") are F_CHOICE fields (`model: {resnet: {...}}`) and F_CHOICE_LIST fields
 * (`algorithms: [{blurpool: {...}}, ...]`, or the dict form of Composer 0.7). Each chosen entry's options
 * live in a heap block of entry->options_size bytes, filled from entry->fields. */
#ifndef CTRAIN_CONFIG_SCHEMA_H
#define CTRAIN_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/yaml_tree.h"
#include "core/error.h"

/* ---- value types stored in option structs ---- */

typedef enum TimeUnit { TIME_EPOCH = 0, TIME_BATCH, TIME_SAMPLE, TIME_DURATION } TimeUnit;

/* A Composer time string: "90ep", "100ba", "2048sp", "0.5dur". A bare integer means epochs. */
typedef struct TimeSpec {
    double value;
    TimeUnit unit;
    bool set;        /* false when the recipe left it empty / none */
} TimeSpec;

#define LIST_MAX 16
typedef struct DoubleList { double v[LIST_MAX]; int n; } DoubleList;
typedef struct StringList { char *v[LIST_MAX]; int n; } StringList;   /* strings owned by the struct */
typedef struct TimeList { TimeSpec v[LIST_MAX]; int n; } TimeList;

struct RegistryEntry;
/* Storage of an F_CHOICE field: which entry was chosen and its options (NULL entry = not given). */
typedef struct Choice {
    const struct RegistryEntry *entry;
    void *options;   /* entry->options_size bytes, filled from entry->fields */
    int line;        /* recipe line of the entry's key, 0 when it came from a default or the command line */
} Choice;
/* Storage of an F_CHOICE_LIST field, in recipe order. */
typedef struct ChoiceList { Choice items[LIST_MAX]; int n; } ChoiceList;

/* ---- field tables ---- */

typedef enum FieldType {
    F_BOOL,         /* bool */
    F_INT,          /* int */
    F_INT64,        /* int64_t */
    F_DOUBLE,       /* double */
    F_STRING,       /* char * (heap, NULL when not given; "none" and '' mean NULL) */
    F_TIME,         /* TimeSpec */
    F_ENUM,         /* int: index into enum_values (matched case-insensitively) */
    F_DOUBLE_LIST,  /* DoubleList */
    F_STRING_LIST,  /* StringList */
    F_TIME_LIST,    /* TimeList */
    F_IGNORED,      /* any value; accepted, means nothing to ctrain, reported once (e.g. pin_memory) */
    F_STRUCT,       /* nested map described by sub (stored inline at offset) */
    F_CHOICE,       /* Choice: a map with exactly one key naming a registry entry */
    F_CHOICE_LIST,  /* ChoiceList */
} FieldType;

typedef struct FieldSpec {
    const char *name;                      /* recipe key; NULL ends the table */
    FieldType type;
    size_t offset;                         /* offsetof(options struct, member) */
    const char *def;                       /* default as YAML text ("0.1", "1dur", "[1, 2]"); NULL: none */
    const char *help;                      /* one line for docs and --help */
    const char *const *enum_values;        /* F_ENUM: NULL-terminated names */
    const struct FieldSpec *sub;           /* F_STRUCT */
    const struct Registry *registry;       /* F_CHOICE, F_CHOICE_LIST */
    const char *old_name;                  /* an older spelling also accepted (Composer 0.7 `optimizer`) */
    double min, max;                       /* numeric range check when min < max */
    bool required;                         /* error when absent and def is NULL */
} FieldSpec;

/* Optional validation after an options struct is filled: return -1 with err naming the key. */
typedef int (*OptionsCheck)(const void *options, Error *err);

typedef struct RegistryEntry {
    const char *name;                      /* e.g. "resnet", "decoupled_sgdw", "blurpool" */
    const FieldSpec *fields;               /* may be NULL: accepts an empty map only */
    size_t options_size;
    OptionsCheck check;                    /* may be NULL */
    bool ignored;                          /* accepted and reported once; no effect (e.g. lr_monitor) */
    bool open;                             /* ignored entries: accept any keys */
    const char *help;
    const void *impl;                      /* what the entry does at run time (algorithms: AlgorithmImpl) */
} RegistryEntry;

typedef struct Registry {
    const char *what;                      /* "algorithm", "optimizer", ... for messages */
    const RegistryEntry *entries;
    int n;
} Registry;

/* Notes collected while loading (ignored keys, accepted-but-meaningless options), each reported once. */
typedef struct Notes {
    char *v[64];
    int n;
} Notes;

/* Fills *options (a struct described by fields) from node (a map, or NULL for "all defaults").
 * path is the dotted prefix for messages ("model.resnet"). Unknown keys are errors naming file:line,
 * the key and the closest known key. The table's members of *options must start zeroed; a YAML null (and,
 * for F_STRING, "none" or '') counts as not given, so the default applies (an F_STRING stays NULL).
 * On error everything it allocated is freed again. */
int schema_fill(const FieldSpec *fields, const YNode *node, const char *path, void *options, Notes *notes,
                Error *err);
/* Frees the heap parts (strings, string lists, choice options) of a struct filled by schema_fill. */
void schema_free(const FieldSpec *fields, void *options);
/* Writes the resolved values of options as YAML at the given indent (2 spaces per level). */
void schema_emit(const FieldSpec *fields, const void *options, int indent, FILE *out);

/* Looks up a registry entry by name; NULL if none. */
const RegistryEntry *registry_find(const struct Registry *r, const char *name);
/* Finds the element of list whose entry is called name; NULL if absent. */
const Choice *choice_list_find(const ChoiceList *list, const char *name);

/* Parses a Composer time string ("90ep", "1000ba", "0.5dur", "2048sp", or an integer = epochs). */
int time_parse(const char *text, TimeSpec *out, Error *err);
/* Formats a time as Composer writes it ("90ep", "0.5dur"). */
void time_format(const TimeSpec *t, char *buf, size_t size);

/* Adds a note (formatted) unless an identical one is already there. */
void notes_add(Notes *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void notes_free(Notes *notes);

/* The closest of candidates[0..n) to word by edit distance, or NULL when nothing is close. */
const char *suggest_closest(const char *word, const char *const *candidates, int n);

#endif
