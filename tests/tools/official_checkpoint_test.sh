#!/bin/bash
# Starting points from the official weights: a checkpoint in the released ViT-B/16 layout
# (encoder only, written by PyTorch from the official architecture), converted by
# scripts/convert_checkpoint.py, then with `mae`: continue pretraining at 224 with a fresh
# decoder, fine-tune at 224, and fine-tune at 128 (pos_embed interpolated 14x14 -> 8x8).
# One step each, on a tinted RGB image folder.
#   usage: tests/tools/official_checkpoint_test.sh MAE MAKE_IMAGE_FOLDER SOURCE_DIR WORK_DIR
set -euo pipefail
mae=$1
make_folder=$2
src=$3
work=$4
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
q=(--no-progress --threads 2 --batch 4 --max-steps 1)

/usr/bin/python3 "$src/tests/tools/official_checkpoint.py" mae_pretrain_vit_base.pth
/usr/bin/python3 "$src/scripts/convert_checkpoint.py" to-safetensors mae_pretrain_vit_base.pth vit_base.safetensors
"$make_folder" jpg 2 1 --tinted-jpeg

"$mae" pretrain --model vit_base_patch16_dec512d8b --data jpg --init vit_base.safetensors --out pre "${q[@]}" \
  | tee pre.txt
grep -q "decoder freshly initialized" pre.txt
grep -q "last loss [0-9]" pre.txt
"$mae" finetune --model vit_base_patch16_dec512d8b --data jpg --init vit_base.safetensors --out ft224 "${q[@]}" \
  | tee ft224.txt
grep -q "stopped after 1 steps" ft224.txt
"$mae" finetune --model vit_base_patch16_128 --data jpg --init vit_base.safetensors --out ft128 "${q[@]}" | tee ft128.txt
grep -q "pos_embed interpolated from 14x14 to 8x8 patches" ft128.txt
"$mae" eval --data jpg --checkpoint ft128/classifier.safetensors --no-progress | grep -q "TOP-1"
# the whole MAE needs the decoder: the encoder-only file is refused, naming a missing tensor
if "$mae" reconstruct --model vit_base_patch16_dec512d8b --data jpg --checkpoint vit_base.safetensors --images 1 \
  --out r.png 2> rec.err; then
  echo "an encoder-only checkpoint was accepted as a whole MAE"; exit 1
fi
grep -q "vit_base.safetensors.*decoder" rec.err || { cat rec.err; exit 1; }
echo "official checkpoint: OK"
