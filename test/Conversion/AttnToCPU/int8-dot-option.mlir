// RUN: attnc-opt %s --convert-attn-to-cpu=int8-dot=Q4 --verify-diagnostics

// The int8-dot option names a form; a misspelt one is an error, not "off".
// expected-error @+1 {{convert-attn-to-cpu: int8-dot must be off, q4 or all, got 'Q4'}}
func.func @bad_int8_dot(%q: memref<1x1x4x8xf32>) {
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = softmax align = start scale = 0.5
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  return
}
