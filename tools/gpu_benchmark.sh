#!/bin/sh
# The GPU figures of docs/BENCHMARKS.md in one short run, for a lent GPU machine (issue 15).
#
#   sh tools/gpu_benchmark.sh [OUTPUT_DIR]        # default: $OUT when set (the device tool), else runs/gpu
#
# Needs a Python with this package's requirements importable (TensorFlow with CUDA). Each step has its own time
# limit, so a slow or failing step cannot eat the others' time; every step's JSON and log land in OUTPUT_DIR.
# At most 6.5 minutes. tools.bench_peer is not run: its PyTorch reference is CPU-only.
set -u
out="${1:-${OUT:-runs/gpu}}"
mkdir -p "$out"
py="${PYTHON:-python}"
export TF_CPP_MIN_LOG_LEVEL=2
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$py" -c "import tensorflow as tf; print(tf.__version__, tf.config.list_physical_devices('GPU'))" 2>&1
} > "$out/machine.txt"
step() {  # step NAME SECONDS ARGS...
  name="$1"; limit="$2"; shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$py" -m "$@" --output="$out/$name.json" > "$out/$name.out" 2> "$out/$name.log"
  echo "   exit $?"
}
# The compute grid: the four families, 256 px, batches 1 and 16, float32 and the GPU's mixed type, XLA off/on.
step benchmark 300 tools.benchmark --sizes=256 --batch_sizes=1,16 --grid=full
# InfoAccum's two formulations (cuDNN's dilated convolutions may favour the direct one on a GPU).
step bench_infoaccum 90 tools.bench_infoaccum --norm=batch --rounds=3
