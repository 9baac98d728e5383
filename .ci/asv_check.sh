#!/usr/bin/env bash
# CI for the asv suite: it must import, pass `asv check`, and run a small subset
# (the smallest shape of every benchmark, the first lengths case of the ragged
# one, onnxruntime's forward, plus the skip path of the CUDA engines) against
# the installed numgru, so the suite cannot rot.
# Needs numgru installed in this python (.ci/run installs it first); installs asv if missing.
# Usage: .ci/asv_check.sh        (PYTHON=python3.11 .ci/asv_check.sh for another interpreter)
set -euo pipefail
cd "$(dirname "$0")/../asv_bench"
PYTHON=${PYTHON:-python3}
start=$SECONDS

if ! "$PYTHON" -c "import asv" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "asv>=0.6,<0.7"
fi
asv=("$PYTHON" -m asv)

# `--python=same` needs a machine description; a named one keeps the user's own entry untouched.
"${asv[@]}" machine --yes --machine numgru-ci >/dev/null
"${asv[@]}" check --python=same

# One parameter set per benchmark. Regexes match "name(param, ...)"; string params are quoted.
subset=(
    --bench "Forward\.time_forward\('(numgru|torch|onnxruntime)-(cpu|cuda)', 1, 64\)"
    --bench "TrainStep\..*\('(numgru|torch)-cpu', 1, 64\)"
    --bench "Streaming\.time_step\('(numgru|torch)-cpu', 64\)"
    --bench "Ragged\..*\('(numgru|torch)-cpu', 'full'\)"
    --bench "FirstCall\..*\('numgru-cpu', 'cold'\)"
    --bench "LanguageModel\..*\('(numgru|torch)-cpu', 128\)"
    --bench "CTC\..*\('(numgru|torch)-cpu', 'float32'\)"
    --bench "Features\..*\('(numgru|librosa)'\)"
    --bench "Seq2Seq\..*\('(numgru|torch)-cpu'\)"
    --bench "BeamSearch\..*\('numgru-cpu'\)"
)
# --quick: one sample each, nothing saved. asv exits 2 when a benchmark fails
# (a skip, NotImplementedError in setup, is not a failure).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "${asv[@]}" run --python=same --quick --show-stderr --machine numgru-ci "${subset[@]}" 2>&1 | tee "$log"; then
    echo "asv_check: asv run failed (a benchmark failed or asv could not run)" >&2
    exit 2
fi
# A renamed benchmark would silently drop out of the subset: each one must have run.
for name in Forward.time_forward TrainStep.time_train_step TrainStep.peakmem_train_step \
            Streaming.time_step Ragged.time_forward Ragged.time_train_step \
            FirstCall.timeraw_import_and_first_call; do
    if ! grep -Eq "gru\.$name +ok" "$log"; then
        echo "asv_check: benchmark gru.$name did not run (renamed? update the subset above)" >&2
        exit 1
    fi
done
for name in text.LanguageModel.time_train_step text.LanguageModel.time_generate speech.CTC.time_loss_and_gradient \
            speech.Features.time_log_mel speech.Features.time_mfcc translation.Seq2Seq.time_train_step \
            translation.BeamSearch.time_translate; do
    if ! grep -Eq "$name +ok" "$log"; then
        echo "asv_check: benchmark $name did not run (renamed? update the subset above)" >&2
        exit 1
    fi
done
# onnxruntime is a Forward engine, not a benchmark of its own: where it is installed, its row must hold a time.
if "$PYTHON" -c "import onnx, onnxruntime" 2>/dev/null && ! grep -Eq "onnxruntime-cpu +1 +[0-9.]+±" "$log"; then
    echo "asv_check: gru.Forward.time_forward did not time onnxruntime-cpu at B=1, H=64 (skipped or failed)" >&2
    exit 1
fi

echo "asv_check: OK in $((SECONDS - start)) s"
