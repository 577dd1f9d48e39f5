#!/bin/bash
# One device run of `phosphene bench gpu` on a bare lent H200 (issue 12). From the repo root:
#   scripts/gpu_bench/fetch_deps.sh      (here, once: the wheels and GL libraries, ~46 MB)
#   run(command="bash scripts/gpu_bench/run.sh 420", carry=["build/gpu-deps"], timeout_s=600)
# $1: the bench's budget in seconds (default 420). Everything lands in $OUT: gpu.json (rewritten
# after each section, so a cut-short run still returns figures), gpu.log, gpu.md, env.txt.
# The image has torch 2.11/numpy/scipy/numba; the wheels here (cp312) add what the live, upload
# and offline sections import (moderngl, glcontext, av, librosa, soundfile, pydantic, ...), the
# debs the GL loaders (libglvnd/libEGL) for EGL on the NVIDIA driver.
set -u
BUDGET="${1:-420}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
cd "$(dirname "$0")/../.." || exit 1
{
  for f in build/gpu-deps/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$vendor"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site build/gpu-deps/wheels/*.whl
  export PYTHONPATH=/tmp/site
  # phosphene's subpackages live in live/, models/, render/, presets/ (setup.cfg package_dir):
  # try an editable install, else a tree of links that mirrors the installed layout
  if ! python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
      || ! python3 -c "import phosphene.models.bench_gpu"; then
    rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r phosphene /tmp/pkg/
    for d in live models render presets; do ln -s "$PWD/$d" "/tmp/pkg/phosphene/$d"; done
    export PYTHONPATH=/tmp/pkg:/tmp/site
  fi
  nvidia-smi; python3 -c "import torch, moderngl, av, librosa; print(torch.__version__, torch.cuda.get_device_name())"
} >"$OUT/env.txt" 2>&1
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m phosphene bench gpu -o "$OUT/gpu.json" --budget-s "$BUDGET" \
  2> >(tee "$OUT/gpu.log" >&2) | tee "$OUT/gpu.md"
rc=$?
tail -5 "$OUT/env.txt"
exit $rc
