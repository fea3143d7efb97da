/* image.c — JPEG/PNG decoding and resize/crop/normalize for `ctrain predict` (see image.h). */
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "core/fsutil.h"
#include "io/image.h"

static int load_jpeg(const char *path, const uint8_t *data, size_t size, int channels, Image *out, Error *err) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return error_set(err, "%s: cannot start the JPEG decoder", path);
    int w, h, subsamp, colorspace, rc = 0;
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &subsamp, &colorspace) != 0) {
        rc = error_set(err, "%s: not a readable JPEG (%s)", path, tjGetErrorStr2(tj));
    } else {
        out->pix = malloc((size_t)w * h * channels);
        if (!out->pix) rc = error_set(err, "%s: out of memory", path);
        else if (tjDecompress2(tj, data, (unsigned long)size, out->pix, w, 0, h, channels == 1 ? TJPF_GRAY : TJPF_RGB,
                               TJFLAG_ACCURATEDCT) != 0 && tjGetErrorCode(tj) == TJERR_FATAL)
            rc = error_set(err, "%s: corrupt JPEG (%s)", path, tjGetErrorStr2(tj));
        out->h = h;
        out->w = w;
        out->c = channels;
    }
    tjDestroy(tj);
    if (rc) image_free(out);
    return rc;
}

static int load_png(const char *path, int channels, Image *out, Error *err) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) return error_set(err, "%s: not a readable PNG (%s)", path, im.message);
    im.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    out->pix = malloc(PNG_IMAGE_SIZE(im));
    if (!out->pix) {
        png_image_free(&im);
        return error_set(err, "%s: out of memory", path);
    }
    /* transparent pixels are composed over black, as PIL's convert does */
    png_color black = {0, 0, 0};
    if (!png_image_finish_read(&im, &black, out->pix, 0, NULL)) {
        image_free(out);
        return error_set(err, "%s: corrupt PNG (%s)", path, im.message);
    }
    out->h = (int)im.height;
    out->w = (int)im.width;
    out->c = channels;
    return 0;
}

int image_load(const char *path, int channels, Image *out, Error *err) {
    memset(out, 0, sizeof *out);
    if (channels != 1 && channels != 3)
        return error_set(err, "%s: the model takes %d channels; photos can feed 1 (gray) or 3 (RGB)", path, channels);
    uint8_t *data;
    size_t size;
    if (fs_read_all(path, &data, &size, err)) return -1;
    int rc;
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) rc = load_jpeg(path, data, size, channels, out, err);
    else if (size >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) rc = load_png(path, channels, out, err);
    else rc = error_set(err, "%s: not a JPEG or PNG file", path);
    free(data);
    return rc;
}

void image_free(Image *im) {
    free(im->pix);
    memset(im, 0, sizeof *im);
}

/* Antialiased linear resampling weights (PIL's "bilinear" with support scaled on downscaling): for each of
 * out_n outputs, the first input index and the weights of in_n inputs. */
typedef struct Taps {
    int *first, *count;
    float *w;    /* [out_n, max] */
    int max;
} Taps;

static int taps_make(Taps *t, int in_n, int out_n, double offset, double span) {
    double scale = span / out_n, support = scale > 1 ? scale : 1.0;
    t->max = (int)ceil(support) * 2 + 1;
    t->first = malloc((size_t)out_n * sizeof *t->first);
    t->count = malloc((size_t)out_n * sizeof *t->count);
    t->w = calloc((size_t)out_n * t->max, sizeof *t->w);
    if (!t->first || !t->count || !t->w) return -1;
    for (int o = 0; o < out_n; o++) {
        double center = offset + (o + 0.5) * scale;
        int lo = (int)floor(center - support), hi = (int)ceil(center + support);
        if (lo < 0) lo = 0;
        if (hi > in_n) hi = in_n;
        double total = 0;
        int n = 0;
        for (int i = lo; i < hi && n < t->max; i++, n++) {
            double x = (i + 0.5 - center) / support;
            double v = 1.0 - fabs(x);
            t->w[(size_t)o * t->max + n] = (float)(v > 0 ? v : 0);
            total += v > 0 ? v : 0;
        }
        for (int k = 0; k < n && total > 0; k++) t->w[(size_t)o * t->max + k] /= (float)total;
        t->first[o] = lo;
        t->count[o] = n;
    }
    return 0;
}

static void taps_free(Taps *t) {
    free(t->first);
    free(t->count);
    free(t->w);
}

int image_preprocess(const Image *im, int resize, int crop, const float *mean, const float *std, float *out,
                     Error *err) {
    /* the crop window in source pixels: the resized image's central crop, mapped back */
    double s = (double)resize / (im->h < im->w ? im->h : im->w);
    double rh = im->h * s, rw = im->w * s;
    double y0 = (rh - crop) / 2 / s, x0 = (rw - crop) / 2 / s, span = crop / s;
    Taps ty, tx;
    memset(&ty, 0, sizeof ty);
    memset(&tx, 0, sizeof tx);
    int rc = 0;
    float *row = malloc((size_t)im->w * im->c * sizeof *row);
    if (!row || taps_make(&ty, im->h, crop, y0, span) || taps_make(&tx, im->w, crop, x0, span))
        rc = error_set(err, "out of memory resizing an image");
    for (int oy = 0; rc == 0 && oy < crop; oy++) {
        /* vertical pass into one row, then horizontal pass */
        for (int i = 0; i < im->w * im->c; i++) row[i] = 0;
        for (int k = 0; k < ty.count[oy]; k++) {
            float wgt = ty.w[(size_t)oy * ty.max + k];
            const uint8_t *src = im->pix + (size_t)(ty.first[oy] + k) * im->w * im->c;
            for (int i = 0; i < im->w * im->c; i++) row[i] += wgt * src[i];
        }
        for (int ox = 0; ox < crop; ox++)
            for (int c = 0; c < im->c; c++) {
                float v = 0;
                for (int k = 0; k < tx.count[ox]; k++) v += tx.w[(size_t)ox * tx.max + k] * row[(size_t)(tx.first[ox] + k) * im->c + c];
                out[((size_t)oy * crop + ox) * im->c + c] = (v - mean[c]) / std[c];
            }
    }
    free(row);
    taps_free(&ty);
    taps_free(&tx);
    return rc;
}
