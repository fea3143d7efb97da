/* jpeg.c — JPEG decode/encode through TurboJPEG, crop decoding through libjpeg(-turbo)'s own API (see jpeg.h).
 *
 * Warnings: TurboJPEG reports a warning as a -1 return with tjGetErrorCode() == TJERR_WARNING and the text of
 * the first warning, but also reports a fatal error that follows a warning as TJERR_WARNING (with the error's
 * text). So a TurboJPEG failure is accepted only when its text is one of libjpeg's warnings after which the
 * image is whole (extraneous bytes between markers, unknown JFIF revision or Adobe transform, bad ICC marker,
 * odd SOS parameters), and even then the image is decoded again through the libjpeg path (jpeg_decode_crop),
 * whose error manager sees every warning's code and fails on the ones meaning data is missing or garbled
 * (jerror.h: JWRN_JPEG_EOF, JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE, JWRN_ARITH_BAD_CODE, JWRN_MUST_RESYNC,
 * JWRN_BOGUS_PROGRESSION). Clean streams, nearly all of them, take the TurboJPEG path only. */
#include "data/jpeg.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include <jpeglib.h>
/* after jpeglib.h: the message list depends on jconfig.h */
#include <jerror.h>

/* libjpeg error manager: errors and data-corruption warnings longjmp back to jpeg_decode_crop with a message;
 * nothing is printed. */
typedef struct CropErr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} CropErr;

/* Progress hook: refuses progressive images with more than 500 scans, as TJFLAG_LIMITSCANS does. */
typedef struct CropProgress {
    struct jpeg_progress_mgr pub;
    CropErr *err;
} CropProgress;

struct JpegCodec {
    tjhandle dec, enc; /* enc is created on first use: readers only decode */
    bool crop_ready;   /* crop: created on first use */
    struct jpeg_decompress_struct crop;
    CropErr crop_err;
    CropProgress crop_progress;
};

JpegCodec *jpeg_codec_new(void) {
    JpegCodec *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->dec = tjInitDecompress();
    if (!c->dec) {
        free(c);
        return NULL;
    }
    return c;
}

void jpeg_codec_free(JpegCodec *c) {
    if (!c) return;
    if (c->dec) tjDestroy(c->dec);
    if (c->enc) tjDestroy(c->enc);
    if (c->crop_ready) jpeg_destroy_decompress(&c->crop);
    free(c);
}

/* Whether a TurboJPEG failure message is one of libjpeg's warnings after which the image is whole. */
static int warning_is_benign(const char *msg) {
    static const char *const ok[] = {
        "extraneous bytes before marker",           /* JWRN_EXTRANEOUS_DATA */
        "Unknown Adobe color transform code",       /* JWRN_ADOBE_XFORM */
        "unknown JFIF revision number",             /* JWRN_JFIF_MAJOR */
        "Invalid SOS parameters for sequential JPEG", /* JWRN_NOT_SEQUENTIAL */
        "bad ICC marker",                           /* JWRN_BOGUS_ICC */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strstr(msg, ok[i])) return 1;
    return 0;
}

int jpeg_header(JpegCodec *c, const uint8_t *data, size_t size, int *w, int *h, Error *err) {
    if (!data || size == 0) return error_set(err, "JPEG: empty data");
    if (size > ULONG_MAX) return error_set(err, "JPEG: %zu bytes is too large", size);
    int subsamp, colorspace;
    *w = *h = 0;
    if (tjDecompressHeader3(c->dec, data, (unsigned long)size, w, h, &subsamp, &colorspace) != 0) {
        const char *msg = tjGetErrorStr2(c->dec);
        if (tjGetErrorCode(c->dec) != TJERR_WARNING || !warning_is_benign(msg))
            return error_set(err, "not a readable JPEG (%s)", msg);
    }
    /* TurboJPEG 2.1 returns success without a size when the stream ends inside the header */
    if (*w <= 0 || *h <= 0) return error_set(err, "not a readable JPEG (no image size: the header is cut short)");
    return 0;
}

int jpeg_pick_denom(int crop_w, int crop_h, int out_w, int out_h) {
    for (int d = 8; d > 1; d /= 2)
        if ((long long)crop_w >= (long long)d * out_w && (long long)crop_h >= (long long)d * out_h) return d;
    return 1;
}

int jpeg_decode(JpegCodec *c, const uint8_t *data, size_t size, int denom, int channels, bool fast, uint8_t *out,
                size_t cap, int *w, int *h, Error *err) {
    if (denom != 1 && denom != 2 && denom != 4 && denom != 8)
        return error_set(err, "JPEG: scale 1/%d is not supported (use 1, 2, 4 or 8)", denom);
    if (channels != 1 && channels != 3)
        return error_set(err, "JPEG: %d channels asked for (use 1 or 3)", channels);
    int fw, fh;
    if (jpeg_header(c, data, size, &fw, &fh, err)) return -1;
    tjscalingfactor sf = {1, denom};
    int sw = TJSCALED(fw, sf), sh = TJSCALED(fh, sf);
    size_t need = (size_t)sw * (size_t)sh * (size_t)channels;
    if (need > cap)
        return error_set(err, "JPEG: a %dx%d image (1/%d of %dx%d) needs %zu bytes, the buffer holds %zu", sw, sh,
                         denom, fw, fh, need, cap);
    int flags = (fast ? TJFLAG_FASTDCT : TJFLAG_ACCURATEDCT) | TJFLAG_LIMITSCANS;
    /* A fresh decompressor for every image: libjpeg keeps quantization and Huffman tables between images (for
     * abbreviated streams), so a corrupt image that lacks them would be decoded with the previous image's. */
    tjhandle fresh = tjInitDecompress();
    if (!fresh) return error_set(err, "JPEG: cannot start the decoder");
    tjDestroy(c->dec);
    c->dec = fresh;
    if (tjDecompress2(c->dec, data, (unsigned long)size, out, sw, 0, sh, channels == 3 ? TJPF_RGB : TJPF_GRAY,
                      flags) != 0) {
        const char *msg = tjGetErrorStr2(c->dec);
        if (tjGetErrorCode(c->dec) != TJERR_WARNING || !warning_is_benign(msg))
            return error_set(err, "corrupt JPEG (%s)", msg);
        /* a harmless first warning may hide a later one that is not: decode again, seeing every warning */
        int ox, ow;
        if (jpeg_decode_crop(c, data, size, denom, channels, fast, 0, 0, sw, sh, out, cap, &ox, &ow, err)) return -1;
    }
    *w = sw;
    *h = sh;
    return 0;
}

static void crop_error_exit(j_common_ptr ci) {
    CropErr *e = (CropErr *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jump, 1);
}

static void crop_emit_message(j_common_ptr ci, int level) {
    if (level >= 0) return; /* trace output */
    CropErr *e = (CropErr *)ci->err;
    switch (ci->err->msg_code) {
    case JWRN_JPEG_EOF: case JWRN_HIT_MARKER: case JWRN_HUFF_BAD_CODE: case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC: case JWRN_BOGUS_PROGRESSION:
        (*ci->err->format_message)(ci, e->msg);
        longjmp(e->jump, 1); /* part of the image is missing or garbled */
    default:
        ci->err->num_warnings++; /* the image is whole */
    }
}

static void crop_output_message(j_common_ptr ci) { (void)ci; }

static void crop_progress_monitor(j_common_ptr ci) {
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (d->input_scan_number > 500) {
        CropProgress *p = (CropProgress *)ci->progress;
        snprintf(p->err->msg, sizeof p->err->msg, "progressive JPEG with more than 500 scans");
        longjmp(p->err->jump, 1);
    }
}

int jpeg_decode_crop(JpegCodec *c, const uint8_t *data, size_t size, int denom, int channels, bool fast, int x0,
                     int y0, int cw, int ch, uint8_t *out, size_t cap, int *ox, int *ow, Error *err) {
    enum { MARGIN = 16 }; /* scaled columns decoded beyond each side: fancy upsampling at the edge of a cropped
                           * region differs from the full image within 2 columns; 16 covers a whole 4:2:0 MCU */
    if (denom != 1 && denom != 2 && denom != 4 && denom != 8)
        return error_set(err, "JPEG: scale 1/%d is not supported (use 1, 2, 4 or 8)", denom);
    if (channels != 1 && channels != 3)
        return error_set(err, "JPEG: %d channels asked for (use 1 or 3)", channels);
    if (!data || size == 0) return error_set(err, "JPEG: empty data");
    if (size > ULONG_MAX) return error_set(err, "JPEG: %zu bytes is too large", size);
    struct jpeg_decompress_struct *d = &c->crop;
    /* a fresh decompressor for every image: libjpeg keeps tables between images (see jpeg_decode) */
    if (c->crop_ready) {
        jpeg_destroy_decompress(d);
        c->crop_ready = false;
    }
    if (!c->crop_ready) {
        d->err = jpeg_std_error(&c->crop_err.pub);
        c->crop_err.pub.error_exit = crop_error_exit;
        c->crop_err.pub.emit_message = crop_emit_message;
        c->crop_err.pub.output_message = crop_output_message;
        if (setjmp(c->crop_err.jump)) return error_set(err, "JPEG: cannot start the decoder (%s)", c->crop_err.msg);
        jpeg_create_decompress(d);
        c->crop_progress.pub.progress_monitor = crop_progress_monitor;
        c->crop_progress.err = &c->crop_err;
        c->crop_ready = true;
    }
    c->crop_err.msg[0] = 0;
    if (setjmp(c->crop_err.jump)) {
        jpeg_abort_decompress(d);
        return error_set(err, "corrupt JPEG (%s)", c->crop_err.msg);
    }
    d->progress = &c->crop_progress.pub;
    jpeg_mem_src(d, data, (unsigned long)size);
    jpeg_read_header(d, TRUE);
    d->scale_num = 1;
    d->scale_denom = (unsigned)denom;
    d->dct_method = fast ? JDCT_IFAST : JDCT_ISLOW;
    d->out_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_calc_output_dimensions(d);
    int W = (int)d->output_width, H = (int)d->output_height;
    if (x0 < 0 || y0 < 0 || cw < 1 || ch < 1 || x0 > W - cw || y0 > H - ch) {
        jpeg_abort_decompress(d);
        return error_set(err, "JPEG: crop %dx%d at (%d, %d) is outside the %dx%d image (scale 1/%d)", cw, ch, x0, y0,
                         W, H, denom);
    }
    jpeg_start_decompress(d);
    JDIMENSION xs = (JDIMENSION)(x0 > MARGIN ? x0 - MARGIN : 0);
    JDIMENSION xe = (JDIMENSION)(x0 + cw + MARGIN < W ? x0 + cw + MARGIN : W), xw = xe - xs;
    if (xs > 0 || xw < (JDIMENSION)W) jpeg_crop_scanline(d, &xs, &xw);
    size_t stride = (size_t)xw * (size_t)channels;
    if (stride * (size_t)ch > cap) {
        jpeg_abort_decompress(d);
        return error_set(err, "JPEG: a %ux%d crop region needs %zu bytes, the buffer holds %zu", (unsigned)xw, ch,
                         stride * (size_t)ch, cap);
    }
    if (y0 > 0 && jpeg_skip_scanlines(d, (JDIMENSION)y0) != (JDIMENSION)y0) {
        jpeg_abort_decompress(d);
        return error_set(err, "corrupt JPEG (could not skip to row %d)", y0);
    }
    JSAMPROW rows[16];
    for (int y = 0; y < ch;) {
        int n = ch - y < 16 ? ch - y : 16;
        for (int k = 0; k < n; k++) rows[k] = out + (size_t)(y + k) * stride;
        JDIMENSION got = jpeg_read_scanlines(d, rows, (JDIMENSION)n);
        if (got == 0) {
            jpeg_abort_decompress(d);
            return error_set(err, "corrupt JPEG (no data for row %d)", y0 + y);
        }
        y += (int)got;
    }
    jpeg_abort_decompress(d); /* the rows below the crop are not needed */
    *ox = (int)xs;
    *ow = (int)xw;
    return 0;
}

int jpeg_encode(JpegCodec *c, const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *size,
                Error *err) {
    *out = NULL;
    *size = 0;
    if (w <= 0 || h <= 0) return error_set(err, "JPEG encode: bad size %dx%d", w, h);
    if (quality < 1 || quality > 100) return error_set(err, "JPEG encode: quality %d is not in 1..100", quality);
    if (!c->enc && !(c->enc = tjInitCompress())) return error_set(err, "JPEG encode: cannot start the encoder");
    unsigned long cap = tjBufSize(w, h, TJSAMP_420);
    if (cap == (unsigned long)-1) return error_set(err, "JPEG encode: %dx%d is too large", w, h);
    uint8_t *buf = malloc(cap);
    if (!buf) return error_set(err, "JPEG encode: out of memory (%lu bytes)", cap);
    unsigned long len = cap;
    /* OpenCV's imencode: libjpeg defaults (accurate DCT, standard Huffman tables), 4:2:0. */
    if (tjCompress2(c->enc, rgb, w, 0, h, TJPF_RGB, &buf, &len, TJSAMP_420, quality,
                    TJFLAG_NOREALLOC | TJFLAG_ACCURATEDCT) != 0) {
        free(buf);
        return error_set(err, "JPEG encode failed (%s)", tjGetErrorStr2(c->enc));
    }
    uint8_t *shrunk = realloc(buf, len);
    *out = shrunk ? shrunk : buf;
    *size = len;
    return 0;
}
