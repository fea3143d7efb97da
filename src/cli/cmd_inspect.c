/* cmd_inspect.c — `ctrain inspect FILE.beton [--json]`: what an FFCV file holds. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/beton.h"

static const char *const INSPECT_FLAGS[] = {"json", NULL};
static const char *const TYPE_NAMES[] = {"Float", "Int", "RGBImage", "Bytes", "NDArray", "JSON", "TorchTensor"};

/* A float as JSON: a number, or "nan" / "inf" / "-inf" (as FFCV's expected.json files write them). */
static cJSON *json_float(double v) {
    if (isnan(v)) return cJSON_CreateString("nan");
    if (isinf(v)) return cJSON_CreateString(v > 0 ? "inf" : "-inf");
    return cJSON_CreateNumber(v);
}

static void print_json_line(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

/* One JSON object for sample i: each field's metadata and value. */
static int sample_json(const Beton *b, int64_t i, Error *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", (double)i);
    for (int f = 0; f < beton_num_fields(b); f++) {
        const BetonField *fd = beton_field(b, f);
        uint64_t ptr, size;
        switch (fd->type) {
        case BETON_INT: {
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", (long long)beton_get_int(b, f, i));
            cJSON_AddItemToObject(o, fd->name, cJSON_CreateRaw(buf)); /* exact, beyond 2^53 */
            break;
        }
        case BETON_FLOAT:
            cJSON_AddItemToObject(o, fd->name, json_float(beton_get_float(b, f, i)));
            break;
        case BETON_RGB: {
            BetonImage im;
            if (beton_get_image(b, f, i, &im, err)) {
                cJSON_Delete(o);
                return -1;
            }
            cJSON *m = cJSON_AddObjectToObject(o, fd->name);
            cJSON_AddStringToObject(m, "mode", im.mode == 0 ? "jpeg" : "raw");
            cJSON_AddNumberToObject(m, "width", im.width);
            cJSON_AddNumberToObject(m, "height", im.height);
            cJSON_AddNumberToObject(m, "data_ptr", (double)im.ptr);
            cJSON_AddNumberToObject(m, "stored_size", (double)im.size);
            break;
        }
        case BETON_BYTES:
        case BETON_JSON: {
            if (beton_get_bytes(b, f, i, &ptr, &size, err)) {
                cJSON_Delete(o);
                return -1;
            }
            cJSON *m = cJSON_AddObjectToObject(o, fd->name);
            cJSON_AddNumberToObject(m, "ptr", (double)ptr);
            cJSON_AddNumberToObject(m, "size", (double)size);
            if (fd->type == BETON_JSON && size > 0) {
                const char *text = (const char *)beton_data(b, ptr);
                size_t len = strnlen(text, size);
                char *copy = malloc(len + 1);
                if (copy) {
                    memcpy(copy, text, len);
                    copy[len] = 0;
                    cJSON *v = cJSON_Parse(copy);
                    cJSON_AddItemToObject(m, "value", v ? v : cJSON_CreateString(copy));
                    free(copy);
                }
            }
            break;
        }
        case BETON_NDARRAY:
        case BETON_TORCH: {
            if (beton_get_ndarray(b, f, i, &ptr, err)) {
                cJSON_Delete(o);
                return -1;
            }
            cJSON *m = cJSON_AddObjectToObject(o, fd->name);
            cJSON_AddNumberToObject(m, "ptr", (double)ptr);
            cJSON_AddNumberToObject(m, "size", (double)fd->nbytes);
            break;
        }
        }
    }
    print_json_line(o);
    return 0;
}

static void header_json(const Beton *b) {
    cJSON *o = cJSON_CreateObject(), *h = cJSON_AddObjectToObject(o, "header");
    cJSON_AddNumberToObject(h, "version", BETON_VERSION);
    cJSON_AddNumberToObject(h, "num_fields", beton_num_fields(b));
    cJSON_AddNumberToObject(h, "page_size", beton_page_size(b));
    cJSON_AddNumberToObject(h, "num_samples", (double)beton_num_samples(b));
    cJSON_AddNumberToObject(h, "alloc_table_ptr", (double)beton_alloc_table_ptr(b));
    cJSON_AddNumberToObject(h, "file_size", (double)beton_file_size(b));
    cJSON *fs = cJSON_AddArrayToObject(o, "fields");
    for (int f = 0; f < beton_num_fields(b); f++) {
        const BetonField *fd = beton_field(b, f);
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "index", f);
        cJSON_AddStringToObject(x, "name", fd->name);
        cJSON_AddNumberToObject(x, "type_id", fd->type);
        cJSON_AddStringToObject(x, "type_name", TYPE_NAMES[fd->type]);
        cJSON_AddNumberToObject(x, "offset", (double)fd->offset);
        if (fd->type == BETON_NDARRAY || fd->type == BETON_TORCH) {
            cJSON_AddStringToObject(x, "dtype", fd->dtype);
            cJSON *shape = cJSON_AddArrayToObject(x, "shape");
            for (int d = 0; d < fd->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)fd->shape[d]));
        }
        cJSON_AddItemToArray(fs, x);
    }
    cJSON *m = cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddNumberToObject(m, "offset", (double)beton_metadata_offset(b));
    cJSON_AddNumberToObject(m, "record_size", (double)beton_record_size(b));
    cJSON_AddNumberToObject(o, "alloc_entries", (double)beton_alloc_count(b));
    print_json_line(o);
}

/* The human summary: header, fields, image modes and a histogram of longest sides, label range. */
static int summary(const Beton *b, const char *path, Error *err) {
    int64_t n = beton_num_samples(b);
    printf("%s: FFCV format version %d, %lld samples, %d fields, page size %u bytes, %.1f MB\n", path, BETON_VERSION,
           (long long)n, beton_num_fields(b), beton_page_size(b), (double)beton_file_size(b) / 1e6);
    printf("metadata: %zu-byte records at offset %llu; allocation table: %lld entries at offset %llu\n",
           beton_record_size(b), (unsigned long long)beton_metadata_offset(b), (long long)beton_alloc_count(b),
           (unsigned long long)beton_alloc_table_ptr(b));
    for (int f = 0; f < beton_num_fields(b); f++) {
        const BetonField *fd = beton_field(b, f);
        printf("field %d: %-16s %s", f, fd->name, TYPE_NAMES[fd->type]);
        if (fd->type == BETON_NDARRAY || fd->type == BETON_TORCH) {
            printf(" %s [", fd->dtype);
            for (int d = 0; d < fd->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)fd->shape[d]);
            printf("]");
        }
        if (fd->type == BETON_RGB) {
            static const int edges[] = {32, 64, 128, 256, 512, 1024};
            int64_t hist[7] = {0}, jpeg = 0, raw = 0, minw = INT64_MAX, maxw = 0, minh = INT64_MAX, maxh = 0;
            for (int64_t i = 0; i < n; i++) {
                BetonImage im;
                if (beton_get_image(b, f, i, &im, err)) return -1;
                if (im.mode == 0) jpeg++;
                else raw++;
                int longest = im.width > im.height ? im.width : im.height, k = 0;
                while (k < 6 && longest > edges[k]) k++;
                hist[k]++;
                if (im.width < minw) minw = im.width;
                if (im.width > maxw) maxw = im.width;
                if (im.height < minh) minh = im.height;
                if (im.height > maxh) maxh = im.height;
            }
            printf(": %lld JPEG, %lld raw; width %lld..%lld, height %lld..%lld\n  longest side:", (long long)jpeg,
                   (long long)raw, (long long)minw, (long long)maxw, (long long)minh, (long long)maxh);
            for (int k = 0; k < 7; k++)
                if (hist[k]) {
                    if (k < 6) printf("  <=%d: %lld", edges[k], (long long)hist[k]);
                    else printf("  >1024: %lld", (long long)hist[k]);
                }
        }
        if (fd->type == BETON_INT && n > 0) {
            int64_t lo = INT64_MAX, hi = INT64_MIN;
            for (int64_t i = 0; i < n; i++) {
                int64_t v = beton_get_int(b, f, i);
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            printf(": values %lld..%lld", (long long)lo, (long long)hi);
        }
        printf("\n");
    }
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    Beton *b = NULL;
    int rc = 1;
    if (cli_parse(argc, argv, INSPECT_FLAGS, &a, &err)) goto fail;
    if (a.help) {
        printf("usage: ctrain inspect FILE.beton [--json]\n\n"
               "Prints an FFCV file's header, fields, counts, image modes and size histogram, and label range.\n"
               "--json prints one JSON object with the header and fields, then one object per sample (its fields'\n"
               "metadata and values; images: mode, width, height, data_ptr, stored_size), one per line.\n");
        rc = 0;
        goto done;
    }
    if (a.n_positional != 1 || a.n_overrides) {
        error_set(&err, "give one FILE.beton (see ctrain inspect --help)");
        goto fail;
    }
    if (beton_open(a.positional[0], &b, &err)) goto fail;
    if (a.json) {
        header_json(b);
        for (int64_t i = 0; i < beton_num_samples(b); i++)
            if (sample_json(b, i, &err)) goto fail;
    } else if (summary(b, a.positional[0], &err)) {
        goto fail;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain inspect: %s\n", err.msg);
done:
    beton_close(b);
    cli_args_free(&a);
    return rc;
}
