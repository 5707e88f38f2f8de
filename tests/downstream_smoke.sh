#!/bin/bash
# CI smoke run of the downstream examples on a slice of Fashion-MNIST: pretrain a few steps,
# fine-tune from that checkpoint and from scratch, probe it, probe raw pixels, and check that
# a file that is not an MAE checkpoint is refused with a message.
#   usage: tests/downstream_smoke.sh BUILD_EXAMPLES_DIR WORK_DIR
set -euo pipefail
ex=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

"$ex/pretrain_fashion_mnist" --limit 256 --epochs 1 --batch 64 --out "$work/mae" --no-progress --figure-images 2
test -s "$work/mae/mae_final.safetensors"

"$ex/finetune" --checkpoint "$work/mae/mae_final.safetensors" --limit 256 --test-limit 128 --epochs 1 --batch 32 \
  --out "$work/ft" --no-progress | tee "$work/ft.txt"
grep -q "fine-tuning (from MAE): TEST ACCURACY" "$work/ft.txt"
test -s "$work/ft/classifier.safetensors"
test "$(wc -l < "$work/ft/log.csv")" -eq 9    # header + 8 steps
test "$(wc -l < "$work/ft/eval.csv")" -eq 2   # header + 1 epoch

"$ex/finetune" --limit 256 --test-limit 64 --max-steps 2 --batch 32 --out "$work/ft_scratch" --no-progress | tee "$work/fts.txt"
grep -q "stopped after 2 steps" "$work/fts.txt"

"$ex/linear_probe" --checkpoint "$work/mae/mae_final.safetensors" --limit 512 --test-limit 256 --epochs 3 --batch 128 \
  --out "$work/lp" --pool avg | tee "$work/lp.txt"
grep -q "linear probe (MAE encoder): train accuracy" "$work/lp.txt"
test -s "$work/lp/probe.safetensors"
"$ex/linear_probe" --raw-pixels --limit 512 --test-limit 256 --epochs 3 --batch 128 --out "$work/lp_raw" > "$work/raw.txt"
grep -q "linear probe (raw pixels)" "$work/raw.txt"
"$ex/linear_probe" --checkpoint "$work/mae/mae_final.safetensors" --block 3 --limit 256 --test-limit 128 --epochs 1 \
  --batch 128 --out "$work/lp_block" > "$work/block.txt"
grep -q "cls token of block 3" "$work/block.txt"

# a file that is not a checkpoint: a clear message, a non-zero exit
if "$ex/finetune" --checkpoint "$work/mae/log.csv" --limit 64 --batch 32 --max-steps 1 --out "$work/bad" 2> "$work/bad.txt"; then
  echo "a CSV file was accepted as a checkpoint"; exit 1
fi
grep -q "log.csv" "$work/bad.txt"
echo "downstream smoke: OK"
