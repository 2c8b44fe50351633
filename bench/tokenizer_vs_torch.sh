#!/usr/bin/env bash
# Full-size tokenizer decode/encode: nbp-run vs PyTorch (1 thread and all cores, OpenBLAS), one script.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null || ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-numpy libopenblas0-pthread
fi
dotnet build -c Release src/Cli -v q -nologo
exec /usr/bin/python3 bench/tokenizer_vs_torch.py --exe src/Cli/bin/Release/net10.0/nbp-run "$@"
