// RUN: attnc-opt %s --split-input-file --attn-approximate-math | FileCheck %s

/// f32 exp, log and tanh, scalar or vector, become inline arithmetic.

// CHECK-LABEL: func.func @vector_exp
// CHECK-NOT: math.exp
// CHECK: math.fma
// CHECK: return
func.func @vector_exp(%x: vector<8xf32>) -> vector<8xf32> {
  %y = math.exp %x : vector<8xf32>
  return %y : vector<8xf32>
}

// -----

// CHECK-LABEL: func.func @scalar_log_tanh
// CHECK-NOT: math.log
// CHECK-NOT: math.tanh
// CHECK: return
func.func @scalar_log_tanh(%x: f32) -> f32 {
  %l = math.log %x : f32
  %t = math.tanh %l : f32
  return %t : f32
}

// -----

/// Other functions stay for math-expand-ops and the LLVM lowering.
// CHECK-LABEL: func.func @negative_sqrt
// CHECK: math.sqrt
func.func @negative_sqrt(%x: f32) -> f32 {
  %y = math.sqrt %x : f32
  return %y : f32
}
