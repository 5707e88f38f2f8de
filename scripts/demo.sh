#!/bin/bash
# Installs what is missing, builds, and runs the demo.   usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j "$(nproc)" --target train_synthetic
./build/release/examples/train_synthetic "$@"
