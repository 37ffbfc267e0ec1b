#pragma once
// NumPy .npy files (format versions 1.0, 2.0 and 3.0; C order; little-endian).
#include <ATen/core/Tensor.h>

#include <string>

namespace vcpclip::io {

/// Reads a .npy file into a CPU tensor of the matching dtype: '<f4' float32, '<f8' float64,
/// '|u1' uint8, '<i8' int64, '|b1' bool. Fortran order, other dtypes, a bad header or too little
/// data are vcpclip::Error naming the file.
at::Tensor read_npy(const std::string& path);

/// Writes a contiguous CPU copy of `t` (float32, float64, uint8, int64 or bool) as a version 1.0
/// .npy file, atomically (temp + rename); numpy.load reads it. A 0-dim tensor gives shape ().
void write_npy(const std::string& path, const at::Tensor& t);

}  // namespace vcpclip::io
