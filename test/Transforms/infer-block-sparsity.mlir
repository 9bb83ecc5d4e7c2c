// RUN: attnc-opt %s --split-input-file --attn-infer-block-sparsity --verify-diagnostics --mlir-print-op-on-diagnostic=false | FileCheck %s

/// Compile-time block plans: 0 = EMPTY, 1 = PARTIAL, 2 = FULL per (query
/// tile, key tile), and per query tile the range of key tiles to visit.

// CHECK-LABEL: func.func @causal
// CHECK: attn.block_plan = dense<{{\[}}[1, 0, 0, 0], [2, 1, 0, 0], [2, 2, 1, 0], [2, 2, 2, 1]]> : tensor<4x4xi8>
// CHECK-SAME: attn.key_tile_ranges = array<i64: 0, 1, 0, 2, 0, 3, 0, 4>
func.func @causal(%q: memref<1x2x256x16xf32>) {
  // expected-remark @+1 {{block plan: 4 x 4 tiles of 64 x 64: 6 EMPTY, 4 PARTIAL, 6 FULL; 37.5% of tiles skipped}}
  attn.attention q(%q : memref<1x2x256x16xf32>) k(%q : memref<1x2x256x16xf32>) v(%q : memref<1x2x256x16xf32>)
      out(%q : memref<1x2x256x16xf32>) kernel = softmax align = start scale = 0.25
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

/// A 100-token causal window over 50-row query tiles and 40-key tiles that
/// do not divide the lengths (130 queries at the end of 200 keys).
// CHECK-LABEL: func.func @window_end_aligned
// CHECK: attn.block_plan = dense<{{\[}}[1, 1, 1, 0, 0], [1, 1, 2, 1, 1], [0, 1, 1, 2, 1]]> : tensor<3x5xi8>
// CHECK-SAME: attn.key_tile_ranges = array<i64: 0, 3, 0, 5, 1, 5>
func.func @window_end_aligned(%q: memref<1x1x130x8xf32>, %k: memref<1x1x200x8xf32>) {
  // expected-remark @+1 {{block plan: 3 x 5 tiles of 50 x 40: 3 EMPTY, 10 PARTIAL, 2 FULL; 20.0% of tiles skipped}}
  attn.attention q(%q : memref<1x1x130x8xf32>) k(%k : memref<1x1x200x8xf32>) v(%k : memref<1x1x200x8xf32>)
      out(%q : memref<1x1x130x8xf32>) kernel = softmax align = end scale = 0.25
      schedule = #attn.schedule<block_q = 50, block_k = 40>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %w = arith.constant 100 : index
    %d = arith.subi %i, %j : index
    %causal = arith.cmpi sle, %j, %i : index
    %near = arith.cmpi slt, %d, %w : index
    %keep = arith.andi %causal, %near : i1
    attn.yield %keep : i1
  }
  return
}

// -----

/// Block-diagonal chunks through integer division: whole tiles are FULL.
// CHECK-LABEL: func.func @chunks
// CHECK: attn.block_plan = dense<{{\[}}[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 2]]> : tensor<4x4xi8>
func.func @chunks(%q: memref<1x1x128x8xf32>) {
  // expected-remark @+1 {{block plan: 4 x 4 tiles of 32 x 32: 12 EMPTY, 0 PARTIAL, 4 FULL; 75.0% of tiles skipped}}
  attn.attention q(%q : memref<1x1x128x8xf32>) k(%q : memref<1x1x128x8xf32>) v(%q : memref<1x1x128x8xf32>)
      out(%q : memref<1x1x128x8xf32>) kernel = softmax align = start scale = 0.25
      schedule = #attn.schedule<block_q = 32, block_k = 32>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c32 = arith.constant 32 : index
    %ci = arith.floordivsi %i, %c32 : index
    %cj = arith.floordivsi %j, %c32 : index
    %same = arith.cmpi eq, %ci, %cj : index
    attn.yield %same : i1
  }
  return
}

// -----

func.func @negative_param_window(%q: memref<1x1x128x8xf32>, %w: index) {
  // expected-remark @+1 {{block plan: tiles are classified at run time: the mask reads runtime parameters or tensors}}
  attn.attention q(%q : memref<1x1x128x8xf32>) k(%q : memref<1x1x128x8xf32>) v(%q : memref<1x1x128x8xf32>)
      out(%q : memref<1x1x128x8xf32>) extras(%w : index) kernel = softmax align = start scale = 0.25
      schedule = #attn.schedule<block_q = 32, block_k = 32>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %d = arith.subi %i, %j : index
    %c = arith.cmpi slt, %d, %w : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @negative_symbolic(%q: memref<1x1x?x8xf32>) {
  // expected-remark @+1 {{block plan: tiles are classified at run time: the query or key length is symbolic}}
  attn.attention q(%q : memref<1x1x?x8xf32>) k(%q : memref<1x1x?x8xf32>) v(%q : memref<1x1x?x8xf32>)
      out(%q : memref<1x1x?x8xf32>) kernel = softmax align = start scale = 0.25
      schedule = #attn.schedule<block_q = 32, block_k = 32>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

func.func @negative_no_mask(%q: memref<1x1x64x8xf32>) {
  // expected-remark @+1 {{block plan: no mask, every tile is FULL}}
  attn.attention q(%q : memref<1x1x64x8xf32>) k(%q : memref<1x1x64x8xf32>) v(%q : memref<1x1x64x8xf32>)
      out(%q : memref<1x1x64x8xf32>) kernel = softmax align = start scale = 0.25
      schedule = #attn.schedule<block_q = 32, block_k = 32>
  return
}

// -----

func.func @negative_no_schedule(%q: memref<1x1x64x8xf32>) {
  // expected-error @+1 {{'attn.attention' op has no schedule; run attn-select-schedule first}}
  attn.attention q(%q : memref<1x1x64x8xf32>) k(%q : memref<1x1x64x8xf32>) v(%q : memref<1x1x64x8xf32>)
      out(%q : memref<1x1x64x8xf32>) kernel = softmax align = start scale = 0.25
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}
