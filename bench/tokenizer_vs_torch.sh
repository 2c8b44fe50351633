#!/usr/bin/env bash
# Full-size tokenizer decode/encode: nbp-run vs PyTorch (1 thread and all cores, OpenBLAS), one script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/install-reference.sh
dotnet build -c Release src/Cli -v q -nologo
exec /usr/bin/python3 bench/tokenizer_vs_torch.py --exe src/Cli/bin/Release/net10.0/nbp-run "$@"
