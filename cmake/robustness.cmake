# Robustness builds (README "Robustness"); included by CMakeLists.txt before any target is made.
#   -DVCPCLIP_SANITIZE=ON  AddressSanitizer + UndefinedBehaviorSanitizer on every target (gcc or clang)
#   -DVCPCLIP_FUZZ=ON      the libFuzzer targets fuzz/fuzz_<reader> (clang only; implies SANITIZE)
# Without VCPCLIP_FUZZ, fuzz/ builds replay executables that run the committed corpus through the
# same targets (ctest label `fuzz`), so every build checks the regression inputs.
option(VCPCLIP_SANITIZE "Build with AddressSanitizer + UndefinedBehaviorSanitizer" OFF)
option(VCPCLIP_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)
if(VCPCLIP_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "VCPCLIP_FUZZ needs clang's libFuzzer: configure with -DCMAKE_CXX_COMPILER=clang++")
  endif()
  set(VCPCLIP_SANITIZE ON CACHE BOOL "Build with AddressSanitizer + UndefinedBehaviorSanitizer" FORCE)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(VCPCLIP_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1)
  add_link_options(-fsanitize=address,undefined)
endif()
