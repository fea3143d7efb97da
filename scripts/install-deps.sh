#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages ctrain needs to build, test and run its demo, when missing.
# Says what it installs; does nothing when everything is there. Needs root (or sudo) only to install.
set -euo pipefail

PACKAGES=(
  gcc make cmake pkg-config     # the build
  libdnnl-dev                   # oneDNN: CPU convolutions
  libyaml-dev                   # recipes
  libcjson-dev                  # safetensors headers, metrics.jsonl
  zlib1g-dev                    # gzipped IDX files
  libpng-dev libturbojpeg0-dev  # PNG / JPEG images (ctrain predict)
  libjpeg62-turbo-dev           # libjpeg API of the same library: crop decoding in the data loader
  libcmocka-dev                 # unit tests
  libssl-dev                    # (tests: sha256 of fixture payloads)
  dataset-fashion-mnist         # the demo's data (/usr/share/datasets/fashion-mnist)
)

missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$p" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: need root to install ${missing[*]} (run: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "install-deps: done"
