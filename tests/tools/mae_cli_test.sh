#!/bin/bash
# The `mae` program end to end on image folders written from Fashion-MNIST: 28x28 grayscale
# PNG and tinted 40x36 RGB JPEG (so sizes and channels are converted). Pretrain a few steps,
# continue from that encoder with a fresh decoder, fine-tune, interrupt and resume the
# fine-tuning (the files equal an uninterrupted run's), eval, predict, extract, kNN, probe,
# reconstruct; then every bad folder is refused before training, naming the file.
#   usage: tests/tools/mae_cli_test.sh MAE MAKE_IMAGE_FOLDER WORK_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cli_common.sh"
mae=$1
make_folder=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

"$make_folder" png 24 8
"$make_folder" jpg 12 6 --tinted-jpeg
q=(--no-progress --threads 2)

"$mae" presets | tee presets.txt
grep -q "vit_tiny_64x64_rgb" presets.txt
grep -q "vit_tiny_96x96_rgb" presets.txt
"$mae" finetune --help > ft_help.txt
grep -q -- "--crop-min FLOAT.*=0.5" ft_help.txt || fail "finetune --help shows no defaults"
# the reference's fine-tuning recipe is the default (main_finetune.py / FINETUNE.md)
for opt in "--aa TEXT=rand-m9-mstd0.5-inc1" "--reprob FLOAT.*=0.25" "--mixup FLOAT.*=0.8" "--cutmix FLOAT.*=1" \
           "--clip-grad FLOAT.*=0"; do
  grep -q -- "$opt" ft_help.txt || fail "finetune --help lacks $opt"
done

# --- grayscale PNG, the 28x28 preset
"$mae" pretrain --data png --epochs 1 --batch 48 --out pre --figure-images 2 "${q[@]}" | tee pre.txt
test -s pre/mae_final.safetensors && test -s pre/checkpoint.safetensors && test -s pre/log.csv
test "$(wc -l < pre/log.csv)" -eq 6  # header + 240 images / 48

"$mae" pretrain --data png --init pre/mae_final.safetensors --max-steps 2 --batch 48 --out pre2 "${q[@]}" | tee pre2.txt
grep -q "decoder freshly initialized" pre2.txt
# idle OpenMP threads spin 1000 times, not libgomp's 300,000 (the program restarts itself with
# GOMP_SPINCOUNT set), unless the user chose a wait policy
grep -q "2 threads, GOMP_SPINCOUNT=1000" pre.txt || fail "the default OpenMP wait is not in the summary"
OMP_WAIT_POLICY=passive "$mae" pretrain --data png --max-steps 1 --batch 48 --out pre3 "${q[@]}" | tee pre3.txt
grep -q "2 threads, OMP_WAIT_POLICY=passive" pre3.txt || fail "the user's OMP_WAIT_POLICY is not in the summary"
if grep -q GOMP_SPINCOUNT pre3.txt; then fail "GOMP_SPINCOUNT set beside the user's OMP_WAIT_POLICY"; fi

"$mae" knn --data png --checkpoint pre/mae_final.safetensors "${q[@]}" | tee knn.txt
grep -q "20-NN (T = 0.07) on .*TOP-1" knn.txt

ft=(--data png --init pre/mae_final.safetensors --epochs 2 --batch 40 "${q[@]}")
"$mae" finetune "${ft[@]}" --out ft | tee ft.txt
grep -q "VAL ACCURACY" ft.txt
grep -q "RandAugment rand-m9-mstd0.5-inc1, reprob 0.25, mixup 0.80, cutmix 1.00, clip_grad off" ft.txt \
  || fail "the fine-tuning summary does not show the recipe"
test "$(wc -l < ft/log.csv)" -eq 13 && test "$(wc -l < ft/eval.csv)" -eq 3  # 2 x 6 steps, 2 epochs

# interrupted mid-epoch 2, resumed: the same log (but for the timings) and the same files, byte for byte
"$mae" finetune "${ft[@]}" --out ft_cut --max-steps 8 | tee cut.txt
grep -q "stopped after 8 steps" cut.txt
"$mae" finetune --data png --resume ft_cut/checkpoint.safetensors --epochs 2 --batch 40 "${q[@]}" --out ft_cut \
  | tee resumed.txt
grep -q "resumed from ft_cut/checkpoint.safetensors at step 8" resumed.txt
cmp <(cut -d, -f1-4 ft/log.csv) <(cut -d, -f1-4 ft_cut/log.csv)
cmp <(cut -d, -f1-4 ft/eval.csv) <(cut -d, -f1-4 ft_cut/eval.csv)
cmp ft/classifier.safetensors ft_cut/classifier.safetensors
cmp ft/checkpoint.safetensors ft_cut/checkpoint.safetensors
# a resume with another schedule would not continue the same run: refused, naming the field
expect_refused "global_batch = 40 (40 per process x 1 process), this run has 32" "$mae" finetune --data png --resume ft_cut/checkpoint.safetensors \
  --epochs 2 --batch 32 "${q[@]}" --out ft_other
expect_refused "clip_grad" "$mae" finetune --data png --resume ft_cut/checkpoint.safetensors \
  --epochs 2 --batch 40 --clip-grad 1 "${q[@]}" --out ft_other
# the recipe's options: a bad RandAugment spec, an odd batch with mixup; both off, an odd batch is fine
expect_refused "RandAugment 'rand-x9'" "$mae" finetune "${ft[@]}" --aa rand-x9 --max-steps 1 --out bad
odd=(--data png --init pre/mae_final.safetensors --batch 39 --max-steps 2 "${q[@]}")
expect_refused "must be even" "$mae" finetune "${odd[@]}" --out bad
"$mae" finetune "${odd[@]}" --mixup 0 --cutmix 0 --aa none --reprob 0 --clip-grad 0.5 --out ft_plain | tee ft_plain.txt
grep -q "RandAugment none, reprob 0.00, mixup 0.00, cutmix 0.00, clip_grad 0.5, " ft_plain.txt \
  || fail "the options did not reach the run"

"$mae" eval --data png --checkpoint ft/classifier.safetensors "${q[@]}" | tee eval.txt
grep -q "TOP-1 .*top-5 .*mean loss" eval.txt
grep -q "^Sneaker," ft/eval_val.csv
test "$(wc -l < ft/eval_val.csv)" -eq 11
if command -v gnuplot > /dev/null; then test -s ft/confusion_val.png; fi

"$mae" predict --checkpoint ft/classifier.safetensors png/val/Bag png/val/Coat/00006.png --out pred.csv "${q[@]}"
test "$(wc -l < pred.csv)" -eq 10  # header + 8 + 1
head -1 pred.csv | grep -q "^path,label1,prob1,label2"
grep -q "png/val/Coat/00006.png," pred.csv

# a folder of every format people keep (tests/fixtures/images: PNG 1 to 16 bits, palette, alpha;
# JPEG gray, progressive, CMYK; WebP lossy, lossless, alpha; TIFF 8 and 16 bits, CMYK, pages):
# every file trains, and every one is predicted
fixtures="$(cd "$(dirname "$0")/../fixtures/images" && pwd)"
pictures=0
for f in "$fixtures"/*.png "$fixtures"/*.jpg "$fixtures"/*.webp "$fixtures"/*.tif "$fixtures"/*.tiff; do
  cls=$([ $((pictures % 2)) -eq 0 ] && echo even || echo odd)
  for split in train val; do mkdir -p "mixed/$split/$cls" && cp "$f" "mixed/$split/$cls/"; done
  pictures=$((pictures + 1))
done
test "$pictures" -ge 24 || fail "only $pictures fixture pictures"
"$mae" finetune --data mixed --epochs 1 --batch 8 --out mixed_ft "${q[@]}" | tee mixed_ft.txt
grep -q "mixed/train: $pictures images" mixed_ft.txt || fail "not every picture of the mixed folder was read"
"$mae" predict --checkpoint mixed_ft/classifier.safetensors mixed/val --out mixed_pred.csv "${q[@]}"
test "$(wc -l < mixed_pred.csv)" -eq $((pictures + 1)) || fail "not every picture predicted"

"$mae" extract --data png --split val --checkpoint pre/mae_final.safetensors --pool avg --out feat.safetensors \
  "${q[@]}" | tee extract.txt
grep -q "features (80, 192)" extract.txt
"$mae" extract --data png --split val --checkpoint ft/classifier.safetensors --block 2 --out feat_b2.safetensors \
  "${q[@]}" | tee extract2.txt
grep -q "features (80, 192)" extract2.txt
# every token of block 1: (80, 1 + 49, 192); a block the encoder does not have is refused
"$mae" extract --data png --split val --checkpoint pre/mae_final.safetensors --pool tokens --block 1 \
  --out feat_tokens.safetensors "${q[@]}" | tee extract3.txt
grep -q "features (80, 50, 192)" extract3.txt
if "$mae" extract --data png --checkpoint pre/mae_final.safetensors --block 99 --out x.safetensors "${q[@]}" \
  2> block99.txt; then exit 1; fi
grep -q "block must be in 1..6" block99.txt

"$mae" probe --data png --checkpoint pre/mae_final.safetensors --epochs 2 --batch 64 --out probe "${q[@]}" | tee probe.txt
grep -q "linear probe" probe.txt && test -s probe/probe.safetensors
"$mae" probe --data png --raw-pixels --epochs 2 --batch 64 --out probe_raw "${q[@]}" | tee probe_raw.txt
grep -q "raw pixels" probe_raw.txt

"$mae" reconstruct --data png --checkpoint pre/mae_final.safetensors --images 3 --out rec.png "${q[@]}"
test -s rec.png

# --- tinted RGB JPEG (40x36, converted) on the 32x32 and the new 64x64 presets
for model in vit_tiny_32x32_rgb vit_tiny_64x64_rgb; do
  "$mae" pretrain --model "$model" --data jpg --max-steps 2 --batch 40 --out "pre_$model" "${q[@]}"
  "$mae" finetune --data jpg --init "pre_$model/mae_final.safetensors" --max-steps 3 --batch 40 \
    --out "ft_$model" "${q[@]}" | tee "ft_$model.txt"
  grep -q ": 120 images, 10 classes" "ft_$model.txt"
  "$mae" eval --data jpg --checkpoint "ft_$model/classifier.safetensors" "${q[@]}" | grep -q "TOP-1"
  "$mae" predict --checkpoint "ft_$model/classifier.safetensors" jpg/val --out "pred_$model.csv" "${q[@]}"
  test "$(wc -l < "pred_$model.csv")" -eq 61
done
# the 64x64 encoder into the 96x96 classifier (patch 8): pos_embed interpolated from 8x8 to 12x12
"$mae" finetune --model vit_tiny_96x96_rgb --data jpg --init pre_vit_tiny_64x64_rgb/mae_final.safetensors \
  --max-steps 1 --batch 40 --out ft_resized "${q[@]}" | tee resized.txt
grep -q "pos_embed interpolated from 8x8 to 12x12 patches" resized.txt
# and into a 64x64 MAE with a fresh decoder, to continue pretraining at 96x96
"$mae" pretrain --model vit_tiny_96x96_rgb --data jpg --init pre_vit_tiny_64x64_rgb/mae_final.safetensors \
  --max-steps 1 --batch 40 --out pre_resized "${q[@]}" | tee pre_resized.txt
grep -q "decoder freshly initialized" pre_resized.txt
# another patch size cannot be resized: refused, naming both configurations
expect_refused "another configuration" "$mae" finetune --model vit_tiny_64x64_rgb --data jpg \
  --init pre_vit_tiny_32x32_rgb/mae_final.safetensors --max-steps 1 "${q[@]}" --out bad

# --- bad input: refused before training, naming the file
mkdir -p flatroot/train flatroot/val && cp png/train/Bag/00023.png flatroot/train/ && cp -r png/val/Bag flatroot/val/
expect_refused "directly in" "$mae" finetune --data flatroot --max-steps 1 "${q[@]}" --out bad

mkdir -p diff && cp -r png/train diff/ && mkdir -p diff/val && cp -r png/val/Bag png/val/Coat diff/val/
expect_refused "different classes" "$mae" finetune --data diff --max-steps 1 "${q[@]}" --out bad

cp -r png corrupt && head -c 100 png/train/Bag/00023.png > corrupt/train/Bag/00023.png
expect_refused "corrupt/train/Bag/00023.png" "$mae" finetune --data corrupt --max-steps 1 "${q[@]}" --out bad
expect_refused "corrupt/train/Bag/00023.png" "$mae" pretrain --data corrupt --max-steps 1 "${q[@]}" --out bad
# its header is whole: without --verify, the decode fails when training reads it (here in the
# first epoch, as no mean/std pass reads it first), and the run stops naming it; with --verify,
# before anything trains
expect_refused "corrupt/train/Bag/00023.png: unreadable PNG" "$mae" pretrain --data corrupt --normalize imagenet \
  --epochs 1 --batch 48 "${q[@]}" --out bad_mid
test "$(wc -l < bad_mid/log.csv)" -ge 2 || fail "the run did not train before it met the corrupt picture"
"$mae" pretrain --data corrupt --verify --normalize imagenet --max-steps 1 "${q[@]}" --out bad_verify \
  > verify.out 2> verify.err && fail "--verify accepted a corrupt picture"
grep -q "corrupt/train/Bag/00023.png: unreadable PNG" verify.err || fail "--verify did not name the picture"
if grep -q "normalization" verify.out; then fail "--verify let the run start before refusing"; fi

cp -r png empty && : > empty/val/Coat/00010.png
expect_refused "empty file (0 bytes)" "$mae" finetune --data empty --max-steps 1 "${q[@]}" --out bad

mkdir -p noimages/train/a noimages/val/a && echo text > noimages/train/a/readme.txt
expect_refused "holds no" "$mae" pretrain --data noimages --max-steps 1 "${q[@]}" --out bad

mkdir -p noval && cp -r png/train noval/
expect_refused "is missing" "$mae" finetune --data noval --max-steps 1 "${q[@]}" --out bad

expect_refused "pre/log.csv" "$mae" finetune --data png --init pre/log.csv --max-steps 1 "${q[@]}" --out bad
expect_refused "ft/classifier.safetensors" "$mae" pretrain --model vit_tiny_64x64_rgb --data jpg \
  --resume ft/classifier.safetensors --max-steps 1 "${q[@]}" --out bad
expect_refused "no preset 'vit_nope'" "$mae" pretrain --model vit_nope --max-steps 1 "${q[@]}" --out bad
test ! -e bad/mae_final.safetensors

# --- nothing overwritten, nothing accepted silently
# an output path is written where it points: a symlink stays a link, a FIFO is written through,
# "-" is standard output
mkdir -p outs && ln -s outs/real.csv link.csv
"$mae" predict --checkpoint ft/classifier.safetensors png/val/Bag --out link.csv "${q[@]}"
test -L link.csv || fail "the symlink given as --out was replaced"
grep -q "^path,label1" outs/real.csv || fail "the symlink's target was not written"
mkfifo feat.fifo
cat feat.fifo > from_fifo.safetensors &
"$mae" extract --data png --split val --checkpoint pre/mae_final.safetensors --pool avg --out feat.fifo "${q[@]}" \
  > /dev/null
wait
test -p feat.fifo || fail "the FIFO given as --out was replaced"
cmp from_fifo.safetensors feat.safetensors || fail "the features written through the FIFO differ"
"$mae" predict --checkpoint ft/classifier.safetensors png/val/Bag --out - "${q[@]}" > pred_stdout.csv
cmp pred_stdout.csv outs/real.csv || fail "predict --out - wrote something else than the CSV to standard output"
expect_refused "--out: an empty output path" "$mae" predict --checkpoint ft/classifier.safetensors png/val/Bag \
  --out "" "${q[@]}"
expect_refused "is a directory" "$mae" extract --data png --split val --out outs "${q[@]}"
expect_refused "--out: an empty directory name" "$mae" pretrain --data png --max-steps 1 --out "" "${q[@]}"

# a finished run is not replaced: refused, the files untouched; --overwrite replaces it, saying so
cp pre/mae_final.safetensors pre_final_before.safetensors
expect_refused "pre holds another run (checkpoint-5.safetensors, checkpoint.safetensors, mae_final.safetensors)" \
  "$mae" pretrain --data png --max-steps 1 --batch 48 --out pre "${q[@]}"
cmp pre/mae_final.safetensors pre_final_before.safetensors || fail "a refused run changed the finished one"
expect_refused "ft holds another run" "$mae" finetune --data png --max-steps 1 --batch 40 --out ft "${q[@]}"
expect_refused "probe holds another run (probe.safetensors)" "$mae" probe --data png --raw-pixels --epochs 1 \
  --batch 64 --out probe "${q[@]}"
expect_refused "--overwrite replaces a run, --resume continues one" "$mae" pretrain --data png --overwrite \
  --resume pre/checkpoint.safetensors --out pre "${q[@]}"
expect_refused "would mix the two" "$mae" pretrain --data png --resume pre2/checkpoint.safetensors --batch 48 \
  --out pre "${q[@]}"
"$mae" pretrain --data png --max-steps 2 --batch 48 --out pre3 --overwrite --figure-images 2 "${q[@]}" \
  > ow.out 2> ow.err
grep -q "overwriting the run in pre3: removed checkpoint-1.safetensors, checkpoint.safetensors, log.csv" ow.err || { cat ow.err; fail "no word on --overwrite"; }
test "$(wc -l < pre3/log.csv)" -eq 3 || fail "the overwritten run's log was kept"

# export to Hugging Face (ViTMAEForPreTraining folder) and timm (encoder folder), and back in:
# the HF folder draws the same reconstruction as the checkpoint and starts pretraining; the timm
# folder starts fine-tuning; a folder that is not empty is not written into
"$mae" export --checkpoint pre/mae_final.safetensors --format hf --out hf_export | tee export.txt
grep -q "hf_export: ViTMAEForPreTraining" export.txt || fail "no export line"
for f in model.safetensors config.json preprocessor_config.json; do test -s "hf_export/$f" || fail "hf_export/$f"; done
grep -q '"layer_norm_eps": 1e-06' hf_export/config.json || fail "the HF config's eps is not MAE's"
"$mae" reconstruct --data png --checkpoint pre/mae_final.safetensors --normalize dataset --out rec_ours.png "${q[@]}"
"$mae" reconstruct --data png --checkpoint hf_export --normalize dataset --out rec_hf.png "${q[@]}"
cmp rec_ours.png rec_hf.png || fail "the exported HF folder draws another reconstruction"
"$mae" pretrain --data png --init hf_export --max-steps 1 --batch 48 --out pre_hf "${q[@]}" | tee pre_hf.txt
grep -q "encoder: hf_export (decoder freshly initialized)" pre_hf.txt || fail "--init from an HF folder"
"$mae" export --checkpoint pre/mae_final.safetensors --format timm --out timm_export > /dev/null
test -s timm_export/model.safetensors && grep -q '"num_classes": 0' timm_export/config.json || fail "timm export"
"$mae" finetune --data png --init timm_export --max-steps 1 --batch 40 --out ft_timm "${q[@]}" > /dev/null
expect_refused "'hf_export' exists and is not empty" "$mae" export --checkpoint pre/mae_final.safetensors \
  --format hf --out hf_export

# a fine-tuned classifier to timm and back evaluates the same; HF's ViT cannot hold global pooling
# (refused, saying why), a cls-token classifier goes to ViTForImageClassification and back
scores() { grep -o "TOP-1 .*mean loss [0-9.]*" "$1"; }
"$mae" export --checkpoint ft/classifier.safetensors --format timm --out timm_cls | tee export_cls.txt
grep -q "timm VisionTransformer (global_pool 'avg') of the classifier ft/classifier.safetensors, 10 classes" \
  export_cls.txt || fail "no classifier export line"
grep -q '"label_names"' timm_cls/config.json || fail "the timm classifier has no class names"
"$mae" eval --data png --checkpoint timm_cls "${q[@]}" > eval_timm.txt
test -n "$(scores eval.txt)" && test "$(scores eval.txt)" = "$(scores eval_timm.txt)" \
  || fail "the timm export evaluates otherwise: $(scores eval.txt) / $(scores eval_timm.txt)"
expect_refused "classifies the normed cls token" "$mae" export --checkpoint ft/classifier.safetensors --format hf \
  --out hf_cls
"$mae" finetune --data png --init pre/mae_final.safetensors --pool cls --max-steps 2 --batch 40 --out ft_cls \
  "${q[@]}" > /dev/null
"$mae" export --checkpoint ft_cls/classifier.safetensors --format hf --out hf_cls > /dev/null
grep -q '"ViTForImageClassification"' hf_cls/config.json && grep -q '"Sneaker"' hf_cls/config.json \
  || fail "the HF classifier's config.json"
"$mae" eval --data png --checkpoint ft_cls/classifier.safetensors "${q[@]}" > eval_cls.txt
"$mae" eval --data png --checkpoint hf_cls "${q[@]}" > eval_hf.txt
test "$(scores eval_cls.txt)" = "$(scores eval_hf.txt)" || fail "the HF classifier export evaluates otherwise"
# a linear probe: its BatchNorm folded into the head of its encoder; the classifier scores as the probe
"$mae" export --checkpoint probe/probe.safetensors --format timm --out timm_probe | tee export_probe.txt
grep -q "linear probe probe/probe.safetensors on pre/mae_final.safetensors (BatchNorm folded" export_probe.txt \
  || fail "no probe export line"
"$mae" eval --data png --checkpoint timm_probe "${q[@]}" > eval_probe.txt
probe_acc=$(grep -o "VAL ACCURACY [0-9.]*%" probe.txt | grep -o "[0-9.]*%")
grep -q "TOP-1 $probe_acc" eval_probe.txt || fail "the exported probe scores otherwise ($probe_acc): $(cat eval_probe.txt)"

# where the encoder looks: picture | rollout | 3 heads per image, 4x (112 pixels a cell), and the maps
"$mae" attention --data png --checkpoint pre/mae_final.safetensors --images 3 --out att.png --maps att.safetensors \
  "${q[@]}" | tee att.txt
grep -q "att.png: 3 images of png/val" att.txt || fail "no attention line"
test "$(od -An -tu1 -j16 -N8 att.png | tr -s ' ')" = " 0 0 2 60 0 0 1 88" || fail "att.png is not 572 x 344"
head -c 4000 att.safetensors | grep -ao '"cls_attention":{[^}]*}' | grep -q '"shape":\[3,3,7,7\]' \
  || fail "att.safetensors has no cls_attention (3, 3, 7, 7)"
"$mae" attention --data png --checkpoint timm_cls --images 1 --out att_timm.png "${q[@]}" > /dev/null
"$mae" extract --data png --split val --checkpoint timm_export --tokens --out feat_timm.safetensors "${q[@]}" \
  | grep -q "features (80, 50, 192)" || fail "extract --tokens from a timm folder"

# the image index: a run reads each header once and keeps them in OUT/image_index.txt; the next
# start in that directory (--overwrite, --resume) reads none, then only the files that changed;
# --index FILE keeps one for several runs; a file that is not an index is not overwritten
grep -q "png/train: 240 images in 10 classes, indexed in .* s (240 headers read, the others' from pre/image_index.txt)" \
  pre.txt || fail "the first run did not read every header"
head -1 pre/image_index.txt | grep -qx "mae image index 1" || fail "no image index in the run directory"
test "$(grep -c "(0 headers read, the others' from pre3/image_index.txt)" ow.out)" -eq 2 \
  || { cat ow.out; fail "the overwriting run read headers again (train and val)"; }
touch "$(ls png/train/Bag/*.png | head -1)"
"$mae" pretrain --data png --max-steps 1 --batch 48 --out pre3 --overwrite "${q[@]}" > touched.out 2> /dev/null
grep -q "png/train: .*(1 headers read" touched.out || { cat touched.out; fail "a touched file was not read again"; }
"$mae" pretrain --data png --max-steps 1 --batch 48 --out idx_a --index shared.index "${q[@]}" > idx_a.out
"$mae" pretrain --data png --max-steps 1 --batch 48 --out idx_b --index shared.index "${q[@]}" > idx_b.out
grep -q "png/train: .*(240 headers read" idx_a.out && grep -q "png/train: .*(0 headers read" idx_b.out \
  || fail "--index FILE was not shared by two runs"
test ! -e idx_a/image_index.txt || fail "--index FILE also wrote OUT/image_index.txt"
"$mae" pretrain --data png --max-steps 1 --batch 48 --out idx_none --index none "${q[@]}" > idx_none.out
grep -q "png/train: .*(240 headers read)" idx_none.out && test ! -e idx_none/image_index.txt \
  || fail "--index none kept an index"
echo "my notes" > notes.txt
expect_refused "notes.txt' is not an image index written by mae" "$mae" pretrain --data png --max-steps 1 \
  --out idx_c --index notes.txt "${q[@]}"
test "$(cat notes.txt)" = "my notes" || fail "a file that is not an index was changed"

# two runs on one directory: the second is refused at once, naming the first; a dead one's lock is taken over
"$mae" pretrain --data png --epochs 1000 --batch 48 --out busy "${q[@]}" > busy.out 2>&1 &
busy=$!
for _ in $(seq 100); do [ -s busy/.mae.lock ] && break; sleep 0.1; done
expect_refused "busy is in use by another run (process $busy on $(hostname)" \
  "$mae" pretrain --data png --max-steps 1 --batch 48 --out busy --overwrite "${q[@]}"
kill -KILL $busy; wait $busy || true
"$mae" pretrain --data png --max-steps 1 --batch 48 --out busy --overwrite "${q[@]}" > taken.out 2> taken.err
grep -q "left locked by process $busy" taken.err || { cat taken.err; fail "the dead run's lock was not taken over"; }

# a resume on other data is refused, naming what changed, unless --allow-other-data
"$mae" pretrain --data png --max-steps 2 --batch 48 --out cut_data "${q[@]}" > /dev/null
cp -r png png_more && cp png/train/Bag/00023.png png_more/train/Bag/extra.png
expect_refused "240 images then, 241 now" "$mae" pretrain --data png_more --resume cut_data/checkpoint.safetensors \
  --batch 48 --out cut_data "${q[@]}"
expect_refused "this run reads fashion-mnist/train: classes" "$mae" pretrain --data fashion-mnist --limit 240 --resume cut_data/checkpoint.safetensors \
  --batch 48 --out cut_data "${q[@]}"
expect_refused "another normalization" "$mae" pretrain --data png --normalize imagenet --max-steps 3 \
  --resume cut_data/checkpoint.safetensors --batch 48 --out cut_data "${q[@]}"
# an RGB run resumed on gray pictures: the message names the data, not an option the user did not give
expect_refused "checkpoint was trained on jpg/train, this run reads png/train: 120 images then, 240 now" \
  "$mae" pretrain --data png --resume pre_vit_tiny_32x32_rgb/checkpoint.safetensors --out pre_vit_tiny_32x32_rgb "${q[@]}"
"$mae" pretrain --data png_more --allow-other-data --max-steps 3 --resume cut_data/checkpoint.safetensors \
  --batch 48 --out cut_data "${q[@]}" | grep -q "resumed from cut_data/checkpoint.safetensors at step 2"

# runs that would train nothing, and numbers that mean nothing, are refused by name
expect_refused "no optimizer step would ever happen" "$mae" pretrain --data png --accum 1048576 --batch 48 \
  --out nothing "${q[@]}"
test ! -e nothing/mae_final.safetensors
for bad in "--max-steps 0|--max-steps: 0 is not at least 1" "--lr nan|--lr: nan is not a finite number" \
           "--lr -1|--lr: -1 is not from 0 to 100" "--lr inf|--lr: inf is not a finite number" \
           "--blr 1e30|--blr: 1e30 is not greater than 0 and at most 100" \
           "--min-lr nan|--min-lr: nan is not a finite number" "--weight-decay nan|--weight-decay: nan is not" \
           "--warmup-epochs inf|--warmup-epochs: inf is not a finite number" \
           "--warmup-epochs 3|the warmup (3 epochs) must be shorter than the run (2 epochs)" \
           "--min-lr 1|must be between 0 and the peak rate" \
           "--crop-pct nan|--crop-pct: nan is not a finite number" "--max-side -5|--max-side: -5 is not at least 0" \
           "--max-side 1|--max-side 1 is below the model's image size 28" \
           "--threads -1|--threads: -1 is not from 0 to" "--threads 1000|--threads: 1000 is not from 0 to" \
           "--epochs 1e6|--epochs: 1e6 is not a whole number (from 1 to 1000000)" \
           "--mask-ratio nan|--mask-ratio: nan is not a finite number"; do
  expect_refused "${bad#*|}" "$mae" pretrain --data png --epochs 2 --batch 48 ${bad%|*} --out numbers "${q[@]}"
done
for bad in "--reprob nan|--reprob: nan is not a finite number" "--crop-min nan|--crop-min: nan is not" \
           "--smoothing -0.1|--smoothing: -0.1 is not from 0 to 0.99"; do
  expect_refused "${bad#*|}" "$mae" finetune --data png --epochs 2 --batch 40 ${bad%|*} --out numbers "${q[@]}"
done
test ! -e numbers/checkpoint.safetensors
# more threads than cores: a note, not a refusal
more=$(( $(nproc) + 1 ))
"$mae" pretrain --data png --max-steps 1 --batch 48 --threads $more --no-progress --out threads 2> threads.err \
  > /dev/null
grep -q "note: --threads $more is more than the" threads.err || { cat threads.err; fail "no note on --threads"; }

# a closed pipe does not kill the run: it finishes and writes its files
set +o pipefail
"$mae" pretrain --data png --epochs 2 --batch 48 --figure-images 1 --out piped "${q[@]}" | head -1
status=${PIPESTATUS[0]}
set -o pipefail
test "$status" -eq 0 || fail "pretrain into a closed pipe exited with $status"
test -s piped/mae_final.safetensors || fail "pretrain into a closed pipe wrote no mae_final.safetensors"

# --- preemption: SIGTERM mid-epoch finishes the step, writes a checkpoint and exits 75; the same
# command line with --resume auto continues, and ends with the uninterrupted run's files

# sigterm_once DIR N OUT COMMAND...: runs COMMAND (its output to OUT), sends it SIGTERM once
# DIR/checkpoint-N.safetensors exists, and checks the exit status 75 and the stop message
sigterm_once() {
  local dir=$1 first=$2 out=$3 pid status=0
  shift 3
  "$@" > "$out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [ -e "$dir/checkpoint-$first.safetensors" ] && break; sleep 0.05; done
  kill -TERM $pid
  wait $pid || status=$?
  test "$status" -eq 75 || { cat "$out"; fail "SIGTERM to $*: exit status $status, not 75"; }
  grep -q "stopped by signal 15 (Terminated) after step .*: checkpoint $dir/checkpoint.safetensors" "$out" \
    || { cat "$out"; fail "no stop message from $*"; }
}
keep=(--data png --epochs 4 --batch 24 --save-every-steps 3 --keep 2 --figure-images 1 "${q[@]}")
"$mae" pretrain "${keep[@]}" --out whole > /dev/null
ls whole/checkpoint-*.safetensors | wc -l | grep -qx 2 || { ls whole; fail "--keep 2 kept another number"; }
sigterm_once preempted 3 term.out "$mae" pretrain "${keep[@]}" --resume auto --out preempted
grep -q "no checkpoint in preempted, starting fresh" term.out || fail "--resume auto did not start fresh"
test ! -e preempted/mae_final.safetensors || fail "a stopped run wrote final weights"
"$mae" pretrain "${keep[@]}" --resume auto --out preempted > auto.out
grep -q "resume auto: preempted/checkpoint-" auto.out || { cat auto.out; fail "--resume auto did not resume"; }
cmp whole/mae_final.safetensors preempted/mae_final.safetensors || fail "the preempted run ended elsewhere"
cmp <(cut -d, -f1-4 whole/log.csv) <(cut -d, -f1-4 preempted/log.csv) || fail "the preempted run's log differs"
# a corrupt newest checkpoint: passed over with a warning, the one before resumes
newest=$(ls preempted/checkpoint-*.safetensors | sort -t- -k2 -n | tail -1)
rm preempted/checkpoint.safetensors && head -c 1000 "$newest" > cut.tmp && rm "$newest" && mv cut.tmp "$newest"
"$mae" pretrain "${keep[@]}" --resume auto --out preempted > fallback.out 2> fallback.err
grep -q "passing over a checkpoint that does not open: .*$newest" fallback.err || { cat fallback.err; fail "no warning"; }
# fine-tuning the same way: SIGTERM mid-epoch, exit 75; --resume auto ends with the
# uninterrupted run's classifier and logs
ftk=(--data png --init pre/mae_final.safetensors --epochs 8 --batch 40 --save-every-steps 2 "${q[@]}")
"$mae" finetune "${ftk[@]}" --out ft_whole > /dev/null
sigterm_once ft_term 2 ft_term.out "$mae" finetune "${ftk[@]}" --resume auto --out ft_term
"$mae" finetune "${ftk[@]}" --resume auto --out ft_term > ft_auto.out
grep -q "resume auto: ft_term/checkpoint-" ft_auto.out || { cat ft_auto.out; fail "finetune: no resume"; }
cmp ft_whole/classifier.safetensors ft_term/classifier.safetensors || fail "the preempted fine-tuning ended elsewhere"
cmp <(cut -d, -f1-4 ft_whole/log.csv) <(cut -d, -f1-4 ft_term/log.csv) || fail "the fine-tuning logs differ"
cmp <(cut -d, -f1-4 ft_whole/eval.csv) <(cut -d, -f1-4 ft_term/eval.csv) || fail "the evaluations differ"
expect_refused "excludes" "$mae" pretrain --data png --batch 8 --global-batch 16 --out bad "${q[@]}"
expect_refused "--init starts a run from an encoder, --resume continues a run" "$mae" pretrain --data png \
  --init pre/mae_final.safetensors --resume pre/checkpoint.safetensors --out pre "${q[@]}"
echo "mae end to end: OK"
