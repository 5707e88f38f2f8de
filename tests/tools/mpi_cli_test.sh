#!/bin/bash
# `mpirun -np 2 mae pretrain|finetune` on a small PNG folder: the same losses as one process at
# the same global batch, rank 0 alone printing and writing, a resume that reproduces the
# uninterrupted run byte for byte, a job stopped by SIGTERM continued on one process, an error
# on one rank ending the job with its message, a rank killed with SIGKILL making mpirun fail
# with the last checkpoint intact, and the other commands refused under mpirun.
#   usage: tests/tools/mpi_cli_test.sh MPIRUN MAE MAKE_IMAGE_FOLDER WORK_DIR
set -euo pipefail
mpirun=$1
mae=$2
make_folder=$3
work=$4
rm -rf "$work"
mkdir -p "$work"
cd "$work"
run2=("$mpirun" --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)
fail() { echo "FAILED: $*"; exit 1; }
q=(--no-progress --threads 1)

# losses of two log.csv files agree to 1e-4 relative, step for step
same_losses() {
  paste -d, <(tail -n +2 "$1" | cut -d, -f3) <(tail -n +2 "$2" | cut -d, -f3) | awk -F, -v a="$1" -v b="$2" '
    { d = $1 - $2; if (d < 0) d = -d; r = d / ($2 > 0 ? $2 : -$2); if (r > worst) worst = r; n++ }
    END { printf "losses of %s and %s: %d steps, worst relative difference %.2g\n", a, b, n, worst;
          exit !(n > 0 && worst < 1e-4) }'
}

"$make_folder" png 24 8  # 240 training, 80 validation images

# --- pretraining: 2 processes x 12 images = one process x 24
"${run2[@]}" "$mae" pretrain --data png --epochs 2 --batch 12 --out pre2 --figure-images 2 "${q[@]}" | tee pre2.txt
test "$(grep -c "^epoch 1:" pre2.txt)" -eq 1 || fail "not only rank 0 printed"
grep -q "global batch 24, .*2 processes x 1 thread each" pre2.txt || fail "no global batch in the summary"
test -s pre2/mae_final.safetensors && test -s pre2/checkpoint.safetensors && test -s pre2/reconstruction.png
test "$(wc -l < pre2/log.csv)" -eq 21  # header + 2 epochs x 240 / 24
"$mae" pretrain --data png --epochs 2 --batch 24 --noise-by-position --out pre1 --figure-images 2 "${q[@]}" > pre1.txt
same_losses pre1/log.csv pre2/log.csv

# interrupted, resumed on 2 processes: the same files as the uninterrupted run, byte for byte
"${run2[@]}" "$mae" pretrain --data png --epochs 2 --batch 12 --out cut --max-steps 13 "${q[@]}" > cut.txt
"${run2[@]}" "$mae" pretrain --data png --epochs 2 --batch 12 --out cut --resume cut/checkpoint.safetensors \
  "${q[@]}" | tee resumed.txt
grep -q "resumed from cut/checkpoint.safetensors at step 13" resumed.txt
cmp pre2/checkpoint.safetensors cut/checkpoint.safetensors
cmp pre2/mae_final.safetensors cut/mae_final.safetensors
cmp <(cut -d, -f1-4 pre2/log.csv) <(cut -d, -f1-4 cut/log.csv)
# a resume at another global batch is refused, naming both (the same global batch on another
# number of processes is not: the SIGTERM case below)
if "$mae" pretrain --data png --epochs 2 --batch 12 --out cut --resume cut/checkpoint.safetensors "${q[@]}" \
  > other.out 2> other.err; then fail "resumed a 2 x 12 checkpoint in one process x 12"; fi
grep -q "global_batch = 24 (12 per process x 2 processes), this run has 12 (12 per process x 1 process)" other.err \
  || { cat other.err; fail "no reason given"; }

# --- fine-tuning: 2 x 20 = 1 x 40, drop path by position
# mixup / cutmix pair images within each process's batch (as DDP): off, for the equality
ft=(--data png --init pre2/mae_final.safetensors --epochs 2 --drop-path 0.2 --mixup 0 --cutmix 0 "${q[@]}")
"${run2[@]}" "$mae" finetune "${ft[@]}" --batch 20 --out ft2 | tee ft2.txt
test "$(grep -c "VAL ACCURACY" ft2.txt)" -eq 1 || fail "not one result line"
test -s ft2/classifier.safetensors && test "$(wc -l < ft2/eval.csv)" -eq 3
"$mae" finetune "${ft[@]}" --batch 40 --drop-path-by-position --out ft1 > ft1.txt
same_losses ft1/log.csv ft2/log.csv

# --- errors: a rank that throws ends the job with its message; other commands refused
if timeout 120 "${run2[@]}" "$mae" pretrain --data png --resume nonexistent/checkpoint.safetensors "${q[@]}" \
  > bad.out 2> bad.err; then fail "mpirun succeeded on a missing checkpoint"; fi
grep -q "rank [01]: .*nonexistent/checkpoint.safetensors" bad.err || { cat bad.err; fail "no rank's message"; }
if "${run2[@]}" "$mae" eval --data png --checkpoint ft2/classifier.safetensors > ev.out 2> ev.err; then
  fail "eval ran under mpirun"
fi
grep -q "only pretrain and finetune run under mpirun" ev.err || { cat ev.err; fail "no reason given"; }

# --- SIGTERM to one rank: both stop after the same step, rank 0 writes the checkpoint, the job
# exits 75; the same command line on one process (--global-batch: each process's share) with
# --resume auto continues to the same last step as one process throughout, the losses of every
# step to 1e-4 (the 2-process part as above; after the resume, the same images, masks by
# position and learning rates, the sums ordered otherwise). Rounding differences grow as
# training amplifies them: here 1.3e-6 by step 60, 1.8e-6 by 100, 1.9e-4 by 200 (AMD Zen 3),
# so the run is 100 steps.
job_line=(pretrain --data png --epochs 40 --max-steps 100 --global-batch 24 --save-every-steps 4 --resume auto
  --out term2 "${q[@]}")
"${run2[@]}" "$mae" "${job_line[@]}" > term2.out 2> term2.err &
job=$!
for _ in $(seq 600); do [ -e term2/checkpoint-4.safetensors ] && break; sleep 0.05; done
ranks=$(pgrep -P "$job" -f "mae pretrain" || true)
test "$(echo "$ranks" | wc -w)" -eq 2 || fail "not 2 rank processes under mpirun: '$ranks'"
kill -TERM "$(echo "$ranks" | tail -1)"
status=0; wait $job || status=$?
test "$status" -eq 75 || { cat term2.out term2.err; fail "SIGTERM to one rank: mpirun exited $status, not 75"; }
grep -q "stopped by .* after step .*: checkpoint term2/checkpoint.safetensors" term2.out \
  || { cat term2.out; fail "no stop message from rank 0"; }
stopped=$(grep -o "after step [0-9]*" term2.out | grep -o "[0-9]*")
test -s "term2/checkpoint-$stopped.safetensors" || fail "no checkpoint of step $stopped"
test ! -e term2/mae_final.safetensors || fail "final weights written by a stopped run"
"$mae" "${job_line[@]}" > term1.out
grep -q "resumed from term2/checkpoint-$stopped.safetensors at step $stopped" term1.out \
  || { cat term1.out; fail "--resume auto did not continue the stopped job on one process"; }
grep -q "global batch 24, .*1 thread" term1.out || { cat term1.out; fail "not 1 process x 24"; }
"$mae" pretrain --data png --epochs 40 --max-steps 100 --batch 24 --noise-by-position --out whole1 "${q[@]}" \
  > whole1.txt
test -s term2/mae_final.safetensors || fail "no final weights after the resume"
test "$(tail -1 term2/log.csv | cut -d, -f1)" = 100 || fail "the resumed run did not end at step 100"
same_losses whole1/log.csv term2/log.csv
echo "SIGTERM at step $stopped on 2 processes, resumed on 1: log and last step as one process throughout"

# --- SIGKILL of one rank: mpirun fails, the last checkpoint is intact and resumes
"${run2[@]}" "$mae" pretrain --data png --epochs 40 --batch 12 --out killed "${q[@]}" > killed.out 2> killed.err &
launcher=$!
for _ in $(seq 1 600); do
  test -s killed/checkpoint.safetensors && break
  sleep 0.1
done
test -s killed/checkpoint.safetensors || fail "no checkpoint after 60 s"
victim=$(pgrep -P "$launcher" -f "mae pretrain" | tail -1 || true)
test -n "$victim" || victim=$(pgrep -f "killed.*no-progress" | grep -v "^$launcher$" | tail -1)
kill -9 "$victim"
if wait "$launcher"; then fail "mpirun exited 0 after a rank was killed"; fi
echo "mpirun exited non-zero after SIGKILL of rank process $victim"
"${run2[@]}" "$mae" pretrain --data png --epochs 40 --batch 12 --out killed --max-steps 1 \
  --resume killed/checkpoint.safetensors "${q[@]}" | grep -q "resumed from killed/checkpoint.safetensors" \
  || fail "the checkpoint left by the killed job does not resume"
echo "mpi cli test passed"
