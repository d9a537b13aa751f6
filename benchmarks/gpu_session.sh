#!/usr/bin/env bash
# Everything the GPU issue measures, in parts that each fit one device command (10 min),
# each step under its own timeout, every log written to OUT_DIR:
#
#     bash benchmarks/gpu_session.sh tests OUT_DIR   # the suite on CUDA (pytest -n 8)
#     bash benchmarks/gpu_session.sh engine OUT_DIR  # fit vs lean CUDA-graph step, stacking
#     bash benchmarks/gpu_session.sh study OUT_DIR   # the stacked study, per epoch
#
# A step that fails or runs out of time is logged and the part goes on; the part's exit
# status is that of its first failing step. Read the figures from OUT_DIR/*.log into
# docs/benchmarks.md.
set -uo pipefail
part=${1:?usage: gpu_session.sh tests|engine|study OUT_DIR}
out=${2:?usage: gpu_session.sh tests|engine|study OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
status=0

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a timeout, log to OUT/NAME.log
    local name=$1 seconds=$2
    shift 2
    echo "== $name ($*), at most ${seconds} s"
    timeout "$seconds" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "   exit $rc; last lines:"
    tail -n 5 "$out/$name.log" | sed 's/^/   /'
    [ "$status" -ne 0 ] || status=$rc
}

nvidia-smi --query-gpu=name,memory.total --format=csv >"$out/gpu.txt" 2>&1
case "$part" in
    tests)
        step pytest 540 python -m pytest -n 8 -q
        ;;
    engine)
        # fit / lean graph step <= 1.5 and six stacked restarts / one <= 2 (float32).
        step gpu_step 300 python -m benchmarks.speed.bench_gpu_step --epochs 3
        step gpu_step_tf32 120 python -m benchmarks.speed.bench_gpu_step --epochs 3 \
            --precision tf32 --restarts 1
        step restarts 150 python -m benchmarks.speed.bench_restarts --device cuda --rows 20000
        ;;
    study)
        # Six seeds of a variant stacked, seconds per epoch with the monitoring, and the
        # whole study extrapolated to 200 epochs.
        step study 540 python -m benchmarks.speed.bench_study --device cuda --rows 50000 \
            --seeds 0 1 2 3 4 5 --epochs 2 --study-epochs 200
        ;;
    *)
        echo "unknown part $part: tests, engine or study" >&2
        exit 2
        ;;
esac
exit "$status"
