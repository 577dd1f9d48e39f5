#!/usr/bin/env bash
# Fetch what `phosphene bench gpu` needs on a bare lent GPU machine (issue 12) into
# build/gpu-deps (ignored by git; carried to the device by the `run` tool): cp312 wheels of the
# packages its image lacks, and the GL loader packages for EGL on the NVIDIA driver.
# Then: run(command="bash scripts/gpu_bench/run.sh 420", carry=["build/gpu-deps"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p build/gpu-deps/wheels build/gpu-deps/gl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d build/gpu-deps/wheels \
  av==18.1.0 moderngl==5.13.0 glcontext==3.1.0 librosa==0.11.0 soundfile==0.14.0 cffi==2.0.0 \
  pycparser pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 python-osc==1.10.2 platformdirs==4.14.9 soxr==1.1.0 \
  audioread==3.1.0 pooch==1.9.0 decorator==5.3.1
(cd build/gpu-deps/gl && apt-get download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
du -sh build/gpu-deps
