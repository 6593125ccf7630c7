#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <setjmp.h>
#include <png.h>

/*
 * ZooImages' PNG entry point.
 *
 * libpng reports errors by longjmp to the jmp_buf set by setjmp(png_jmpbuf(png)); a
 * longjmp must never cross a Swift frame. The whole decode therefore runs in this one C
 * function (setjmp here, longjmp from libpng's C frames or the C callbacks below), and Swift
 * only sees a status code and a message. The functions are static inline in the module-map
 * header, so no C target is needed; the entry point is noinline so the setjmp keeps its own
 * C frame.
 *
 * Transformations mirror what Pillow's PNG plugin followed by `.convert("RGB")` keeps:
 * palette -> RGB (palette transparency expands to an alpha channel, dropped later in Swift),
 * gray of 1/2/4 bits -> 8 bits, 16-bit samples -> their most significant byte (16-bit gray: clipped
 * at 255, as Pillow's I;16), no gamma correction. The caller drops alpha and replicates gray.
 */

/** Result of zoo_png_decode; `pixels` is malloc'd and owned by the caller (zoo_png_free). */
typedef struct {
    int status;              /* 0 ok, 1 libpng error, 2 too many pixels, 3 out of memory, 4 truncated */
    char message[256];
    unsigned int width;
    unsigned int height;
    int channels;            /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA (after the transformations) */
    int color_type;          /* PNG color type of the file */
    int bit_depth;           /* bit depth of the file */
    int interlaced;
    unsigned char *pixels;
    unsigned char *exif;     /* the eXIf chunk, malloc'd, or NULL */
    unsigned int exif_length;
} zoo_png_result;

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t position;
    zoo_png_result *result;
    jmp_buf jump;
} zoo_png_state;

static void zoo_png_error(png_structp png, png_const_charp message) {
    zoo_png_state *s = (zoo_png_state *)png_get_error_ptr(png);
    if (s->result->status == 0) s->result->status = 1;
    if (s->result->message[0] == 0) snprintf(s->result->message, sizeof(s->result->message), "%s", message);
    longjmp(s->jump, 1);
}

static void zoo_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void zoo_png_read(png_structp png, png_bytep out, size_t length) {
    zoo_png_state *s = (zoo_png_state *)png_get_io_ptr(png);
    if (length > s->size - s->position) {
        s->result->status = 4;
        snprintf(s->result->message, sizeof(s->result->message),
                 "truncated: needs %zu bytes at byte %zu, the file has %zu", length, s->position, s->size);
        longjmp(s->jump, 1);
    }
    memcpy(out, s->data + s->position, length);
    s->position += length;
}

static inline void zoo_png_free(unsigned char *p) { free(p); }

/** Decodes a whole PNG held in memory; refuses more than max_pixels pixels before allocating them. */
__attribute__((noinline)) static inline void zoo_png_decode(const unsigned char *data, size_t size, unsigned long long max_pixels,
                                  zoo_png_result *result) {
    zoo_png_state state;
    png_structp volatile png = NULL;
    png_infop volatile info = NULL;
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;

    memset(result, 0, sizeof(*result));
    state.data = data;
    state.size = size;
    state.position = 0;
    state.result = result;

    if (setjmp(state.jump)) {
        png_structp p = png;
        png_infop i = info;
        if (p) png_destroy_read_struct(&p, i ? &i : NULL, NULL);
        if (pixels) free(pixels);
        if (rows) free(rows);
        if (result->exif) { free(result->exif); result->exif = NULL; result->exif_length = 0; }
        result->pixels = NULL;
        if (result->status == 0) result->status = 1;
        return;
    }

    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        result->status = 1;
        snprintf(result->message, sizeof(result->message), "not a PNG file (bad signature)");
        return;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, zoo_png_error, zoo_png_warning);
    if (!png) {
        result->status = 3;
        snprintf(result->message, sizeof(result->message), "cannot create the PNG reader");
        return;
    }
    info = png_create_info_struct(png);
    if (!info) zoo_png_error(png, "cannot create the PNG info structure");
    png_set_read_fn(png, &state, zoo_png_read);
    /* Errors instead of libpng's own longjmp for decompressed ancillary chunks larger than 8 MB. */
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, info);

    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    result->width = width;
    result->height = height;
    result->color_type = png_get_color_type(png, info);
    result->bit_depth = png_get_bit_depth(png, info);
    result->interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    if ((unsigned long long)width * (unsigned long long)height > max_pixels) {
        result->status = 2;
        snprintf(result->message, sizeof(result->message), "%u x %u pixels exceed the limit of %llu pixels",
                 width, height, max_pixels);
        png_structp p = png;
        png_infop i = info;
        png_destroy_read_struct(&p, &i, NULL);
        return;
    }

    if (result->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (result->color_type == PNG_COLOR_TYPE_GRAY && result->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* 16-bit gray (no alpha) is what Pillow opens as mode I;16, whose convert("L"/"RGB") clips each
     * value to 255; it is read at 16 bits and clipped below. Other 16-bit types keep the high byte,
     * as Pillow's RGB;16B / RGBA;16B / LA;16B raw modes do. */
    int gray16 = result->color_type == PNG_COLOR_TYPE_GRAY && result->bit_depth == 16;
    if (result->bit_depth == 16 && !gray16) png_set_strip_16(png);
    if (result->interlaced) png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int sample_bytes = gray16 ? 2 : 1;
    if (png_get_bit_depth(png, info) != (gray16 ? 16 : 8) || channels < 1 || channels > 4
        || rowbytes != (size_t)width * (size_t)channels * (size_t)sample_bytes)
        zoo_png_error(png, "unexpected pixel layout after conversion");
    size_t total = rowbytes * (size_t)height;
    pixels = (unsigned char *)malloc(total > 0 ? total : 1);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height > 0 ? height : 1));
    if (!pixels || !rows) {
        result->status = 3;
        zoo_png_error(png, "out of memory for the pixels");
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, info);

#ifdef PNG_eXIf_SUPPORTED
    {
        png_bytep exif = NULL;
        png_uint_32 n = 0;
        if (png_get_eXIf_1(png, info, &n, &exif) != 0 && exif != NULL && n > 0) {
            result->exif = (unsigned char *)malloc(n);
            if (result->exif) { memcpy(result->exif, exif, n); result->exif_length = n; }
        }
    }
#endif

    free(rows);
    rows = NULL;
    if (gray16) {
        /* Big-endian 16-bit samples (libpng's order) to 8 bits, clipped at 255, in place (the write
         * index never passes the read index). */
        size_t count = (size_t)width * (size_t)height;
        for (size_t k = 0; k < count; k++) {
            unsigned v = ((unsigned)pixels[2 * k] << 8) | pixels[2 * k + 1];
            pixels[k] = (unsigned char)(v > 255 ? 255 : v);
        }
    }
    result->channels = channels;
    result->pixels = pixels;
    {
        png_structp p = png;
        png_infop i = info;
        png_destroy_read_struct(&p, &i, NULL);
    }
}
