// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu=vector-width=8 | FileCheck %s

/// Score and mask regions run over a vector of 8 keys at once when every op
/// that depends on the key index j is elementwise: values shared by the keys
/// (b, h, i, reads that do not depend on j) stay scalar, reads that vary in
/// their innermost index read the keys in the tile. Indexed by j itself (or
/// j plus a shared value), the 8 indices are consecutive: one masked
/// contiguous load where all of them lie inside the tensor, a gather of the
/// clamped indices where they do not.

// CHECK-LABEL: func.func @document
// CHECK: } else {
// CHECK: %[[LANES:.+]] = arith.cmpi slt, %{{.+}}, %{{.+}} : vector<8xi32>
// CHECK: %[[J0:.+]] = arith.addi %arg{{[0-9]+}}, %arg{{[0-9]+}} : index
// CHECK: %[[JV:.+]] = arith.addi %{{.+}}, %{{.+}} : vector<8xindex>
// Every index of a region's read is clamped to the tensor.
// CHECK: %[[DI:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}] : memref<?x?xi32>
// CHECK: %[[B:.+]] = arith.minsi %{{.+}}, %{{.+}} : index
// CHECK: %[[FROM0:.+]] = arith.cmpi sge, %[[J0]], %{{.+}} : index
// CHECK: %[[LAST:.+]] = arith.subi %{{.+}}, %c8{{.*}} : index
// CHECK: %[[TO:.+]] = arith.cmpi sle, %[[J0]], %[[LAST]] : index
// CHECK: %[[INSIDE:.+]] = arith.andi %[[FROM0]], %[[TO]] : i1
// CHECK: %[[DJ:.+]] = scf.if %[[INSIDE]] -> (vector<8xi32>) {
// CHECK: vector.maskedload %{{.+}}[%[[B]], %[[J0]]], %[[LANES]], %{{.+}} : memref<?x?xi32>, vector<8xi1>, vector<8xi32> into vector<8xi32>
// CHECK: } else {
// CHECK: %[[LO:.+]] = arith.maxsi %[[JV]], %{{.+}} : vector<8xindex>
// CHECK: %[[JC:.+]] = arith.minsi %[[LO]], %{{.+}} : vector<8xindex>
// CHECK: vector.gather %{{.+}}[%[[B]], %{{.+}}] [%[[JC]]], %[[LANES]], %{{.+}} : memref<?x?xi32>, vector<8xindex>, vector<8xi1>, vector<8xi32> into vector<8xi32>
// CHECK: }
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

/// The spec language widens int reads to index before comparing them; over
/// lanes the comparison stays in i32 (index_cast sign-extends, which keeps
/// every predicate's answer).

// CHECK-LABEL: func.func @widened_ids
// CHECK: scf.if %{{.+}} -> (vector<8xi32>) {
// CHECK: vector.maskedload
// CHECK: arith.cmpi eq, %{{.+}}, %{{.+}} : vector<8xi32>
// CHECK-NOT: arith.cmpi eq, %{{.+}}, %{{.+}} : vector<8xindex>
// CHECK: vector.shuffle
func.func @widened_ids(%q: memref<?x4x?x64xf32>, %doc: memref<?x?xi32>, %o: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>)
      v(%q : memref<?x4x?x64xf32>) out(%o : memref<?x4x?x64xf32>)
      extras(%doc : memref<?x?xi32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 32>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %di = attn.read %doc[%b, %i] : memref<?x?xi32>
    %wi = arith.index_cast %di : i32 to index
    %dj = attn.read %doc[%b, %j] : memref<?x?xi32>
    %wj = arith.index_cast %dj : i32 to index
    %same = arith.cmpi eq, %wi, %wj : index
    attn.yield %same : i1
  }
  return
}

// -----

/// j minus a shared value keeps the indices consecutive (the first lane's is
/// j0 - 1, below 0 on the first tile, where the gather takes over); j times
/// 2 does not: it gathers only.

// CHECK-LABEL: func.func @previous_key
// CHECK: arith.constant dense<[0, 1, 2, 3, 4, 5, 6, 7]> : vector<8xindex>
// CHECK: %[[J0:.+]] = arith.addi %arg{{[0-9]+}}, %arg{{[0-9]+}} : index
// CHECK: %[[FIRST:.+]] = arith.subi %[[J0]], %c1{{.*}} : index
// CHECK: arith.cmpi sge, %[[FIRST]], %{{.+}} : index
// CHECK: scf.if
// CHECK: vector.maskedload %{{.+}}[%{{.+}}, %[[FIRST]]]
// CHECK: vector.gather
// CHECK-NOT: vector.maskedload
// CHECK: vector.gather
func.func @previous_key(%q: memref<?x4x?x64xf32>, %pad: memref<?x?xf32>, %o: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>)
      v(%q : memref<?x4x?x64xf32>) out(%o : memref<?x4x?x64xf32>)
      extras(%pad : memref<?x?xf32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 32>
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %jm = arith.subi %j, %c1 : index
    %x = attn.read %pad[%b, %jm] : memref<?x?xf32>
    %j2 = arith.muli %j, %c2 : index
    %y = attn.read %pad[%b, %j2] : memref<?x?xf32>
    %r = arith.addf %s, %x : f32
    %r2 = arith.addf %r, %y : f32
    attn.yield %r2 : f32
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
