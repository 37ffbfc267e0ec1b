# Installation and the CMake package (README "Deploying"):
#   cmake --install build --prefix P
# gives P/bin/vcpclip, P/lib/libvcpclip_*.a, P/include/vcpclip/** (public API: vcpclip/vcpclip.h),
# P/share/vcpclip/{configs/models/*.json, assets/<vocabulary>} and P/lib/cmake/vcpclip/
# (vcpclipConfig.cmake, vcpclipConfigVersion.cmake, vcpclipTargets.cmake), so that a consumer does
#   find_package(vcpclip 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE vcpclip::vcpclip)
# (examples/inspect). Included once from the top-level CMakeLists.txt after the targets exist.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# vcpclip::vcpclip: what a consumer links, i.e. the area libraries and, through them, LibTorch,
# OpenCV, yaml-cpp, spdlog, nlohmann-json, zlib (and Gloo when found). The executable owns the
# name `vcpclip`, hence the target name vcpclip_lib with the export name `vcpclip`.
add_library(vcpclip_lib INTERFACE)
set_target_properties(vcpclip_lib PROPERTIES EXPORT_NAME vcpclip)
target_link_libraries(vcpclip_lib INTERFACE vcpclip_app)
add_library(vcpclip::vcpclip ALIAS vcpclip_lib)

# The include directories of the build tree (the source tree, generated/, LibTorch's and OpenCV's)
# are build-only; an installed consumer gets P/include, and LibTorch's and OpenCV's include
# directories from their own imported targets.
foreach(prop INTERFACE_INCLUDE_DIRECTORIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES)
  get_target_property(dirs vcpclip_pch ${prop})
  set(wrapped "")
  foreach(dir ${dirs})
    list(APPEND wrapped "$<BUILD_INTERFACE:${dir}>")
  endforeach()
  if(prop STREQUAL "INTERFACE_INCLUDE_DIRECTORIES")
    list(APPEND wrapped "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>")
  endif()
  set_property(TARGET vcpclip_pch PROPERTY ${prop} ${wrapped})
endforeach()

set(vcpclip_exported vcpclip_lib vcpclip_pch)
foreach(area ${VCPCLIP_AREAS})
  list(APPEND vcpclip_exported vcpclip_${area})
endforeach()
install(TARGETS ${vcpclip_exported} EXPORT vcpclipTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS vcpclip RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${VCPCLIP_ROOT}/include/vcpclip DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${VCPCLIP_ROOT}/configs/models DESTINATION ${CMAKE_INSTALL_DATADIR}/vcpclip/configs)
# The BPE vocabulary is not in git (scripts/setup.sh fetches it into assets/): installed when present.
install(FILES ${VCPCLIP_ROOT}/assets/bpe_simple_vocab_16e6.txt.gz DESTINATION ${CMAKE_INSTALL_DATADIR}/vcpclip/assets
        OPTIONAL)

set(vcpclip_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/vcpclip)
install(EXPORT vcpclipTargets NAMESPACE vcpclip:: DESTINATION ${vcpclip_cmake_dir})
set(VCPCLIP_HAVE_GLOO ${Gloo_FOUND})
configure_package_config_file(${VCPCLIP_ROOT}/cmake/vcpclipConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/generated/vcpclipConfig.cmake
                              INSTALL_DESTINATION ${vcpclip_cmake_dir} PATH_VARS CMAKE_INSTALL_DATADIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/generated/vcpclipConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/generated/vcpclipConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/generated/vcpclipConfigVersion.cmake DESTINATION ${vcpclip_cmake_dir})
