// RUN: attnc-opt %s --split-input-file --canonicalize | FileCheck %s

/// Canonicalization removes regions that do nothing and extras nobody reads.

// CHECK-LABEL: func.func @mask_folds_to_true
// CHECK: attn.attention
// CHECK-NOT: mask
// CHECK: return
func.func @mask_folds_to_true(%q: memref<1x1x8x4xf32>) {
  attn.attention q(%q : memref<1x1x8x4xf32>) k(%q : memref<1x1x8x4xf32>) v(%q : memref<1x1x8x4xf32>) out(%q : memref<1x1x8x4xf32>) kernel = softmax align = start scale = 0.5
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %j : index
    attn.yield %c : i1
  }
  return
}

// -----

// CHECK-LABEL: func.func @identity_score_and_gate
// CHECK: attn.attention
// CHECK-NOT: score
// CHECK-NOT: gate
// CHECK: return
func.func @identity_score_and_gate(%q: memref<1x1x8x4xf32>) {
  attn.attention q(%q : memref<1x1x8x4xf32>) k(%q : memref<1x1x8x4xf32>) v(%q : memref<1x1x8x4xf32>) out(%q : memref<1x1x8x4xf32>) kernel = softmax align = start scale = 0.5
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %zero = arith.constant -0.0 : f32
    %r = arith.addf %s, %zero : f32
    attn.yield %r : f32
  }
  gate {
  ^bb0(%x: f32, %b: index, %h: index, %i: index, %d: index):
    attn.yield %x : f32
  }
  return
}

// -----

/// A mask that is not constant stays, and keeps only the extras it reads.
// CHECK-LABEL: func.func @negative_mask_kept
// CHECK-SAME: (%{{.+}}: memref<1x1x8x4xf32>, %[[USED:.+]]: index, %{{.+}}: f32)
// CHECK: extras(%[[USED]] : index)
// CHECK: mask {
// CHECK: %[[ONE:.+]] = arith.constant 1 : index
// CHECK: %[[D:.+]] = arith.subi
// CHECK: %[[W:.+]] = arith.addi %[[USED]], %[[ONE]]
// CHECK: arith.cmpi slt, %[[D]], %[[W]]
func.func @negative_mask_kept(%q: memref<1x1x8x4xf32>, %w: index, %unused: f32) {
  attn.attention q(%q : memref<1x1x8x4xf32>) k(%q : memref<1x1x8x4xf32>) v(%q : memref<1x1x8x4xf32>) out(%q : memref<1x1x8x4xf32>) extras(%w, %unused : index, f32) kernel = softmax align = start scale = 0.5
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %d = arith.subi %i, %j : index
    %one = arith.constant 1 : index
    %w1 = arith.addi %w, %one : index
    %c = arith.cmpi slt, %d, %w1 : index
    attn.yield %c : i1
  }
  return
}
