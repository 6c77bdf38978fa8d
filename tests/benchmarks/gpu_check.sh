#!/usr/bin/env bash
# On the device machine, after the loads of gpu_carry.sh were copied to /tmp/gpu: join onnxruntime-gpu's
# wheel, check it, install the wheels into /tmp/site (the image's own packages stay as they are), then run
# gpu_check.py with its results in $OUT (the folder the device tool brings back), or reports/benchmarks/gpu_check.
set -euo pipefail
cd "$(dirname "$0")/../.."
stash=${GPU_STASH:-/tmp/gpu}
out=${OUT:-reports/benchmarks/gpu_check}
mkdir -p "$out"
[ -f "$stash/SHA256SUMS" ] || { echo "gpu_check: no $stash/SHA256SUMS: copy every load of gpu_carry.sh there first" >&2; exit 2; }
while read -r _ wheel; do  # the wheels that travelled in pieces
  cat "$stash/$wheel".part-* > "$stash/$wheel"
done < "$stash/SHA256SUMS"
(cd "$stash" && sha256sum -c SHA256SUMS) || { echo "gpu_check: a joined wheel is incomplete: a load is missing" >&2; exit 2; }
rm -f "$stash"/*.part-*
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$stash"/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi || true
python3 -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.__file__, o.get_available_providers())'
python3 tests/benchmarks/gpu_check.py --out "$out" 2>&1 | tee "$out/gpu_check.log"
