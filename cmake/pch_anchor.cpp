// Anchor translation unit: carries the shared precompiled header (see CMakeLists.txt).
