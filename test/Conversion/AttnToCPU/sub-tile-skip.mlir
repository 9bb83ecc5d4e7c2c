// RUN: attnc-opt %s --convert-attn-to-cpu | FileCheck %s
// RUN: attnc-opt %s --convert-attn-to-cpu="skip-tiles=false" | FileCheck %s --check-prefix=NOSKIP

/// In a PARTIAL tile, each row group (8 rows at 16 lanes) bounds the mask
/// over chunks of 32 keys with the tile's interval arithmetic: chunks no row
/// of the group can see are neither scored nor weighed. The key range is
/// the first to the last chunk that may keep a key; a FULL tile takes all.
// CHECK-LABEL: func.func @causal
// CHECK: scf.for %{{.+}} = %{{.+}} to %{{.+}} step %c8
/// The group's last row: min(rg + 7, rows - 1).
// CHECK: %[[LASTROW:.+]] = arith.minsi %{{.+}}, %{{.+}} : index
// CHECK: %[[RANGE:.+]]:2 = scf.if %[[FULL:.+]] -> (index, index) {
// CHECK-NEXT: scf.yield %{{.+}}, %c64 : index, index
// CHECK-NEXT: } else {
/// Chunk 0: keys [kt, kt + min(32, nk) - 1]; it may keep a key when its
/// first key is at most the group's last row (j <= i), and it has keys.
// CHECK: %[[HASKEYS0:.+]] = arith.cmpi slt, %c0{{.*}}, %[[NK:.+]] : index
// CHECK: %[[SOME0:.+]] = arith.cmpi sle, %{{.+}}, %[[ILAST:.+]] : index
// CHECK: %[[KEEP0:.+]] = arith.andi %[[HASKEYS0]], %[[SOME0]] : i1
/// Chunk 1: keys from kt + 32.
// CHECK: %[[HASKEYS1:.+]] = arith.cmpi slt, %c32{{.*}}, %[[NK]] : index
// CHECK: %[[SOME1:.+]] = arith.cmpi sle, %{{.+}}, %[[ILAST]] : index
// CHECK: %[[KEEP1:.+]] = arith.andi %[[HASKEYS1]], %[[SOME1]] : i1
// CHECK: %[[HI:.+]] = arith.select %[[KEEP1]], %c64{{.*}}, %{{.+}} : index
// CHECK: %[[LO1:.+]] = arith.select %[[KEEP1]], %c32{{.*}}, %c64{{.*}} : index
// CHECK: %[[LO:.+]] = arith.select %[[KEEP0]], %c0{{.*}}, %[[LO1]] : index
// CHECK: scf.yield %[[LO]], %[[HI]] : index, index
/// The weighed keys: [lo, min(hi, nk)), none when that is empty.
// CHECK: %[[END:.+]] = arith.minsi %[[RANGE]]#1, %[[NK]] : index
// CHECK: %[[SPAN:.+]] = arith.subi %[[END]], %[[RANGE]]#0 : index
// CHECK: %[[COUNT:.+]] = arith.maxsi %c0{{.*}}, %[[SPAN]] : index
/// Scores over the kept chunks only.
// CHECK: scf.for %{{.+}} = %[[RANGE]]#0 to %[[RANGE]]#1 step %c32
// CHECK-COUNT-16: vector.fma
/// P V over the kept keys only.
// CHECK: scf.for %{{.+}} = %c0{{.*}} to %[[COUNT]] step %c1{{.*}} iter_args
// CHECK-COUNT-16: vector.fma

/// Without tile skipping, every key of every tile is scored and weighed.
// NOSKIP-LABEL: func.func @causal
// NOSKIP-NOT: -> (index, index)
// NOSKIP-NOT: arith.maxsi
func.func @causal(%q: memref<1x2x200x64xf32>, %k: memref<1x2x200x64xf32>,
                  %v: memref<1x2x200x64xf32>, %o: memref<1x2x200x64xf32>) {
  attn.attention q(%q : memref<1x2x200x64xf32>) k(%k : memref<1x2x200x64xf32>)
      v(%v : memref<1x2x200x64xf32>) out(%o : memref<1x2x200x64xf32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}

/// A mask that reads a tensor (document ids) bounds each chunk by scanning
/// the ids of the group's rows and of the chunk's keys.
// CHECK-LABEL: func.func @document
// NOSKIP-LABEL: func.func @document
// CHECK: -> (index, index) {
// CHECK: } else {
// CHECK: scf.for
// CHECK: memref.load %{{.+}} : memref<1x200xi32>
// CHECK: scf.yield %{{.+}}, %{{.+}} : index, index
func.func @document(%q: memref<1x2x200x64xf32>, %k: memref<1x2x200x64xf32>,
                    %v: memref<1x2x200x64xf32>, %doc: memref<1x200xi32>,
                    %o: memref<1x2x200x64xf32>) {
  attn.attention q(%q : memref<1x2x200x64xf32>) k(%k : memref<1x2x200x64xf32>)
      v(%v : memref<1x2x200x64xf32>) out(%o : memref<1x2x200x64xf32>)
      extras(%doc : memref<1x200xi32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 64, block_k = 64>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %di = attn.read %doc[%b, %i] : memref<1x200xi32>
    %dj = attn.read %doc[%b, %j] : memref<1x200xi32>
    %same = arith.cmpi eq, %di, %dj : i32
    %c = arith.cmpi sle, %j, %i : index
    %m = arith.andi %same, %c : i1
    attn.yield %m : i1
  }
  return
}
