// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu --verify-diagnostics

/// convert-attn-to-cpu needs a schedule, one attention per function, a
/// power-of-two vector width and top-k selections materialized.

func.func @negative_no_schedule(%q: memref<1x1x4x8xf32>) {
  // expected-error @+1 {{'attn.attention' op has no schedule; run attn-select-schedule first}}
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
  return
}

// -----

// expected-error @+1 {{convert-attn-to-cpu: expects one attn.attention per function, found 2}}
func.func @negative_two(%q: memref<1x1x4x8xf32>) {
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
  return
}

// -----

/// A top-k selection must be materialized into its table first.
func.func @negative_topk(%q: memref<1x1x4x8xf32>) {
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
      schedule = #attn.schedule<block_q = 4, block_k = 4>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    // expected-error @+1 {{'attn.topk' op needs its selection table; run attn-materialize-topk first}}
    %s = attn.topk %b, %h, %i, %j {top_k = 1, block_q = 2, block_k = 2}
    attn.yield %s : i1
  }
  return
}
