#!/usr/bin/env bash
# The performance issue's GPU measurement, prepared to run once inside a short device lease: GPT-2 base (random
# init) at 1024 tokens (cifar10_lra) and at the MNIST and CIFAR-10 shapes, bf16, plain and torch.compile'd, against the
# naive loop, written as JSON and logs to $OUT. See benchmarks/README.md ("On a lent GPU").
#
#   here, where pip reaches the package registry:   bash benchmarks/device_check.sh prepare
#   there (the device tool's run, carry [".whl"]):   bash benchmarks/device_check.sh run
#
# `prepare` builds fpt-bench's own wheel and downloads the wheels the device image lacks (pydantic and its
# compiled core, for the image's Python) into .whl/, which git ignores. `run` installs them into /tmp/site and
# runs each benchmark under its own time limit, so one failing shape still leaves the others' results.
# Overrides (a dry run on a CPU, say): CHECK_PYTHON (default python3: with torch and transformers, without
# fpt-bench), CHECK_PYTHON_VERSION (of the wheels `prepare` downloads; default 3.12), CHECK_DEVICE=cpu,
# CHECK_TASKS="bit_xor mnist,cifar10" (space-separated runs), CHECK_TIMEOUT (seconds per run, default 180),
# CHECK_ARGS="--layers 1 --steps 1 --warmup 1 --eval-examples 8 --eval-rounds 1" (replaces the step counts).
set -uo pipefail

PYVER=${CHECK_PYTHON_VERSION:-3.12}  # the device image's python3 (KINDS.md: Python 3.12.3)
PYTHON=${CHECK_PYTHON:-python3}
MISSING_THERE=(pydantic pydantic-core annotated-types typing-inspection)  # what the device image lacks

case "${1:-}" in
prepare)
    # the versions installed beside the fpt-bench that prepares them (the ones its tests ran with)
    pins=$("$PYTHON" -c 'import sys, importlib.metadata as m
for name in sys.argv[1:]:
    print(f"{name}=={m.version(name)}")' "${MISSING_THERE[@]}") || exit 1
    mapfile -t wheels <<< "$pins"
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    rm -rf .whl && mkdir -p .whl || exit 1
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${wheels[@]}" || exit 1
    # setuptools builds in place: remove the build/ and egg-info it leaves (an egg-info in the checkout would be
    # a second, stale copy of fpt-bench's metadata for anything run from here), not ones that were there before
    made=()
    for path in build fpt_bench.egg-info; do
        [ -e "$path" ] || made+=("$path")
    done
    "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w .whl . || exit 1
    rm -rf "${made[@]}"
    ls -l .whl
    ;;
run)
    out=${OUT:?OUT must name the folder for results}
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl > "$out/install.log" 2>&1 || { cat "$out/install.log"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    (nvidia-smi || true) > "$out/nvidia-smi.txt" 2>&1
    device=${CHECK_DEVICE:-cuda}
    # shellcheck disable=SC2206
    extra=(${CHECK_ARGS:---steps 10 --warmup 3 --eval-examples 512 --eval-batch-size 128 --eval-rounds 2})
    failed=0
    for tasks in ${CHECK_TASKS:-cifar10_lra mnist cifar10}; do
        tag=${tasks//,/-}
        echo "== $tasks ($(date +%T))"
        timeout "${CHECK_TIMEOUT:-180}" "$PYTHON" benchmarks/throughput.py --device "$device" --tasks "$tasks" \
            --batch-size 16 --precision bf16 --compile --cache-tasks "" "${extra[@]}" \
            --json "$out/throughput-$tag.json" > "$out/log-$tag.txt" 2>&1
        code=$?
        tail -n 8 "$out/log-$tag.txt"
        [ "$code" -eq 0 ] || { echo "== $tasks failed with exit code $code"; failed=1; }
    done
    exit "$failed"
    ;;
*)
    echo "usage: bash benchmarks/device_check.sh prepare|run" >&2
    exit 2
    ;;
esac
