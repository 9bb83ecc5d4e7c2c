// RUN: attnc-opt %s --convert-attn-to-cpu="int8-dot=all" | FileCheck %s
// RUN: attnc-opt %s --convert-attn-to-cpu | FileCheck %s --check-prefix=F32
// RUN: attnc-opt %s --convert-attn-to-cpu="int8-dot=q4" | FileCheck %s --check-prefix=Q4
// RUN: attnc-opt %s --attn-to-cpu-pipeline="int8-dot=q4" | FileCheck %s --check-prefix=LLVM
// RUN: attnc-opt %s --convert-attn-to-cpu="bf16-dot=true" | FileCheck %s --check-prefix=BF16

/// int8-dot: decode items over q4 (or q8) keys with a bf16 or f16 q score
/// each key with vpdpbusd on its codes as bytes. The item's q rows are
/// quantized once, in two int8 terms: per lane of 8 features (q4) y = q *
/// 127 / max |q|, codes c1 = round(y) and c2 = round(256 (y - c1)) clamped
/// to +-127, and the lane's sum of 256 c1 + c2 times -8 (the nibbles'
/// offset) as the lane's starting value.
// CHECK-LABEL: func.func @decode_q4
// CHECK: math.absf
// CHECK: arith.divf %{{.+}}, %cst{{.*}} : f32
// CHECK: %[[Y:.+]] = arith.mulf
// CHECK: %[[C1:.+]] = math.roundeven %[[Y]]
// CHECK: %[[R:.+]] = arith.subf %[[Y]], %[[C1]]
// CHECK: %[[R256:.+]] = arith.mulf %[[R]], %{{.+}} : f32
// CHECK: math.roundeven %[[R256]]
// CHECK: arith.maximumf
// CHECK: arith.minimumf
// CHECK: arith.fptosi %{{.+}} : f32 to i32
// CHECK: arith.trunci %{{.+}} : i32 to i8
/// Per key: 64 bytes of K's codes (128 features), low and high nibbles.
// CHECK: %[[CODES:.+]] = vector.load %arg1[{{.+}}] : memref<?x8x?x64xi8, strided<[?, ?, 64, 1]>>, vector<64xi8>
// CHECK: %[[LO:.+]] = arith.andi %[[CODES]], %{{.+}} : vector<64xi8>
// CHECK: %[[HI:.+]] = arith.shrui %[[CODES]], %{{.+}} : vector<64xi8>
/// The key's four group scales spread over the 16 lanes, 4 lanes each.
// CHECK: %[[KS:.+]] = vector.load %{{.+}} : memref<?x8x?x4xf32, strided<[?, ?, 4, 1]>>, vector<4xf32>
// CHECK: vector.shuffle %[[KS]], %[[KS]] [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
/// A row: per nibble vector one vpdpbusd with each q term, c1 from zero and
/// c2 from the offsets; then 256 times the first plus the second, the lane
/// scales.
// CHECK: %[[OFS:.+]] = vector.load %{{.+}} : memref<{{[0-9]+}}xi32>, vector<16xi32>
// CHECK: %[[Q1LO:.+]] = vector.load %{{.+}} : memref<{{[0-9]+}}xi8>, vector<64xi8>
// CHECK: %[[A0:.+]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[ZERO:.+]], %[[LO]], %[[Q1LO]]) : (vector<16xi32>, vector<64xi8>, vector<64xi8>) -> vector<16xi32>
// CHECK: %[[Q2LO:.+]] = vector.load %{{.+}} : memref<{{[0-9]+}}xi8>, vector<64xi8>
// CHECK: %[[B0:.+]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[OFS]], %[[LO]], %[[Q2LO]])
// CHECK: %[[A1:.+]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[A0]], %[[HI]], %{{.+}})
// CHECK: %[[B1:.+]] = llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"(%[[B0]], %[[HI]], %{{.+}})
// CHECK: %[[SH:.+]] = arith.shli %[[A1]], %{{.+}} : vector<16xi32>
// CHECK: %[[SUM:.+]] = arith.addi %[[SH]], %[[B1]] : vector<16xi32>
// CHECK: arith.sitofp %[[SUM]] : vector<16xi32> to vector<16xf32>
/// Four rows' lane sums by one tree, not a reduction each.
// CHECK-NOT: vector.reduction
// CHECK: vector.shuffle
// CHECK: return
/// Without the option the codes are widened to f32 as before. Either way a
/// q4 value row (whole 128-feature chunks, groups of 32) is split into
/// nibbles once per 64 bytes and interleaved within 128-bit lanes (the
/// vpunpcklbw / vpunpckhbw patterns); each 16 features then take one FMA
/// for scale and offset.
// F32-LABEL: func.func @decode_q4
// F32-NOT: vpdpbusd
// F32: vector.load %arg2[{{.+}}] : memref<?x8x?x64xi8, strided<[?, ?, 64, 1]>>, vector<64xi8>
// F32: vector.shuffle %{{.+}}, %{{.+}} [0, 64, 1, 65, 2, 66, 3, 67, 4, 68, 5, 69, 6, 70, 7, 71, 16, 80,
// F32: vector.shuffle %{{.+}}, %{{.+}} [8, 72, 9, 73, 10, 74, 11, 75, 12, 76, 13, 77, 14, 78, 15, 79, 24, 88,
// F32: vector.extract_strided_slice %{{.+}} {offsets = [0], sizes = [16], strides = [1]} : vector<64xi8> to vector<16xi8>
// F32: arith.mulf %{{.+}}, %cst{{.*}} : f32
// F32: math.fma %{{.+}}, %{{.+}}, %{{.+}} : vector<16xf32>
// F32-NOT: vpdpbusd
// F32: return
// LLVM-LABEL: llvm.func @decode_q4
// LLVM: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
func.func @decode_q4(%q: memref<?x32x?x128xbf16>, %k: memref<?x8x?x64xi8, strided<[?, ?, 64, 1]>>,
                     %v: memref<?x8x?x64xi8, strided<[?, ?, 64, 1]>>,
                     %ks: memref<?x8x?x4xf32, strided<[?, ?, 4, 1]>>,
                     %vs: memref<?x8x?x4xf32, strided<[?, ?, 4, 1]>>,
                     %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x32x?x128xbf16>) {
  attn.attention q(%q : memref<?x32x?x128xbf16>) k(%k : memref<?x8x?x64xi8, strided<[?, ?, 64, 1]>>)
      v(%v : memref<?x8x?x64xi8, strided<[?, ?, 64, 1]>>) out(%o : memref<?x32x?x128xbf16>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      scales(%ks, %vs : memref<?x8x?x4xf32, strided<[?, ?, 4, 1]>>, memref<?x8x?x4xf32, strided<[?, ?, 4, 1]>>)
      kv_quant = q4 kernel = softmax align = end scale = 0.088388
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}

/// int8-dot=q4 (the JIT's default with VNNI) leaves q8 keys to f32 products.
// Q4-LABEL: func.func @decode_q4
// Q4: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// Q4-LABEL: func.func @decode_q8
// Q4-NOT: vpdpbusd
// Q4: return

/// q4 at D = 64: the row's 32 bytes of codes are read as 64 with zeros past
/// the end (a masked load); the lanes past the head dim were zeroed once
/// per call (scale and offset 0).
// CHECK-LABEL: func.func @decode_q4_d64
// CHECK: scf.for
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<128xf32>
// CHECK: vector.transfer_read %arg1[{{.+}}], %{{.+}} : memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>, vector<64xi8>
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
func.func @decode_q4_d64(%q: memref<?x8x?x64xbf16>, %k: memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>,
                         %v: memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>,
                         %ks: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                         %vs: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                         %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x8x?x64xbf16>) {
  attn.attention q(%q : memref<?x8x?x64xbf16>) k(%k : memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>)
      v(%v : memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>) out(%o : memref<?x8x?x64xbf16>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      scales(%ks, %vs : memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>, memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>)
      kv_quant = q4 kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}

/// A sigmoid kernel takes it too: its weights are not normalised, so q's
/// rounding adds up over a long row, which a single int8 term did past the
/// bf16 tolerance; the two terms are as accurate as the f32 products.
// CHECK-LABEL: func.func @decode_q4_sigmoid
// CHECK: vpdpbusd
// CHECK: return
func.func @decode_q4_sigmoid(%q: memref<?x8x?x64xbf16>, %k: memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>,
                             %v: memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>,
                             %ks: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                             %vs: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                             %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x8x?x64xbf16>) {
  attn.attention q(%q : memref<?x8x?x64xbf16>) k(%k : memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>)
      v(%v : memref<?x2x?x32xi8, strided<[?, ?, 32, 1]>>) out(%o : memref<?x8x?x64xbf16>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      scales(%ks, %vs : memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>, memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>)
      kv_quant = q4 kernel = sigmoid align = end scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}

/// q8: codes made unsigned by flipping their top bit (+128), one vpdpbusd
/// per 64 features; an f32 q keeps the f32 products.
// CHECK-LABEL: func.func @decode_q8
// CHECK: arith.xori %{{.+}}, %{{.+}} : vector<64xi8>
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// CHECK-LABEL: func.func @decode_q8_f32_query
// CHECK-NOT: vpdpbusd
// CHECK: return
func.func @decode_q8(%q: memref<?x8x?x64xf16>, %k: memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>,
                     %v: memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>,
                     %ks: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                     %vs: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                     %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x8x?x64xf16>) {
  attn.attention q(%q : memref<?x8x?x64xf16>) k(%k : memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>)
      v(%v : memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>) out(%o : memref<?x8x?x64xf16>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      scales(%ks, %vs : memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>, memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>)
      kv_quant = q8 kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}
func.func @decode_q8_f32_query(%q: memref<?x8x?x64xf32>, %k: memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>,
                     %v: memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>,
                     %ks: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                     %vs: memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>,
                     %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x8x?x64xf32>) {
  attn.attention q(%q : memref<?x8x?x64xf32>) k(%k : memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>)
      v(%v : memref<?x2x?x64xi8, strided<[?, ?, 64, 1]>>) out(%o : memref<?x8x?x64xf32>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      scales(%ks, %vs : memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>, memref<?x2x?x2xf32, strided<[?, ?, 2, 1]>>)
      kv_quant = q8 kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}

/// bf16-dot: bf16 q and keys score each key with vdpbf16ps on the rows as
/// stored: the raw q rows (no scale) kept as bf16 bits per item, four
/// 32-feature pairs per row at D = 128, the lane sums by the tree, then the
/// softmax scale. Quantized keys and an f32 q keep their other forms.
// BF16-LABEL: func.func @decode_q4
// BF16-NOT: dpbf16ps
// BF16-LABEL: func.func @decode_bf16
// BF16: vector.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<1024xi16>, vector<16xi16>
// BF16: %[[K:.+]] = vector.load %{{.+}} : memref<?x8x?x128xi16, strided<[?, ?, 128, 1]>>, vector<32xi16>
// BF16-NEXT: %[[KB:.+]] = vector.bitcast %[[K]] : vector<32xi16> to vector<32xbf16>
// BF16: %[[Q:.+]] = vector.bitcast %{{.+}} : vector<32xi16> to vector<32xbf16>
// BF16-NEXT: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"(%{{.+}}, %[[Q]], %[[KB]]) : (vector<16xf32>, vector<32xbf16>, vector<32xbf16>) -> vector<16xf32>
// BF16-COUNT-15: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"
// BF16: vector.shuffle
// BF16: arith.mulf %{{.+}}, %cst{{.*}} : f32
// BF16-LABEL: func.func @decode_f32
// BF16-NOT: dpbf16ps
// BF16: return
func.func @decode_bf16(%q: memref<?x32x?x128xbf16>, %k: memref<?x8x?x128xbf16, strided<[?, ?, 128, 1]>>,
                       %v: memref<?x8x?x128xbf16, strided<[?, ?, 128, 1]>>,
                       %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x32x?x128xbf16>) {
  attn.attention q(%q : memref<?x32x?x128xbf16>) k(%k : memref<?x8x?x128xbf16, strided<[?, ?, 128, 1]>>)
      v(%v : memref<?x8x?x128xbf16, strided<[?, ?, 128, 1]>>) out(%o : memref<?x32x?x128xbf16>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      kernel = softmax align = end scale = 0.088388
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}
func.func @decode_f32(%q: memref<?x32x?x128xf32>, %k: memref<?x8x?x128xf32, strided<[?, ?, 128, 1]>>,
                      %v: memref<?x8x?x128xf32, strided<[?, ?, 128, 1]>>,
                      %pages: memref<?x?xi32>, %lens: memref<?xi32>, %o: memref<?x32x?x128xf32>) {
  attn.attention q(%q : memref<?x32x?x128xf32>) k(%k : memref<?x8x?x128xf32, strided<[?, ?, 128, 1]>>)
      v(%v : memref<?x8x?x128xf32, strided<[?, ?, 128, 1]>>) out(%o : memref<?x32x?x128xf32>)
      paged(%pages, %lens : memref<?x?xi32>, memref<?xi32>)
      kernel = softmax align = end scale = 0.088388
      schedule = #attn.schedule<block_q = 16, block_k = 64>
  return
}
