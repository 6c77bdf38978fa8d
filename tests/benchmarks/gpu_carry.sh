#!/usr/bin/env bash
# Prepares what issue 12's GPU check needs on the device machine that some sessions are lent (see
# tests/benchmarks/gpu_check.py), here, in the checkout: the wheels that machine's image lacks, in loads
# that each fit one call's 64 MiB, and the calls to make.
#
#   bash tests/benchmarks/gpu_carry.sh          # writes .gpu/load1 .. .gpu/loadN (ignored by git), prints the calls
#
# Why loads: the image (Python 3.12, CUDA 13, cuDNN 9, as the device's KINDS.md listed it on 2026-11-17) has
# onnxruntime 1.30 without its GPU providers and lacks some of evalkit's dependencies; nothing there reaches the
# network, and a call carries at most 64 MiB, but onnxruntime-gpu's wheel is 244 MiB. So the wheel travels in
# pieces, one load per call, onto one warm machine (it stays warm for 30 s after a call: make the calls one
# right after the other), each call copying its load to /tmp/gpu there; the last call also joins the pieces,
# checks their SHA-256, installs everything into /tmp/site and runs the check (tests/benchmarks/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

ORT_GPU=onnxruntime-gpu==1.31.1  # built for CUDA 13 and cuDNN 9, as the image has them
# evalkit's dependencies that the image lacks (its numpy, scipy, onnx, opencv, scikit-image, pandas, matplotlib,
# numba, jinja2, pyyaml, tqdm, threadpoolctl, joblib, scikit-learn, lazy-loader, msgpack, requests are used as
# they are there), at the versions of the environment evalkit is tested in
MISSING=(pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
         librosa==0.11.0 audioread==3.1.0 soxr==1.1.0 pooch==1.9.0 decorator==5.3.1 platformdirs==4.14.8
         soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 ffmpeg-python==0.2.0 future==1.0.0
         imageio-ffmpeg==0.8.1 cryptography==50.0.2)
LOAD_MIB=56  # per call, leaving room for the working tree (about 3 MiB) under the 64 MiB limit

rm -rf .gpu
mkdir -p .gpu/wheels
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .gpu/wheels "$@"
}
download "$ORT_GPU"
download "${MISSING[@]}"

# wheels larger than a load in pieces (onnxruntime-gpu, imageio-ffmpeg with its ffmpeg), their SHA-256 kept to
# check the joined files; the rest whole; all packed in order into loads of LOAD_MIB
mkdir .gpu/pieces
: > .gpu/pieces/SHA256SUMS
for big in .gpu/wheels/*.whl; do
  [ "$(stat -c %s "$big")" -gt $((LOAD_MIB * 1024 * 1024)) ] || continue
  split -b "${LOAD_MIB}M" -d -a 2 "$big" ".gpu/pieces/$(basename "$big").part-"
  (cd .gpu/wheels && sha256sum "$(basename "$big")") >> .gpu/pieces/SHA256SUMS
  rm "$big"
done
# first fit, largest first: the fewest loads (each a call)
n=$(python3 - "$LOAD_MIB" <<'PY'
import shutil, sys
from pathlib import Path
size = int(sys.argv[1]) * 1024 * 1024
files = sorted([*Path(".gpu/pieces").glob("*.part-*"), *Path(".gpu/wheels").glob("*.whl")],
               key=lambda f: f.stat().st_size, reverse=True)
loads = []  # bytes used per load
for f in files:
    k = next((k for k, used in enumerate(loads) if used + f.stat().st_size <= size), None)
    if k is None:
        loads.append(0)
        k = len(loads) - 1
        Path(f".gpu/load{k + 1}").mkdir()
    loads[k] += f.stat().st_size
    shutil.move(f, f".gpu/load{k + 1}/{f.name}")
print(len(loads))
PY
)
cp .gpu/pieces/SHA256SUMS ".gpu/load$n/"
rm -rf .gpu/wheels .gpu/pieces

echo "prepared $n loads in .gpu/ ($(du -sh .gpu | cut -f1)):"
du -sh .gpu/load* | sed 's/^/  /'
echo
echo "the calls, one right after the other (the machine goes back 30 s after a call):"
for k in $(seq 1 $((n - 1))); do
  echo "  run  carry=[\".gpu/load$k\"]  timeout_s=180  command: mkdir -p /tmp/gpu && cp .gpu/load$k/* /tmp/gpu/ && ls /tmp/gpu | wc -l"
done
echo "  run  carry=[\".gpu/load$n\"]  timeout_s=540  command: mkdir -p /tmp/gpu && cp .gpu/load$n/* /tmp/gpu/ && bash tests/benchmarks/gpu_check.sh"
