// RUN: attnc-opt %s --attn-to-cpu-pipeline | FileCheck %s
// RUN: attnc-opt %s --attn-to-cpu-pipeline="to-llvm=false vector-width=4" | FileCheck %s --check-prefix=LOOPS

/// The whole CPU pipeline: canonical form, a schedule, loops, then only the
/// LLVM dialect remains, with the C interface entry point.

// CHECK-LABEL: llvm.func @window(
// CHECK-LABEL: llvm.func @_mlir_ciface_window(
// CHECK-NOT: attn.
// CHECK-NOT: scf.
// CHECK-NOT: vector.
// CHECK-NOT: memref.
// LOOPS-LABEL: func.func @window
// LOOPS: vector<4xf32>
// LOOPS-NOT: attn.attention
func.func @window(%q: memref<?x2x?x32xf32>, %w: i32) {
  attn.attention q(%q : memref<?x2x?x32xf32>) k(%q : memref<?x2x?x32xf32>) v(%q : memref<?x2x?x32xf32>)
      out(%q : memref<?x2x?x32xf32>) extras(%w : i32) kernel = softmax align = start scale = 0.17
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %wi = arith.index_cast %w : i32 to index
    %d = arith.subi %i, %j : index
    %c = arith.cmpi slt, %d, %wi : index
    %z = arith.constant 0 : index
    %nn = arith.cmpi sge, %d, %z : index
    %k = arith.andi %c, %nn : i1
    attn.yield %k : i1
  }
  return
}
