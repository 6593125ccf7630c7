#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdint.h>
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

/** The decoder's state, shared with libpng's callbacks (error and progressive-read pointer). */
typedef struct {
    zoo_png_result *result;
    jmp_buf jump;
    unsigned long long max_pixels;
    unsigned char *pixels;
    size_t rowbytes;
    int gray16;
    int ended;
    unsigned long rows_done;
} zoo_png_state;

static void zoo_png_error(png_structp png, png_const_charp message) {
    zoo_png_state *s = (zoo_png_state *)png_get_error_ptr(png);
    if (s->result->status == 0) s->result->status = 1;
    if (s->result->message[0] == 0) snprintf(s->result->message, sizeof(s->result->message), "%s", message);
    longjmp(s->jump, 1);
}

static void zoo_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static inline void zoo_png_free(unsigned char *p) { free(p); }

/** Progressive reader: the header is read; set up the transformations and the pixel buffer. */
static void zoo_png_info(png_structp png, png_infop info) {
    zoo_png_state *s = (zoo_png_state *)png_get_progressive_ptr(png);
    zoo_png_result *result = s->result;
    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    result->width = width;
    result->height = height;
    result->color_type = png_get_color_type(png, info);
    result->bit_depth = png_get_bit_depth(png, info);
    result->interlaced = png_get_interlace_type(png, info) != PNG_INTERLACE_NONE;
    if ((unsigned long long)width * (unsigned long long)height > s->max_pixels) {
        result->status = 2;
        snprintf(result->message, sizeof(result->message), "%u x %u pixels exceed the limit of %llu pixels",
                 width, height, s->max_pixels);
        longjmp(s->jump, 1);
    }
    if (result->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (result->color_type == PNG_COLOR_TYPE_GRAY && result->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* 16-bit gray (no alpha) is what Pillow opens as mode I;16, whose convert("L"/"RGB") clips each
     * value to 255; it is read at 16 bits and clipped after. Other 16-bit types keep the high byte,
     * as Pillow's RGB;16B / RGBA;16B / LA;16B raw modes do. */
    s->gray16 = result->color_type == PNG_COLOR_TYPE_GRAY && result->bit_depth == 16;
    if (result->bit_depth == 16 && !s->gray16) png_set_strip_16(png);
    if (result->interlaced) (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    size_t sample_bytes = s->gray16 ? 2 : 1;
    if (png_get_bit_depth(png, info) != (s->gray16 ? 16 : 8) || channels < 1 || channels > 4
        || rowbytes != (size_t)width * (size_t)channels * sample_bytes)
        zoo_png_error(png, "unexpected pixel layout after conversion");
    size_t total = rowbytes * (size_t)height;
    s->pixels = (unsigned char *)calloc(total > 0 ? total : 1, 1);
    if (!s->pixels) {
        result->status = 3;
        zoo_png_error(png, "out of memory for the pixels");
    }
    s->rowbytes = rowbytes;
    result->channels = channels;
}

/** Progressive reader: one row (of one interlace pass) is decoded. */
static void zoo_png_row(png_structp png, png_bytep row, png_uint_32 number, int pass) {
    zoo_png_state *s = (zoo_png_state *)png_get_progressive_ptr(png);
    (void)pass;
    if (row == NULL) return;
    if (s->pixels == NULL || number >= s->result->height) zoo_png_error(png, "row outside the image");
    png_progressive_combine_row(png, s->pixels + (size_t)number * s->rowbytes, row);
    s->rows_done++;
}

/** Progressive reader: IEND was read. */
static void zoo_png_end(png_structp png, png_infop info) {
    zoo_png_state *s = (zoo_png_state *)png_get_progressive_ptr(png);
    (void)info;
    s->ended = 1;
}

/**
 * Decodes a whole PNG held in memory; refuses more than max_pixels pixels before allocating them.
 *
 * libpng's progressive reader, given the whole file at once: unlike png_read_image/png_read_end,
 * which inflate and discard any compressed data left in the IDAT stream after the last row (a 1 MB
 * file can carry 1 GiB of it, costing seconds to minutes of CPU), it stops inflating once the image
 * is complete ("Too much data in IDAT chunks", a warning) and skips the rest of the IDAT chunks,
 * still checking their CRCs; ancillary chunks (eXIf included) are handled only once they are wholly
 * in the buffer, so a chunk declaring more bytes than the file holds allocates nothing. A file that
 * ends before IEND is truncated (status 4).
 */
__attribute__((noinline)) static inline void zoo_png_decode(const unsigned char *data, size_t size, unsigned long long max_pixels,
                                  zoo_png_result *result) {
    png_structp volatile png = NULL;
    png_infop volatile info = NULL;

    memset(result, 0, sizeof(*result));
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        result->status = 1;
        snprintf(result->message, sizeof(result->message), "not a PNG file (bad signature)");
        return;
    }
    /* On the heap: the callbacks fill it in between setjmp and a longjmp, and the handler below
     * reads it back, which a local (non-volatile) variable would not guarantee. */
    zoo_png_state *volatile state = (zoo_png_state *)calloc(1, sizeof(zoo_png_state));
    if (!state) {
        result->status = 3;
        snprintf(result->message, sizeof(result->message), "out of memory for the PNG reader");
        return;
    }
    state->result = result;
    state->max_pixels = max_pixels;

    if (setjmp(state->jump)) {
        png_structp p = png;
        png_infop i = info;
        if (p) png_destroy_read_struct(&p, i ? &i : NULL, NULL);
        if (state->pixels) free(state->pixels);
        free(state);
        if (result->exif) { free(result->exif); result->exif = NULL; result->exif_length = 0; }
        result->pixels = NULL;
        if (result->status == 0) result->status = 1;
        return;
    }

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, state, zoo_png_error, zoo_png_warning);
    if (!png) {
        result->status = 3;
        snprintf(result->message, sizeof(result->message), "cannot create the PNG reader");
        free(state);
        return;
    }
    info = png_create_info_struct(png);
    if (!info) zoo_png_error(png, "cannot create the PNG info structure");
    /* Errors instead of libpng's own longjmp for decompressed ancillary chunks larger than 8 MB. */
    png_set_chunk_malloc_max(png, 8u << 20);
    png_set_progressive_read_fn(png, state, zoo_png_info, zoo_png_row, zoo_png_end);
    /* libpng 1.6's progressive reader has no eXIf handler: keep the chunk as an unknown chunk
     * (stored only once wholly read, within the 8 MB chunk limit above) and take it from there. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_ALWAYS, (png_const_bytep)"eXIf", 1);
    /* libpng only reads the buffer (png_push_fill_buffer copies out of it). */
    png_process_data(png, info, (png_bytep)(uintptr_t)data, size);
    if (!state->ended || state->pixels == NULL || (!result->interlaced && state->rows_done != result->height)) {
        result->status = 4;
        snprintf(result->message, sizeof(result->message),
                 state->pixels == NULL ? "the file ends (at byte %zu) before the image header is complete"
                                      : "the file ends (at byte %zu) before its IEND chunk", size);
        longjmp(state->jump, 1);
    }

    {
        png_unknown_chunkp chunks = NULL;
        int count = png_get_unknown_chunks(png, info, &chunks);
        for (int k = 0; k < count && chunks != NULL; k++) {
            if (memcmp(chunks[k].name, "eXIf", 4) != 0 || chunks[k].data == NULL || chunks[k].size == 0 || chunks[k].size > 0xffffffffu) continue;
            result->exif = (unsigned char *)malloc(chunks[k].size);
            if (result->exif) { memcpy(result->exif, chunks[k].data, chunks[k].size); result->exif_length = (unsigned int)chunks[k].size; }
            break;
        }
    }

    if (state->gray16) {
        /* Big-endian 16-bit samples (libpng's order) to 8 bits, clipped at 255, in place (the write
         * index never passes the read index). */
        size_t count = (size_t)result->width * (size_t)result->height;
        for (size_t k = 0; k < count; k++) {
            unsigned v = ((unsigned)state->pixels[2 * k] << 8) | state->pixels[2 * k + 1];
            state->pixels[k] = (unsigned char)(v > 255 ? 255 : v);
        }
    }
    result->pixels = state->pixels;
    state->pixels = NULL;
    {
        png_structp p = png;
        png_infop i = info;
        png_destroy_read_struct(&p, &i, NULL);
    }
    free(state);
}
