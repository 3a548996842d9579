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
  python3 benchmarks/bench_knn.py --dataset synthetic --dims 128 --sizes 1000000 --modes gpu \
      > /tmp/gpu_knn.log 2>&1
  rows+=("bruteforce kNN 1M x 128 (k|s|recall@15)|$(grep '^| synthetic' /tmp/gpu_knn.log | cut -d'|' -f4,6,7)")
  python3 benchmarks/bench_engine.py --sizes 100000 1000000 --engines cupy --full-limit 2000000 \
      --out /tmp/gpu_engine > /tmp/gpu_engine.log 2>&1
  while IFS= read -r line; do rows+=("engine|$line"); done < <(grep "^| synthetic" /tmp/gpu_engine.log)
  python3 benchmarks/bench_stable.py --items 200000 --dims 32 --work-dir /tmp/gpu_stable -- --engine cupy \
      > /tmp/gpu_stable.log 2>&1
  while IFS= read -r line; do rows+=("stable maps 200k (cupy)|$line"); done < <(python3 -c '
import json, sys
for line in open("/tmp/gpu_stable.log"):
    if line.startswith("{"):
        row = json.loads(line)
        moved = row.get("stability", {}).get("displacement_median")
        print(row["step"], "wall", row["wall_s"], "s, recall", row["recall@10"], "moved", moved)')
fi
printf '\n%-32s %s\n' "check" "result"
for row in "${rows[@]}"; do printf '%-32s %s\n' "${row%%|*}" "${row#*|}"; done
