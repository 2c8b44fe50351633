#!/usr/bin/env bash
# Builds the self-contained linux-x64 GPU runner bundle: artifacts/nbp-gpu.tar.xz (no .NET needed on
# the GPU machine, InvariantGlobalization so ICU is not needed either). On the GPU machine:
#   tar -xJf nbp-gpu.tar.xz && nbp-gpu/nbp-gpu-check --out results
#   nbp-gpu/nbp-bench --random-weights --backend cuda --device-weights f16 --cache /tmp --out results
# which runs the kernel parity suite on CUDA, whole-model parity against the PyTorch fixtures, and
# the K600-shaped timings against the weight-bandwidth floor (tools/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=artifacts/nbp-gpu
rm -rf "$out" artifacts/nbp-gpu.tar.xz
# three apps, one folder (they share the self-contained runtime): the check, the end-to-end benchmark
# (nbp-bench --random-weights --backend cuda --device-weights f16) and the per-op BenchmarkDotNet suite
# (NbpEngine.Benchmarks --filter "*DeviceBenchmarks*": the CUDA kernels against cuBLAS)
for project in tools/gpu/NbpEngine.GpuRunner bench/NbpEngine.Bench bench/NbpEngine.Benchmarks; do
  dotnet publish "$project" -c Release -r linux-x64 --self-contained \
    -p:InvariantGlobalization=true -p:DebugType=none -o "$out" -v q -nologo
done
# BenchmarkDotNet's Windows-only tracing natives and the XML docs are dead weight on a Linux GPU machine
rm -rf "$out"/amd64 "$out"/x86 "$out"/arm64 "$out"/*.xml
tar -C artifacts -cJf artifacts/nbp-gpu.tar.xz nbp-gpu
size=$(stat -c %s artifacts/nbp-gpu.tar.xz)
echo "artifacts/nbp-gpu.tar.xz: $((size / 1024 / 1024)) MiB"
# the device tool carries at most 64 MiB in all; keep well under it
if [ "$size" -ge $((48 * 1024 * 1024)) ]; then echo "bundle is over 48 MiB" >&2; exit 1; fi
