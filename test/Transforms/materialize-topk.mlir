// RUN: attnc-opt %s --split-input-file --attn-materialize-topk --verify-diagnostics | FileCheck %s

/// attn.topk becomes a read of a hidden selection table, the function's new
/// last argument, which joins the extras; the selection's parameters are on
/// the argument for the runtime.

// CHECK-LABEL: func.func @moba
// CHECK-SAME: %[[SEL:[a-z0-9]+]]: memref<?x?x?x?xi32> {attn.hidden = "topk", attn.name = "topk_selection", attn.topk = [4, 128, 64, 1]}
// CHECK: attn.attention {{.*}} extras(%[[SEL]] : memref<?x?x?x?xi32>)
// CHECK: ^bb0(%[[B:.+]]: index, %[[H:.+]]: index, %[[I:.+]]: index, %[[J:.+]]: index):
// CHECK: %[[QB:.+]] = arith.floordivsi %[[I]], %c128
// CHECK: %[[KB:.+]] = arith.floordivsi %[[J]], %c64
// CHECK: %[[E:.+]] = attn.read %[[SEL]][%[[B]], %[[H]], %[[QB]], %[[KB]]] : memref<?x?x?x?xi32>
// CHECK: %[[KEEP:.+]] = arith.cmpi ne, %[[E]], %c0_i32 : i32
// CHECK: arith.andi %{{.*}}, %[[KEEP]] : i1
// CHECK-NOT: attn.topk
func.func @moba(%q: memref<?x4x?x64xbf16>, %o: memref<?x4x?x64xbf16>) {
  attn.attention q(%q : memref<?x4x?x64xbf16>) k(%q : memref<?x4x?x64xbf16>)
      v(%q : memref<?x4x?x64xbf16>) out(%o : memref<?x4x?x64xbf16>)
      kernel = softmax align = start scale = 0.125
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    %s = attn.topk %b, %h, %i, %j {top_k = 4, block_q = 128, block_k = 64, causal}
    %keep = arith.andi %c, %s : i1
    attn.yield %keep : i1
  }
  return
}

// -----

/// No attn.topk: the function is left alone.

// CHECK-LABEL: func.func @causal
// CHECK-SAME: (%{{.*}}: memref<1x4x16x8xf32>, %{{.*}}: memref<1x4x16x8xf32>)
// CHECK-NOT: attn.hidden
func.func @causal(%q: memref<1x4x16x8xf32>, %o: memref<1x4x16x8xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>)
      v(%q : memref<1x4x16x8xf32>) out(%o : memref<1x4x16x8xf32>)
      kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @two_selections(%q: memref<1x4x16x8xf32>, %o: memref<1x4x16x8xf32>) {
  attn.attention q(%q : memref<1x4x16x8xf32>) k(%q : memref<1x4x16x8xf32>)
      v(%q : memref<1x4x16x8xf32>) out(%o : memref<1x4x16x8xf32>)
      kernel = softmax align = start scale = 1.0
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %s = attn.topk %b, %h, %i, %j {top_k = 2, block_q = 4, block_k = 4}
    // expected-error @+1 {{'attn.topk' op selects with other parameters than an earlier attn.topk; a kernel supports one top-k selection}}
    %t = attn.topk %b, %h, %i, %j {top_k = 3, block_q = 4, block_k = 4}
    %keep = arith.ori %s, %t : i1
    attn.yield %keep : i1
  }
  return
}
