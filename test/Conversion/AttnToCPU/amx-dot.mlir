// RUN: attnc-opt %s --convert-attn-to-cpu="amx=true amx-dot=true" | FileCheck %s
// RUN: attnc-opt %s --attn-to-cpu-pipeline="amx=true amx-dot=true" | FileCheck %s --check-prefix=LLVM

/// amx-dot: CPUs with AVX512-BF16 but no AMX take the AMX form's layout and
/// blocking (VNNI-packed K and V, bf16 q rows and weights), and its two
/// products as vdpbf16ps on vectors: per pair along the reduced dim, the
/// right operand's 32 bf16 (16 columns x 2) and the row's pair in every
/// 32-bit lane, into 16 f32 accumulators (8 rows x 32 columns).
// CHECK-LABEL: func.func @causal_bf16
// CHECK-NOT: amx.tile
/// Per 32-row block and 32-key chunk of the tile, whether the mask may keep
/// a key there: always in a FULL tile, else its interval bounds (j <= i:
/// the chunk's first key against the block's last row). Hidden blocks are
/// neither scored nor weighed.
// CHECK: %[[KEEPS:.+]] = memref.alloca() : memref<8xi8>
// CHECK: %[[KEEP:.+]] = scf.if %[[FULL:.+]] -> (i1) {
// CHECK-NEXT: scf.yield %[[FULL]] : i1
// CHECK-NEXT: } else {
// CHECK: %[[HASKEYS:.+]] = arith.cmpi slt, %{{.+}}, %{{.+}} : index
// CHECK-NEXT: %[[SOME:.+]] = arith.cmpi sle, %{{.+}}, %{{.+}} : index
// CHECK: %[[MAY:.+]] = arith.andi %[[HASKEYS]], %[[SOME]] : i1
// CHECK-NEXT: scf.yield %[[MAY]] : i1
// CHECK: memref.store %{{.+}}, %[[KEEPS]][%{{.+}}] : memref<8xi8>
// CHECK-NEXT: scf.if %[[KEEP]] {
/// S = q K^T, 64 pairs at D = 128: the K pair row loaded as 32 bf16 (two
/// vectors of 16 keys), each row's pair broadcast to every lane.
// CHECK: scf.for %{{.+}} = %{{.+}} to %c64{{(_[0-9]+)?}} step %{{.+}} iter_args(
// CHECK: %[[K0:.+]] = vector.load %{{.+}} : memref<?xbf16>, vector<32xbf16>
// CHECK: %[[K1:.+]] = vector.load %{{.+}} : memref<?xbf16>, vector<32xbf16>
// CHECK: vector.load %{{.+}} : memref<?xbf16>, vector<2xbf16>
// CHECK-NEXT: vector.bitcast %{{.+}} : vector<2xbf16> to vector<1xi32>
// CHECK-NEXT: vector.extract
// CHECK-NEXT: vector.broadcast %{{.+}} : i32 to vector<16xi32>
// CHECK-NEXT: %[[Q:.+]] = vector.bitcast %{{.+}} : vector<16xi32> to vector<32xbf16>
// CHECK-NEXT: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"(%{{.+}}, %[[Q]], %[[K0]]) : (vector<16xf32>, vector<32xbf16>, vector<32xbf16>) -> vector<16xf32>
// CHECK-NEXT: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"(%{{.+}}, %[[Q]], %[[K1]])
// CHECK-COUNT-14: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"
// CHECK: scf.yield
/// P V: the accumulator rows loaded, a loop over the tile's four chunks of
/// 32 keys, each kept chunk a loop over its 16 key pairs, the rows stored
/// back.
// CHECK: vector.load %{{.+}} : memref<?xf32>, vector<16xf32>
// CHECK: scf.for %[[KC:.+]] = %{{.+}} to %c128{{(_[0-9]+)?}} step %c32{{(_[0-9]+)?}} iter_args(
// CHECK: %[[KEPT:.+]] = memref.load %[[KEEPS]][%{{.+}}] : memref<8xi8>
// CHECK: %[[ON:.+]] = arith.cmpi ne, %[[KEPT]], %{{.+}} : i8
// CHECK: scf.if %[[ON]] -> (vector<16xf32>
// CHECK: scf.for %{{.+}} = %{{.+}} to %c16{{(_[0-9]+)?}} step %{{.+}} iter_args(
// CHECK-COUNT-16: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"
// CHECK: } else {
// CHECK: vector.store %{{.+}} : memref<?xf32>, vector<16xf32>
// CHECK: return

// LLVM-LABEL: llvm.func @causal_bf16
// LLVM-NOT: amx
// LLVM: llvm.call_intrinsic "llvm.x86.avx512bf16.dpbf16ps.512"
func.func @causal_bf16(%q: memref<2x4x96x128xbf16>, %k: memref<2x4x200x128xbf16>,
                       %v: memref<2x4x200x128xbf16>, %o: memref<2x4x96x128xbf16>) {
  attn.attention q(%q : memref<2x4x96x128xbf16>) k(%k : memref<2x4x200x128xbf16>)
      v(%v : memref<2x4x200x128xbf16>) out(%o : memref<2x4x96x128xbf16>)
      kernel = softmax align = start scale = 0.088388
      schedule = #attn.schedule<block_q = 64, block_k = 128>
      mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %keep = arith.cmpi sle, %j, %i : index
    attn.yield %keep : i1
  }
  return
}
