#!/usr/bin/env bash
# The whole GPU check in one short run (about 7 minutes on an H100/H200, 9 at most), for a
# machine that has a CUDA device and the project's virtual environment (make .venv first, or
# VENV=path). Writes everything under ${OUT:-benchmarks/output/gpu}:
#
#   pytest-cuda.txt        every test marked `cuda` (the CUDA half of the device fixture)
#   throughput_*.json      fixed-epoch Adam, symnplm vs plain torch in the same process:
#                          1-4-1 and 5-5-5-5-1 at 2.2e5 events, R = 1, 64, 256
#   calibration_*.json     t_obs + permutations at 2.2e5 events, Newton (1-4-1 and 5-4-1),
#                          extrapolated to 1000 permutations
#   newton_sync_*.json     Newton with a host sync every 10 iterations against one per
#                          iteration (same process): wall time, iterations, |Δt|, and the
#                          host waits and CUDA synchronisations per iteration
#   nvidia-smi.txt         the device
#
# Each step has its own time limit, so that one slow step leaves the others' results.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/output/gpu}
PY=${VENV:-.venv}/bin/python
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$OUT/nvidia-smi.txt"
"$PY" - <<'EOF' || { echo "torch sees no CUDA device: nothing to check" >&2; exit 2; }
import sys, torch
if not torch.cuda.is_available():
    sys.exit(1)
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))
EOF

echo "== pytest -m cuda"
timeout 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests > "$OUT/pytest-cuda.txt" 2>&1
echo "pytest rc=$?" | tee -a "$OUT/pytest-cuda.txt"

echo "== Adam throughput (plain torch baseline in the same process)"
timeout 150 "$PY" -m benchmarks.throughput --device cuda --dims 1 5 --events 220000 \
    --replicas 1 64 256 --target-seconds 1 --no-memory --output-dir "$OUT" --tag gpu \
    || echo "throughput: rc=$?"

echo "== Newton: host synchronisations, SYNC_EVERY 10 against 1"
timeout 150 "$PY" -m benchmarks.newton_sync --device cuda --events 220000 --permutations 64 \
    --intervals 10 --max-iter 1000 --output-dir "$OUT" --tag gpu || echo "newton_sync: rc=$?"

echo "== calibration: t_obs + permutations, Newton"
for arch in "1 4 1" "5 4 1"; do
    dim=${arch%% *}
    timeout 60 "$PY" -m benchmarks.calibration_time --device cuda --dim "$dim" \
        --architecture $arch --events 220000 --permutations 256 --batch-size 256 \
        --max-iter 1000 --output-dir "$OUT" --tag "gpu-${arch// /}" \
        || echo "calibration ${arch}: rc=$?"
done
ls -l "$OUT"
