#!/bin/bash
# Crash consistency: `mae pretrain` killed with SIGKILL 12 times (4-step epochs, a checkpoint
# each, written as checkpoint-<step>.safetensors, then linked as checkpoint.safetensors): every
# other kill at a random moment, the rest inside a checkpoint write (as soon as its temporary
# file appears).
# After every kill the run directory holds a checkpoint that resumes, or none; the next start
# removes the killed writer's temporary file; a final resume continues and finishes.
#   usage: tests/tools/crash_test.sh MAE WORK_DIR
set -euo pipefail
mae=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
args=(--data fashion-mnist --limit 128 --batch 32 --epochs 100000 --figure-images 1 --no-progress --threads 2 --out run)
step_of() {  # mae.step of a checkpoint, from its safetensors header
  /usr/bin/python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; print(json.loads(f.read(n))["__metadata__"]["mae.step"])' "$1"
}
RANDOM=7
kills_in_write=0
for i in $(seq 1 12); do
  resume=()
  if [ -e run/checkpoint.safetensors ]; then resume=(--resume run/checkpoint.safetensors); fi
  "$mae" pretrain "${args[@]}" "${resume[@]}" > "start_$i.txt" 2>&1 &
  pid=$!
  if [ $((i % 2)) -eq 0 ]; then  # inside a checkpoint write: as soon as its temporary file appears
    t0=$SECONDS
    while ! compgen -G "run/checkpoint-*.safetensors.tmp.$pid" > /dev/null && [ $((SECONDS - t0)) -lt 20 ]; do :; done
  else  # anywhere: 0.5 to 2.9 s (the dataset loads in about 0.5 s); while there is no checkpoint
    # yet, counted from the first one's arrival, so a loaded machine still gets past it
    t0=$SECONDS
    while [ ! -e run/checkpoint.safetensors ] && kill -0 "$pid" 2> /dev/null && [ $((SECONDS - t0)) -lt 120 ]; do
      sleep 0.05
    done
    r=$((RANDOM % 25 + 5))
    sleep "$((r / 10)).$((r % 10))"
  fi
  if ! kill -0 "$pid" 2> /dev/null; then
    wait "$pid" || { cat "start_$i.txt"; echo "FAILED: start $i exited on its own"; exit 1; }
  fi
  kill -9 "$pid"
  wait "$pid" 2> /dev/null || true
  if compgen -G "run/checkpoint-*.safetensors.tmp.$pid" > /dev/null; then kills_in_write=$((kills_in_write + 1)); fi
  if [ -e run/checkpoint.safetensors ]; then
    echo "kill $i: checkpoint at step $(step_of run/checkpoint.safetensors)"
  else
    echo "kill $i: no checkpoint yet"
  fi
done
echo "kills that left a temporary file (inside a write): $kills_in_write of 12"
test "$kills_in_write" -ge 1 || { echo "FAILED: no kill landed inside a checkpoint write"; exit 1; }
test -e run/checkpoint.safetensors
steps=$(step_of run/checkpoint.safetensors)
"$mae" pretrain "${args[@]}" --resume run/checkpoint.safetensors --max-steps $((steps + 4)) > final.txt 2>&1 \
  || { cat final.txt; echo "FAILED: the final resume"; exit 1; }
grep -q "resumed from run/checkpoint.safetensors at step $steps" final.txt
test "$(step_of run/checkpoint.safetensors)" -eq $((steps + 4))
if ls run/*.tmp.* > /dev/null 2>&1; then ls run; echo "FAILED: temporary files left after the next start"; exit 1; fi
echo "crash consistency: OK"
