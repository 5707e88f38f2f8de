#!/bin/bash
# The 28x28 step (batch 64) under each OpenMP wait setting, alone and beside one busy
# single-threaded process (issue 20, item 8). Usage: dev/omp_wait.sh [build dir]
set -euo pipefail
bench=${1:-build/release}/benchmarks/bench_mae
run() {  # label, env...
  local label=$1; shift
  for busy in 0 1; do
    if [ $busy = 1 ]; then yes >/dev/null & hog=$!; fi
    ms=$(env "$@" "$bench" --benchmark_filter='^step/tiny_28x28_gray' --benchmark_min_time=3 \
           --benchmark_format=csv 2>/dev/null | awk -F, 'NR>1{print $3}')
    if [ $busy = 1 ]; then kill $hog; wait $hog 2>/dev/null || true; fi
    printf '%-28s %s %8.1f ms\n' "$label" "$([ $busy = 1 ] && echo 'beside yes' || echo 'alone     ')" "$ms"
  done
}
run "2 threads, default"        OMP_NUM_THREADS=2
run "2 threads, GOMP_SPINCOUNT=1000" OMP_NUM_THREADS=2 GOMP_SPINCOUNT=1000
run "2 threads, passive"        OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
run "2 threads, active"         OMP_NUM_THREADS=2 OMP_WAIT_POLICY=active
run "1 thread"                  OMP_NUM_THREADS=1
