#!/bin/bash
# Reproduces docs/RESULTS.md's current rows: pretrains the toy MAE on Fashion-MNIST (norm_pix
# loss, bf16 products), then k-NN, linear probes (raw pixels, random-init encoder, MAE encoder
# with the cls token and with the patch-token mean) and fine-tuning with the reference's full
# recipe (RandAugment, random erasing, mixup / cutmix, label smoothing, drop path, layer decay)
# from MAE and from scratch, and without mixup / cutmix from MAE, each row's output in
# runs/results/<row>.txt with its wall time. About 5 hours on 2 cores (pretraining ~45 min,
# each fine-tuning ~55 min).
#   usage: bash scripts/results.sh [EPOCHS_PRETRAIN (30)] [EPOCHS_FINETUNE (15)]
set -euo pipefail
cd "$(dirname "$0")/.."
PE=${1:-30}
FE=${2:-15}
bash scripts/install_deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release --target mae_cli
mae=build/release/tools/mae
out=runs/results
mkdir -p "$out"
row() {  # row NAME command...
  local name=$1; shift
  local t0=$SECONDS
  "$@" --no-progress | tee "$out/$name.txt"
  echo "wall time: $((SECONDS - t0)) s" | tee -a "$out/$name.txt"
}
row pretrain     $mae pretrain --epochs "$PE" --warmup-epochs 2 --norm-pix-loss --bf16 --out $out/mae
ckpt=$out/mae/mae_final.safetensors
row knn_mae      $mae knn --checkpoint $ckpt
row probe_pixels $mae probe --raw-pixels --out $out/probe_pixels
row probe_random $mae probe --out $out/probe_random
row probe_mae    $mae probe --checkpoint $ckpt --out $out/probe_mae
row probe_mae_avg $mae probe --checkpoint $ckpt --pool avg --out $out/probe_mae_avg
row probe_mae_b4 $mae probe --checkpoint $ckpt --pool avg --block 4 --out $out/probe_mae_b4
row probe_mae_b5 $mae probe --checkpoint $ckpt --pool avg --block 5 --out $out/probe_mae_b5
row ft_mae       $mae finetune --init $ckpt --epochs "$FE" --bf16 --out $out/ft_mae
row ft_scratch   $mae finetune --epochs "$FE" --layer-decay 1 --bf16 --out $out/ft_scratch
row ft_mae_nomix $mae finetune --init $ckpt --epochs "$FE" --bf16 --mixup 0 --cutmix 0 --out $out/ft_mae_nomix
grep -h "VAL ACCURACY\|TOP-1\|accuracy\|wall time" "$out"/*.txt
bash scripts/plot_accuracy.sh "$out/finetune_accuracy.png" "Fashion-MNIST fine-tuning, full recipe, $FE epochs" \
  "from MAE ($PE epochs, norm_pix)=$out/ft_mae" "from MAE, no mixup / cutmix=$out/ft_mae_nomix" \
  "from scratch=$out/ft_scratch"
