/* loader.c — the dataset registry and the loader: a pool of worker threads that fills a ring of preallocated
 * batches ahead of the consumer.
 *
 * loader_get(e, b) hands out batch b of epoch e. If it was prefetched it is ready (or nearly); otherwise the
 * pipeline restarts at (e, b). After each hand-out the next batches (crossing into the next epoch) are
 * scheduled on free slots. A batch is split into chunks of samples that workers take in scheduling order; a
 * sample depends only on (seed, epoch, index), so batches are identical for any number of workers. A corrupt
 * sample is replaced by the next good one (s+1, s+2, ...) and counted. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/loader.h"
#include "data/order.h"
#include "data/source.h"

/* ------------------------------------------------------------------ the registry */

static const RegistryEntry DATASET_ENTRIES[] = {
    {.name = "idx", .fields = IDX_FIELDS, .options_size = sizeof(ArrayDatasetOptions), .check = array_dataset_check,
     .help = "MNIST-family IDX files"},
    {.name = "npy", .fields = NPY_FIELDS, .options_size = sizeof(ArrayDatasetOptions), .check = array_dataset_check,
     .help = "NumPy arrays"},
    {.name = "synthetic", .fields = SYNTHETIC_FIELDS, .options_size = sizeof(ArrayDatasetOptions),
     .check = array_dataset_check, .help = "random images"},
    {.name = "imagenet", .fields = IMAGENET_FIELDS, .options_size = sizeof(ImagenetOptions), .check = imagenet_check,
     .help = "Composer's ImageNet: an FFCV .beton or an ImageFolder tree"},
};
const Registry DATASET_REGISTRY = {"dataset", DATASET_ENTRIES, 4};

int64_t loader_nominal_samples(const Choice *dataset) {
    if (!dataset->entry || strcmp(dataset->entry->name, "imagenet") != 0) return -1;
    return ((const ImagenetOptions *)dataset->options)->is_train ? 1281167 : 50000;
}

/* ------------------------------------------------------------------ the loader */

typedef enum SlotState { SLOT_FREE, SLOT_FILLING, SLOT_READY } SlotState;

typedef struct Slot {
    SlotState state;
    bool discard;            /* no longer wanted: goes back to FREE when its chunks are done */
    int64_t epoch, b;
    int n;                   /* samples in this batch */
    int chunks, next_chunk, chunks_left;
    uint64_t seq;            /* scheduling order: workers serve the oldest slot first */
    float *images;           /* [batch, h, w, c] */
    int32_t *labels;         /* [batch] */
    int64_t *samples;        /* [batch] sample indices */
    bool failed;
    Error err;               /* first fatal error of a chunk */
    int64_t corrupt;
    char corrupt_msg[256];
} Slot;

struct Loader {
    SampleSource *src;
    LoaderArgs args;
    int64_t per_rank;        /* samples of one epoch for this rank */
    int64_t batches;
    size_t img;              /* floats per sample at the current output size */
    size_t max_img;          /* floats per sample the slots hold */
    int chunk;               /* samples per work item */
    int64_t *orders[2];      /* cached epoch orders [per_rank] */
    int64_t order_epoch[2];
    int order_next;          /* which cache entry to replace next */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_t *threads;
    int n_workers;
    bool stop;
    Slot *slots;
    int n_slots;
    int served;              /* the slot handed to the consumer, or -1 */
    uint64_t seq;
    int64_t corrupt;         /* replaced samples not yet reported */
    char corrupt_msg[256];
};

typedef struct WorkerArg {
    Loader *l;
    int index;
} WorkerArg;

/* Makes sample position i of slot sl (replacing corrupt samples); returns -1 on a fatal error. */
static int make_sample(Loader *l, Slot *sl, int i, int worker, int64_t *corrupt, char *msg, size_t msg_size,
                       Error *err) {
    SampleSource *src = l->src;
    int64_t s = sl->samples[i];
    for (int attempt = 0; attempt < 64; attempt++) {
        int64_t t = (s + attempt) % src->n;
        int rc = src->produce(src, sl->epoch, t, worker, sl->images + (size_t)i * l->img, &sl->labels[i], err);
        if (rc == 0) return 0;
        if (rc < 0) return -1;
        if ((*corrupt)++ == 0) snprintf(msg, msg_size, "%.*s", (int)msg_size - 1, err->msg);
    }
    return error_set(err, "64 consecutive corrupt samples from index %lld on: %s", (long long)s, msg);
}

static void *worker_main(void *p) {
    WorkerArg *wa = p;
    Loader *l = wa->l;
    int me = wa->index;
    free(wa);
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        Slot *sl = NULL;
        for (int k = 0; k < l->n_slots; k++) {
            Slot *c = &l->slots[k];
            if (c->state == SLOT_FILLING && c->next_chunk < c->chunks && (!sl || c->seq < sl->seq)) sl = c;
        }
        if (!sl) {
            pthread_cond_wait(&l->work, &l->mu);
            continue;
        }
        int chunk = sl->next_chunk++;
        bool skip = sl->discard || sl->failed;
        pthread_mutex_unlock(&l->mu);

        Error err = {{0}};
        int64_t corrupt = 0;
        char msg[256] = "";
        int rc = 0;
        int from = chunk * l->chunk, to = from + l->chunk < sl->n ? from + l->chunk : sl->n;
        for (int i = from; !skip && rc == 0 && i < to; i++) rc = make_sample(l, sl, i, me, &corrupt, msg, sizeof msg, &err);

        pthread_mutex_lock(&l->mu);
        if (rc && !sl->failed) {
            sl->failed = true;
            sl->err = err;
        }
        if (corrupt) {
            if (sl->corrupt == 0) snprintf(sl->corrupt_msg, sizeof sl->corrupt_msg, "%s", msg);
            sl->corrupt += corrupt;
        }
        if (--sl->chunks_left == 0) {
            sl->state = sl->discard ? SLOT_FREE : SLOT_READY;
            pthread_cond_broadcast(&l->done);
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* This rank's order of epoch e (cached for two epochs). Called with the lock held. */
static const int64_t *epoch_order(Loader *l, int64_t e, Error *err) {
    for (int k = 0; k < 2; k++)
        if (l->order_epoch[k] == e) return l->orders[k];
    int k = l->order_next;
    l->order_next ^= 1;
    LoaderOrder kind = l->args.train ? l->src->order : ORDER_SEQUENTIAL;
    int world = l->args.world > 1 ? l->args.world : 1;
    if (order_make(kind, l->args.seed, e, l->src->n, l->args.rank, world, 2 * l->args.batch_size,
                   l->src->page_of, l->src, l->orders[k], err)) {
        l->order_epoch[k] = -1;
        return NULL;
    }
    l->order_epoch[k] = e;
    return l->orders[k];
}

/* Puts batch (e, b) on a free slot; returns the slot or NULL when none is free. Lock held. */
static Slot *schedule(Loader *l, int64_t e, int64_t b, Error *err, bool *failed) {
    Slot *sl = NULL;
    for (int k = 0; k < l->n_slots && !sl; k++)
        if (l->slots[k].state == SLOT_FREE && k != l->served) sl = &l->slots[k];
    if (!sl) return NULL;
    const int64_t *order = epoch_order(l, e, err);
    if (!order) {
        *failed = true;
        return NULL;
    }
    int64_t start = b * l->args.batch_size;
    int n = (int)(start + l->args.batch_size <= l->per_rank ? l->args.batch_size : l->per_rank - start);
    sl->epoch = e;
    sl->b = b;
    sl->n = n;
    memcpy(sl->samples, order + start, (size_t)n * sizeof *sl->samples);
    sl->chunks = (n + l->chunk - 1) / l->chunk;
    sl->next_chunk = 0;
    sl->chunks_left = sl->chunks;
    sl->seq = ++l->seq;
    sl->discard = sl->failed = false;
    sl->corrupt = 0;
    sl->corrupt_msg[0] = 0;
    sl->state = SLOT_FILLING;
    pthread_cond_broadcast(&l->work);
    return sl;
}

static Slot *find(Loader *l, int64_t e, int64_t b) {
    for (int k = 0; k < l->n_slots; k++) {
        Slot *sl = &l->slots[k];
        if (sl->state != SLOT_FREE && !sl->discard && sl->epoch == e && sl->b == b) return sl;
    }
    return NULL;
}

/* Schedules the batches that follow (e, b), across the epoch boundary, while slots are free. Lock held. */
static void prefetch(Loader *l, int64_t e, int64_t b, Error *err) {
    for (int k = 1; k < l->n_slots; k++) {
        int64_t ne = e, nb = b + k;
        while (nb >= l->batches) {
            nb -= l->batches;
            ne++;
        }
        if (find(l, ne, nb)) continue;
        bool failed = false;
        if (!schedule(l, ne, nb, err, &failed)) return;
    }
}

int loader_get(Loader *l, int64_t epoch, int64_t b, Batch *out, Error *err) {
    if (b < 0 || b >= l->batches)
        return error_set(err, "loader: batch %lld out of range (%lld per epoch)", (long long)b, (long long)l->batches);
    pthread_mutex_lock(&l->mu);
    if (l->served >= 0) {
        l->slots[l->served].state = SLOT_FREE;
        l->served = -1;
    }
    Slot *sl = find(l, epoch, b);
    if (!sl) {
        /* not prefetched: drop what was, restart here */
        for (int k = 0; k < l->n_slots; k++) {
            Slot *c = &l->slots[k];
            if (c->state == SLOT_READY) c->state = SLOT_FREE;
            else if (c->state == SLOT_FILLING) c->discard = true;
        }
        bool failed = false;
        while (!(sl = schedule(l, epoch, b, err, &failed)) && !failed) pthread_cond_wait(&l->done, &l->mu);
        if (failed) {
            pthread_mutex_unlock(&l->mu);
            return -1;
        }
    }
    while (sl->state != SLOT_READY) pthread_cond_wait(&l->done, &l->mu);
    l->served = (int)(sl - l->slots);
    if (sl->corrupt) {
        if (l->corrupt == 0) snprintf(l->corrupt_msg, sizeof l->corrupt_msg, "%s", sl->corrupt_msg);
        l->corrupt += sl->corrupt;
    }
    Error perr = {{0}};
    if (!sl->failed) prefetch(l, epoch, b, &perr);
    int rc = 0;
    if (sl->failed) {
        *err = sl->err;
        rc = -1;
    }
    pthread_mutex_unlock(&l->mu);
    out->n = sl->n;
    out->h = l->src->h;
    out->w = l->src->w;
    out->c = l->src->c;
    out->images = sl->images;
    out->labels = sl->labels;
    return rc;
}

/* Drops the prefetched batches (the settings they were made with changed) and waits for the workers to leave
 * them. Lock held. */
static void drop_prefetched(Loader *l) {
    for (int k = 0; k < l->n_slots; k++) {
        Slot *c = &l->slots[k];
        if (c->state == SLOT_READY && k != l->served) c->state = SLOT_FREE;
        else if (c->state == SLOT_FILLING) c->discard = true;
    }
    for (int k = 0; k < l->n_slots; k++)
        while (l->slots[k].state == SLOT_FILLING) pthread_cond_wait(&l->done, &l->mu);
}

int loader_set_output_size(Loader *l, int h, int w, Error *err) {
    pthread_mutex_lock(&l->mu);
    int rc = 0;
    if (h == l->src->h && w == l->src->w) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    if (!l->src->set_output) rc = error_set(err, "this dataset kind cannot change its output size (use imagenet)");
    else if ((size_t)h * w * l->src->c > l->max_img)
        rc = error_set(err, "output size %dx%d is larger than the %zu values per image the loader was made for", h, w,
                       l->max_img);
    if (rc == 0) {
        drop_prefetched(l); /* made at the old size */
        rc = l->src->set_output(l->src, h, w, err);
        l->img = (size_t)l->src->h * l->src->w * l->src->c;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int loader_set_randaugment(Loader *l, int depth, double severity, int set, Error *err) {
    if (!l->src->set_randaugment)
        return error_set(err, "randaugment works on image data (the imagenet dataset kind: an FFCV file or an "
                              "ImageFolder), not on in-memory arrays");
    pthread_mutex_lock(&l->mu);
    drop_prefetched(l); /* made without it */
    int rc = l->src->set_randaugment(l->src, depth, severity, set, err);
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int64_t loader_take_corrupt(Loader *l, char *msg, size_t size) {
    pthread_mutex_lock(&l->mu);
    int64_t n = l->corrupt;
    if (msg && size) snprintf(msg, size, "%s", l->corrupt_msg);
    l->corrupt = 0;
    l->corrupt_msg[0] = 0;
    pthread_mutex_unlock(&l->mu);
    return n;
}

static void free_slots(Loader *l) {
    for (int k = 0; l->slots && k < l->n_slots; k++) {
        free(l->slots[k].images);
        free(l->slots[k].labels);
        free(l->slots[k].samples);
    }
    free(l->slots);
    l->slots = NULL;
}

void loader_destroy(Loader *l) {
    if (!l) return;
    if (l->threads) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->n_workers; i++) pthread_join(l->threads[i], NULL);
        free(l->threads);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->done);
    }
    free_slots(l);
    free(l->orders[0]);
    free(l->orders[1]);
    if (l->src) l->src->destroy(l->src);
    free(l);
}

int loader_create(const Choice *dataset, const char *what, const LoaderArgs *args, Loader **out, Error *err) {
    *out = NULL;
    if (!dataset->entry) return error_set(err, "%s: the recipe names no dataset", what);
    if (args->batch_size < 1) return error_set(err, "%s: batch size must be >= 1", what);
    Loader *l = calloc(1, sizeof *l);
    if (!l) return error_set(err, "out of memory");
    l->args = *args;
    l->served = -1;
    l->order_epoch[0] = l->order_epoch[1] = -1;
    int rc = strcmp(dataset->entry->name, "imagenet") == 0 ? image_source_create(dataset, what, args, &l->src, err)
                                                           : array_source_create(dataset, what, args, &l->src, err);
    if (rc) {
        free(l);
        return -1;
    }
    int world = args->world > 1 ? args->world : 1;
    l->per_rank = order_per_rank(l->src->n, world);
    l->batches = l->src->drop_last ? l->per_rank / args->batch_size
                                   : (l->per_rank + args->batch_size - 1) / args->batch_size;
    if (l->batches < 1) {
        rc = error_set(err, "%s: %lld samples make no batch of %d with drop_last (lower the batch size)", what,
                       (long long)l->per_rank, args->batch_size);
        loader_destroy(l);
        return -1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    l->n_workers = args->workers > 0 ? args->workers : (int)(cores > 0 ? cores : 1);
    int ahead = args->batches_ahead > 0 ? args->batches_ahead : 2;
    l->n_slots = ahead + 1;   /* the one being served, plus the ones ahead */
    l->img = l->max_img = (size_t)l->src->h * l->src->w * l->src->c;
    int per_worker = (args->batch_size + 2 * l->n_workers - 1) / (2 * l->n_workers);
    l->chunk = per_worker < 1 ? 1 : per_worker > 16 ? 16 : per_worker;
    l->orders[0] = malloc((size_t)l->per_rank * sizeof(int64_t));
    l->orders[1] = malloc((size_t)l->per_rank * sizeof(int64_t));
    l->slots = calloc((size_t)l->n_slots, sizeof *l->slots);
    rc = !l->orders[0] || !l->orders[1] || !l->slots;
    for (int k = 0; !rc && k < l->n_slots; k++) {
        Slot *sl = &l->slots[k];
        sl->images = malloc((size_t)args->batch_size * l->max_img * sizeof(float));
        sl->labels = malloc((size_t)args->batch_size * sizeof(int32_t));
        sl->samples = malloc((size_t)args->batch_size * sizeof(int64_t));
        rc = !sl->images || !sl->labels || !sl->samples;
    }
    if (rc) {
        error_set(err, "%s: out of memory for %d batches of %d images", what, l->n_slots, args->batch_size);
        loader_destroy(l);
        return -1;
    }
    if (l->src->prepare && l->src->prepare(l->src, l->n_workers, err)) {
        loader_destroy(l);
        return -1;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->done, NULL);
    l->threads = calloc((size_t)l->n_workers, sizeof *l->threads);
    if (!l->threads) {
        error_set(err, "out of memory");
        loader_destroy(l);
        return -1;
    }
    for (int i = 0; i < l->n_workers; i++) {
        WorkerArg *wa = malloc(sizeof *wa);
        if (wa) *wa = (WorkerArg){.l = l, .index = i};
        if (!wa || pthread_create(&l->threads[i], NULL, worker_main, wa)) {
            free(wa);
            l->n_workers = i;
            error_set(err, "%s: cannot start loader thread %d", what, i);
            loader_destroy(l);
            return -1;
        }
    }
    *out = l;
    return 0;
}

int64_t loader_batches(const Loader *l) { return l->batches; }

int64_t loader_samples(const Loader *l) { return l->per_rank; }

void loader_shape(const Loader *l, int *h, int *w, int *c) {
    *h = l->src->h;
    *w = l->src->w;
    *c = l->src->c;
}

int loader_num_classes(const Loader *l) { return l->src->num_classes; }

const char *const *loader_class_names(const Loader *l) { return l->src->class_names; }

void loader_normalization(const Loader *l, float *mean, float *std, int c) {
    for (int i = 0; i < c && i < l->src->c; i++) {
        mean[i] = l->src->mean[i];
        std[i] = l->src->std[i] > 0 ? l->src->std[i] : 1.0f;
    }
}
