#!/usr/bin/env bash
# Builds .devdeps/: the third-party C++ dependencies of vcpclip (OpenCV core/imgproc/imgcodecs,
# yaml-cpp, spdlog + fmt, nlohmann-json, CLI11, GoogleTest, zlib) taken from THIS Debian 12 host
# (the packages scripts/setup.sh installs), for building on a machine that has LibTorch, a
# compiler and CMake but none of these (e.g. a GPU box with a pip PyTorch). See
# scripts/gpu/device_check.sh for its use.
#
#   .devdeps/include/      headers (opencv4/, yaml-cpp/, spdlog/, fmt/, nlohmann/, CLI/, gtest/, gmock/, zlib.h)
#   .devdeps/lib/          shared libraries by SONAME + libX.so links, GoogleTest .a, and the closure
#                          of their runtime dependencies (glibc, libstdc++ and libgcc_s excluded)
#   .devdeps/lib/          stub libraries for dependencies of OpenCV that vcpclip never calls
#                          (GDAL, GDCM: imgcodecs' GeoTIFF/DICOM readers; LAPACK/BLAS: cv::solve &c.;
#                          GLX: OpenGL interop), each defining exactly the symbols OpenCV imports from
#                          the real library; a stub that is called aborts with its name (except
#                          GDALAllRegister, which imgcodecs calls at start-up: a no-op)
#   .devdeps/cmake/        minimal package configs; `cmake -C .devdeps/devdeps.cmake` points the
#                          project's find_package calls at them
#   .devdeps/assets/       the CLIP BPE vocabulary
#   .devdeps/ref/          the reference VCP-CLIP's models/ and utils/ (REF=<its checkout>, when given),
#                          for the side-by-side GPU timing of scripts/gpu/device_check.sh (PART=A)
#
# Usage: scripts/gpu/make_device_bundle.sh [OUT_DIR (default .devdeps)]
set -euo pipefail
OUT=${1:-.devdeps}
ARCH=/usr/lib/x86_64-linux-gnu
rm -rf "$OUT"
mkdir -p "$OUT"/{include,lib,cmake,assets,stubsrc}
OUT=$(cd "$OUT" && pwd)

# --- headers
for d in opencv4 yaml-cpp spdlog fmt nlohmann CLI gtest gmock; do cp -r /usr/include/$d "$OUT/include/"; done
cp /usr/include/zlib.h /usr/include/zconf.h "$OUT/include/"

# --- libraries: the runtime closure, with the heavy never-called ones stubbed
STUBS="libgdal.so.32 libgdcmMSFF.so.3.0 libgdcmDSED.so.3.0 liblapack.so.3 libblas.so.3 libGLX.so.0"
ROOTS="libopencv_core.so.406 libopencv_imgproc.so.406 libopencv_imgcodecs.so.406 libyaml-cpp.so.0.7 libspdlog.so.1.10 libfmt.so.9 libz.so.1"
python3 - "$OUT" "$STUBS" $ROOTS <<'PY'
import os, re, shutil, subprocess, sys
out, stubs, roots = sys.argv[1], set(sys.argv[2].split()), sys.argv[3:]
skip = {"libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "ld-linux-x86-64.so.2",
        "libstdc++.so.6", "libgcc_s.so.1"}
cache = {}
for line in subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout.splitlines():
    m = re.match(r"\s*(\S+) \((.*)\) => (\S+)", line)
    if m and "x86-64" in m.group(2): cache.setdefault(m.group(1), m.group(3))
def needed(p):
    return re.findall(r"NEEDED.*\[(.*)\]", subprocess.run(["readelf", "-d", p], capture_output=True, text=True).stdout)
def dynsyms(p, defined):
    # (name, type, size) of the dynamic symbols defined (or undefined) in p
    res = []
    for line in subprocess.run(["readelf", "-W", "--dyn-syms", p], capture_output=True, text=True).stdout.splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].endswith(":") or not f[2].isdigit() and not f[2].startswith("0x"): continue
        ndx, name = f[6], f[7].split("@")[0]
        if (ndx != "UND") == defined and name: res.append((name, f[3], int(f[2], 0) if f[2].startswith("0x") else int(f[2])))
    return res
seen, todo, real = set(), list(roots), {}
while todo:
    n = todo.pop()
    if n in seen or n in skip: continue
    seen.add(n)
    if n in stubs: continue
    p = cache[n]
    real[n] = p
    shutil.copy2(os.path.realpath(p), os.path.join(out, "lib", n))
    todo += needed(p)
importers = list(real.values())
# called on every start-up by imgcodecs (its GDAL decoder registers the drivers); a no-op is right
harmless = {"GDALAllRegister"}
for s in sorted(stubs & seen):
    have = {name: (typ, size) for name, typ, size in dynsyms(cache[s], True)}
    want = set()
    for imp in importers:
        for name, _, _ in dynsyms(imp, False):
            if name in have: want.add(name)
    src = os.path.join(out, "stubsrc", s + ".c")
    with open(src, "w") as f:
        f.write("/* stub of %s: the symbols OpenCV imports from it */\n#include <stdio.h>\n#include <stdlib.h>\n" % s)
        f.write("static void die(const char* n) { fprintf(stderr, \"vcpclip device bundle: stub %%s called (%s)\\n\", n); abort(); }\n" % s)
        for i, name in enumerate(sorted(want)):
            typ, size = have[name]
            if typ == "FUNC" and name in harmless:
                f.write('long f%d(void) __asm__("%s");\nlong f%d(void) { return 0; }\n' % (i, name, i))
            elif typ == "FUNC":
                f.write('void f%d(void) __asm__("%s");\nvoid f%d(void) { die("%s"); }\n' % (i, name, i, name))
            else:
                f.write('char d%d[%d] __asm__("%s") __attribute__((aligned(64)));\n' % (i, max(size, 8), name))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-w", "-Wl,-soname," + s, "-o", os.path.join(out, "lib", s), src], check=True)
    print("stub %-22s %4d symbols" % (s, len(want)))
print("copied", len(real), "libraries")
PY
cd "$OUT/lib"
for l in libopencv_core libopencv_imgproc libopencv_imgcodecs libyaml-cpp libspdlog libfmt libz; do
  ln -sf "$(ls $l.so.* | head -1)" $l.so
done
cd - >/dev/null
cp $ARCH/libgtest.a $ARCH/libgtest_main.a $ARCH/libgmock.a $ARCH/libgmock_main.a "$OUT/lib/"

# --- package configs (prefix = two levels above each config file)
cfg() { mkdir -p "$OUT/cmake/$1"; cat > "$OUT/cmake/$1/$2"; }
cfg opencv4 OpenCVConfig.cmake <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
set(OpenCV_VERSION 4.6.0)
set(OpenCV_INCLUDE_DIRS "${_p}/include/opencv4")
set(OpenCV_LIBS "")
foreach(_m core imgproc imgcodecs)
  if(NOT TARGET opencv_${_m})
    add_library(opencv_${_m} SHARED IMPORTED)
    set_target_properties(opencv_${_m} PROPERTIES IMPORTED_LOCATION "${_p}/lib/libopencv_${_m}.so"
                          INTERFACE_INCLUDE_DIRECTORIES "${_p}/include/opencv4")
  endif()
  list(APPEND OpenCV_LIBS opencv_${_m})
endforeach()
set(OpenCV_FOUND TRUE)
C
cfg CLI11 CLI11Config.cmake <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET CLI11::CLI11)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_p}/include")
endif()
C
cfg nlohmann_json nlohmann_jsonConfig.cmake <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_p}/include")
endif()
C
cfg yaml-cpp yaml-cppConfig.cmake <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp SHARED IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES IMPORTED_LOCATION "${_p}/lib/libyaml-cpp.so"
                        INTERFACE_INCLUDE_DIRECTORIES "${_p}/include")
endif()
C
cfg spdlog spdlogConfig.cmake <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
find_package(Threads REQUIRED)
if(NOT TARGET fmt::fmt)
  add_library(fmt::fmt SHARED IMPORTED)
  set_target_properties(fmt::fmt PROPERTIES IMPORTED_LOCATION "${_p}/lib/libfmt.so"
                        INTERFACE_COMPILE_DEFINITIONS "FMT_SHARED" INTERFACE_INCLUDE_DIRECTORIES "${_p}/include")
endif()
if(NOT TARGET spdlog::spdlog)
  add_library(spdlog::spdlog SHARED IMPORTED)
  set_target_properties(spdlog::spdlog PROPERTIES IMPORTED_LOCATION "${_p}/lib/libspdlog.so"
                        INTERFACE_COMPILE_DEFINITIONS "SPDLOG_SHARED_LIB;SPDLOG_COMPILED_LIB;SPDLOG_FMT_EXTERNAL"
                        INTERFACE_INCLUDE_DIRECTORIES "${_p}/include" INTERFACE_LINK_LIBRARIES "Threads::Threads;fmt::fmt")
endif()
C
cfg GTest GTestConfig.cmake <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
find_package(Threads REQUIRED)
foreach(_t gtest gtest_main gmock gmock_main)
  if(NOT TARGET GTest::${_t})
    add_library(GTest::${_t} STATIC IMPORTED)
    set_target_properties(GTest::${_t} PROPERTIES IMPORTED_LOCATION "${_p}/lib/lib${_t}.a"
                          INTERFACE_INCLUDE_DIRECTORIES "${_p}/include" INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
endforeach()
set(GTest_FOUND TRUE)
C
# The initial cache: `cmake -C .devdeps/devdeps.cmake ...`. -I (not -isystem) puts these headers
# before LibTorch's own include dirs (a pip LibTorch ships a newer fmt/ that spdlog 1.10 must not see).
cat > "$OUT/devdeps.cmake" <<'C'
get_filename_component(_p "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(OpenCV_DIR "${_p}/cmake/opencv4" CACHE PATH "")
set(CLI11_DIR "${_p}/cmake/CLI11" CACHE PATH "")
set(nlohmann_json_DIR "${_p}/cmake/nlohmann_json" CACHE PATH "")
set(yaml-cpp_DIR "${_p}/cmake/yaml-cpp" CACHE PATH "")
set(spdlog_DIR "${_p}/cmake/spdlog" CACHE PATH "")
set(GTest_DIR "${_p}/cmake/GTest" CACHE PATH "")
set(ZLIB_INCLUDE_DIR "${_p}/include" CACHE PATH "")
set(ZLIB_LIBRARY "${_p}/lib/libz.so" CACHE FILEPATH "")
set(CMAKE_CXX_FLAGS "-I${_p}/include" CACHE STRING "")
set(CMAKE_EXE_LINKER_FLAGS "-Wl,-rpath-link,${_p}/lib -Wl,-rpath,${_p}/lib" CACHE STRING "")
C

# --- assets
for v in assets/bpe_simple_vocab_16e6.txt.gz ../shared/assets/bpe_simple_vocab_16e6.txt.gz; do
  [ -f "$v" ] && { cp "$v" "$OUT/assets/"; break; }
done
# --- the reference's Python code (imported by the timing scripts on the GPU machine only)
if [ -n "${REF:-}" ] && [ -d "$REF/models" ]; then
  mkdir -p "$OUT/ref"
  cp -r "$REF/models" "$REF/utils" "$OUT/ref/"
  find "$OUT/ref" -name '__pycache__' -prune -exec rm -rf {} +
fi
du -sh "$OUT"
