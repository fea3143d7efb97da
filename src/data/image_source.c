/* image_source.c — the imagenet dataset kind: images from an FFCV .beton (use_ffcv) or an ImageFolder tree,
 * turned into crops as Composer's FFCV pipeline does. Train: RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3)
 * to crop_size, random horizontal flip; eval: FFCV's center crop of ratio crop_size/resize_size resized to
 * crop_size. Then normalization with the ImageNet mean/std.
 *
 * Beyond FFCV: a JPEG is decoded at the largest DCT reduction (1/2, 1/4, 1/8) that still leaves the crop at
 * least as large as the output, so decoding costs follow the output size; raw pixels are resized in place from
 * the mapping. With os_cache: false, samples are read a whole FFCV page at a time (pread) and the page is kept
 * for the next sample. Corrupt images are reported to the loader (which replaces them) with their index or
 * path. */
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/beton.h"
#include "data/convert.h"
#include "data/crop.h"
#include "data/imagefolder.h"
#include "data/jpeg.h"
#include "data/randaugment.h"
#include "data/resize.h"
#include "data/source.h"
#include "io/image.h"

/* ------------------------------------------------------------------ recipe keys */

static const char *const ORDERS[] = {"auto", "sequential", "random", "quasi_random", NULL};

const FieldSpec IMAGENET_FIELDS[] = {
    {.name = "datadir", .type = F_STRING, .offset = offsetof(ImagenetOptions, datadir),
     .help = "ImageFolder root with train/ and val/ (read directly when use_ffcv is false)"},
    {.name = "ffcv_dir", .type = F_STRING, .offset = offsetof(ImagenetOptions, ffcv_dir),
     .def = "/datasets/ImageNet/ffcv", .help = "folder of the .beton files"},
    {.name = "ffcv_dest", .type = F_STRING, .offset = offsetof(ImagenetOptions, ffcv_dest),
     .help = "file name in ffcv_dir (default imagenet_train.ffcv / imagenet_val.ffcv by is_train)"},
    {.name = "use_ffcv", .type = F_BOOL, .offset = offsetof(ImagenetOptions, use_ffcv), .def = "false",
     .help = "read ffcv_dir/ffcv_dest instead of datadir"},
    {.name = "ffcv_write_dataset", .type = F_BOOL, .offset = offsetof(ImagenetOptions, ffcv_write_dataset),
     .def = "false", .help = "convert datadir to the .beton first when it is missing"},
    {.name = "is_train", .type = F_BOOL, .offset = offsetof(ImagenetOptions, is_train), .def = "true"},
    {.name = "shuffle", .type = F_BOOL, .offset = offsetof(ImagenetOptions, shuffle), .def = "true"},
    {.name = "drop_last", .type = F_BOOL, .offset = offsetof(ImagenetOptions, drop_last), .def = "true"},
    {.name = "crop_size", .type = F_INT, .offset = offsetof(ImagenetOptions, crop_size), .def = "224", .min = 1,
     .max = 8192, .help = "output resolution"},
    {.name = "resize_size", .type = F_INT, .offset = offsetof(ImagenetOptions, resize_size), .def = "-1",
     .help = "eval: center crop ratio = crop_size / resize_size (FFCV); -1: 224/256"},
    {.name = "order", .type = F_ENUM, .offset = offsetof(ImagenetOptions, order), .def = "auto", .enum_values = ORDERS,
     .help = "ctrain: sample order (auto = random when shuffling; quasi_random = FFCV's page-local order)"},
    {.name = "os_cache", .type = F_BOOL, .offset = offsetof(ImagenetOptions, os_cache), .def = "true",
     .help = "ctrain: read the .beton through the page cache (mmap); false = whole-page reads"},
    {.name = "dct_scaling", .type = F_BOOL, .offset = offsetof(ImagenetOptions, dct_scaling), .def = "true",
     .help = "ctrain: decode JPEGs at a DCT scale (1/2, 1/4, 1/8) when the crop is that much larger than the output"},
    {.name = "num_classes", .type = F_INT, .offset = offsetof(ImagenetOptions, num_classes), .def = "0", .min = 0,
     .max = 1000000, .help = "ctrain: 0 = from the data"},
    {.name = "mean", .type = F_DOUBLE_LIST, .offset = offsetof(ImagenetOptions, mean),
     .def = "[123.675, 116.28, 103.53]", .help = "ctrain: per-channel mean in 0..255 (ImageNet's)"},
    {.name = "std", .type = F_DOUBLE_LIST, .offset = offsetof(ImagenetOptions, std),
     .def = "[58.395, 57.12, 57.375]", .help = "ctrain: per-channel std in 0..255 (ImageNet's)"},
    {0},
};

int imagenet_check(const void *options, Error *err) {
    const ImagenetOptions *o = options;
    if (o->mean.n != 3 || o->std.n != 3) return error_set(err, "mean and std take 3 values (R, G, B)");
    for (int i = 0; i < 3; i++)
        if (!(o->std.v[i] > 0)) return error_set(err, "std values must be > 0");
    return 0;
}

/* ------------------------------------------------------------------ the source */

typedef struct Worker {
    JpegCodec *jpeg;
    uint8_t *pix;           /* decoded image [h, w, 3] */
    size_t pix_cap;
    uint8_t *crop;          /* resized crop [out, out, 3] */
    float *scratch;
    size_t scratch_cap;
    uint8_t *file;          /* file or page bytes */
    uint8_t *ra_scratch;    /* RandAugment [out, out, 3] */
    size_t file_cap;
    int64_t page;           /* FFCV page held in file[] (os_cache false), or -1 */
} Worker;

typedef struct ImageSource {
    SampleSource base;
    const ImagenetOptions *opt;
    uint64_t seed;
    bool train;              /* RandomResizedCrop + flip */
    int out;                 /* crop_size */
    double center_ratio;
    Beton *beton;            /* FFCV data, or */
    int image_field, label_field;
    ImageFolder folder;      /* ImageFolder data */
    Worker *workers;
    int n_workers;
    float lut[3][256];       /* normalized value of each uint8 per channel */
    int ra_depth, ra_set;    /* RandAugment on training samples when ra_depth > 0 */
    double ra_severity;
    char **class_names;
} ImageSource;

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    uint8_t *p = realloc(*buf, need);
    if (!p) return -1;
    *buf = p;
    *cap = need;
    return 0;
}

static int image_prepare(SampleSource *src, int workers, Error *err) {
    ImageSource *s = (ImageSource *)src;
    s->workers = calloc((size_t)workers, sizeof *s->workers);
    if (!s->workers) return error_set(err, "out of memory");
    s->n_workers = workers;
    for (int i = 0; i < workers; i++) {
        Worker *w = &s->workers[i];
        w->page = -1;
        w->jpeg = jpeg_codec_new();
        w->crop = malloc((size_t)s->out * s->out * 3);
        w->ra_scratch = malloc(randaugment_scratch_bytes(s->out, s->out));
        if (!w->jpeg || !w->crop || !w->ra_scratch) return error_set(err, "out of memory for loader thread %d", i);
    }
    return 0;
}

/* The encoded or raw bytes of sample i of the .beton, and its stored size. */
static int beton_bytes(ImageSource *s, Worker *w, int64_t i, BetonImage *im, const uint8_t **data, Error *err) {
    if (beton_get_image(s->beton, s->image_field, i, im, err)) return 1;
    if (s->opt->os_cache) {
        *data = beton_data(s->beton, im->ptr);
        return 0;
    }
    uint64_t ps = beton_page_size(s->beton), page = im->ptr / ps;
    if (im->ptr + im->size > (page + 1) * ps) {
        /* not inside one page (not written by FFCV's rules): read just the sample */
        if (grow(&w->file, &w->file_cap, im->size)) return error_set(err, "out of memory");
        if (pread(beton_fd(s->beton), w->file, im->size, (off_t)im->ptr) != (ssize_t)im->size)
            return error_set(err, "%s: short read of sample %lld", beton_path(s->beton), (long long)i);
        w->page = -1;
        *data = w->file;
        return 0;
    }
    if ((int64_t)page != w->page) {
        if (grow(&w->file, &w->file_cap, ps)) return error_set(err, "out of memory for a %llu-byte page",
                                                                  (unsigned long long)ps);
        ssize_t got = pread(beton_fd(s->beton), w->file, ps, (off_t)(page * ps));
        if (got < (ssize_t)(im->ptr + im->size - page * ps))
            return error_set(err, "%s: short read of page %llu", beton_path(s->beton), (unsigned long long)page);
        w->page = (int64_t)page;
    }
    *data = w->file + (im->ptr - page * ps);
    return 0;
}

/* Reads an ImageFolder file into the worker's buffer. */
static int read_file(Worker *w, const char *path, size_t *size, Error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return error_set(err, "%s: cannot open", path);
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) || st.st_size <= 0) rc = error_set(err, "%s: empty or unreadable", path);
    else if (grow(&w->file, &w->file_cap, (size_t)st.st_size)) rc = error_set(err, "out of memory");
    else if (read(fd, w->file, (size_t)st.st_size) != st.st_size) rc = error_set(err, "%s: short read", path);
    close(fd);
    *size = rc ? 0 : (size_t)st.st_size;
    return rc;
}

/* Decodes the part of the JPEG that box (in full-size pixels) covers, at a DCT scale 1/d when the crop is at
 * least 2d times the output (the margin keeps the area resize, not the DCT's sharper low-pass, doing most of the
 * reduction), and resizes it into w->crop [out, out, 3]. At d > 1 the crop's edges fall between scaled pixels;
 * the resize takes them exactly (fractional area weights) so the crop is not shifted. */
static int crop_jpeg(ImageSource *s, Worker *w, const uint8_t *data, size_t size, int ih, int iw, CropBox box,
                     Error *err) {
    int d = s->opt->dct_scaling ? jpeg_pick_denom(box.w, box.h, 2 * s->out, 2 * s->out) : 1;
    int sh = (ih + d - 1) / d, sw = (iw + d - 1) / d;
    /* the scaled crop, and the whole scaled pixels around it */
    double fy = (double)box.y / d, fx = (double)box.x / d, fh = (double)box.h / d, fw = (double)box.w / d;
    int y0 = (int)fy, x0 = (int)fx, y1 = (int)ceil(fy + fh), x1 = (int)ceil(fx + fw);
    if (y1 > sh) y1 = sh;
    if (x1 > sw) x1 = sw;
    int ch = y1 - y0, cw = x1 - x0, ox, ow;
    if (grow(&w->pix, &w->pix_cap, (size_t)(cw + 64) * ch * 3)) return error_set(err, "out of memory");
    if (jpeg_decode_crop(w->jpeg, data, size, d, 3, false, x0, y0, cw, ch, w->pix, w->pix_cap, &ox, &ow, err)) return 1;
    if (d == 1) {
        size_t need = resize_scratch_floats(box.w, s->out, s->out, 3) * sizeof(float);
        if (grow((uint8_t **)&w->scratch, &w->scratch_cap, need)) return error_set(err, "out of memory");
        resize_area(w->pix, (size_t)ow * 3, 3, 0, x0 - ox, box.h, box.w, w->crop, s->out, s->out, w->scratch);
        return 0;
    }
    size_t need = resize_frac_scratch_floats(cw + 1, s->out, 3) * sizeof(float);
    if (grow((uint8_t **)&w->scratch, &w->scratch_cap, need)) return error_set(err, "out of memory");
    /* window in the decoded buffer: rows from y0, columns from ox */
    double wy = fy - y0, wx = fx - ox;
    if (wy + fh > ch) fh = ch - wy; /* the last scaled row/column may be partial (TJSCALED rounds up) */
    if (wx + fw > ow) fw = ow - wx;
    resize_area_frac(w->pix, (size_t)ow * 3, 3, wy, wx, fh, fw, w->crop, s->out, s->out, w->scratch);
    return 0;
}

/* Resizes box of raw RGB pixels src [ih, iw, 3] into w->crop. */
static int crop_raw(ImageSource *s, Worker *w, const uint8_t *src, int iw, CropBox box, Error *err) {
    size_t need = resize_scratch_floats(box.w, s->out, s->out, 3) * sizeof(float);
    if (grow((uint8_t **)&w->scratch, &w->scratch_cap, need)) return error_set(err, "out of memory");
    resize_area(src, (size_t)iw * 3, 3, box.y, box.x, box.h, box.w, w->crop, s->out, s->out, w->scratch);
    return 0;
}

/* The crop of an image of ih x iw for sample i of epoch e; *flip is set for training. */
static CropBox sample_crop(const ImageSource *s, int64_t e, int64_t i, int ih, int iw, bool *flip) {
    *flip = false;
    if (!s->train) return crop_center(ih, iw, s->center_ratio);
    Rng r;
    rng_init(&r, s->seed, RNG_AUGMENT, (uint64_t)e, (uint64_t)i);
    CropBox b = crop_random_resized(&r, ih, iw, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0);
    *flip = rng_u32(&r) & 1u;
    return b;
}

static int image_produce(SampleSource *src, int64_t epoch, int64_t i, int worker, float *out, int32_t *label,
                         Error *err) {
    ImageSource *s = (ImageSource *)src;
    Worker *w = &s->workers[worker];
    bool flip;
    int rc;
    if (s->beton) {
        BetonImage im;
        const uint8_t *data = NULL;
        rc = beton_bytes(s, w, i, &im, &data, err);
        if (rc > 0) error_prefix(err, "%s sample %lld", beton_path(s->beton), (long long)i);
        if (rc) return rc; /* 1: a corrupt record; -1: the file cannot be read */
        CropBox box = sample_crop(s, epoch, i, im.height, im.width, &flip);
        rc = im.mode == 0 ? crop_jpeg(s, w, data, im.size, im.height, im.width, box, err)
                          : crop_raw(s, w, data, im.width, box, err);
        if (rc) {
            error_prefix(err, "%s sample %lld", beton_path(s->beton), (long long)i);
            return 1;
        }
        *label = (int32_t)beton_get_int(s->beton, s->label_field, i);
    } else {
        const char *path = s->folder.paths[i];
        size_t size = 0;
        if (read_file(w, path, &size, err)) return 1;
        int ih, iw;
        if (jpeg_header(w->jpeg, w->file, size, &iw, &ih, err) == 0) {
            CropBox box = sample_crop(s, epoch, i, ih, iw, &flip);
            rc = crop_jpeg(s, w, w->file, size, ih, iw, box, err);
        } else {
            Image png;
            rc = image_load(path, 3, &png, err);
            if (rc == 0) {
                CropBox box = sample_crop(s, epoch, i, png.h, png.w, &flip);
                rc = crop_raw(s, w, png.pix, png.w, box, err);
                image_free(&png);
            }
        }
        if (rc) {
            error_prefix(err, "%s", path);
            return 1;
        }
        *label = s->folder.labels[i];
    }
    int n = s->out;
    if (s->ra_depth > 0 && s->train) {
        /* RandAugment sees the flipped crop, as after torchvision's RandomHorizontalFlip in Composer's pipeline */
        if (flip) {
            for (int y = 0; y < n; y++)
                for (int x = 0; x < n / 2; x++)
                    for (int c = 0; c < 3; c++) {
                        uint8_t *a = w->crop + ((size_t)y * n + x) * 3 + c, *b = w->crop + ((size_t)y * n + n - 1 - x) * 3 + c;
                        uint8_t t = *a;
                        *a = *b;
                        *b = t;
                    }
            flip = false;
        }
        Rng r;
        rng_init(&r, s->seed, RNG_RANDAUGMENT, (uint64_t)epoch, (uint64_t)i);
        randaugment_apply(w->crop, n, n, s->ra_depth, s->ra_severity, s->ra_set, &r, w->ra_scratch);
    }
    /* flip and normalize into the batch */
    for (int y = 0; y < n; y++) {
        const uint8_t *row = w->crop + (size_t)y * n * 3;
        float *o = out + (size_t)y * n * 3;
        for (int x = 0; x < n; x++) {
            const uint8_t *p = row + (size_t)(flip ? n - 1 - x : x) * 3;
            o[3 * x] = s->lut[0][p[0]];
            o[3 * x + 1] = s->lut[1][p[1]];
            o[3 * x + 2] = s->lut[2][p[2]];
        }
    }
    return 0;
}

static int image_set_randaugment(SampleSource *src, int depth, double severity, int set, Error *err) {
    ImageSource *s = (ImageSource *)src;
    s->ra_depth = depth;
    s->ra_severity = severity;
    s->ra_set = set;
    return 0;
}

static int image_set_output(SampleSource *src, int h, int w, Error *err) {
    ImageSource *s = (ImageSource *)src;
    if (h != w) return error_set(err, "imagenet crops are square (asked for %dx%d)", h, w);
    s->out = h;
    src->h = src->w = h;
    return 0;
}

static int64_t image_page_of(const void *src, int64_t i) {
    const ImageSource *s = src;
    return beton_sample_page(s->beton, i);
}

static void image_destroy(SampleSource *src) {
    ImageSource *s = (ImageSource *)src;
    if (!s) return;
    for (int i = 0; s->workers && i < s->n_workers; i++) {
        Worker *w = &s->workers[i];
        jpeg_codec_free(w->jpeg);
        free(w->pix);
        free(w->crop);
        free(w->ra_scratch);
        free(w->scratch);
        free(w->file);
    }
    free(s->workers);
    if (s->beton) beton_close(s->beton);
    imagefolder_free(&s->folder);
    free(s);
}

/* Opens the .beton: its "image" (or first RGB) and "label" (or first Int) fields; counts the classes. */
static int open_beton(ImageSource *s, const char *path, const char *what, Error *err) {
    if (beton_open(path, &s->beton, err)) return error_prefix(err, "%s", what);
    s->image_field = beton_find_field(s->beton, "image");
    s->label_field = beton_find_field(s->beton, "label");
    for (int f = 0; f < beton_num_fields(s->beton); f++) {
        BetonType t = beton_field(s->beton, f)->type;
        if (s->image_field < 0 && t == BETON_RGB) s->image_field = f;
        if (s->label_field < 0 && t == BETON_INT) s->label_field = f;
    }
    if (s->image_field < 0 || beton_field(s->beton, s->image_field)->type != BETON_RGB ||
        s->label_field < 0 || beton_field(s->beton, s->label_field)->type != BETON_INT)
        return error_set(err, "%s: %s needs an RGBImage field and an Int label field (FFCV's ImageNet layout)", what,
                         path);
    s->base.n = beton_num_samples(s->beton);
    int64_t max = -1;
    for (int64_t i = 0; i < s->base.n; i++) {
        int64_t v = beton_get_int(s->beton, s->label_field, i);
        if (v < 0 || v > INT32_MAX)
            return error_set(err, "%s: %s sample %lld has label %lld; labels must be 0..2^31", what, path, (long long)i,
                             (long long)v);
        if (v > max) max = v;
    }
    s->base.num_classes = (int)(max + 1);
    return 0;
}

int image_source_create(const Choice *dataset, const char *what, const LoaderArgs *args, SampleSource **out,
                        Error *err) {
    *out = NULL;
    const ImagenetOptions *o = dataset->options;
    ImageSource *s = calloc(1, sizeof *s);
    if (!s) return error_set(err, "out of memory");
    s->opt = o;
    s->seed = args->seed;
    s->train = args->train && o->is_train;
    s->out = o->crop_size;
    s->center_ratio = o->resize_size > 0 ? (double)o->crop_size / o->resize_size : 224.0 / 256.0;
    int rc = 0;
    const char *split = o->is_train ? "train" : "val";
    if (o->use_ffcv) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", o->ffcv_dir ? o->ffcv_dir : ".",
                 o->ffcv_dest ? o->ffcv_dest : o->is_train ? "imagenet_train.ffcv" : "imagenet_val.ffcv");
        if (!fs_exists(path) && o->ffcv_write_dataset) {
            if (!o->datadir)
                rc = error_set(err, "%s.imagenet: %s is missing and ffcv_write_dataset needs datadir to write it from",
                               what, path);
            else {
                char src[4096];
                snprintf(src, sizeof src, "%s/%s", o->datadir, split);
                ConvertOptions co;
                convert_options_composer(&co);
                fprintf(stderr, "%s: writing %s from %s (Composer's ffcv_write_dataset settings)\n", what, path, src);
                rc = convert_run(src, path, &co, NULL, err);
            }
        } else if (!fs_exists(path)) {
            rc = error_set(err, "%s.imagenet: %s not found (set ffcv_dir/ffcv_dest, or ffcv_write_dataset: true with "
                                "datadir to write it)", what, path);
        }
        if (rc == 0) rc = open_beton(s, path, what, err);
    } else {
        char root[4096];
        if (!o->datadir) rc = error_set(err, "%s.imagenet: give datadir (an ImageFolder root with %s/) or use_ffcv", what,
                                        split);
        else {
            snprintf(root, sizeof root, "%s/%s", o->datadir, split);
            rc = imagefolder_scan(root, &s->folder, err);
            if (rc) error_prefix(err, "%s.imagenet", what);
            s->base.n = s->folder.n;
            s->base.num_classes = s->folder.n_classes;
            s->base.class_names = (const char *const *)s->folder.classes;
        }
    }
    if (rc == 0 && o->num_classes) {
        if (o->num_classes < s->base.num_classes)
            rc = error_set(err, "%s.imagenet.num_classes is %d but the data has %d classes", what, o->num_classes,
                           s->base.num_classes);
        s->base.num_classes = o->num_classes;
    }
    if (rc) {
        image_destroy(&s->base);
        return -1;
    }
    SampleSource *b = &s->base;
    b->h = b->w = s->out;
    b->c = 3;
    for (int ch = 0; ch < 3; ch++) {
        b->mean[ch] = (float)o->mean.v[ch];
        b->std[ch] = (float)o->std.v[ch];
        for (int v = 0; v < 256; v++) s->lut[ch][v] = (float)((v - o->mean.v[ch]) / o->std.v[ch]);
    }
    b->shuffle = o->shuffle;
    b->drop_last = o->drop_last;
    b->order = o->order != ORDER_AUTO ? (LoaderOrder)o->order : o->shuffle ? ORDER_RANDOM : ORDER_SEQUENTIAL;
    if (b->order == ORDER_QUASI_RANDOM && !s->beton) b->order = ORDER_RANDOM; /* no pages in an ImageFolder */
    if (!o->shuffle) b->order = ORDER_SEQUENTIAL;
    b->produce = image_produce;
    b->prepare = image_prepare;
    b->page_of = s->beton ? image_page_of : NULL;
    b->set_output = image_set_output;
    b->set_randaugment = image_set_randaugment;
    b->destroy = image_destroy;
    *out = b;
    return 0;
}
