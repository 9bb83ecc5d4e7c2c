// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu --verify-diagnostics

/// convert-attn-to-cpu needs a schedule, one attention per function and a
/// power-of-two vector width.

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
