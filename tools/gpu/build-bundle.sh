#!/usr/bin/env bash
# Builds the self-contained linux-x64 GPU runner bundle: artifacts/nbp-gpu.tar.xz (no .NET needed on
# the GPU machine, InvariantGlobalization so ICU is not needed either). On the GPU machine:
#   tar -xJf nbp-gpu.tar.xz && nbp-gpu/nbp-gpu-check --out results
# which runs the kernel parity suite on CUDA, whole-model parity against the PyTorch fixtures, and
# the K600-shaped timings against the weight-bandwidth floor (tools/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=artifacts/nbp-gpu
rm -rf "$out" artifacts/nbp-gpu.tar.xz
dotnet publish tools/gpu/NbpEngine.GpuRunner -c Release -r linux-x64 --self-contained \
  -p:InvariantGlobalization=true -p:DebugType=none -o "$out" -v q -nologo
tar -C artifacts -cJf artifacts/nbp-gpu.tar.xz nbp-gpu
size=$(stat -c %s artifacts/nbp-gpu.tar.xz)
echo "artifacts/nbp-gpu.tar.xz: $((size / 1024 / 1024)) MiB"
if [ "$size" -ge $((40 * 1024 * 1024)) ]; then echo "bundle is over 40 MB" >&2; exit 1; fi
