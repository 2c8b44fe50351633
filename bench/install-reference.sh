#!/usr/bin/env bash
# Installs what the PyTorch side of the benchmarks needs: Debian's torch and numpy, and OpenBLAS
# (Debian's default reference BLAS is ~20x slower and would make any comparison meaningless).
if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null || ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-numpy libopenblas0-pthread
fi
