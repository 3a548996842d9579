#!/usr/bin/env bash
# Every GPU test and benchmark in one device call; prints a short table last.
# On a lent GPU machine, from the repository root:  bash benchmarks/gpu_check.sh
set -uo pipefail
python3 -m pip install -q -e ".[test]" > /tmp/gpu_check_install.log 2>&1 || tail -5 /tmp/gpu_check_install.log
rows=()
device=$(python3 -c 'from tsne_dist.xp import cupy_or_none as c; cp = c(); print("none" if cp is None else cp.cuda.runtime.getDeviceProperties(0)["name"].decode())')
rows+=("device|$device")
if python3 -m pytest -q tests/test_gpu.py > /tmp/gpu_tests.log 2>&1; then status=passed; else status=FAILED; fi
rows+=("tests/test_gpu.py|$status ($(tail -1 /tmp/gpu_tests.log))")
if [ "$device" != "none" ]; then
  python3 - > /tmp/gpu_knn.log 2>&1 <<'PY'
import time, numpy as np, cupy as cp
from tsne_dist.neighbors.bruteforce import bruteforce_knn
data = cp.asarray(np.random.default_rng(0).normal(size=(1_000_000, 128)).astype(np.float32))
bruteforce_knn(data[:20000], 15); cp.cuda.Device().synchronize()
start = time.perf_counter(); bruteforce_knn(data, 15, query_block=8192, data_block=262144)
cp.cuda.Device().synchronize(); print(f"RESULT {time.perf_counter() - start:.2f}")
PY
  rows+=("bruteforce kNN 1M x 128 (s)|$(grep RESULT /tmp/gpu_knn.log | cut -d' ' -f2)")
  python3 benchmarks/bench_engine.py --sizes 100000 1000000 --engines cupy --full-limit 2000000 \
      --out /tmp/gpu_engine > /tmp/gpu_engine.log 2>&1
  while IFS= read -r line; do rows+=("engine|$line"); done < <(grep "^| synthetic" /tmp/gpu_engine.log)
fi
printf '\n%-32s %s\n' "check" "result"
for row in "${rows[@]}"; do printf '%-32s %s\n' "${row%%|*}" "${row#*|}"; done
