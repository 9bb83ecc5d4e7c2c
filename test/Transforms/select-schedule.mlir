// RUN: attnc-opt %s --split-input-file --attn-select-schedule | FileCheck %s --check-prefix=CPU
// RUN: attnc-opt %s --split-input-file --attn-select-schedule=target=cuda | FileCheck %s --check-prefix=CUDA
// RUN: attnc-opt %s --split-input-file --attn-select-schedule=amx=true | FileCheck %s --check-prefix=AMX
// RUN: not attnc-opt %s --attn-select-schedule=target=tpu 2>&1 | FileCheck %s --check-prefix=BAD

/// Tile sizes per target and head dim; a schedule already present is kept.

// CPU-LABEL: func.func @d128
// CPU: schedule = #attn.schedule<block_q = 64, block_k = 64>
// CUDA-LABEL: func.func @d128
// CUDA: schedule = #attn.schedule<block_q = 128, block_k = 64>
// BAD: error: attn-select-schedule: unknown target 'tpu'; expected cpu or cuda
/// With AMX tiles to follow, bf16 softmax takes 128 x 128 tiles; f16 (no
/// AMX-FP16 path) and a bf16 sigmoid (not on the tiles) keep 64 x 64.
// AMX-LABEL: func.func @d128
// AMX: schedule = #attn.schedule<block_q = 128, block_k = 128>
// AMX-LABEL: func.func @d128_sigmoid
// AMX: schedule = #attn.schedule<block_q = 64, block_k = 64>
// AMX-LABEL: func.func @d64
// AMX: schedule = #attn.schedule<block_q = 64, block_k = 64>
func.func @d128(%q: memref<?x4x?x128xbf16>) {
  attn.attention q(%q : memref<?x4x?x128xbf16>) k(%q : memref<?x4x?x128xbf16>) v(%q : memref<?x4x?x128xbf16>) out(%q : memref<?x4x?x128xbf16>) kernel = softmax align = start scale = 0.08
  return
}
func.func @d128_sigmoid(%q: memref<?x4x?x128xbf16>) {
  attn.attention q(%q : memref<?x4x?x128xbf16>) k(%q : memref<?x4x?x128xbf16>) v(%q : memref<?x4x?x128xbf16>) out(%q : memref<?x4x?x128xbf16>) kernel = sigmoid align = start scale = 0.08
  return
}

// -----

// CPU-LABEL: func.func @d64
// CPU: schedule = #attn.schedule<block_q = 64, block_k = 64>
// CUDA-LABEL: func.func @d64
// CUDA: schedule = #attn.schedule<block_q = 128, block_k = 64>
func.func @d64(%q: memref<?x4x?x64xf16>) {
  attn.attention q(%q : memref<?x4x?x64xf16>) k(%q : memref<?x4x?x64xf16>) v(%q : memref<?x4x?x64xf16>) out(%q : memref<?x4x?x64xf16>) kernel = softmax align = start scale = 0.125
  return
}

// -----

/// Decode: one query row takes a 16-row tile, not 64.
// CPU-LABEL: func.func @decode
// CPU: schedule = #attn.schedule<block_q = 16, block_k = 32>
// CUDA-LABEL: func.func @decode
// CUDA: schedule = #attn.schedule<block_q = 16, block_k = 32>
func.func @decode(%q: memref<8x4x1x256xf32>, %k: memref<8x4x?x256xf32>) {
  attn.attention q(%q : memref<8x4x1x256xf32>) k(%k : memref<8x4x?x256xf32>) v(%k : memref<8x4x?x256xf32>) out(%q : memref<8x4x1x256xf32>) kernel = softmax align = end scale = 0.0625
  return
}

// -----

// CPU-LABEL: func.func @negative_kept
// CPU: schedule = #attn.schedule<block_q = 32, block_k = 16>
func.func @negative_kept(%q: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>) v(%q : memref<?x4x?x64xf32>) out(%q : memref<?x4x?x64xf32>) kernel = softmax align = start scale = 0.125 schedule = #attn.schedule<block_q = 32, block_k = 16>
  return
}
