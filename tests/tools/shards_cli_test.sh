#!/bin/bash
# The `mae` program on WebDataset tar shards: `mae shards` converts a folder written from
# Fashion-MNIST; pretrain, finetune, eval, knn and extract run on the shards (eval gives the
# folder's accuracy: the same images), alone and, when MPIRUN is given, pretrain and finetune
# under mpirun -np 2 (twice: the same weights); shards written by Python's tarfile
# (tests/fixtures/shards) that are bad are refused by name.
#   usage: tests/tools/shards_cli_test.sh MAE MAKE_IMAGE_FOLDER FIXTURES WORK_DIR [MPIRUN]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cli_common.sh"
mae=$1
make_folder=$2
fixtures=$3
work=$4
mpirun=${5:-}
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

q=(--no-progress --threads 2)

"$make_folder" png 24 8
"$mae" shards --data png --out sh --per-shard 50 | tee shards.txt
ls sh/train/train-00000{0..4}.tar sh/val/val-00000{0,1}.tar > /dev/null
test ! -e sh/train/train-000005.tar
test "$(wc -l < sh/classes.txt)" -eq 10
head -1 sh/classes.txt | grep -q "Ankle boot" || fail "classes.txt does not name Fashion-MNIST's classes"
expect_refused "exists and is not empty" "$mae" shards --data png --out sh

# pretraining: the directory form, and the same shards by a brace pattern
"$mae" pretrain --data sh --epochs 1 --batch 48 --out pre --figure-images 2 "${q[@]}" | tee pre.txt
grep -q "sh/train: 240 images in 5 shards" pre.txt || fail "the shard index line is missing"
test "$(wc -l < pre/log.csv)" -eq 6  # header + 240 images / 48
"$mae" pretrain --data 'sh/train/train-{000000..000004}.tar' --max-steps 2 --batch 48 --out pre_pattern \
  --shuffle-buffer 1 "${q[@]}" | tee pre_pattern.txt
grep -q "240 images in 5 shards" pre_pattern.txt

# interrupted mid-epoch 2 and resumed: the shard order is a function of (seed, epoch, rank),
# so the files are those of an uninterrupted run, byte for byte
pt=(--data sh --epochs 2 --batch 48 --shuffle-buffer 30 --figure-images 1 "${q[@]}")
"$mae" pretrain "${pt[@]}" --out pt_full > /dev/null
"$mae" pretrain "${pt[@]}" --out pt_cut --max-steps 7 | grep -q "after 7 steps"
"$mae" pretrain "${pt[@]}" --out pt_cut --resume pt_cut/checkpoint.safetensors | grep -q "at step 7"
cmp <(cut -d, -f1-3 pt_full/log.csv) <(cut -d, -f1-3 pt_cut/log.csv)
cmp pt_full/mae_final.safetensors pt_cut/mae_final.safetensors || fail "a resume on shards changed the run"

# fine-tuning, then eval: the shards' accuracy is the folder's (the same 80 validation images)
"$mae" finetune --data sh --init pre/mae_final.safetensors --epochs 1 --batch 40 --out ft "${q[@]}" | tee ft.txt
grep -q "VAL ACCURACY" ft.txt
"$mae" eval --data sh --checkpoint ft/classifier.safetensors "${q[@]}" | tee eval_sh.txt
"$mae" eval --data png --checkpoint ft/classifier.safetensors "${q[@]}" | tee eval_png.txt
a=$(grep -o "TOP-1 [0-9.]*%, top-5 [0-9.]*%" eval_sh.txt) && b=$(grep -o "TOP-1 [0-9.]*%, top-5 [0-9.]*%" eval_png.txt)
echo "shards: $a, folder: $b"
test -n "$a" && test "$a" = "$b" || fail "eval on shards ($a) differs from the folder ($b)"
"$mae" finetune --data 'sh/train/train-{000000..000004}.tar' --val-data sh/val --init pre/mae_final.safetensors \
  --max-steps 2 --batch 40 --out ft_pattern "${q[@]}" | tee ft_pattern.txt
expect_refused "give the validation shards with --val-data" \
  "$mae" finetune --data 'sh/train/train-{000000..000004}.tar' --max-steps 1 --batch 40 --out ft_noval "${q[@]}"
"$mae" knn --data sh --checkpoint pre/mae_final.safetensors "${q[@]}" | tee knn.txt
grep -q "20-NN (T = 0.07) on .*TOP-1" knn.txt
"$mae" extract --data sh --split val --checkpoint pre/mae_final.safetensors --pool avg --out feat.safetensors \
  "${q[@]}" | tee extract.txt
grep -q "features (80, 192)" extract.txt

# bad shards (written by Python's tarfile), each refused by name
for bad in not_a_tar.tar:"not_a_tar.tar: not a readable tar shard" truncated.tar:"truncated.tar" \
           compressed.tar.gz:"compressed.tar.gz: a compressed shard" no_image.tar:"sample 'b' has no image" \
           corrupt_image.tar:"corrupt_image.tar:b.png: unreadable PNG"; do
  expect_refused "${bad#*:}" "$mae" pretrain --data "$fixtures/shards/bad/${bad%%:*}" --max-steps 1 --batch 2 \
    --out bad_run "${q[@]}"
done
mkdir -p unl/train unl/val
cp "$fixtures/shards/unlabelled/u-000000.tar" unl/train/ && cp "$fixtures/shards/unlabelled/u-000000.tar" unl/val/
expect_refused "sample 'u0' has no label (.cls)" "$mae" finetune --data unl --max-steps 1 --batch 2 --out bad_ft "${q[@]}"
expect_refused "label 5 outside the 3 classes" "$mae" eval --data "$fixtures/shards/bad_label" --split train \
  --checkpoint ft/classifier.safetensors "${q[@]}"

if [ -n "$mpirun" ]; then
  mp=("$mpirun" --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)
  for run in 1 2; do
    "${mp[@]}" "$mae" pretrain --data sh --max-steps 4 --global-batch 48 --out mpi_pre$run --no-progress \
      | tee mpi_pre$run.txt
    "${mp[@]}" "$mae" finetune --data sh --init pre/mae_final.safetensors --max-steps 3 --global-batch 40 \
      --out mpi_ft$run --no-progress | tee mpi_ft$run.txt
  done
  grep -q "2 processes" mpi_pre1.txt || fail "mpirun did not run 2 processes"
  cmp mpi_pre1/mae_final.safetensors mpi_pre2/mae_final.safetensors || fail "mpirun pretraining is not reproducible"
  cmp mpi_ft1/checkpoint.safetensors mpi_ft2/checkpoint.safetensors || fail "mpirun fine-tuning is not reproducible"
  expect_refused "5 shards for 8 processes" "$mpirun" --allow-run-as-root --oversubscribe -np 8 -x OMP_NUM_THREADS=1 \
    "$mae" pretrain --data sh --max-steps 1 --batch 2 --out mpi_bad --no-progress
fi
echo "shards: all passed"
