#!/usr/bin/env bash
# Where `vcpclip predict`'s time goes on a GPU machine (issue 21 Part A follow-up): builds the vcpclip
# target only, as scripts/gpu/device_check.sh does (sourced with BUILD_ONLY=1), makes the same random
# OpenAI-format ViT-L-14-336 weights as its part A and 17 random 518x518 PNGs (seed 7), then runs
# `vcpclip predict --profile --no-progress` at S = 518, batch 8, predict.heatmap false, in fp32 and
# autocast, on 1 image and on 17; the stderr stage tables land in $OUT/prof_<precision>_<one|all>.txt.
#
#   DEADLINE=300 bash scripts/gpu/device_profile.sh      # from the repository root; needs .devdeps/
set -u
OUT=${OUT:-/tmp/vcpclip_device_out}
mkdir -p "$OUT"
W=$OUT/weights
mkdir -p "$W"
PY=python3
$PY -c 'import torch' 2>/dev/null || PY=/opt/torch/.venv/bin/python3
# The weights take about 30 s of CPU: made in the background while the build runs.
(timeout 240 nice "$PY" bench/reference/bench_predict_reference.py --ref "$PWD/.devdeps/ref" \
   --vocab "$PWD/.devdeps/assets/bpe_simple_vocab_16e6.txt.gz" --config ViT-L-14-336 --weights-dir "$W" \
   --threads 4 --make-only > "$OUT/weights.txt" 2>&1; echo "make weights exit $?" >> "$OUT/weights.txt") &
WPID=$!
BUILD_ONLY=1
TARGETS=vcpclip
. scripts/gpu/device_check.sh
[ -x "$B/vcpclip" ] || { stamp "no vcpclip binary: stopping"; exit 1; }

stamp "random 518x518 PNGs (as device_check.sh part A)"
$PY "$ROOT/scripts/gpu/random_pngs.py" "$OUT"
stamp "waiting for the weights"
wait "$WPID"
grep -v "pkg_resources" "$OUT/weights.txt"; rm -f "$OUT/weights.txt"
ls -la "$W"
cat > "$OUT/predict_vitl.yaml" <<EOF2
runtime: {device: cuda}
model: {backbone: $W/ViT-L-14-336_clip.json, weights: $W/ViT-L-14-336_clip.pt, image_size: 518, features_list: [6, 12, 18, 24]}
predict: {batch_size: 8, heatmap: false}
EOF2
cat "$OUT/predict_vitl.yaml"
for p in fp32 autocast; do
  for n in one all; do
    late 25 "predict $p $n" && continue
    stamp "predict --profile $p, images: $n"
    timeout "$(tb 60)" "$B/vcpclip" predict --profile --no-progress -c "$OUT/predict_vitl.yaml" -k "$W/ViT-L-14-336.pth" \
      -i "$OUT/in_$n" -o "$OUT/vp_${p}_$n" --set runtime.precision=$p > "$OUT/prof_${p}_$n.txt" 2>&1
    echo "exit $?"; cat "$OUT/prof_${p}_$n.txt"
  done
done
rm -rf "$W" "$OUT"/in_* "$OUT"/vp_* "$OUT/predict_vitl.yaml"
stamp "done"
