#!/usr/bin/env bash
# CUDA check of vcpclip on a GPU machine that has a pip PyTorch (LibTorch inside the wheel), CMake,
# a compiler and the CUDA toolkit, but none of vcpclip's other C++ dependencies: those come from
# .devdeps/ (scripts/gpu/make_device_bundle.sh, built on a Debian 12 host and carried along).
#
#   bash scripts/gpu/device_check.sh            # from the repository root; log in $OUT/log.txt
#
# Steps (each time-boxed, so a failure still leaves a log):
#   configure with the wheel's TorchConfig (fallback: a minimal config over the wheel's libraries),
#   build vcpclip, bench_cuda_check and the CPU parity tests (-j all cores), then run
#   1. bench_cuda_check --skip-big: tiny golden fixture on CPU and CUDA, training steps CPU vs CUDA
#   2. vcpclip predict on the tiny fixture on cuda and on cpu, maps/scores compared (python3/numpy)
#   3. bench_cuda_check --skip-tiny: ViT-L-14-336 @ 518, batch 32 training step (time, peak memory;
#      nvidia-smi sampled too), vision-tower images/s
#   4. the VcpParity / ClipParity / TrainStepParity tests (CPU, against this LibTorch)
#   5. the demo on CUDA, then eval in fp32, fp16, autocast and bf16: metric changes against fp32
#
#   PART=A bash scripts/gpu/device_check.sh     # issue 21 Part A only (build, then steps 6, 7, 5, 8; < 10 min on an H200)
#   6. side by side with the reference on the same GPU, same random OpenAI-format ViT-L-14-336 weights,
#      S = 518: predict images/s at batch 8 for vcpclip fp32, tf32, autocast, fp16, bf16 and the
#      reference (bench/reference/bench_predict_reference.py) in autocast and fp32; one training step at
#      batch 32 (time, peak memory) for vcpclip fp32 and autocast (bench_cuda_check) and the reference
#      (bench/reference/bench_train_reference.py) fp32 and autocast. Targets: vcpclip autocast >= 1.3x the
#      reference's autocast throughput and step, peak memory <= the reference's.
#   7. numerics on the golden fixture: predict maps in tf32/autocast/fp16/bf16 against fp32 (CUDA)
#   8. NCCL: the build found it (configure line, `vcpclip version`), and the backend logged in train.log
#   Needs the reference's code: REF (default .devdeps/ref, scripts/gpu/make_device_bundle.sh with REF=...).
#
#   PART=31 bash scripts/gpu/device_check.sh    # issue 31, first call (DEADLINE=560 by default):
#      build vcpclip, bench_cuda_check and tests_model; `vcpclip version` (attention kernel, NCCL);
#      7. the golden fixture on CUDA in every precision (fp32 parity with SDPA); the CPU parity tests
#      against this LibTorch (SDPA on the CPU); then `vcpclip bench --only gpu --device cuda` with the
#      time left: tower per precision vs the dense fp16 peak, train step, predict vs tower, serve vs
#      predict, the full-size protocol dry run (VisA-sized train >= 1 epoch, MVTec-sized eval)
#   PART=31b bash scripts/gpu/device_check.sh   # issue 31, second call (DEADLINE=200): the reference's
#      timers (bench/reference/: predict at batch 8 in autocast and fp32, train step), the train step's
#      peak memory (bench_cuda_check), 5. eval metrics per precision vs fp32; reuses build-cuda/ when
#      the machine is still warm
#
#   BUILD_ONLY=1: configure and build only (TARGETS=... to choose), used by scripts/gpu/device_profile.sh.
#
# DEADLINE=S (seconds from the start; default none): every step's time-box is cut to what is left,
# and a step that cannot start with enough time left is skipped with a line that says so, so the
# log is complete when the device call's own limit is S plus a margin.
set -u
OUT=${OUT:-/tmp/vcpclip_device_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
T0=$(date +%s)
stamp() { echo "[+$(( $(date +%s) - T0 ))s] $*"; }
ROOT=$PWD
D=$ROOT/.devdeps
B=$ROOT/build-cuda
BUILD_LIMIT=${BUILD_LIMIT:-240}
PART=${PART:-all}
REF=${REF:-$D/ref}
case $PART in 31) DEADLINE=${DEADLINE:-570} ;; 31b) DEADLINE=${DEADLINE:-200} ;; esac
DEADLINE=${DEADLINE:-0}
# tb N: the time-box N, cut to the time left before DEADLINE (less 10 s for the lines after it)
tb() {
  local n=$1 l
  if [ "$DEADLINE" -gt 0 ]; then
    l=$(( DEADLINE - ($(date +%s) - T0) - 10 ))
    [ "$l" -lt "$n" ] && n=$l
  fi
  [ "$n" -lt 1 ] && n=1
  echo "$n"
}
# late N STEP: true (and says so) when less than N s are left before DEADLINE
late() {
  [ "$DEADLINE" -gt 0 ] && [ $(( DEADLINE - ($(date +%s) - T0) )) -lt "$1" ] || return 1
  stamp "SKIPPED $2: less than $1 s left before DEADLINE=${DEADLINE}s"
}

stamp "machine"
nvidia-smi -L; nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader
ldd --version | head -1; gcc --version | head -1; cmake --version | head -1; nproc
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc && nvcc --version | tail -1
PY=python3
$PY -c 'import torch' 2>/dev/null || PY=/opt/torch/.venv/bin/python3
$PY -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)'
TORCH_DIR=$($PY -c 'import torch,os;print(os.path.dirname(torch.__file__))')
TORCH_PREFIX=$($PY -c 'import torch;print(torch.utils.cmake_prefix_path)')
ABI=$($PY -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')

# Prefer the machine's own copy of each bundled runtime dependency (same SONAME).
mkdir -p "$D/lib-system-has"
for f in "$D"/lib/*.so.*; do
  n=$(basename "$f")
  case $n in libopencv*|libyaml-cpp*|libspdlog*|libfmt*) continue ;; esac
  if ldconfig -p | grep -q "^[[:space:]]*$n "; then mv "$f" "$D/lib-system-has/"; fi
done
for l in "$D"/lib/*.so; do  # a link-time name whose library the machine has: point it there
  [ -e "$l" ] && continue
  sys=$(ldconfig -p | grep "^[[:space:]]*$(readlink "$l") " | grep x86-64 | head -1 | sed 's/.*=> //')
  [ -n "$sys" ] && ln -sf "$sys" "$l"
done
echo "bundle libs used: $(cd "$D/lib" && ls *.so.* | tr '\n' ' ')"
export LD_LIBRARY_PATH=$D/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export VCPCLIP_VOCAB=$D/assets/bpe_simple_vocab_16e6.txt.gz
export CCACHE_DISABLE=1

configure() {
  rm -rf "$B"
  cmake -S "$ROOT" -B "$B" -G Ninja -C "$D/devdeps.cmake" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 -DCMAKE_DISABLE_FIND_PACKAGE_Gloo=ON -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DCMAKE_CUDA_ARCHITECTURES=90 "$@" > "$OUT/configure.txt" 2>&1
}
if [ "$PART" = 31b ] && [ -x "$B/vcpclip" ] && [ -x "$B/bench_cuda_check" ]; then
  stamp "PART=31b: build-cuda/ is still here (warm machine): no configure"; SKIP_BUILD=1
fi
[ "${SKIP_BUILD:-0}" = 1 ] || {
stamp "configure (wheel TorchConfig: $TORCH_PREFIX)"
if ! configure -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" ${CUDACXX:+-DCMAKE_CUDA_COMPILER=$CUDACXX}; then
  grep -n -A4 "CMake Error" "$OUT/configure.txt" | head -40
  stamp "configure failed with the wheel's TorchConfig; fallback: minimal config over $TORCH_DIR/lib"
  CUDA_INC=$(dirname "$(find /usr/local/cuda/include "$TORCH_DIR/../nvidia" -name cuda_runtime_api.h 2>/dev/null | head -1)")
  CUDART=$(find /usr/local/cuda/lib64 "$TORCH_DIR/../nvidia" -name 'libcudart.so*' 2>/dev/null | head -1)
  mkdir -p "$OUT/torchlite"
  cat > "$OUT/torchlite/TorchConfig.cmake" <<EOF
set(TORCH_INCLUDE_DIRS "$TORCH_DIR/include;$TORCH_DIR/include/torch/csrc/api/include")
if(NOT TARGET torch)
  add_library(torch INTERFACE IMPORTED)
  set_target_properties(torch PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${TORCH_INCLUDE_DIRS};$CUDA_INC"
    INTERFACE_LINK_LIBRARIES "-Wl,--no-as-needed;$TORCH_DIR/lib/libtorch_cuda.so;$TORCH_DIR/lib/libtorch.so;$TORCH_DIR/lib/libtorch_cpu.so;$TORCH_DIR/lib/libc10_cuda.so;$TORCH_DIR/lib/libc10.so;$CUDART;-Wl,--as-needed;-Wl,-rpath,$TORCH_DIR/lib")
endif()
set(TORCH_LIBRARIES torch)
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=$ABI")
set(Torch_FOUND TRUE)
EOF
  configure -DTorch_DIR="$OUT/torchlite" || { tail -30 "$OUT/configure.txt"; stamp "configure failed"; exit 1; }
fi
grep -iE "cuda|torch|warning" "$OUT/configure.txt" | grep -v "^--   " | head -12

stamp "build (limit $(tb "$BUILD_LIMIT")s)"
if [ "$PART" = A ] || [ "$PART" = 31b ]; then TARGETS=${TARGETS:-"vcpclip bench_cuda_check"}; fi
TARGETS=${TARGETS:-"vcpclip bench_cuda_check tests_model tests_train"}
timeout "$(tb "$BUILD_LIMIT")" ninja -C "$B" -k 0 -j "$(nproc)" $TARGETS > "$OUT/build.txt" 2>&1
echo "ninja exit $?"; grep -E "error|FAILED" "$OUT/build.txt" | head -30
# The ProcessGroupNCCL code (src/train/distributed.cpp) is compiled only against a CUDA LibTorch: if
# it is what failed, build the rest without it so that the measurements still run.
if [ ! -x "$B/vcpclip" ] && grep -q "FAILED: .*distributed.cpp" "$OUT/build.txt"; then
  stamp "distributed.cpp failed with NCCL: reconfiguring with -DVCPCLIP_NCCL=OFF and building again"
  cmake -DVCPCLIP_NCCL=OFF "$B" >> "$OUT/configure.txt" 2>&1
  timeout "$(tb "$BUILD_LIMIT")" ninja -C "$B" -k 0 -j "$(nproc)" $TARGETS > "$OUT/build_nccl_off.txt" 2>&1
  echo "ninja (NCCL off) exit $?"; grep -E "error|FAILED" "$OUT/build_nccl_off.txt" | head -20
fi
if [ ! -x "$B/bench_cuda_check" ] && [ -f "$B/CMakeFiles/bench_cuda_check.dir/scripts/gpu/bench_cuda_check.cpp.o" ]; then
  stamp "linking bench_cuda_check without vcpclip_app (app failed to build)"
  (cd "$B" && eval "$(ninja -t commands bench_cuda_check | tail -1 | sed 's| libvcpclip_app.a||')")
fi
}  # configure + build (skipped by PART=31b on a warm machine)
ls -la "$B"/vcpclip "$B"/bench_cuda_check "$B"/tests/tests_model 2>&1 | awk '{print $5, $NF}'
# BUILD_ONLY=1 (scripts/gpu/device_profile.sh sources this file): stop here, the variables above kept.
if [ "${BUILD_ONLY:-0}" = 1 ]; then stamp "BUILD_ONLY=1: stopping after the build"; return 0 2>/dev/null || exit 0; fi
ldd "$B/bench_cuda_check" 2>/dev/null | grep -E "not found|torch_cuda|opencv_core"

if ! timeout 60 "$B/bench_cuda_check" --device cuda --skip-tiny --skip-big; then  # libtorch_cuda dropped by --as-needed?
  export LD_PRELOAD=$TORCH_DIR/lib/libtorch_cuda.so; echo "retrying with LD_PRELOAD=$LD_PRELOAD"
  timeout 60 "$B/bench_cuda_check" --device cuda --skip-tiny --skip-big
fi
if [ "$PART" = A ] || [ "$PART" = 31 ]; then
  stamp "8a. NCCL at configure time and in the binary; the attention kernel compiled in"
  grep -E "ProcessGroupNCCL for CUDA training" "$OUT/configure.txt" | tail -1
  timeout 30 "$B/vcpclip" version 2>&1 | grep -E "^vcpclip|data-parallel|CUDA available|attention"
fi

part_a() {
  W=$OUT/weights
  mkdir -p "$W"
  RPY="$PY $ROOT/bench/reference/bench_predict_reference.py --ref $REF --vocab $VCPCLIP_VOCAB --config ViT-L-14-336 --weights-dir $W"
  stamp "6a. random OpenAI-format ViT-L-14-336 weights (shared by both sides)"
  timeout "$(tb 180)" $RPY --threads "$(nproc)" --make-only; echo "make weights exit $?"; ls -la "$W"
  stamp "6b. reference predict on cuda, batch 8, S = 518: autocast (as test.py), then fp32 (one model load)"
  late 60 "6b" || {
  timeout "$(tb 180)" $RPY --threads "$(nproc)" --device cuda --autocast --images 17 --batch 8 \
    --json "$OUT/ref_predict_autocast.json" --fp32-json "$OUT/ref_predict_fp32.json"
  echo "exit $?"; }
  stamp "6c. vcpclip predict on cuda, batch 8, S = 518: fp32, tf32, autocast, fp16, bf16"
  $PY "$ROOT/scripts/gpu/random_pngs.py" "$OUT"
  cat > "$OUT/predict_vitl.yaml" <<EOF2
runtime: {device: cuda}
model: {backbone: $W/ViT-L-14-336_clip.json, weights: $W/ViT-L-14-336_clip.pt, image_size: 518, features_list: [6, 12, 18, 24]}
predict: {batch_size: 8, heatmap: false}
EOF2
  for mode in fp32 tf32 autocast fp16 bf16; do
    p=$mode; extra=""; [ "$mode" = tf32 ] && { p=fp32; extra="--set runtime.tf32=true"; }
    late 30 "6c $mode" && continue
    for in in one all; do
      s0=$(date +%s%N)
      timeout "$(tb 60)" "$B/vcpclip" predict --no-progress -c "$OUT/predict_vitl.yaml" -k "$W/ViT-L-14-336.pth" \
        -i "$OUT/in_$in" -o "$OUT/vp_${mode}_$in" --set runtime.precision=$p $extra > "$OUT/vp_${mode}_$in.txt" 2>&1
      echo "$mode $in exit $? $(( ($(date +%s%N) - s0) / 1000000 ))" >> "$OUT/vp_times.txt"
    done
  done
  cat "$OUT/vp_times.txt"
  stamp "6d. one training step at batch 32: vcpclip fp32 + autocast (bench_cuda_check), reference fp32 + autocast"
  late 40 "6d vcpclip" || { timeout "$(tb 150)" "$B/bench_cuda_check" --device cuda --skip-tiny --batch 32 --size 518 \
    --steps 3 --iters 2; echo "exit $?"; }
  late 60 "6d reference" || {
  timeout "$(tb 180)" $PY "$ROOT/bench/reference/bench_train_reference.py" --ref "$REF" --vocab "$VCPCLIP_VOCAB" --weights-dir "$W" \
    --batch 32 --steps 3 --json "$OUT/ref_train.json" --autocast-json "$OUT/ref_train_autocast.json"; echo "exit $?"; }
  $PY - "$OUT" <<'EOF2'
import json, os, re, sys
import numpy as np
o = sys.argv[1]
t = {}
for line in (open(f"{o}/vp_times.txt") if os.path.exists(f"{o}/vp_times.txt") else []):
    mode, which, _, rc, ms = line.split()
    t.setdefault(mode, {})[which] = float(ms) / 1e3 if rc == "0" else None
print("  predict ViT-L-14-336 @ 518, batch 8, images/s = 16 / (t(17 images) - t(1 image)):")
ips = {}
def own_rate(mode):  # the rate predict itself logs over its 17 images (load excluded, first batch included)
    try:
        for line in open(f"{o}/vp_{mode}_all.txt"):
            m = re.search(r"predict: .*\(([0-9.]+) img/s\)", line)
            if m:
                return m.group(1)
    except OSError:
        pass
    return "?"
for mode, v in t.items():
    if v.get("one") and v.get("all") and v["all"] > v["one"]:
        ips[mode] = 16 / (v["all"] - v["one"])
        print(f"    vcpclip {mode:9s} {ips[mode]:8.2f} img/s  (t(1) {v['one']:.2f} s, t(17) {v['all']:.2f} s; "
              f"predict's own log over 17 images: {own_rate(mode)} img/s)")
    else:
        print(f"    vcpclip {mode:9s} failed or no difference: {v}")
        for which in ("one", "all"):
            try:
                tail = open(f"{o}/vp_{mode}_{which}.txt").read().strip().splitlines()[-3:]
                print("      " + "\n      ".join(tail))
            except OSError:
                pass
for k in ("autocast", "fp32"):
    f = f"{o}/ref_predict_{k}.json"
    if os.path.exists(f):
        r = json.load(open(f)); ips["ref_" + k] = r.get("images_per_second") or 1.0 / r["seconds_per_image"]
        print(f"    reference {k:7s} t(1) {r['t1']:.2f} s, t({r['images']}) {r['tN']:.2f} s, load {r['load_seconds']:.1f} s")
        print(f"    reference {k:7s} {ips['ref_' + k]:8.2f} img/s, peak allocated {r.get('cuda_peak_allocated_gib', -1):.2f} GiB"
              + (f", maps autocast vs fp32 max |diff| {r['max_map_diff_autocast_vs_fp32']}" if k == "autocast" else ""))
if "autocast" in ips and "ref_autocast" in ips:
    print(f"  vcpclip autocast / reference autocast: {ips['autocast'] / ips['ref_autocast']:.2f}x (target >= 1.3x)")
if "fp32" in ips and "ref_fp32" in ips:
    print(f"  vcpclip fp32 / reference fp32: {ips['fp32'] / ips['ref_fp32']:.2f}x")
for k in ("", "_autocast"):
    f = f"{o}/ref_train{k}.json"
    if os.path.exists(f):
        r = json.load(open(f))
        print(f"  reference train step{k or ' fp32'}: best {r['best_step_seconds']:.3f} s, peak {r['cuda_peak_allocated_gib']:.2f} GiB"
              f", steps {[round(x, 3) for x in r['step_seconds']]}")
print("  (vcpclip's train steps and peak memory: the bench_cuda_check lines above; target: autocast step >= 1.3x faster, peak <= the reference's)")
for mode in ("tf32", "autocast", "fp16", "bf16"):
    d = [np.abs(np.load(f"{o}/vp_{mode}_all/img{i}_map.npy") - np.load(f"{o}/vp_fp32_all/img{i}_map.npy")).max()
         for i in range(17) if os.path.exists(f"{o}/vp_{mode}_all/img{i}_map.npy")]
    if d: print(f"  ViT-L maps {mode} vs fp32: max |diff| {max(d):.3g}")
EOF2
  rm -rf "$OUT"/in_* "$OUT"/vp_*_one "$OUT"/vp_*_all "$W"
}

part_a_numerics() {
  stamp "7. golden fixture on cuda: predict maps in tf32 / autocast / fp16 / bf16 against fp32"
  for mode in fp32 tf32 autocast fp16 bf16; do
    p=$mode; extra=""; [ "$mode" = tf32 ] && { p=fp32; extra="--set runtime.tf32=true"; }
    late 15 "7 $mode" && continue
    timeout "$(tb 60)" "$B/vcpclip" predict --no-progress -c configs/predict_tiny.yaml -k tests/fixtures/vcp/tiny_vcp.pth \
      -i tests/fixtures/vcp -o "$OUT/gold_$mode" --set runtime.device=cuda --set runtime.precision=$p $extra \
      > "$OUT/gold_$mode.txt" 2>&1; echo "predict $mode exit $?"
  done
  $PY - "$OUT" <<'EOF2'
import json, sys, numpy as np
o = sys.argv[1]
g = np.load("tests/fixtures/vcp/final_map.npy")
for mode in ("fp32", "tf32", "autocast", "fp16", "bf16"):
    try:
        sc = {i["stem"]: i["score"] for i in json.load(open(f"{o}/gold_{mode}/scores.json"))["images"]}
        ref = {i["stem"]: i["score"] for i in json.load(open(f"{o}/gold_fp32/scores.json"))["images"]}
        d = max(np.abs(np.load(f"{o}/gold_{mode}/{s}_map.npy") - np.load(f"{o}/gold_fp32/{s}_map.npy")).max() for s in sc)
        dg = max(np.abs(np.load(f"{o}/gold_{mode}/{s}_map.npy") - g[k]).max() for k, s in enumerate(sorted(sc)))
        ds = max(abs(sc[s] - ref[s]) for s in sc)
        print(f"  {mode:9s} map vs fp32 {d:.3g}, vs golden {dg:.3g}, score vs fp32 {ds:.3g}")
    except Exception as e:
        print(f"  {mode}: {e}")
EOF2
}

part_a_nccl() {
  stamp "8b. NCCL: the backend logged in the demo's train.log (configure line and vcpclip version: 8a above)"
  grep -h "distributed:" "$OUT"/demo/train/train.log 2>/dev/null | head -3
}

# The GPU's dense fp16 tensor peak (no sparsity), from its name, for the tower's share of it.
gpu_peak_tflops() {
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" in
    *H200*|*"H100 80GB HBM3"*|*"H100 SXM"*) echo 989.4 ;;
    *"H100 NVL"*) echo 835.5 ;;
    *H100*PCIe*) echo 756.5 ;;
    *A100*) echo 312 ;;
    *) echo 0 ;;
  esac
}

part_31() {
  part_a_numerics
  stamp "4. CPU parity tests against this LibTorch (its attention: SDPA on the CPU too)"
  late 40 "4 (CPU parity)" || for t in "tests_model --gtest_filter=VcpParity.*:ClipParity.*:Precision*"; do
    set -- $t
    [ -x "$B/tests/$1" ] && (cd "$B" && timeout "$(tb 90)" "./tests/$1" "$2" 2>&1 |
      grep -E "^\[  (PASSED|FAILED)|Failure|max \|diff\||OK \]" | head -30)
  done
  stamp "31. vcpclip bench --only gpu (everything of issue 31's targets in one run)"
  late 200 "31 (bench --only gpu)" || {
    BUDGET=$(( DEADLINE - ($(date +%s) - T0) - 25 ))
    timeout "$(tb $(( BUDGET + 15 )))" "$B/vcpclip" bench --only gpu --device cuda --no-python --no-progress \
      --gpu-peak-tflops "$(gpu_peak_tflops)" --gpu-budget "$BUDGET" --work-dir "$OUT/bench_gpu" \
      --json "$OUT/bench_gpu.json"
    echo "bench --only gpu exit $?"
    rm -rf "$OUT/bench_gpu"
  }
}

part_31b() {
  W=$OUT/weights
  mkdir -p "$W"
  RPY="$PY $ROOT/bench/reference/bench_predict_reference.py --ref $REF --vocab $VCPCLIP_VOCAB --config ViT-L-14-336 --weights-dir $W"
  stamp "31b-1. the reference: random OpenAI-format weights, predict at batch 8 (autocast as test.py, then fp32), train step"
  late 90 "31b-1 (reference)" || {
    timeout "$(tb 100)" $RPY --threads "$(nproc)" --make-only > "$OUT/ref_make.txt" 2>&1; echo "make weights exit $?"
    timeout "$(tb 120)" $RPY --threads "$(nproc)" --device cuda --autocast --images 65 --batch 8 \
      --json "$OUT/ref_predict_autocast.json" --fp32-json "$OUT/ref_predict_fp32.json"; echo "reference predict exit $?"
    late 40 "31b-1 reference train step" || { timeout "$(tb 90)" $PY "$ROOT/bench/reference/bench_train_reference.py" \
      --ref "$REF" --vocab "$VCPCLIP_VOCAB" --weights-dir "$W" --batch 32 --steps 2 --json "$OUT/ref_train.json" \
      --autocast-json "$OUT/ref_train_autocast.json"; echo "reference train exit $?"; }
    $PY - "$OUT" <<'EOF2'
import json, os, sys
o = sys.argv[1]
for k in ("autocast", "fp32"):
    f = f"{o}/ref_predict_{k}.json"
    if os.path.exists(f):
        r = json.load(open(f))
        ips = r.get("images_per_second") or 1.0 / r["seconds_per_image"]
        print(f"  reference predict {k}: {ips:.2f} img/s over {r['images']} images (its model loop on GPU tensors)")
for k in ("", "_autocast"):
    f = f"{o}/ref_train{k}.json"
    if os.path.exists(f):
        r = json.load(open(f))
        print(f"  reference train step{k or ' fp32'}: best {r['best_step_seconds']:.3f} s, peak {r['cuda_peak_allocated_gib']:.2f} GiB")
EOF2
    rm -rf "$W"
  }
  stamp "31b-2. train step at batch 32, fp32 and autocast: time and peak memory (bench_cuda_check)"
  late 60 "31b-2" || { timeout "$(tb 120)" "$B/bench_cuda_check" --device cuda --skip-tiny --batch 32 --size 518 \
    --steps 3 --iters 1; echo "exit $?"; }
}

if [ "$PART" = 31 ]; then part_31; fi
if [ "$PART" = 31b ]; then part_31b; fi

if [ "$PART" = A ]; then
  [ -d "$REF/models" ] || echo "no reference code at REF=$REF: the reference columns will fail"
  part_a
  part_a_numerics
fi

[ "$PART" = all ] && {
stamp "1. tiny fixture: CPU vs CUDA (bench_cuda_check --skip-big)"
timeout 120 "$B/bench_cuda_check" --device cuda --skip-big; echo "exit $?"

stamp "2. vcpclip predict on cuda and cpu"
for dev in cuda cpu; do
  timeout 60 "$B/vcpclip" predict -c configs/predict_tiny.yaml -k tests/fixtures/vcp/tiny_vcp.pth \
    -i tests/fixtures/vcp -o "$OUT/pred_$dev" --set runtime.device=$dev; echo "predict $dev exit $?"
done
$PY - "$OUT" <<'EOF'
import json, sys, numpy as np
o = sys.argv[1]
g = np.load("tests/fixtures/vcp/final_map.npy")
sc = {d: {i["stem"]: i["score"] for i in json.load(open(f"{o}/pred_{d}/scores.json"))["images"]} for d in ("cuda", "cpu")}
for k, stem in enumerate(sorted(sc["cuda"])):
    a, b = np.load(f"{o}/pred_cuda/{stem}_map.npy"), np.load(f"{o}/pred_cpu/{stem}_map.npy")
    print(f"  {stem}: map |cuda-cpu| {np.abs(a-b).max():.3g}, |cuda-golden| {np.abs(a-g[k]).max():.3g}, "
          f"score cuda {sc['cuda'][stem]:.6f} cpu {sc['cpu'][stem]:.6f}")
EOF
rm -f "$OUT"/pred_*/*.png "$OUT"/pred_*/*.npy

stamp "3. ViT-L-14-336 @ 518, batch 32 (bench_cuda_check --skip-tiny)"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$OUT/smi.txt" 2>/dev/null &
SMI=$!
timeout 200 "$B/bench_cuda_check" --device cuda --skip-tiny --batch 32 --size 518 --steps 3 --iters 3; echo "exit $?"
kill $SMI 2>/dev/null
echo "nvidia-smi memory.used max over the run: $(sort -n "$OUT/smi.txt" | tail -1) MiB ($(wc -l < "$OUT/smi.txt") samples)"

stamp "4. CPU parity tests against this LibTorch"
for t in "tests_model --gtest_filter=VcpParity.*:ClipParity.*" "tests_train --gtest_filter=TrainStepParity.*"; do
  set -- $t
  [ -x "$B/tests/$1" ] && (cd "$B" && timeout 120 "./tests/$1" "$2" 2>&1 | grep -E "^\[  (PASSED|FAILED)|Failure|max \|diff\||OK \]" | head -30)
done

}  # steps 1-4: PART=all only

# 5. Precision on CUDA (README "Benchmarks", runtime.precision): the demo's head trained on CUDA in
#    fp32, then evaluated on the synthetic target set in fp32, fp16, autocast and bf16; each metric's
#    change against fp32 in points (the speed issue's bar: 0.2). Written without a GPU at hand: the
#    steps are time-boxed, so a failure still leaves the log.
[ "$PART" = 31 ] || {
stamp "5. eval precision on CUDA: fp16 / autocast / bf16 vs fp32 (synthetic demo set)"
late 45 "5 (demo + evals)" || {
timeout "$(tb 240)" "$B/vcpclip" demo -o "$OUT/demo" --set runtime.device=cuda > "$OUT/demo.txt" 2>&1; echo "demo exit $?"
tail -n 12 "$OUT/demo.txt"
cat > "$OUT/eval_demo.yaml" <<EOF
runtime: {device: cuda, seed: 333}
model:
  backbone: configs/models/demo.json
  weights: $OUT/demo/model/demo_backbone.safetensors
  image_size: 64
  features_list: [1, 2, 3]
  prompt_len: 2
  deep_prompt_len: 1
  deep_prompt_layers: -1
  post_heads: 8
  init_seed: 333
postprocess: {alpha: 0.2, sigma: 1, topk: 64}
eval:
  batch_size: 8
  aupro: exact
  data: {layout: mvtec, root: $OUT/demo/data/target, split: test, workers: 2}
EOF
for p in fp32 fp16 autocast bf16; do
  late 10 "5 eval $p" && continue
  timeout "$(tb 120)" "$B/vcpclip" eval --no-progress -c "$OUT/eval_demo.yaml" -k "$OUT/demo/train/last.pth" \
    -o "$OUT/eval_$p" --set runtime.precision=$p > "$OUT/eval_$p.txt" 2>&1; echo "eval $p exit $?"
done
$PY - "$OUT" <<'EOF'
import json, sys
o = sys.argv[1]
def load(p):
    m = json.load(open(f"{o}/eval_{p}/metrics.json")); c = m["classes"]
    return m["mean"], (c if isinstance(c, list) else list(c.values()))
m32, c32 = load("fp32")
for p in ("fp16", "autocast", "bf16"):
    try:
        m, c = load(p)
    except Exception as e:
        print(f"  {p}: no metrics ({e})"); continue
    keys = [k for k, v in m32.items() if isinstance(v, float) and isinstance(m.get(k), float) and "threshold" not in k]
    mean = max(abs(100 * (m[k] - m32[k])) for k in keys)
    cls = max(abs(100 * (a[k] - b[k])) for a, b in zip(c, c32) for k in keys
              if isinstance(a.get(k), float) and isinstance(b.get(k), float))
    print(f"  {p} vs fp32: largest change of a mean metric {mean:.3f} points, of any class metric {cls:.3f} points")
EOF
}  # step 5
}  # not PART=31
[ "$PART" = A ] && part_a_nccl
stamp "done"
