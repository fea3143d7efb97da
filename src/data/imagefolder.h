/* imagefolder.h — torchvision's ImageFolder layout: root/CLASS/.../IMAGE, classes sorted by name (label =
 * position), files in sorted os.walk order with torchvision's image extensions. */
#ifndef CTRAIN_DATA_IMAGEFOLDER_H
#define CTRAIN_DATA_IMAGEFOLDER_H

#include <stdint.h>

#include "core/error.h"

typedef struct ImageFolder {
    int n_classes;
    char **classes;      /* [n_classes] folder names, sorted */
    int64_t n;
    char **paths;        /* [n] full paths */
    int32_t *labels;     /* [n] */
} ImageFolder;

/* Lists root as torchvision.datasets.ImageFolder would (a folder without classes or images is an error). */
int imagefolder_scan(const char *root, ImageFolder *out, Error *err);
/* Frees the lists. */
void imagefolder_free(ImageFolder *f);

#endif
