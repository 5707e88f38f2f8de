#!/bin/bash
# Builds and runs every test: the optimized suite (with 1 and 2 OpenMP threads), the
# static_assert cases, the install + find_package check, then the suite again under
# AddressSanitizer and UBSan, then each fuzz harness for a minute.   usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh --with-torch
JOBS=$(nproc)
phase() { echo "scripts/test.sh: $1 done at $((SECONDS / 60)) min $((SECONDS % 60)) s"; }  # where CI's time goes
phase "dependencies"

cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build/release -j "$JOBS"
phase "release build"
(cd build/release && ctest --output-on-failure -j "$JOBS")
phase "release tests"

# -O1: the sanitized suite compiles 2.4x faster than at -O3 (test_train.cpp: 80 s against 192 s),
# which was 19 of CI's 40 minutes
cmake -S . -B build/sanitize -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
      -DMAE_SANITIZE=ON -DMAE_BUILD_EXAMPLES=OFF -DMAE_BUILD_BENCHMARKS=OFF
cmake --build build/sanitize -j "$JOBS" --target mae_tests
phase "sanitizer build"
(cd build/sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -R '^unit_2_threads$')
phase "sanitizer tests"

# the fuzz harnesses, 60 seconds each (bash scripts/fuzz.sh 600 for the long run)
bash scripts/fuzz.sh 60 safetensors idx image
phase "fuzzing"
