// RUN: attnc-opt %s --convert-attn-to-cpu="fast-exp=true" | FileCheck %s
// RUN: attnc-opt %s --convert-attn-to-cpu="fast-exp=true vector-width=8" | FileCheck %s --check-prefix=AVX2
// RUN: attnc-opt %s --convert-attn-to-cpu | FileCheck %s --check-prefix=OFF

/// fast-exp: an f32 softmax's weights as 2^((s - max) log2 e): vreduceps's
/// fraction, a quintic in it (five FMAs), vscalefps by the integer part. The
/// max is subtracted first, so the weights near it are exact.
// CHECK-LABEL: func.func @softmax_f32
// CHECK-NOT: math.exp %{{.+}} : vector<16xf32>
// CHECK: %[[X:.+]] = arith.subf %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: %[[T:.+]] = arith.mulf %[[X]], %{{.+}} : vector<16xf32>
// CHECK: %[[F:.+]] = llvm.call_intrinsic "llvm.x86.avx512.mask.reduce.ps.512"(%[[T]], %{{.+}}, %[[T]]
// CHECK-COUNT-5: math.fma %{{.+}}, %[[F]], %{{.+}} : vector<16xf32>
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.mask.scalef.ps.512"(%{{.+}}, %[[T]],
/// No vector math.exp is left in the function (the rescale of the running
/// sums stays a scalar one).
// CHECK-NOT: math.exp %{{.+}} : vector<16xf32>
/// 8-lane vectors (AVX2) and the default keep math.exp.
// AVX2-NOT: llvm.x86.avx512.mask.reduce.ps.512
// AVX2: math.exp %{{.+}} : vector<8xf32>
// OFF-NOT: llvm.x86.avx512.mask.reduce.ps.512
// OFF: math.exp %{{.+}} : vector<16xf32>
func.func @softmax_f32(%q: memref<1x2x100x64xf32>, %k: memref<1x2x100x64xf32>,
                       %v: memref<1x2x100x64xf32>, %o: memref<1x2x100x64xf32>) {
  attn.attention q(%q : memref<1x2x100x64xf32>) k(%k : memref<1x2x100x64xf32>)
      v(%v : memref<1x2x100x64xf32>) out(%o : memref<1x2x100x64xf32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  return
}

/// Sigmoid weights: 1 / (1 + 2^t), t = -s log2 e capped at 128, so that a
/// masked key (s = -inf) still gets 1 / (1 + inf) = 0 (2^+inf through
/// vreduceps would be NaN).
// CHECK-LABEL: func.func @sigmoid_f32
// CHECK-NOT: math.exp %{{.+}} : vector<16xf32>
// CHECK: %[[C:.+]] = arith.constant -1.44269502 : f32
// CHECK: %[[CV:.+]] = vector.broadcast %[[C]] : f32 to vector<16xf32>
// CHECK: %[[NEG:.+]] = arith.mulf %{{.+}}, %[[CV]] : vector<16xf32>
// CHECK: %[[T:.+]] = arith.minimumf %[[NEG]], %{{.+}} : vector<16xf32>
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.mask.reduce.ps.512"(%[[T]],
// CHECK: %[[E:.+]] = llvm.call_intrinsic "llvm.x86.avx512.mask.scalef.ps.512"(%{{.+}}, %[[T]],
// CHECK: %[[D:.+]] = arith.addf %{{.+}}, %[[E]] : vector<16xf32>
// CHECK: arith.divf %{{.+}}, %[[D]] : vector<16xf32>
// CHECK-NOT: math.exp %{{.+}} : vector<16xf32>
func.func @sigmoid_f32(%q: memref<1x2x100x64xf32>, %k: memref<1x2x100x64xf32>,
                       %v: memref<1x2x100x64xf32>, %o: memref<1x2x100x64xf32>) {
  attn.attention q(%q : memref<1x2x100x64xf32>) k(%k : memref<1x2x100x64xf32>)
      v(%v : memref<1x2x100x64xf32>) out(%o : memref<1x2x100x64xf32>)
      kernel = sigmoid align = start scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  return
}
