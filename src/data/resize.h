/* resize.h — resampling a crop window of an 8-bit image to an output size with OpenCV's INTER_AREA semantics,
 * the interpolation FFCV uses for RandomResizedCrop, CenterCrop and the writer's max_resolution downscale.
 *
 * The result equals cv::resize(src(window), dst, Size(dw, dh), 0, 0, INTER_AREA) of OpenCV 4.x/5.x without
 * IPP (IPP is not used for INTER_AREA by default): bit for bit on every fixture written by
 * tools/make_resize_fixtures.py. The paths, as in OpenCV's imgproc/src/resize.cpp:
 *   - same size: a copy;
 *   - shrinking on both axes (scale = window/output >= 1), integer factors: exact box sums, rounded as OpenCV
 *     does ((s + 2) >> 2 for 2x2, otherwise cvRound(s * (1.f / area)));
 *   - shrinking on both axes, other factors: area averaging with float weights, horizontal then vertical pass,
 *     summed in OpenCV's order and rounded half to even;
 *   - growing on either axis: OpenCV's "area emulation" — a 2-tap kernel with weights
 *     fx = (dx+1) - (sx+1)/scale (frac, 0 if <= 0), in 11-bit fixed point, rows combined like OpenCV's SIMD
 *     vertical pass.
 * The grow path's rows are combined as OpenCV 4.x/5.x do for uchar (VResizeLinear's uchar specialization: the
 * same truncating formula in its SIMD and scalar code), not with the exact fixed-point rounding of OpenCV 3.x.
 * Window and output sizes must be >= 1 (below 2^24) and the window inside the image; nothing is allocated. */
#ifndef CTRAIN_DATA_RESIZE_H
#define CTRAIN_DATA_RESIZE_H

#include <stddef.h>
#include <stdint.h>

/* Floats of scratch that resize_area needs for a window ww pixels wide resized to dw x dh with c channels. */
size_t resize_scratch_floats(int ww, int dw, int dh, int c);

/* Resizes the window rows [y0, y0+wh) x cols [x0, x0+ww) of src [sh, sw, c] uint8 (row stride `stride` bytes)
 * to dst [dh, dw, c] uint8 (tightly packed), like cv::resize(src(window), dst, Size(dw, dh), 0, 0, INTER_AREA).
 * scratch: at least resize_scratch_floats(ww, dw, dh, c) floats, any alignment; clobbered. */
void resize_area(const uint8_t *src, size_t stride, int c, int y0, int x0, int wh, int ww, uint8_t *dst, int dh,
                 int dw, float *scratch);

/* Floats of scratch that resize_area_frac needs (window up to ww pixels wide, output dw wide, c channels). */
size_t resize_frac_scratch_floats(int ww, int dw, int c);

/* Area averaging of a window with fractional edges, for DCT-scaled crops whose true edges fall between the
 * scaled pixels: rows [y0, y0+wh) x cols [x0, x0+ww) (real numbers inside the image [sh, sw]) of src [sh, sw, c]
 * to dst [dh, dw, c], each output pixel the exact mean over its rectangle (source pixels weighted by overlap),
 * rounded half to even. Shrinking only: wh >= dh and ww >= dw. With integer edges it equals resize_area's area
 * path to rounding (tested). scratch: resize_frac_scratch_floats(ceil(ww) + 1, dw, c) floats. */
void resize_area_frac(const uint8_t *src, size_t stride, int c, double y0, double x0, double wh, double ww,
                      uint8_t *dst, int dh, int dw, float *scratch);

#endif
