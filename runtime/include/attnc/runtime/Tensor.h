//===- Tensor.h - Tensor views and element types ----------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A tensor view is a pointer, an element type, a shape and strides: it owns
// nothing, so host programs pass their own buffers to attnc kernels.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_TENSOR_H
#define ATTNC_RUNTIME_TENSOR_H

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace attnc {

/// q8: signed byte codes. q4: 4-bit codes, two per byte (the even element
/// in the low nibble), stored as the code + 8; load() gives the signed code.
enum class DType : uint8_t { f32, bf16, f16, i32, i64, q8, q4 };

/// Bytes per element (1 for q4, whose elements take half a byte: use
/// storageBytes for buffer sizes).
size_t dtypeSize(DType t);
/// Bytes that `numel` contiguous elements take.
size_t storageBytes(DType t, int64_t numel);
/// "f32", "bf16", ...
const char *dtypeName(DType t);
/// Parses a dtype name; false when unknown.
bool parseDType(const std::string &name, DType &out);

/// A non-owning strided view. Strides are in elements; empty strides mean
/// contiguous row-major.
struct TensorView {
  void *data = nullptr;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;

  int64_t numel() const;
  /// Strides, filling in row-major ones when none were given.
  std::vector<int64_t> effectiveStrides() const;
  /// Element at `index` (one entry per dim) converted to double.
  double load(const int64_t *index) const;
  /// Stores `v` converted to the element type at `index`.
  void store(const int64_t *index, double v) const;
};

/// Round-to-nearest-even conversions between f32 and the 16-bit floats.
uint16_t floatToBF16(float f);
float bf16ToFloat(uint16_t h);
uint16_t floatToF16(float f);
float f16ToFloat(uint16_t h);

} // namespace attnc

#endif // ATTNC_RUNTIME_TENSOR_H
