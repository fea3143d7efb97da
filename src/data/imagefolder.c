/* imagefolder.c — listing an ImageFolder tree exactly as torchvision does (find_classes + make_dataset):
 * class folders sorted by name, then for each class the files of sorted(os.walk(class_dir, followlinks=True)),
 * each folder's files sorted, keeping names that end in an image extension (case-insensitive). */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/imagefolder.h"

/* torchvision.datasets.folder.IMG_EXTENSIONS */
static const char *const EXTENSIONS[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};

static bool is_image(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof EXTENSIONS / sizeof EXTENSIONS[0]; i++) {
        size_t e = strlen(EXTENSIONS[i]);
        if (n > e && strcasecmp(name + n - e, EXTENSIONS[i]) == 0) return true;
    }
    return false;
}

typedef struct StrList {
    char **v;
    int64_t n, cap;
} StrList;

static int list_push(StrList *l, char *s) {
    if (!s) return -1;
    if (l->n == l->cap) {
        int64_t nc = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->v, (size_t)nc * sizeof *p);
        if (!p) {
            free(s);
            return -1;
        }
        l->v = p;
        l->cap = nc;
    }
    l->v[l->n++] = s;
    return 0;
}

static void list_free(StrList *l) {
    for (int64_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode); /* stat follows links, as followlinks=True */
}

/* Adds every folder under dir (dir included) to dirs. */
static int walk(const char *dir, StrList *dirs, int depth, Error *err) {
    if (depth > 64) return error_set(err, "%s: folders nested too deep (a symlink loop?)", dir);
    if (list_push(dirs, strdup(dir))) return error_set(err, "out of memory");
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot open folder", dir);
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char *p = join(dir, e->d_name);
        if (!p) rc = error_set(err, "out of memory");
        else if (is_dir(p)) rc = walk(p, dirs, depth + 1, err);
        free(p);
    }
    closedir(d);
    return rc;
}

/* The image files of one folder (not recursive), sorted, appended to out. */
static int folder_images(const char *dir, StrList *out, Error *err) {
    DIR *d = opendir(dir);
    if (!d) return error_set(err, "%s: cannot open folder", dir);
    StrList names = {0};
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!is_image(e->d_name)) continue;
        char *p = join(dir, e->d_name);
        if (!p || is_dir(p)) {
            free(p);
            if (!p) rc = error_set(err, "out of memory");
            continue;
        }
        if (list_push(&names, p)) rc = error_set(err, "out of memory");
    }
    closedir(d);
    if (rc == 0) {
        if (names.n > 1) qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
        for (int64_t i = 0; rc == 0 && i < names.n; i++) {
            if (list_push(out, names.v[i])) rc = error_set(err, "out of memory");
            names.v[i] = NULL;
        }
    }
    list_free(&names);
    return rc;
}

int imagefolder_scan(const char *root, ImageFolder *out, Error *err) {
    memset(out, 0, sizeof *out);
    if (!is_dir(root)) return error_set(err, "%s: not a folder (an ImageFolder root holds one folder per class)", root);
    StrList classes = {0}, paths = {0};
    int rc = 0;
    DIR *d = opendir(root);
    if (!d) return error_set(err, "%s: cannot open folder", root);
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char *p = join(root, e->d_name);
        if (p && is_dir(p) && list_push(&classes, strdup(e->d_name))) rc = error_set(err, "out of memory");
        free(p);
    }
    closedir(d);
    if (rc == 0 && classes.n == 0) rc = error_set(err, "%s: no class folders found", root);
    if (rc == 0 && classes.n > 1) qsort(classes.v, (size_t)classes.n, sizeof *classes.v, cmp_str);
    int32_t *labels = NULL;
    int64_t cap = 0;
    for (int64_t c = 0; rc == 0 && c < classes.n; c++) {
        char *cdir = join(root, classes.v[c]);
        StrList dirs = {0};
        if (!cdir) rc = error_set(err, "out of memory");
        if (rc == 0) rc = walk(cdir, &dirs, 0, err);
        if (rc == 0 && dirs.n > 1) qsort(dirs.v, (size_t)dirs.n, sizeof *dirs.v, cmp_str);
        int64_t before = paths.n;
        for (int64_t i = 0; rc == 0 && i < dirs.n; i++) rc = folder_images(dirs.v[i], &paths, err);
        if (rc == 0 && paths.n > cap) {
            cap = paths.cap;
            int32_t *nl = realloc(labels, (size_t)cap * sizeof *nl);
            if (!nl) rc = error_set(err, "out of memory");
            else labels = nl;
        }
        for (int64_t i = before; rc == 0 && i < paths.n; i++) labels[i] = (int32_t)c;
        list_free(&dirs);
        free(cdir);
    }
    if (rc == 0 && paths.n == 0) rc = error_set(err, "%s: no image files (.jpg, .jpeg, .png, ...) in its class folders", root);
    if (rc) {
        list_free(&classes);
        list_free(&paths);
        free(labels);
        return -1;
    }
    out->n_classes = (int)classes.n;
    out->classes = classes.v;
    out->n = paths.n;
    out->paths = paths.v;
    out->labels = labels;
    return 0;
}

void imagefolder_free(ImageFolder *f) {
    for (int i = 0; i < f->n_classes; i++) free(f->classes[i]);
    for (int64_t i = 0; i < f->n; i++) free(f->paths[i]);
    free(f->classes);
    free(f->paths);
    free(f->labels);
    memset(f, 0, sizeof *f);
}
