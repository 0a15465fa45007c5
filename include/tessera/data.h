/*
 * data.h: datasets and single images for training, evaluation and inference.
 *
 * - Datasets come from IDX files (the MNIST family's format: big-endian
 *   magic, dimension counts, raw unsigned bytes), gzip-compressed or not
 *   (zlib reads plain files transparently). Fashion-MNIST from Debian's
 *   dataset-fashion-mnist is the real dataset; ts_fmnist_load finds it
 *   without options.
 * - A dataset keeps its pixels as the file's uint8 and converts to float32
 *   when a batch is copied out: 60000 Fashion-MNIST images are 47 MB that
 *   way, 188 MB as floats, on machines shared by several processes.
 * - Normalization is one rule everywhere (datasets and PGM/PPM images), so a
 *   model trained here sees the same numbers at inference:
 *       x = (pixel / maxval - TS_DATA_MEAN) / TS_DATA_STD
 *   with the standard Fashion-MNIST training-set mean 0.2860 and standard
 *   deviation 0.3530, applied to every channel.
 * - Every file is untrusted: magic numbers, dimensions, counts and byte
 *   lengths are checked against caps before anything is allocated, and a
 *   failure fills ts_err with a sentence naming the file.
 * - Batches are drawn in a seeded order: ts_batcher_shuffle(b, epoch) gives
 *   the same permutation for the same (seed, epoch) on every machine, so a
 *   resumed run sees the batches an uninterrupted run would have seen.
 */
#ifndef TESSERA_DATA_H
#define TESSERA_DATA_H

#include "tessera/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- normalization and classes ---------------------------------------- */

#define TS_DATA_MEAN 0.2860f /* Fashion-MNIST training set, pixels in [0,1] */
#define TS_DATA_STD 0.3530f
#define TS_FMNIST_CLASSES 10
#define TS_FMNIST_SIDE 28

/* "T-shirt/top", "Trouser", ..., "Ankle boot" (label order). */
extern const char *const ts_fmnist_class_names[TS_FMNIST_CLASSES];

/* Caps on untrusted dataset files (checked before allocating). */
#define TS_DATA_MAX_ITEMS 10000000LL
#define TS_DATA_MAX_SIDE 4096
#define TS_DATA_MAX_BYTES (1LL << 30) /* pixel bytes of one dataset */

/* ---- datasets --------------------------------------------------------- */

typedef struct ts_dataset ts_dataset;

/* Directory of Debian's dataset-fashion-mnist, or $TESSERA_FMNIST_DIR when
 * that is set (for a copy elsewhere). */
const char *ts_fmnist_default_dir(void);
/* Loads Fashion-MNIST's "train" (60000) or "test" (10000) split from dir
 * (NULL: ts_fmnist_default_dir()). Besides the IDX checks it requires
 * 28x28 images and labels in 0..9. Returns an owned dataset or NULL. */
ts_dataset *ts_fmnist_load(const char *dir, const char *split, ts_err *err);
/* Generic IDX loader: images is a ubyte IDX file with 3 dimensions
 * [count, rows, cols] (one channel) or 4 [count, channels, rows, cols];
 * labels (NULL for none) a ubyte IDX file with 1 dimension and the same
 * count. The class count is max(label) + 1. */
ts_dataset *ts_dataset_load_idx(const char *images, const char *labels, ts_err *err);
/* A new dataset holding copies of items [first, first + count). */
ts_dataset *ts_dataset_subset(const ts_dataset *ds, int64_t first, int64_t count, ts_err *err);
void ts_dataset_free(ts_dataset *ds); /* accepts NULL */

int64_t ts_dataset_count(const ts_dataset *ds);
/* Image geometry: channels, height, width of every item. */
int ts_dataset_channels(const ts_dataset *ds);
int ts_dataset_height(const ts_dataset *ds);
int ts_dataset_width(const ts_dataset *ds);
/* Labels (int32, count of them), or NULL for an unlabelled dataset. */
const int32_t *ts_dataset_labels(const ts_dataset *ds);
int ts_dataset_num_classes(const ts_dataset *ds); /* 0 when unlabelled */
/* Class name for a label: Fashion-MNIST names for a dataset loaded by
 * ts_fmnist_load, NULL otherwise. */
const char *ts_dataset_class_name(const ts_dataset *ds, int label);
/* Writes item i normalized (C*H*W floats, CHW order) into out. */
void ts_dataset_get(const ts_dataset *ds, int64_t i, float *out);
/* Raw pixels of item i (C*H*W bytes). */
const uint8_t *ts_dataset_pixels(const ts_dataset *ds, int64_t i);

/* ---- batches ---------------------------------------------------------- */

/* Iterates a dataset in mini-batches. The batcher owns one [batch,C,H,W]
 * tensor and one label array, allocated at creation and reused: iteration
 * allocates nothing. */
typedef struct ts_batcher ts_batcher;

/* The dataset is borrowed and must outlive the batcher. The order is the
 * identity until ts_batcher_shuffle is called. */
ts_batcher *ts_batcher_new(const ts_dataset *ds, int batch, uint64_t seed, ts_err *err);
void ts_batcher_free(ts_batcher *b); /* accepts NULL */
/* Sets the order to the permutation for (seed, epoch) (Fisher-Yates driven
 * by a ts_rng seeded from both) and rewinds. */
void ts_batcher_shuffle(ts_batcher *b, uint64_t epoch);
/* Back to the first batch, order unchanged. */
void ts_batcher_rewind(ts_batcher *b);
/* The next ts_batcher_next fills batch number `index` of this pass (0 is the
 * first); an index past the end makes it return 0. For several threads
 * sharing out the batches of one pass, each with its own batcher. */
void ts_batcher_seek(ts_batcher *b, int64_t index);
/* Fills the next batch; returns the number of real items in it (0 when the
 * pass is over). A last partial batch is padded with zero images and label
 * -1 up to the full batch size, so one plan serves every batch. The tensor
 * and labels are owned by the batcher and overwritten by the next call. */
int ts_batcher_next(ts_batcher *b, const ts_tensor **x, const int32_t **labels);
/* Batches in a pass; with drop_last the partial one is not counted. */
int64_t ts_batcher_num_batches(const ts_batcher *b, int drop_last);

/* ---- single images (PGM / PPM) ---------------------------------------- */

/* Caps on untrusted image files. */
#define TS_IMAGE_MAX_SIDE 16384
#define TS_IMAGE_MAX_SAMPLES (64LL << 20)

/* Reads a PGM (P2, P5) or PPM (P3, P6) file, maxval 1..65535, comments
 * allowed in the header. Returns an owned [1, C, H, W] tensor (C = 1 for
 * PGM, 3 for PPM) of samples / maxval in [0, 1], or NULL with err filled
 * (truncated raster, sample above maxval, bad header, dimensions over the
 * caps, trailing garbage). */
ts_tensor *ts_image_load_pnm(const char *path, ts_err *err);
ts_tensor *ts_image_parse_pnm(const void *buf, size_t len, const char *name, ts_err *err);
/* Bilinear resize of a [1,C,H,W] image to [1,C,h,w], sampling at pixel
 * centres (half-pixel offsets, as OpenCV and PyTorch align_corners=False). */
ts_tensor *ts_image_resize(const ts_tensor *img, int h, int w, ts_err *err);
/* Channel conversion: 3 -> 1 uses ITU-R BT.601 luma (0.299 R + 0.587 G +
 * 0.114 B); 1 -> 3 replicates; c equal to the image's copies it. */
ts_tensor *ts_image_convert_channels(const ts_tensor *img, int c, ts_err *err);
/* The whole path for a model input: load, convert to c channels, resize to
 * h x w, normalize with TS_DATA_MEAN / TS_DATA_STD. Returns [1,c,h,w]. */
ts_tensor *ts_image_load_for_model(const char *path, int c, int h, int w, ts_err *err);

#ifdef __cplusplus
}
#endif
#endif
