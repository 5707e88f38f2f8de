#!/bin/bash
# Learning parity of bf16 mixed precision (docs/performance.md): the Fashion-MNIST demo's
# pretraining in fp32 and with --bf16 (same seed: same initialization, data order and masks),
# then the linear probe of each encoder; both loss curves in one plot. About 20 minutes on
# 2 cores. Writes runs/bf16_parity/{fp32,bf16}/ and runs/bf16_parity/loss_fp32_bf16.png.
#   usage: bash scripts/bf16_parity.sh [EPOCHS (2)]
set -euo pipefail
cd "$(dirname "$0")/.."
E=${1:-2}
bash scripts/install_deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release --target mae_cli
mae=build/release/tools/mae
out=runs/bf16_parity
mkdir -p "$out"
for p in fp32 bf16; do
  flag=""
  [ "$p" = bf16 ] && flag=--bf16
  t0=$SECONDS
  $mae pretrain --epochs "$E" --out "$out/$p" --no-progress $flag | tee "$out/pretrain_$p.txt"
  echo "wall time: $((SECONDS - t0)) s" | tee -a "$out/pretrain_$p.txt"
  $mae probe --checkpoint "$out/$p/mae_final.safetensors" --out "$out/probe_$p" --no-progress | tee "$out/probe_$p.txt"
done
# the mean loss of the last epoch (one step's loss is one batch's: noisy)
last_epoch_loss() {
  awk -F, -v e=$((E - 1)) 'NR > 1 && $2 == e { s += $3; n++ } END { printf "%.5f", s / n }' "$1"
}
f32=$(last_epoch_loss "$out/fp32/log.csv")
b16=$(last_epoch_loss "$out/bf16/log.csv")
echo "mean loss of the last epoch: fp32 $f32, bf16 $b16 ($(awk -v a="$f32" -v b="$b16" \
  'BEGIN { printf "%+.2f%%", 100 * (b - a) / a }'))"
for p in fp32 bf16; do echo "$p: $(grep -h "VAL ACCURACY" "$out/probe_$p.txt")"; done
gnuplot -e "set terminal pngcairo size 900,500 noenhanced; set output '$out/loss_fp32_bf16.png';
  set datafile separator ','; set title 'MAE pretraining on Fashion-MNIST, $E epochs: fp32 and bf16 mixed precision';
  set xlabel 'step'; set ylabel 'loss (smoothed, log scale)'; set logscale y; set grid;
  plot '$out/fp32/log.csv' using 1:3 every ::1 smooth bezier with lines lw 2 lc rgb '#08519c' title 'fp32',
       '$out/bf16/log.csv' using 1:3 every ::1 smooth bezier with lines lw 2 lc rgb '#e6550d' title 'bf16'"
echo "plot: $out/loss_fp32_bf16.png"
