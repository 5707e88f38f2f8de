#!/bin/bash
# Seconds from `mae pretrain` starting to its first step done, on the folders that
# scripts/make_startup_folders.py writes (200,000 small PNGs; 20,000 photos of 500x375), with
# and without the verification pass, after dropping the page cache (cold, when the kernel
# allows it) and again (warm). One step of batch 64 and its checkpoint are included.
# A binary that keeps an image index (--index) is measured without one (--index none) and then
# with the index its first run wrote (OUT/image_index.txt), warm and cold.
# DIR/small_shards and DIR/photos_shards, when there (`mae shards --data DIR/small --out
# DIR/small_shards`), are measured too: the same images as WebDataset tar shards.
#   usage: benchmarks/startup_time.sh DIR MAE [MAE_BEFORE]
set -euo pipefail
dir=$1
shift
out=$(mktemp -d)
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null && echo cold || echo warm; }
printf "%-16s %-14s %-12s %-6s %-6s %s\n" binary folder verify cache index seconds
run() {  # mae folder verify page_cache index_label extra_args...
  local mae=$1 folder=$2 verify=$3 cache=$4 label=$5
  shift 5
  [ "$cache" = cold ] && cache=$(drop)
  start=$(date +%s.%N)
  "$mae" pretrain --data "$dir/$folder" --max-steps 1 --batch 64 --figure-images 1 --no-progress \
    --threads 2 "$verify" --overwrite --out "$out/run" "$@" > "$out/log" 2>&1 || { cat "$out/log"; exit 1; }
  end=$(date +%s.%N)
  printf "%-16s %-14s %-12s %-6s %-6s %.1f\n" "$(basename "$mae")" "$folder" "$verify" "$cache" "$label" \
    "$(echo "$end - $start" | bc)"
}
for mae in "$@"; do
  indexed=no
  "$mae" pretrain --help | grep -q -- "--index" && indexed=yes
  for folder in small photos small_shards photos_shards; do
    [ -d "$dir/$folder" ] || continue
    for verify in --verify --no-verify; do
      rm -rf "$out/run"
      if [ $indexed = yes ]; then
        run "$mae" "$folder" "$verify" cold none --index none
        run "$mae" "$folder" "$verify" warm none --index none
        run "$mae" "$folder" "$verify" warm first  # writes OUT/image_index.txt
        run "$mae" "$folder" "$verify" warm kept
        run "$mae" "$folder" "$verify" cold kept
      else
        run "$mae" "$folder" "$verify" cold none
        run "$mae" "$folder" "$verify" warm none
      fi
    done
  done
done
rm -rf "$out"
