#!/usr/bin/env bash
# Issue 17's measurements in one call of a lent GPU machine, most important first, each step capped so
# that a slow or hung step cannot eat the next ones' time (device time is minutes per session):
#   1. nbp-gpu-check: kernel parity, whole-model greedy parity (4 fixture cases), tokenizer parity, then
#      the K600-shaped step timings (fp16 and fp32 weights, B = 16 and B = 1) and the full-size tokenizer;
#   2. nbp-bench end to end on CUDA, B = 16 and B = 1, fp16 then fp32 device weights (same random files);
#   3. the step GEMM's launch shapes, each timed at the K600 shapes, and the step under the rule they support
#      (nbp-gpu-check --sweep-step-gemm; into session.log);
#   4. Nsight Compute on the step's kernels (separate kernels, B = 16, fp16 weights): two layers' launches and one sampler;
#   5. BenchmarkDotNet's DeviceBenchmarks (own fp32 matmul against cuBLAS SGEMM).
# Run from the repository root on the GPU machine with the bundle carried (tools/gpu/README.md):
#   bash tools/gpu/device-session.sh OUT_DIR [SECONDS]
# ONLY="ncu-layer ncu-sampler" (step names, space-separated) runs just those steps, for a session whose device time is
# mostly spoken for; the header and the peaks are written either way.
# Writes at most 8 files into OUT_DIR (the device tool returns no more): session.log, check.log, bench-f16.log,
# ncu.log, bench-f32.log, nbp-bench.md (f16), nbp-bench.json (f16), bdn.log. nvidia-smi's samples stay in /tmp; their
# peaks go into session.log.
set -u
out=${1:?usage: device-session.sh OUT_DIR [SECONDS]}
budget=${2:-540}
deadline=$(( $(date +%s) + budget ))
mkdir -p "$out"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$out/session.log"; }
# run_step NAME CAP_SECONDS LOGFILE CMD...: at most CAP seconds, never past the deadline
run_step() {
  local name=$1 cap=$2 file=$3; shift 3
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then log "$name skipped: not in ONLY"; return; fi
  local left=$(( deadline - $(date +%s) - 5 ))
  (( left < cap )) && cap=$left
  if (( cap < 20 )); then log "$name skipped: ${left}s left"; return; fi
  log "$name (cap ${cap}s): $*"
  local start=$(date +%s)
  timeout --kill-after=5 "$cap" "$@" > "$out/$file" 2>&1
  log "$name rc $? after $(( $(date +%s) - start ))s"
}

log "start; budget ${budget}s"
tar -xJf artifacts/nbp-gpu.tar.xz -C /tmp
bundle=/tmp/nbp-gpu
# the PyTorch fixtures travel in the working tree, not in the bundle (the device tool's 64 MiB limit)
[ -e "$bundle/fixtures" ] || ln -s "$PWD/tests/fixtures" "$bundle/fixtures"
{
  nvidia-smi
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
  grep -m1 "model name" /proc/cpuinfo; nproc; uname -r
  ldconfig -p | grep -E "libcuda\.so|libcublas"
} >> "$out/session.log" 2>&1
# memory and clocks every 0.5 s for the whole session: the peak is the "memory used" figure
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu,clocks.sm,power.draw --format=csv,noheader -lms 500 > /tmp/smi.csv 2>&1 &
sampler=$!

run_step check 240 check.log "$bundle/nbp-gpu-check" --out /tmp/check
grep -v "^ok " "$out/check.log" | head -60

common=(--random-weights --backend cuda --blocks 1,16 --cache /tmp
        --weights /tmp/nbp-k600-random-24.safetensors --tokenizer /tmp/nbp-tokenizer-random.safetensors)
run_step bench-f16 150 bench-f16.log "$bundle/nbp-bench" "${common[@]}" --device-weights f16 --out /tmp/bench-f16 --json "$out/nbp-bench.json"
cp /tmp/bench-f16/nbp-bench.md "$out/" 2>/dev/null
tail -30 "$out/bench-f16.log"
# every group size of the step GEMM at the K600 shapes: which the launch rule should pick, the rule the timings support,
# and the whole K600 step (separate kernels, B = 16 and 1) with today's launches and with that rule (the tables go into
# session.log, to stay within the 8 files; ~60 s for the sweep, the two step timings after it)
run_step sweep 150 sweep.log "$bundle/nbp-gpu-check" --sweep-step-gemm
if [ -f "$out/sweep.log" ]; then tee -a "$out/session.log" < "$out/sweep.log"; rm "$out/sweep.log"; fi
# Nsight Compute (Firecracker machines read the counters; --clock-control none leaves the clocks as the timings had them).
# nbp-gpu-check --profile-steps runs 4 K600 steps and nothing else: per step 24 x (q/k/v Step, Partial, Combine, proj
# Step, fc Step, out Step) + head Step + Sample; skipping 160 of those lands inside the third step, and any 12 in a row
# hold each of a layer's six twice. ILGPU names a kernel's entry Kernel_<method>.
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$ncu" ]; then
  sections=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats
            --section WarpStateStats --section SchedulerStats --section ComputeWorkloadAnalysis)
  run_step ncu-layer 90 ncu.log "$ncu" --clock-control none --target-processes all "${sections[@]}" \
    --kernel-name "regex:^Kernel_(Step|Partial|Combine)$" --launch-skip 160 --launch-count 12 \
    "$bundle/nbp-gpu-check" --profile-steps
  [ -f "$out/ncu.log" ] && mv "$out/ncu.log" /tmp/ncu-layer.log
  # the third draw's whole chain of sampler launches (top-k and top-p both cut: 19 launches a draw)
  run_step ncu-sampler 75 ncu.log "$ncu" --clock-control none --target-processes all "${sections[@]}" \
    --kernel-name "regex:^Kernel_(Scale|TopKLevel|Weigh|TopPLevel|Cut|Survivors|Draw)$" --launch-skip 38 --launch-count 19 \
    "$bundle/nbp-gpu-check" --profile-steps
  cat /tmp/ncu-layer.log "$out/ncu.log" > /tmp/ncu-both.log 2>/dev/null; mv /tmp/ncu-both.log "$out/ncu.log"
  grep -E "^  (Kernel_|    (Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per Thread))" "$out/ncu.log" | head -200
else
  log "ncu: not found"
fi
run_step bench-f32 80 bench-f32.log "$bundle/nbp-bench" "${common[@]}" --device-weights f32 --out /tmp/bench-f32
tail -20 "$out/bench-f32.log"

# cuBLAS for the comparison: ILGPU.Algorithms 1.5.3 loads libcublas.so.10/11/12; the machine's CUDA 13
# Python wheels carry libcublas.so.13 (same C API for what it calls), so point a .12 name at it
cublas=$(find /opt /usr/local /usr/lib -name 'libcublas.so.1[0-9]*' 2>/dev/null | head -1)
if [ -n "$cublas" ]; then
  mkdir -p /tmp/cublas && ln -sf "$cublas" /tmp/cublas/libcublas.so.12
  export LD_LIBRARY_PATH=/tmp/cublas:$(dirname "$cublas"):${LD_LIBRARY_PATH:-}
fi
log "cublas: ${cublas:-none found}"
# short iterations: with BenchmarkDotNet's defaults (500 ms iterations, pilot, overhead stages) the 24 cases took
# ~10 s each and the first run's 90 s cap ended it after one warm-up
run_step bdn 120 bdn.log "$bundle/NbpEngine.Benchmarks" --filter "*DeviceBenchmarks*" --artifacts /tmp/bdn \
  --iterationTime 50 --warmupCount 1 --iterationCount 3
grep -E "^\|" "$out/bdn.log" | tail -20

kill "$sampler" 2>/dev/null
log "peak memory used (MiB): $(cut -d, -f2 /tmp/smi.csv | grep -o '[0-9]*' | sort -n | tail -1); peak power (W): $(cut -d, -f5 /tmp/smi.csv | grep -o '[0-9.]*' | sort -n | tail -1)"
log done
