#!/usr/bin/env bash
# Runs every GPU test and benchmark in one device call, then prints a short table.
# Usage on a lent GPU machine (repository root):  bash benchmarks/gpu_check.sh
# Today the GPU path is the xp-written exact kNN; the CuPy engine comes with its issue.
set -uo pipefail
python3 -m pip install -q -e . >/dev/null 2>&1 || python3 -m pip install -q -e . --no-deps
results=()
gpu=$(python3 - <<'PY'
from tsne_dist.xp import cupy_or_none
cp = cupy_or_none()
print("none" if cp is None else cp.cuda.runtime.getDeviceProperties(0)["name"].decode())
PY
)
results+=("device|$gpu")
if [ "$gpu" != "none" ]; then
  python3 - <<'PY' > /tmp/gpu_knn.txt
import time, numpy as np, cupy as cp
from tsne_dist.neighbors.bruteforce import bruteforce_knn
rng = np.random.default_rng(0)
small = rng.integers(0, 3, size=(2000, 8)).astype(np.float64)
i_cpu, _ = bruteforce_knn(small, 15)
i_gpu, _ = bruteforce_knn(cp.asarray(small), 15)
print("knn_equal_cpu_gpu", bool((cp.asnumpy(i_gpu) == i_cpu).all()))
data = cp.asarray(rng.normal(size=(1_000_000, 128)).astype(np.float32))
bruteforce_knn(data[:20000], 15); cp.cuda.Device().synchronize()
start = time.perf_counter(); bruteforce_knn(data, 15, query_block=8192, data_block=262144)
cp.cuda.Device().synchronize(); print("bruteforce_1Mx128_s", round(time.perf_counter() - start, 2))
PY
  while read -r key value; do results+=("$key|$value"); done < /tmp/gpu_knn.txt
fi
printf '\n%-24s %s\n' "check" "result"
for row in "${results[@]}"; do printf '%-24s %s\n' "${row%%|*}" "${row#*|}"; done
