#!/bin/bash
# Builds the libFuzzer harnesses (tests/fuzz: safetensors reader, IDX/gzip reader, image
# decoder path; clang with ASan + UBSan) and runs each for SECONDS (default 600) from the
# committed seed corpora; new inputs go to build/fuzz/corpus_<name>, findings to
# build/fuzz/findings/. Exits non-zero on a finding. SECONDS 0: replay the seed corpora only.
#   usage: bash scripts/fuzz.sh [SECONDS] [HARNESS...]   (harnesses: safetensors idx image)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-600}
shift || true
HARNESSES=("$@")
if [ ${#HARNESSES[@]} -eq 0 ]; then HARNESSES=(safetensors idx image); fi
if ! command -v clang++ > /dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a > /dev/null 2>&1; then
  echo "fuzz: clang's libFuzzer is not installed (apt-get install -y clang libclang-rt-dev): skipped"
  exit 0
fi
CXX=clang++ cmake -S tests/fuzz -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build/fuzz -j "$(nproc)"
mkdir -p build/fuzz/findings
status=0
for name in "${HARNESSES[@]}"; do
  mkdir -p "build/fuzz/corpus_$name"
  echo "fuzz_$name: ${SECONDS_EACH} s"
  limit=(-max_total_time="$SECONDS_EACH")
  if [ "$SECONDS_EACH" -eq 0 ]; then limit=(-runs=0); fi  # the seeds only
  if ! UBSAN_OPTIONS=print_stacktrace=1 "build/fuzz/fuzz_$name" "${limit[@]}" -rss_limit_mb=2048 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="build/fuzz/findings/${name}-" \
      "build/fuzz/corpus_$name" "tests/fuzz/corpus/$name" > "build/fuzz/fuzz_$name.log" 2>&1; then
    echo "fuzz_$name: FINDING (build/fuzz/fuzz_$name.log, build/fuzz/findings/)"
    grep -E "ERROR|runtime error|SUMMARY" "build/fuzz/fuzz_$name.log" | head -5
    status=1
  fi
  grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec" "build/fuzz/fuzz_$name.log" || true
done
exit $status
