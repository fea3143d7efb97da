#!/usr/bin/env bash
# carry-gpu-deps.sh — gathers what build/ctrain and the GPU tests need on a GPU machine that has no network and
# no apt (bench/gpu_check.sh unpacks them there): the Debian packages of the runtime libraries ctrain links
# (oneDNN, libyaml, cJSON, libjpeg-turbo, libpng, OpenMP, cmocka) and of the Fashion-MNIST files, as .deb files
# (compressed: about 40 MB) in .deps/debs (git-ignored). cuDNN and cuBLAS are not carried: the GPU machine's
# PyTorch ships them.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS="libdnnl2 ocl-icd-libopencl1 libyaml-0-2 libcjson1 libturbojpeg0 libjpeg62-turbo libpng16-16 libgomp1 libcmocka0
      dataset-fashion-mnist"
rm -rf .deps/debs .deps/root
mkdir -p .deps/debs
# shellcheck disable=SC2086
(cd .deps/debs && apt-get download $PKGS 2>&1 | grep -v "unsandboxed" || true)
n=$(ls .deps/debs/*.deb | wc -l)
[ "$n" -eq 10 ] || { echo "carry-gpu-deps: expected 10 packages, got $n" >&2; exit 1; }
echo "carried in .deps/debs: $n packages, $(du -sh .deps/debs | cut -f1)"
