// RUN: attnc-opt %s | attnc-opt | FileCheck %s
// RUN: attnc-opt %s --mlir-print-op-generic | attnc-opt | FileCheck %s
// RUN: attnc-opt %s --verify-roundtrip | FileCheck %s

/// Round trip of attn.attention in every form: no regions, all regions,
/// extras, lse, dynamic dims, GQA and the schedule attribute.

// CHECK-LABEL: func.func @dense
// CHECK: attn.attention q(%{{.*}} : memref<2x4x16x8xf32>) k(%{{.*}} : memref<2x4x16x8xf32>) v(%{{.*}} : memref<2x4x16x8xf32>) out(%{{.*}} : memref<2x4x16x8xf32>) kernel = softmax align = start scale = 0.353553{{[0-9]+}}
// CHECK-NOT: score
// CHECK-NOT: mask
// CHECK-NOT: gate
func.func @dense(%q: memref<2x4x16x8xf32>, %k: memref<2x4x16x8xf32>,
                 %v: memref<2x4x16x8xf32>, %o: memref<2x4x16x8xf32>) {
  attn.attention q(%q : memref<2x4x16x8xf32>) k(%k : memref<2x4x16x8xf32>)
      v(%v : memref<2x4x16x8xf32>) out(%o : memref<2x4x16x8xf32>)
      kernel = softmax align = start scale = 0.35355339
  return
}

// CHECK-LABEL: func.func @gqa_alibi_causal_gated
// CHECK-SAME: (%[[Q:.+]]: memref<?x8x?x64xbf16>, %[[K:.+]]: memref<?x2x?x64xbf16>, %[[V:.+]]: memref<?x2x?x64xbf16>, %[[SLOPES:.+]]: memref<8xf32>, %[[G:.+]]: memref<?x8x?xf32>, %[[O:.+]]: memref<?x8x?x64xbf16>, %[[LSE:.+]]: memref<?x8x?xf32>)
// CHECK: attn.attention q(%[[Q]] : {{.*}}) k(%[[K]] : {{.*}}) v(%[[V]] : {{.*}}) out(%[[O]] : {{.*}}) lse(%[[LSE]] : memref<?x8x?xf32>) extras(%[[SLOPES]], %[[G]] : memref<8xf32>, memref<?x8x?xf32>) kernel = softmax align = end scale = 1.250000e-01 schedule = #attn.schedule<block_q = 64, block_k = 32> score {
// CHECK-NEXT: ^bb0(%[[S:.+]]: f32, %[[B:.+]]: index, %[[H:.+]]: index, %[[I:.+]]: index, %[[J:.+]]: index):
// CHECK-NEXT: %[[SL:.+]] = attn.read %[[SLOPES]][%[[H]]] : memref<8xf32>
// CHECK: attn.yield %{{.+}} : f32
// CHECK: } mask {
// CHECK-NEXT: ^bb0(%{{.+}}: index, %{{.+}}: index, %[[MI:.+]]: index, %[[MJ:.+]]: index):
// CHECK-NEXT: %[[KEEP:.+]] = arith.cmpi sle, %[[MJ]], %[[MI]] : index
// CHECK-NEXT: attn.yield %[[KEEP]] : i1
// CHECK: } gate {
// CHECK-NEXT: ^bb0(%[[X:.+]]: f32, %[[GB:.+]]: index, %[[GH:.+]]: index, %[[GI:.+]]: index, %{{.+}}: index):
// CHECK-NEXT: %[[GL:.+]] = attn.read %[[G]][%[[GB]], %[[GH]], %[[GI]]] : memref<?x8x?xf32>
func.func @gqa_alibi_causal_gated(%q: memref<?x8x?x64xbf16>, %k: memref<?x2x?x64xbf16>,
    %v: memref<?x2x?x64xbf16>, %slopes: memref<8xf32>, %g: memref<?x8x?xf32>,
    %o: memref<?x8x?x64xbf16>, %lse: memref<?x8x?xf32>) {
  attn.attention q(%q : memref<?x8x?x64xbf16>) k(%k : memref<?x2x?x64xbf16>)
      v(%v : memref<?x2x?x64xbf16>) out(%o : memref<?x8x?x64xbf16>)
      lse(%lse : memref<?x8x?xf32>)
      extras(%slopes, %g : memref<8xf32>, memref<?x8x?xf32>)
      kernel = softmax align = end scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 32>
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %slope = attn.read %slopes[%h] : memref<8xf32>
    %d = arith.subi %j, %i : index
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %bias = arith.mulf %slope, %df : f32
    %r = arith.addf %s, %bias : f32
    attn.yield %r : f32
  }
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  gate {
  ^bb0(%x: f32, %b: index, %h: index, %i: index, %d: index):
    %logit = attn.read %g[%b, %h, %i] : memref<?x8x?xf32>
    %n = arith.negf %logit : f32
    %e = math.exp %n : f32
    %one = arith.constant 1.0 : f32
    %den = arith.addf %one, %e : f32
    %y = arith.divf %x, %den : f32
    attn.yield %y : f32
  }
  return
}

// CHECK-LABEL: func.func @sigmoid_window_param
// CHECK: extras(%{{.+}} : i32) kernel = sigmoid align = start
// CHECK: %[[T:.+]] = attn.size kv_len
func.func @sigmoid_window_param(%q: memref<1x1x4x4xf16>, %k: memref<1x1x6x4xf16>,
    %v: memref<1x1x6x2xf16>, %o: memref<1x1x4x2xf32>, %window: i32) {
  attn.attention q(%q : memref<1x1x4x4xf16>) k(%k : memref<1x1x6x4xf16>)
      v(%v : memref<1x1x6x2xf16>) out(%o : memref<1x1x4x2xf32>)
      extras(%window : i32) kernel = sigmoid align = start scale = 0.5
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %t = attn.size kv_len
    %w = arith.index_cast %window : i32 to index
    %lo = arith.subi %t, %w : index
    %c = arith.cmpi sge, %j, %lo : index
    attn.yield %c : i1
  }
  return
}

// CHECK-LABEL: func.func @block_list
// CHECK: mask {
// CHECK: %[[KB:.+]] = arith.floordivsi
// CHECK: attn.listed %[[KB]] in %{{.+}}[%{{.+}}, %{{.+}}] count %{{.+}} : memref<?x4x?xi32>
func.func @block_list(%q: memref<?x4x?x64xbf16>, %o: memref<?x4x?x64xbf16>,
                      %idx: memref<?x4x?xi32>, %num: index) {
  attn.attention q(%q : memref<?x4x?x64xbf16>) k(%q : memref<?x4x?x64xbf16>)
      v(%q : memref<?x4x?x64xbf16>) out(%o : memref<?x4x?x64xbf16>)
      extras(%idx, %num : memref<?x4x?xi32>, index)
      kernel = softmax align = start scale = 0.125
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c64 = arith.constant 64 : index
    %kb = arith.floordivsi %j, %c64 : index
    %keep = attn.listed %kb in %idx[%b, %h] count %num : memref<?x4x?xi32>
    attn.yield %keep : i1
  }
  return
}

// CHECK-LABEL: func.func @topk
// CHECK: attn.topk %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {block_k = 64 : i64, block_q = 128 : i64, causal, top_k = 4 : i64}
func.func @topk(%q: memref<?x4x?x64xbf16>, %o: memref<?x4x?x64xbf16>) {
  attn.attention q(%q : memref<?x4x?x64xbf16>) k(%q : memref<?x4x?x64xbf16>)
      v(%q : memref<?x4x?x64xbf16>) out(%o : memref<?x4x?x64xbf16>)
      kernel = softmax align = start scale = 0.125
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %s = attn.topk %b, %h, %i, %j {top_k = 4, block_q = 128, block_k = 64, causal}
    attn.yield %s : i1
  }
  return
}

// Paged, 4-bit quantized keys and values: the page stride is free.
// CHECK-LABEL: func.func @paged_q4
// CHECK: attn.attention q(%{{.+}}) k(%{{.+}} : memref<?x8x16x64xi8, strided<[?, 1024, 64, 1]>>) v(%{{.+}}) out(%{{.+}}) paged(%{{.+}}, %{{.+}} : memref<?x?xi32>, memref<?xi32>) scales(%{{.+}}, %{{.+}} : memref<?x8x16x4xf32, strided<[?, 64, 4, 1]>>, memref<?x8x16x4xf32, strided<[?, 64, 4, 1]>>) kv_quant = q4 kernel = softmax align = end
func.func @paged_q4(%q: memref<?x32x1x128xbf16>, %k: memref<?x8x16x64xi8, strided<[?, 1024, 64, 1]>>,
                    %s: memref<?x8x16x4xf32, strided<[?, 64, 4, 1]>>, %t: memref<?x?xi32>,
                    %l: memref<?xi32>, %o: memref<?x32x1x128xbf16>) {
  attn.attention q(%q : memref<?x32x1x128xbf16>) k(%k : memref<?x8x16x64xi8, strided<[?, 1024, 64, 1]>>) v(%k : memref<?x8x16x64xi8, strided<[?, 1024, 64, 1]>>) out(%o : memref<?x32x1x128xbf16>) paged(%t, %l : memref<?x?xi32>, memref<?xi32>) scales(%s, %s : memref<?x8x16x4xf32, strided<[?, 64, 4, 1]>>, memref<?x8x16x4xf32, strided<[?, 64, 4, 1]>>) kv_quant = q4 kernel = softmax align = end scale = 0.088388347648318433
  return
}
