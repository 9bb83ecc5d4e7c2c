// RUN: attnc-opt %s --convert-attn-to-cpu=vector-width=1073741824 --verify-diagnostics

// Lanes are unrolled at compile time: a huge width is an error, not a hang.
// expected-error @+1 {{convert-attn-to-cpu: vector-width must be a power of two from 1 to 64}}
func.func @huge_width(%q: memref<1x1x4x8xf32>) {
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  return
}
