#!/bin/bash
# Seconds from `mae pretrain` starting to its first step done, on the folders that
# scripts/make_startup_folders.py writes (200,000 small PNGs; 20,000 photos of 500x375), with
# and without the verification pass, each after dropping the page cache (cold, when the
# kernel allows it) and again (warm). One step of batch 64 and its checkpoint are included.
# DIR/small_shards and DIR/photos_shards, when there (`mae shards --data DIR/small --out
# DIR/small_shards`), are measured too: the same images as WebDataset tar shards.
#   usage: benchmarks/startup_time.sh DIR MAE [MAE_BEFORE]
set -euo pipefail
dir=$1
shift
out=$(mktemp -d)
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2> /dev/null && echo cold || echo warm; }
printf "%-28s %-10s %-12s %-6s %s\n" binary folder verify cache seconds
for mae in "$@"; do
  for folder in small photos small_shards photos_shards; do
    [ -d "$dir/$folder" ] || continue
    for verify in --verify --no-verify; do
      for pass in 1 2; do
        cache=warm
        [ "$pass" -eq 1 ] && cache=$(drop)
        start=$(date +%s.%N)
        "$mae" pretrain --data "$dir/$folder" --max-steps 1 --batch 64 --figure-images 1 --no-progress \
          --threads 2 $verify --overwrite --out "$out/run" > "$out/log" 2>&1 || { cat "$out/log"; exit 1; }
        end=$(date +%s.%N)
        printf "%-28s %-10s %-12s %-6s %.1f\n" "$(basename "$mae")" "$folder" "$verify" "$cache" \
          "$(echo "$end - $start" | bc)"
      done
    done
  done
done
rm -rf "$out"
