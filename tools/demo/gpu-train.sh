#!/usr/bin/env bash
# The demo transformer's training (train_nbp.py) on a lent GPU machine (issue 18), in one call of the device tool:
# ~100x the samples a 2-core session trains on, in minutes. Run from the repository root there (its python3 holds
# PyTorch with CUDA; nothing needs to be carried):
#   bash tools/demo/gpu-train.sh OUT_DIR [SECONDS] [CLIPS] [STEPS] [BATCH] [train_nbp.py options, e.g. --objective latent]
# Writes into OUT_DIR (the device tool returns at most 8 files of 16 MiB): train.log, diagnose.md (diagnose_prediction.py
# on 64 held-out clips) and the checkpoint with fp16 tensors split into 15 MiB parts, demo-nbp-f16.ckpt.part-aa, -ab.
# Back here:
#   cat DIR/demo-nbp-f16.ckpt.part-* > RUN/demo-nbp.ckpt
#   nbp-run convert RUN/demo-nbp.ckpt RUN/demo-nbp.safetensors --dtype f16
#   nbp-run eval --weights RUN/demo-nbp.safetensors --tokenizer weights/demo/demo-tokenizer.safetensors
# STEPS is a ceiling: train_nbp.py --finish-by shortens it after timing steps 20-60 so the cosine schedule ends inside
# SECONDS (the log says to what). The run also saves every 1000 steps, so a run stopped at the time cap still leaves
# its last save.
set -u
out=${1:?usage: gpu-train.sh OUT_DIR [SECONDS] [CLIPS] [STEPS] [BATCH]}
budget=${2:-300}
clips=${3:-100000}
steps=${4:-10000}
batch=${5:-256}
extra=("${@:6}")
device=${DEVICE:-cuda}  # DEVICE=cpu PYTHON=/usr/bin/python3 try the plumbing on a machine without a GPU
python=${PYTHON:-python3}  # the device machine's python3 holds PyTorch with CUDA
deadline=$(( $(date +%s) + budget ))
export PYTHONUNBUFFERED=1
# a folder per call (train_nbp.py refuses to resume a run with other settings), the tokenized clips shared between
# them: a second call on a warm machine skips the tokenizing (~105 s for 120000 clips); the cache's stamp names the
# tokenizer, so a call with another one stops with a clear error instead of reading codes that are not its own
seed=2
for ((i = 0; i < ${#extra[@]}; i++)); do
  case "${extra[i]}" in --seed) seed=${extra[i+1]} ;; --seed=*) seed=${extra[i]#--seed=} ;; esac
done
run=/tmp/demo-gpu-run/$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$out" "$run" "/tmp/demo-gpu-tokens/tokens-$seed"
ln -s "/tmp/demo-gpu-tokens/tokens-$seed" "$run/tokens-$seed"
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; "$python" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } > "$out/train.log" 2>&1

# the schedule is fitted to end 75 s before the deadline (--finish-by), which leaves the diagnosis and the copies their
# time; the timeout 40 s before it is only the safety net for a tokenization that overruns
timeout --kill-after=5 $(( deadline - $(date +%s) - 40 )) \
  "$python" tools/demo/train_nbp.py --device "$device" --workers "$(nproc)" --threads "$(nproc)" \
    --tokenizer weights/demo/demo-tokenizer.safetensors --out "$run" --finish-by $(( deadline - 75 )) \
    --clips "$clips" --steps "$steps" --batch "$batch" --save-every 1000 "${extra[@]}" >> "$out/train.log" 2>&1
echo "train_nbp.py rc $? at $(date -u +%T)" >> "$out/train.log"
grep -v "^tokenized" "$out/train.log" | tail -25

if [ -f "$run/demo-nbp.ckpt" ]; then
  timeout 60 "$python" tools/demo/diagnose_prediction.py --device "$device" --weights "$run/demo-nbp.ckpt" \
    --tokenizer weights/demo/demo-tokenizer.safetensors --clips 64 --code-noise > "$out/diagnose.md" 2>&1
  cat "$out/diagnose.md"
  "$python" - "$run/demo-nbp.ckpt" "$run/demo-nbp-f16.ckpt" <<'EOF'
import sys, torch
saved = torch.load(sys.argv[1], map_location="cpu", weights_only=False)  # written by train_nbp.py in this call
saved["state_dict"] = {k: v.half() for k, v in saved["state_dict"].items()}
torch.save(saved, sys.argv[2])
EOF
  split -b 15M "$run/demo-nbp-f16.ckpt" "$out/demo-nbp-f16.ckpt.part-"
  ls -l "$out"
else
  echo "no checkpoint: the run stopped before its first save"
fi
