#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

/*
 * ZooImages' JPEG entry point.
 *
 * libjpeg reports a fatal error by calling error_exit, which must not return; its default
 * calls exit(). The only safe way out is a longjmp, and a longjmp must never cross a Swift
 * frame. So the whole decode runs inside this one C function: setjmp here, longjmp from
 * the C error_exit below, with only libjpeg's C frames in between. Swift calls
 * zoo_jpeg_decode and gets a status code and a message; it never sees a jump.
 *
 * The functions are static inline in this module-map header so that no C target is needed:
 * clang compiles them into the Swift module that imports CJPEG. The entry points are also
 * noinline: a function calling setjmp must keep its own frame (LLVM already refuses to inline
 * such functions; the attribute makes it explicit).
 */

/** Result of zoo_jpeg_decode. On success `pixels` is malloc'd (width*height*components bytes),
 *  owned by the caller (free it with zoo_jpeg_free). */
typedef struct {
    int status;                 /* 0 ok, 1 libjpeg error, 2 too many pixels, 3 out of memory, 4 truncated/corrupt data */
    int message_code;           /* libjpeg's message code of the error, when status is 1 or 4 */
    char message[JMSG_LENGTH_MAX];
    unsigned int width;
    unsigned int height;
    int components;             /* 1 (gray), 3 (RGB) or 4 (CMYK as stored) */
    int jpeg_color_space;       /* J_COLOR_SPACE of the file */
    int saw_adobe_marker;
    int adobe_transform;
    int progressive;
    unsigned char *pixels;
} zoo_jpeg_result;

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    zoo_jpeg_result *result;
} zoo_jpeg_error_mgr;

typedef struct {
    struct jpeg_progress_mgr pub;
    int max_scans;
} zoo_jpeg_progress_mgr;

static void zoo_jpeg_error_exit(j_common_ptr cinfo) {
    zoo_jpeg_error_mgr *err = (zoo_jpeg_error_mgr *)cinfo->err;
    if (err->result->status == 0) err->result->status = 1;
    err->result->message_code = err->pub.msg_code;
    (*err->pub.format_message)(cinfo, err->result->message);
    longjmp(err->jump, 1);
}

/* Warnings (msg_level -1) that mean the data is truncated or corrupt become fatal, as in
 * Pillow, which refuses truncated images; other warnings and trace messages are silent. */
static void zoo_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    zoo_jpeg_error_mgr *err = (zoo_jpeg_error_mgr *)cinfo->err;
    if (msg_level >= 0) return;
    err->pub.num_warnings++;
    int code = err->pub.msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE) {
        err->result->status = 4;
        zoo_jpeg_error_exit(cinfo);
    }
}

static void zoo_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Refuses absurd scan counts (progressive JPEGs with thousands of tiny scans are a known
 * decode-time bomb). */
static void zoo_jpeg_progress(j_common_ptr cinfo) {
    zoo_jpeg_progress_mgr *p = (zoo_jpeg_progress_mgr *)cinfo->progress;
    if (cinfo->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (d->input_scan_number > p->max_scans) {
            zoo_jpeg_error_mgr *err = (zoo_jpeg_error_mgr *)cinfo->err;
            err->result->status = 1;
            err->result->message_code = 0;
            snprintf(err->result->message, JMSG_LENGTH_MAX, "more than %d scans", p->max_scans);
            longjmp(err->jump, 1);
        }
    }
}

static inline void zoo_jpeg_free(unsigned char *pixels) { free(pixels); }

/**
 * Decodes a whole JPEG held in memory. Gray files come out as 1 component, YCbCr/RGB as 3
 * (RGB), CMYK/YCCK as 4 (CMYK as stored, i.e. Adobe-inverted for Adobe files). Refuses
 * images with more than max_pixels pixels before allocating any image memory.
 * scale_denom 2, 4 or 8 decodes at 1/2, 1/4 or 1/8 of the size in the DCT domain (libjpeg's
 * scaled IDCT: each side ceil(side / scale_denom)); anything else decodes at full size.
 */
__attribute__((noinline)) static inline void zoo_jpeg_decode(const unsigned char *data, unsigned long size, unsigned long long max_pixels,
                                   int max_scans, int scale_denom, zoo_jpeg_result *result) {
    struct jpeg_decompress_struct cinfo;
    zoo_jpeg_error_mgr err;
    zoo_jpeg_progress_mgr progress;
    unsigned char *volatile pixels = NULL;

    memset(result, 0, sizeof(*result));
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = zoo_jpeg_error_exit;
    err.pub.emit_message = zoo_jpeg_emit_message;
    err.pub.output_message = zoo_jpeg_output_message;
    err.result = result;

    if (setjmp(err.jump)) {
        if (pixels) free(pixels);
        jpeg_destroy_decompress(&cinfo);
        result->pixels = NULL;
        if (result->status == 0) result->status = 1;
        return;
    }

    jpeg_create_decompress(&cinfo);
    progress.pub.progress_monitor = zoo_jpeg_progress;
    progress.max_scans = max_scans;
    cinfo.progress = &progress.pub;
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);

    result->width = cinfo.image_width;
    result->height = cinfo.image_height;
    result->jpeg_color_space = (int)cinfo.jpeg_color_space;
    result->saw_adobe_marker = cinfo.saw_Adobe_marker;
    result->adobe_transform = cinfo.Adobe_transform;
    result->progressive = cinfo.progressive_mode;

    if ((unsigned long long)cinfo.image_width * (unsigned long long)cinfo.image_height > max_pixels) {
        result->status = 2;
        snprintf(result->message, JMSG_LENGTH_MAX, "%u x %u pixels exceed the limit of %llu pixels",
                 cinfo.image_width, cinfo.image_height, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return;
    }

    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default: cinfo.out_color_space = JCS_RGB; break;
    }
    if (scale_denom == 2 || scale_denom == 4 || scale_denom == 8) {
        cinfo.scale_num = 1;
        cinfo.scale_denom = (unsigned int)scale_denom;
    }

    jpeg_start_decompress(&cinfo);
    int components = cinfo.output_components;
    size_t row = (size_t)cinfo.output_width * (size_t)components;
    size_t total = row * (size_t)cinfo.output_height;
    pixels = (unsigned char *)malloc(total > 0 ? total : 1);
    if (!pixels) {
        result->status = 3;
        snprintf(result->message, JMSG_LENGTH_MAX, "out of memory for %zu bytes of pixels", total);
        jpeg_destroy_decompress(&cinfo);
        return;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1];
        rows[0] = pixels + (size_t)cinfo.output_scanline * row;
        jpeg_read_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_decompress(&cinfo);
    result->width = cinfo.output_width;
    result->height = cinfo.output_height;
    result->components = components;
    result->pixels = pixels;
    jpeg_destroy_decompress(&cinfo);
}

/** Result of zoo_jpeg_encode; `data` is malloc'd by libjpeg's memory destination (free it with zoo_jpeg_free). */
typedef struct {
    int status;                 /* 0 ok, 1 libjpeg error */
    char message[JMSG_LENGTH_MAX];
    unsigned char *data;
    unsigned long size;
} zoo_jpeg_encoded;

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    zoo_jpeg_encoded *result;
} zoo_jpeg_encode_error_mgr;

static void zoo_jpeg_encode_error_exit(j_common_ptr cinfo) {
    zoo_jpeg_encode_error_mgr *err = (zoo_jpeg_encode_error_mgr *)cinfo->err;
    err->result->status = 1;
    (*err->pub.format_message)(cinfo, err->result->message);
    longjmp(err->jump, 1);
}

/**
 * Encodes interleaved 8-bit pixels (components 1, 3 or 4; in_color_space a J_COLOR_SPACE such as
 * JCS_RGB or JCS_CMYK) as a JPEG stored in jpeg_color_space (e.g. JCS_YCbCr, JCS_YCCK: libjpeg
 * writes the Adobe marker for CMYK/YCCK). Used to make test files Pillow cannot write (YCCK) and
 * by tools; errors come back in `status`/`message` the same way as for decoding.
 */
__attribute__((noinline)) static inline void zoo_jpeg_encode(const unsigned char *pixels, unsigned int width, unsigned int height, int components,
                                   int in_color_space, int jpeg_color_space, int quality, int progressive,
                                   zoo_jpeg_encoded *result) {
    struct jpeg_compress_struct cinfo;
    zoo_jpeg_encode_error_mgr err;
    unsigned char *volatile out = NULL;
    unsigned long out_size = 0;

    memset(result, 0, sizeof(*result));
    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = zoo_jpeg_encode_error_exit;
    err.pub.output_message = zoo_jpeg_output_message;
    err.result = result;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        if (out) free(out);
        result->data = NULL;
        result->size = 0;
        return;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&out, &out_size);
    cinfo.image_width = width;
    cinfo.image_height = height;
    cinfo.input_components = components;
    cinfo.in_color_space = (J_COLOR_SPACE)in_color_space;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, (J_COLOR_SPACE)jpeg_color_space);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row[1];
        row[0] = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * (size_t)width * (size_t)components);
        jpeg_write_scanlines(&cinfo, row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    result->data = out;
    result->size = out_size;
}
