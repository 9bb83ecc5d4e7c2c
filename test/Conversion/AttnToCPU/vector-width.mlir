// RUN: attnc-opt %s --convert-attn-to-cpu=vector-width=12 --verify-diagnostics

// expected-error @+1 {{convert-attn-to-cpu: vector-width must be a power of two from 1 to 64}}
func.func @negative_width(%q: memref<1x1x4x8xf32>) {
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  return
}

