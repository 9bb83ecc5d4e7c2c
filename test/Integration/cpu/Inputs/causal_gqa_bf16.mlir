// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
// Causal grouped-query attention (8 query heads over 2 KV heads) written
// directly in the attn dialect.
func.func @causal_gqa(%q: memref<?x8x?x64xbf16>, %k: memref<?x2x?x64xbf16>,
                      %v: memref<?x2x?x64xbf16>, %o: memref<?x8x?x64xbf16>,
                      %lse: memref<?x8x?xf32>) {
  attn.attention q(%q : memref<?x8x?x64xbf16>) k(%k : memref<?x2x?x64xbf16>)
      v(%v : memref<?x2x?x64xbf16>) out(%o : memref<?x8x?x64xbf16>)
      lse(%lse : memref<?x8x?xf32>) kernel = softmax align = start scale = 0.125
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %keep = arith.cmpi sle, %j, %i : index
    attn.yield %keep : i1
  }
  return
}
