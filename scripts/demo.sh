#!/bin/bash
# Installs what is missing, builds, and pretrains the toy MAE on Fashion-MNIST (about 5
# minutes on 2 cores). Writes runs/fashion_mnist/: checkpoint, log.csv, loss.png and
# reconstruction.png (original | masked | reconstruction | reconstruction + visible patches).
#   usage: bash scripts/demo.sh [options of mae pretrain, see mae pretrain --help]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release -j "$(nproc)" --target mae_cli
# A second demo replaces the first one's run (mae says which files it removed); with --resume
# it continues it instead.
replace=(--overwrite)
for a in "$@"; do [ "$a" = --resume ] && replace=(); done
./build/release/tools/mae pretrain --data fashion-mnist --out runs/fashion_mnist "${replace[@]}" "$@"
