// Paged q8 keys and values with different key and value dims (64 and 32; groups
// of 4 and 8 features), pages of 8 tokens, start-aligned queries, and a
// score that reads attn.size kv_len: in the paged form that is each
// sequence's own length.
module {
  func.func @paged_q8_sizes(%arg0: memref<?x4x?x64xf32> {attn.dims = ["B", "4", "S", "64"], attn.name = "q"}, %arg1: memref<?x2x8x64xi8, strided<[?, 512, 64, 1]>> {attn.dims = ["P", "2", "8", "64"], attn.name = "k"}, %arg2: memref<?x2x8x32xi8, strided<[?, 256, 32, 1]>> {attn.dims = ["P", "2", "8", "32"], attn.name = "v"}, %arg3: memref<?x2x8x16xf32, strided<[?, 128, 16, 1]>> {attn.dims = ["P", "2", "8", "16"], attn.name = "ks"}, %arg4: memref<?x2x8x4xf32, strided<[?, 32, 4, 1]>> {attn.dims = ["P", "2", "8", "4"], attn.name = "vs"}, %arg5: memref<?x?xi32> {attn.dims = ["B", "M"], attn.name = "table"}, %arg6: memref<?xi32> {attn.dims = ["B"], attn.name = "lens"}, %arg7: memref<?x4x?x32xf32> {attn.dims = ["B", "4", "S", "32"], attn.name = "o"}, %arg8: memref<?x4x?xf32> {attn.dims = ["B", "4", "S"], attn.name = "lse"}) attributes {attn.spec = "paged_q8_sizes"} {
    attn.attention q(%arg0 : memref<?x4x?x64xf32>) k(%arg1 : memref<?x2x8x64xi8, strided<[?, 512, 64, 1]>>) v(%arg2 : memref<?x2x8x32xi8, strided<[?, 256, 32, 1]>>) out(%arg7 : memref<?x4x?x32xf32>) lse(%arg8 : memref<?x4x?xf32>) paged(%arg5, %arg6 : memref<?x?xi32>, memref<?xi32>) scales(%arg3, %arg4 : memref<?x2x8x16xf32, strided<[?, 128, 16, 1]>>, memref<?x2x8x4xf32, strided<[?, 32, 4, 1]>>) kv_quant = q8 kernel = softmax align = start scale = 1.250000e-01 score {
    ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
      %cst = arith.constant 5.000000e-02 : f32
      %t = attn.size kv_len
      %0 = arith.subi %t, %j : index
      %1 = arith.index_cast %0 : index to i64
      %2 = arith.sitofp %1 : i64 to f32
      %3 = arith.mulf %cst, %2 : f32
      %4 = arith.subf %s, %3 : f32
      attn.yield %4 : f32
    } mask {
    ^bb0(%b: index, %h: index, %i: index, %j: index):
      %c2 = arith.constant 2 : index
      %0 = arith.addi %i, %c2 : index
      %1 = arith.cmpi sle, %j, %0 : index
      attn.yield %1 : i1
    }
    return
  }
}
