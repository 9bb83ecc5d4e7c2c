// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu=vector-width=8 | FileCheck %s

/// Score and mask regions run over a vector of 8 keys at once when every op
/// that depends on the key index j is elementwise: values shared by the keys
/// (b, h, i, reads that do not depend on j) stay scalar, reads that vary in
/// their innermost index become gathers limited to the keys in the tile.

// CHECK-LABEL: func.func @document
// CHECK: } else {
// CHECK: %[[LANES:.+]] = arith.cmpi slt, %{{.+}}, %{{.+}} : vector<8xi32>
// CHECK: %[[JV:.+]] = arith.addi %{{.+}}, %{{.+}} : vector<8xindex>
// Every index of a region's read is clamped to the tensor.
// CHECK: %[[DI:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<?x?xi32>
// CHECK: %[[LO:.+]] = arith.maxsi %[[JV]], %{{.+}} : vector<8xindex>
// CHECK: %[[JC:.+]] = arith.minsi %[[LO]], %{{.+}} : vector<8xindex>
// CHECK: %[[DJ:.+]] = vector.gather %{{.+}}[%{{.+}}, %{{.+}}] [%[[JC]]], %[[LANES]], %{{.+}} : memref<?x?xi32>, vector<8xindex>, vector<8xi1>, vector<8xi32> into vector<8xi32>
// CHECK: %[[DIV:.+]] = vector.broadcast %[[DI]] : i32 to vector<8xi32>
// CHECK: arith.cmpi eq, %[[DIV]], %[[DJ]] : vector<8xi32>
// CHECK: arith.cmpf ogt, %{{.+}}, %{{.+}} : vector<8xf32>
// CHECK: vector.shuffle
func.func @document(%q: memref<?x4x?x64xf32>, %doc: memref<?x?xi32>, %o: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>)
      v(%q : memref<?x4x?x64xf32>) out(%o : memref<?x4x?x64xf32>)
      extras(%doc : memref<?x?xi32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 32>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %di = attn.read %doc[%b, %i] : memref<?x?xi32>
    %dj = attn.read %doc[%b, %j] : memref<?x?xi32>
    %same = arith.cmpi eq, %di, %dj : i32
    attn.yield %same : i1
  }
  return
}

// -----

/// A read that varies in an outer index cannot be one gather, and a divisor
/// that varies with j could be zero in lanes past the tile: such regions run
/// key by key.

// CHECK-LABEL: func.func @outer_index
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %{{.+}}) -> (f32)
// CHECK: memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<?x?xf32>
// CHECK-NOT: vector.gather
func.func @outer_index(%q: memref<?x4x?x64xf32>, %bias: memref<?x?xf32>, %o: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>)
      v(%q : memref<?x4x?x64xf32>) out(%o : memref<?x4x?x64xf32>)
      extras(%bias : memref<?x?xf32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 32>
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %x = attn.read %bias[%j, %i] : memref<?x?xf32>
    %r = arith.addf %s, %x : f32
    attn.yield %r : f32
  }
  return
}

// -----

// CHECK-LABEL: func.func @varying_divisor
// CHECK: } else {
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{.+}} = %{{.+}}) -> (f32)
// CHECK: arith.remsi %{{.+}}, %{{.+}} : index
// CHECK-NOT: arith.remsi {{.*}} : vector
func.func @varying_divisor(%q: memref<?x4x?x64xf32>, %o: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>)
      v(%q : memref<?x4x?x64xf32>) out(%o : memref<?x4x?x64xf32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 32>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c1 = arith.constant 1 : index
    %j1 = arith.addi %j, %c1 : index
    %r = arith.remsi %i, %j1 : index
    %c0 = arith.constant 0 : index
    %keep = arith.cmpi eq, %r, %c0 : index
    attn.yield %keep : i1
  }
  return
}
