// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu="amx=true" | FileCheck %s
// RUN: attnc-opt %s --split-input-file --attn-to-cpu-pipeline="amx=true" | FileCheck %s --check-prefix=LLVM

/// bf16 prefill with amx=true: items of more than one row group run both
/// matrix products on AMX tiles, 32 rows by 32 keys (or value features) at
/// a time: four 16x16 f32 accumulators, two row tiles, two VNNI tiles.
// CHECK-LABEL: func.func @causal_bf16
/// Scratch: unscaled bf16 q rows, a VNNI K tile with an i32 view (one
/// (d, d + 1) pair per element), V pairs, all rows' scores and bf16 weights.
// CHECK: memref.view %{{.+}} : memref<?xi8> to memref<?xbf16>
// CHECK: memref.view %{{.+}} : memref<?xi8> to memref<?xi32>
/// The q rows' raw bits, besides the scaled f32 rows the vector path uses.
// CHECK: vector.transfer_read %{{.+}} : memref<2x4x96x64xi16>, vector<16xi16>
// CHECK: scf.if %[[MANY:.+]] {
/// K packed into VNNI pairs (the head's cache, once per call).
// CHECK: vector.bitcast %{{.+}} : vector<16xi16> to vector<8xi32>
// CHECK: memref.store %{{.+}} : memref<?xi32>
/// V: two key rows interleaved.
// CHECK: vector.shuffle %{{.+}}, %{{.+}} [0, 16, 1, 17
// CHECK: amx.tile_zero : !amx.tile<16x16xf32>
// CHECK: amx.tile_load %{{.+}} : memref<?xbf16> into !amx.tile<16x32xbf16>
// CHECK: amx.tile_mulf %{{.+}}, %{{.+}}, %{{.+}} : !amx.tile<16x32xbf16>, !amx.tile<16x32xbf16>, !amx.tile<16x16xf32>
// CHECK: amx.tile_store %{{.+}} : memref<?xf32>, !amx.tile<16x16xf32>
/// The softmax in four loops. Per row: keys past the tile's end become
/// -inf (no loop below masks lanes) and the max is taken over unscaled S
/// (the scale is folded), then scaled as a scalar.
// CHECK: scf.if %{{.+}} -> (f32) {
// CHECK: %[[NEGINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK: scf.for %{{.+}} = %{{.+}} to %c64
// CHECK-NEXT: arith.addi
// CHECK-NEXT: memref.store %[[NEGINF]], %{{.+}} : memref<?xf32>
// CHECK-NOT: arith.mulf %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
/// 16 rows at a time: the new max, the rescale (1 where the max stayed),
/// the exponent's offset -base * log2(e).
// CHECK: arith.maximumf %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: arith.cmpf oeq
// CHECK: %[[SAME:.+]] = arith.cmpf oeq, %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: math.exp %{{.+}} : vector<16xf32>
// CHECK: arith.select %[[SAME]]
// CHECK: arith.constant -1.44269502 : f32
/// Per row: each weight is 2^(s * scale * log2(e) + offset), one FMA, then
/// vreduceps, a cubic and vscalefps (bf16 precision), to the tiles as bf16.
// CHECK: arith.constant 0.180336878 : f32
// CHECK: %[[T:.+]] = math.fma %{{.+}}, %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: %[[F:.+]] = llvm.call_intrinsic "llvm.x86.avx512.mask.reduce.ps.512"(%[[T]], %c9_i32,
// CHECK: math.fma %{{.+}}, %[[F]], %{{.+}} : vector<16xf32>
// CHECK: %[[P:.+]] = llvm.call_intrinsic "llvm.x86.avx512.mask.scalef.ps.512"(%{{.+}}, %[[T]],
// CHECK: arith.truncf %[[P]] : vector<16xf32> to vector<16xbf16>
// CHECK: vector.reduction <add>
/// 16 rows at a time: l = l * rescale + the row's sum.
// CHECK: %[[L:.+]] = arith.mulf %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: arith.addf %[[L]], %{{.+}} : vector<16xf32>
/// A row's accumulator is rescaled only when its max moved.
// CHECK: arith.cmpf une, %{{.+}}, %{{.+}} : f32
// CHECK-NEXT: scf.if
/// acc += P V, the accumulator tiles loaded from and stored to the rows.
// CHECK: amx.tile_load %{{.+}} : memref<?xf32> into !amx.tile<16x16xf32>
// CHECK: amx.tile_mulf
// CHECK: amx.tile_store
/// Items of one row group keep the vector path.
// CHECK: } else {
// CHECK: vector.fma
/// The output leaves 16 features at a time, converted to bf16 as vectors.
// CHECK: arith.truncf %{{.+}} : vector<16xf32> to vector<16xbf16>
// CHECK-NEXT: vector.store %{{.+}}, %{{.+}} : memref<2x4x96x64xbf16>, vector<16xbf16>
// LLVM-LABEL: llvm.func @causal_bf16
// LLVM: llvm.call_intrinsic "llvm.x86.avx512.mask.reduce.ps.512"
// LLVM: llvm.call_intrinsic "llvm.x86.avx512.mask.scalef.ps.512"
// LLVM: llvm.call_intrinsic "llvm.x86.tdpbf16ps.internal"
func.func @causal_bf16(%q: memref<2x4x96x64xbf16>, %k: memref<2x4x96x64xbf16>,
                       %v: memref<2x4x96x64xbf16>, %o: memref<2x4x96x64xbf16>) {
  attn.attention q(%q : memref<2x4x96x64xbf16>) k(%k : memref<2x4x96x64xbf16>)
      v(%v : memref<2x4x96x64xbf16>) out(%o : memref<2x4x96x64xbf16>)
      kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
      mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %keep = arith.cmpi sle, %j, %i : index
    attn.yield %keep : i1
  }
  return
}

// -----

/// No AMX form for f32 inputs, nor for head dims that are not whole
/// 32-element tile rows, nor for a sigmoid kernel (its weights are not
/// normalised: rounded to bf16 they exceed the bf16 tolerance).
// CHECK-LABEL: func.func @f32_inputs
// CHECK-NOT: amx.
// CHECK-LABEL: func.func @bf16_d80
// CHECK-NOT: amx.
// CHECK-LABEL: func.func @bf16_sigmoid
// CHECK-NOT: amx.
func.func @f32_inputs(%q: memref<1x2x64x64xf32>) {
  attn.attention q(%q : memref<1x2x64x64xf32>) k(%q : memref<1x2x64x64xf32>)
      v(%q : memref<1x2x64x64xf32>) out(%q : memref<1x2x64x64xf32>)
      kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  return
}
func.func @bf16_d80(%q: memref<1x2x64x80xbf16>) {
  attn.attention q(%q : memref<1x2x64x80xbf16>) k(%q : memref<1x2x64x80xbf16>)
      v(%q : memref<1x2x64x80xbf16>) out(%q : memref<1x2x64x80xbf16>)
      kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  return
}
func.func @bf16_sigmoid(%q: memref<1x2x64x64xbf16>) {
  attn.attention q(%q : memref<1x2x64x64xbf16>) k(%q : memref<1x2x64x64xbf16>)
      v(%q : memref<1x2x64x64xbf16>) out(%q : memref<1x2x64x64xbf16>)
      kernel = sigmoid align = end scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  return
}

// -----

/// A score region needs the scaled score: the scale multiplies S in f32
/// before the region, the scores are stored back, and the exponent's FMA
/// multiplies by log2(e) alone.
// CHECK-LABEL: func.func @softcap_bf16
// CHECK: amx.tile_store
// CHECK: arith.mulf %{{.+}}, %{{.+}} : vector<16xf32>
// CHECK: math.tanh
// CHECK: vector.store
// CHECK: arith.constant 1.44269502 : f32
// CHECK: llvm.call_intrinsic "llvm.x86.avx512.mask.scalef.ps.512"
func.func @softcap_bf16(%q: memref<1x2x64x64xbf16>) {
  attn.attention q(%q : memref<1x2x64x64xbf16>) k(%q : memref<1x2x64x64xbf16>)
      v(%q : memref<1x2x64x64xbf16>) out(%q : memref<1x2x64x64xbf16>)
      kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
      score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c = arith.constant 30.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %y = arith.mulf %t, %c : f32
    attn.yield %y : f32
  }
  return
}
