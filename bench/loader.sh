#!/usr/bin/env bash
# loader.sh — ctrain's training input pipeline beside torchvision's, on the same JPEGs, in one run.
#
#   bench/loader.sh [WORKERS] [COUNT]        # defaults: all cores, 2000 images
#
# Makes (once) data/bench-photos: COUNT JPEGs (quality 90, longest side 250..500 px) cut from the photos in
# ../shared/fixtures/photos, and its .beton (ctrain convert --write_mode jpg). Then times, over 2 epochs,
# RandomResizedCrop to 176 px + flip + normalize + batches of 64:
#   ctrain bench --loader data/bench-photos/train          (the ImageFolder JPEGs)
#   ctrain bench --loader data/bench-photos/train.beton    (the same images re-encoded in the .beton)
#   python3 bench/torchvision_loader.py ...                (torchvision ImageFolder + DataLoader, Pillow)
# and prints images/s, images/s per worker and the ratios. Needs python3 with torch + torchvision for the peer.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-$(nproc)}
COUNT=${2:-2000}
D=data/bench-photos
if [ ! -d "$D/train" ]; then
  build/make-imagefolder photos "$D" --count "$COUNT" --max 500 --shared ../shared
fi
[ -f "$D/train.beton" ] || build/ctrain convert "$D/train" "$D/train.beton" --write_mode jpg --jpeg_quality 90 --quiet
field() { sed -E "s/.*\"$1\": ([0-9.]+).*/\1/"; }
folder=$(build/ctrain bench --loader "$D/train" --res 176 --batch 64 --num_workers "$WORKERS" --epochs 2 --json | field images_per_s)
beton=$(build/ctrain bench --loader "$D/train.beton" --res 176 --batch 64 --num_workers "$WORKERS" --epochs 2 --json | field images_per_s)
tv=$(python3 bench/torchvision_loader.py "$D/train" 176 64 "$WORKERS" 2 | field images_per_s)
printf '# %s, %s workers, %s images, RandomResizedCrop 176 + flip + normalize, batch 64, 2 epochs\n' \
  "$(date -u +%Y-%m-%dT%H:%MZ)" "$WORKERS" "$COUNT"
printf '%-34s %10s %14s %8s\n' pipeline "images/s" "per worker" "vs tv"
for row in "ctrain, ImageFolder JPEGs:$folder" "ctrain, .beton (JPEG):$beton" "torchvision ImageFolder+DataLoader:$tv"; do
  name=${row%%:*}; v=${row##*:}
  printf '%-34s %10.1f %14.1f %8.2f\n' "$name" "$v" "$(awk -v a="$v" -v w="$WORKERS" 'BEGIN{print a/w}')" \
    "$(awk -v a="$v" -v b="$tv" 'BEGIN{print a/b}')"
done
