// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu=vector-width=8 | FileCheck %s

/// The fused loop nest: work items; q rows scaled once; per key tile a
/// transposed K tile and a V tile; per group of 4 rows the score tile as
/// broadcast FMAs (two vectors of keys per broadcast), the score and mask
/// regions inlined over vectors of keys, the online softmax with vector weights, and P.V likewise; then the gate, the output and lse.

// CHECK-LABEL: func.func @causal_softcap_gated
// CHECK-SAME: %[[Q:[a-z0-9]+]]: memref<?x4x?x64xf32>
// CHECK-SAME: %[[BEGIN:[a-z0-9]+]]: index, %[[END:[a-z0-9]+]]: index)
// CHECK-SAME: attributes {llvm.emit_c_interface}
/// Scratch starts on a cache line (64 bytes).
// CHECK: %[[QS:.+]] = memref.alloca(%{{.+}}) {alignment = 64 : i64} : memref<?xf32>
// CHECK: %[[KT:.+]] = memref.alloca(%{{.+}}) {alignment = 64 : i64} : memref<?xf32>
/// A cache of one head's transposed K tiles, heap scratch of the call: as
/// many of the head's first tiles as fit 2^21 floats (all of them up to T of
/// about 16K at D = 128), which tiles it holds, and for which (batch, KV head).
// CHECK: %[[FIT:.+]] = arith.divui %c2097152, %[[TILEFLOATS:.+]] : index
// CHECK: %[[CACHED:.+]] = arith.minsi %[[TILES:.+]], %[[FIT]] : index
// CHECK: %[[SMALL:.+]] = arith.cmpi sgt, %[[CACHED]], %c0{{.*}} : index
// CHECK: %[[KTBYTES:.+]] = memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<?xi8>
// CHECK: %[[KTALL:.+]] = memref.view %[[KTBYTES]][%{{.+}}][%{{.+}}] : memref<?xi8> to memref<?xf32>
// CHECK: %[[DONE:.+]] = memref.alloc(%{{.+}}) : memref<?xi8>
/// A failed allocation (null) falls back to per-item transposes.
// CHECK: memref.extract_aligned_pointer_as_index %[[KTBYTES]]
// CHECK: memref.extract_aligned_pointer_as_index %[[DONE]]
// CHECK: %[[GOT:.+]] = arith.andi
// CHECK-NEXT: %[[FITS:.+]] = arith.andi %[[SMALL]], %[[GOT]] : i1
// CHECK: %[[HELD:.+]] = memref.alloca() : memref<2xindex>
// CHECK: %[[SCORES:.+]] = memref.alloca() {alignment = 64 : i64} : memref<128xf32>
// CHECK: scf.for %[[ITEM:.+]] = %[[BEGIN]] to %[[END]]
/// Rows of 64 features, read 8 at a time up to a multiple of 16: no mask.
// CHECK: vector.transfer_read %[[Q]]{{.*}} {in_bounds = [true]} : memref<?x4x?x64xf32>, vector<8xf32>
// CHECK: vector.store %{{.+}}, %[[QS]]
/// Another head: the cache empties.
// CHECK: memref.load %[[HELD]]
// CHECK: scf.if
// CHECK: memref.store %c0_i8, %[[DONE]]
// CHECK: memref.store %{{.+}}, %[[HELD]]
// CHECK: scf.for %[[TILE:.+]] = %{{.+}} to %{{.+}} step %c32
/// The causal mask bounded over the tile: skip it when nothing is visible.
// CHECK: %[[MAYKEEP:.+]] = arith.cmpi sle, %[[TILE]], %{{.+}} : index
// CHECK: scf.if %[[MAYKEEP]] {
/// The tile into kT when the cache does not fit...
// CHECK: vector.extract %{{.+}}[7] : f32 from vector<8xf32>
// CHECK: memref.store %{{.+}}, %[[KT]]
/// ... else into the cache, the first time the call needs it.
// CHECK: memref.load %[[DONE]]
// CHECK: scf.if
// CHECK: vector.extract %{{.+}}[7] : f32 from vector<8xf32>
// CHECK: memref.store %{{.+}}, %[[KTALL]]
// CHECK: memref.store %c1_i8, %[[DONE]]
// CHECK: scf.for %[[GROUP:.+]] = %{{.+}} to %{{.+}} step %c4
/// A tile the cache holds (its index below the cached count) is read there.
// CHECK: %[[TILE_AT:.+]] = arith.divui %[[TILE]], %c32{{.*}} : index
// CHECK: %[[BELOW:.+]] = arith.cmpi slt, %[[TILE_AT]], %[[CACHED]] : index
// CHECK: %[[INCACHE:.+]] = arith.andi %[[FITS]], %[[BELOW]] : i1
// CHECK: %[[KTSRC:.+]] = arith.select %[[INCACHE]], %[[KTALL]], %[[KT]] : memref<?xf32>
// CHECK: scf.for {{.+}} iter_args({{.+}}) -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK: vector.load %[[KTSRC]]
// CHECK: vector.load %[[KTSRC]]
// CHECK-COUNT-8: vector.fma
// CHECK: scf.if
/// FULL tiles: the score region over 8 keys at once, no mask; the tile max
/// a vector at a time as compare and select (one vmaxps), then across the
/// lanes by halves: 4, 2, 1.
// CHECK: scf.if
// CHECK: math.tanh %{{.+}} : vector<8xf32>
// CHECK: vector.store %{{.+}}, %[[SCORES]]
// CHECK: %[[GT:.+]] = arith.cmpf ogt, %[[SV:.+]], %[[ACC:.+]] : vector<8xf32>
// CHECK: arith.select %[[GT]], %[[SV]], %[[ACC]] : vector<8xi1>, vector<8xf32>
// CHECK: vector.shuffle %{{.+}}, %{{.+}} [4, 5, 6, 7, 4, 5, 6, 7]
// CHECK: vector.shuffle %{{.+}}, %{{.+}} [2, 3, 2, 3, 4, 5, 6, 7]
// CHECK: vector.shuffle %{{.+}}, %{{.+}} [1, 1, 2, 3, 4, 5, 6, 7]
// CHECK-NOT: vector.reduction <maximumf>
/// PARTIAL tiles: the mask too, over a vector of key indices.
// CHECK: } else {
// CHECK: math.tanh %{{.+}} : vector<8xf32>
// CHECK: %[[KEEP:.+]] = arith.cmpi sle, %{{.+}}, %{{.+}} : vector<8xindex>
// CHECK: arith.select %[[KEEP]], %{{.+}}, %{{.+}} : vector<8xi1>, vector<8xf32>
// CHECK: vector.store %{{.+}}, %[[SCORES]]
// CHECK: vector.shuffle
// CHECK: math.exp %{{.+}} : vector<8xf32>
/// The row's weight sum as a tree, not lane after lane.
// CHECK: vector.reduction <add>, %{{.+}} fastmath<reassoc> : vector<8xf32> into f32
// CHECK: } else {
// CHECK: -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>)
// CHECK-COUNT-8: vector.fma
// CHECK: arith.negf
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<?x4x?x64xf32>
// CHECK: math.log
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}] : memref<?x4x?xf32>
// CHECK: memref.dealloc %[[KTBYTES]]
// CHECK: memref.dealloc %[[DONE]]
// CHECK-NOT: attn.
func.func @causal_softcap_gated(%q: memref<?x4x?x64xf32>, %o: memref<?x4x?x64xf32>,
                                %lse: memref<?x4x?xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>) v(%q : memref<?x4x?x64xf32>)
      out(%o : memref<?x4x?x64xf32>) lse(%lse : memref<?x4x?xf32>)
      kernel = softmax align = start scale = 0.125 schedule = #attn.schedule<block_q = 16, block_k = 32>
  score {
  ^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):
    %cap = arith.constant 30.0 : f32
    %d = arith.divf %s, %cap : f32
    %t = math.tanh %d : f32
    %r = arith.mulf %t, %cap : f32
    attn.yield %r : f32
  }
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  gate {
  ^bb0(%x: f32, %b: index, %h: index, %i: index, %dd: index):
    %n = arith.negf %x : f32
    attn.yield %n : f32
  }
  return
}

// -----

/// bf16: raw bits through an i16 view, widened by a shift; the output is
/// rounded to nearest even in integer arithmetic (no bf16 truncf libcall).
// CHECK-LABEL: func.func @bf16_io
// CHECK: %[[BITS:.+]] = builtin.unrealized_conversion_cast %{{.+}} : memref<1x2x8x16xbf16> to memref<1x2x8x16xi16>
// CHECK: vector.transfer_read %[[BITS]]{{.*}} vector<8xi16>
// CHECK: arith.shli
// CHECK: arith.bitcast %{{.+}} : vector<8xi32> to vector<8xf32>
// CHECK-NOT: arith.truncf
// CHECK: arith.trunci %{{.+}} : i32 to i16
func.func @bf16_io(%q: memref<1x2x8x16xbf16>) {
  attn.attention q(%q : memref<1x2x8x16xbf16>) k(%q : memref<1x2x8x16xbf16>) v(%q : memref<1x2x8x16xbf16>)
      out(%q : memref<1x2x8x16xbf16>) kernel = softmax align = end scale = 0.25
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  return
}

// -----

/// Sigmoid attention: weights 1 / (1 + exp(-s)) and no max rescaling.
// CHECK-LABEL: func.func @sigmoid
// CHECK-NOT: arith.maximumf %{{.+}}, %{{.+}} : f32
// CHECK: arith.negf
// CHECK: math.exp
// CHECK: arith.divf
func.func @sigmoid(%q: memref<1x1x4x8xf32>) {
  attn.attention q(%q : memref<1x1x4x8xf32>) k(%q : memref<1x1x4x8xf32>) v(%q : memref<1x1x4x8xf32>)
      out(%q : memref<1x1x4x8xf32>) kernel = sigmoid align = start scale = 0.5
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  return
}


// -----

/// With skip-tiles=false the mask runs on every tile: no tile bound, one
/// score loop with the mask.
// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu="vector-width=8 skip-tiles=false" | FileCheck %s --check-prefix=NOSKIP
// NOSKIP-LABEL: func.func @causal_noskip
// Whether the item has more than kRows rows, once per item: such items
// read a transposed K (the head's cache for the tiles it holds, else the
// tile's), smaller ones read key rows directly.
// NOSKIP: %[[MANY:.+]] = arith.cmpi sgt, %{{.+}}, %c4
// NOSKIP: scf.for %[[TILE:.+]] = %{{.+}} to %{{.+}} step %c16
// NOSKIP: %[[NOTKEPT:.+]] = arith.xori %[[INCACHE:.+]], %true
// NOSKIP-NEXT: %[[PERTILE:.+]] = arith.andi %[[MANY]], %[[NOTKEPT]]
// The one branch before the K tile's transpose is that one.
// NOSKIP-NOT: scf.if
// NOSKIP: scf.if %[[PERTILE]] {
// NOSKIP-NOT: scf.if
// The rows of a group run in a loop: one copy of the masked scores.
// NOSKIP: vector.extract
// NOSKIP: scf.for %{{.+}} = %c0{{[_0-9]*}} to %c4{{[_0-9]*}} step %c1{{[_0-9]*}} {
// NOSKIP: arith.cmpi sle
// NOSKIP-NOT: arith.cmpi sle
// NOSKIP: return
func.func @causal_noskip(%q: memref<1x1x8x8xf32>) {
  attn.attention q(%q : memref<1x1x8x8xf32>) k(%q : memref<1x1x8x8xf32>) v(%q : memref<1x1x8x8xf32>)
      out(%q : memref<1x1x8x8xf32>) kernel = softmax align = start scale = 0.5
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  mask {
  ^bb0(%b: index, %h: index, %i: index, %j: index):
    %c = arith.cmpi sle, %j, %i : index
    attn.yield %c : i1
  }
  return
}

// -----

/// A work item of at most kRows query rows (decode: the GQA heads of one
/// query) skips the K tile's transpose: each key row is read once and dotted
/// with the q rows, lanes summed by a reassociating reduction. Larger items
/// take the transposed tile.
// RUN: attnc-opt %s --split-input-file --convert-attn-to-cpu="vector-width=8 skip-tiles=false" | FileCheck %s --check-prefix=FEW
// FEW-LABEL: func.func @few_rows
/// Rows of 8 features are padded to 16 for the value loops: masked reads.
// FEW: vector.transfer_read %{{.+}}[%{{.+}}], %{{.+}} : memref<1x1x8x8xf32>, vector<8xf32>
// FEW: %[[MANY:.+]] = arith.cmpi sgt, %{{.+}}, %c4{{.*}} : index
/// (The cache's reset for a new head comes first.)
// FEW: arith.andi %[[MANY]], %{{.+}} : i1
// FEW: %[[PERTILE:.+]] = arith.andi %[[MANY]], %{{.+}} : i1
// FEW-NEXT: scf.if %[[PERTILE]] {
// FEW: vector.extract
// FEW: memref.store %{{.+}}, %{{.+}}[%{{.+}}] : memref<?xf32>
// Whether the row group has more than half of kRows (2 here) rows, once per
// group: up to half a group computes half the dot products.
// FEW: %[[HALF:.+]] = arith.cmpi sgt, %{{.+}}, %c2{{.*}} : index
// FEW-NEXT: scf.if %[[MANY]] {
// FEW: vector.fma
// FEW: } else {
// FEW-NOT: } else {
// FEW: scf.if %[[HALF]] {
// FEW: %[[DOTS:.+]]:4 = scf.for
// FEW: vector.fma
/// Four rows' lane sums by one tree: halves of rows 0 and 1 side by side,
/// then quarters of all four, then pairs within each quarter; row r's sum
/// is lane 2r (8 lanes).
// FEW-NOT: vector.reduction
// FEW: vector.shuffle %[[DOTS]]#0, %[[DOTS]]#1 [0, 1, 2, 3, 8, 9, 10, 11] : vector<8xf32>, vector<8xf32>
// FEW: vector.shuffle %[[DOTS]]#0, %[[DOTS]]#1 [4, 5, 6, 7, 12, 13, 14, 15]
// FEW: vector.shuffle %{{.+}}, %{{.+}} [0, 1, 4, 5, 8, 9, 12, 13]
// FEW: vector.shuffle %{{.+}}, %{{.+}} [1, 0, 3, 2, 5, 4, 7, 6]
// FEW: vector.extract %{{.+}}[0] : f32 from vector<8xf32>
// FEW: vector.extract %{{.+}}[6] : f32 from vector<8xf32>
// FEW: } else {
// FEW: %[[DOTS2:.+]]:2 = scf.for
// FEW: vector.reduction <add>, %[[DOTS2]]#1 fastmath<reassoc> : vector<8xf32> into f32
/// So does the product with the values: eight accumulators (two vectors of
/// Dv for each of 4 rows), or four for half a group.
// FEW: scf.if %[[HALF]] {
// FEW: %[[PV:.+]]:8 = scf.for
// FEW: } else {
// FEW: %[[PV2:.+]]:4 = scf.for
func.func @few_rows(%q: memref<1x1x8x8xf32>) {
  attn.attention q(%q : memref<1x1x8x8xf32>) k(%q : memref<1x1x8x8xf32>) v(%q : memref<1x1x8x8xf32>)
      out(%q : memref<1x1x8x8xf32>) kernel = softmax align = start scale = 0.5
      schedule = #attn.schedule<block_q = 16, block_k = 16>
  return
}

// -----

/// A gate's part that depends on neither the output nor the feature (a row's
/// gate value and its sigmoid) is computed once per row, before the loop over
/// features; only the product with the output stays inside it.

// CHECK-LABEL: func.func @row_gate
// CHECK: %[[G:.+]] = memref.load %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}] : memref<?x4x?xf32>
// CHECK: %[[E:.+]] = math.exp %{{.+}} : f32
// CHECK: %[[SIG:.+]] = arith.divf %{{.+}}, %{{.+}} : f32
// CHECK: scf.for
// CHECK-NOT: math.exp
// CHECK: arith.mulf %{{.+}}, %[[SIG]] : f32
// CHECK: memref.store %{{.+}}, %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}] : memref<?x4x?x64xf32>
func.func @row_gate(%q: memref<?x4x?x64xf32>, %g: memref<?x4x?xf32>, %o: memref<?x4x?x64xf32>) {
  attn.attention q(%q : memref<?x4x?x64xf32>) k(%q : memref<?x4x?x64xf32>)
      v(%q : memref<?x4x?x64xf32>) out(%o : memref<?x4x?x64xf32>)
      extras(%g : memref<?x4x?xf32>)
      kernel = softmax align = start scale = 0.125
      schedule = #attn.schedule<block_q = 16, block_k = 32>
  gate {
  ^bb0(%x: f32, %b: index, %h: index, %i: index, %d: index):
    %gv = attn.read %g[%b, %h, %i] : memref<?x4x?xf32>
    %one = arith.constant 1.0 : f32
    %n = arith.negf %gv : f32
    %e = math.exp %n : f32
    %den = arith.addf %one, %e : f32
    %sig = arith.divf %one, %den : f32
    %r = arith.mulf %x, %sig : f32
    attn.yield %r : f32
  }
  return
}

// -----

/// Paged kernels take the split-KV phase, the key ranges per item and the
/// partials before the work range. Phase 2 merges an item's ranges: the
/// largest max, each range rescaled by exp(m - max) (0 when it saw
/// nothing), then the usual epilogue. Phases 0 and 1 share one item body:
/// work index w is range w % S of item w / S (S = 1 in phase 0); the range
/// is an equal share of whole key tiles; phase 1 stores the accumulator, m
/// and l to slot w, phase 0 runs the epilogue.
// CHECK-LABEL: func.func @paged_split
// CHECK-SAME: %[[LENS:[a-z0-9]+]]: memref<?xi32>, %[[O:[a-z0-9]+]]: memref<?x8x1x64xf32>,
// CHECK-SAME: %[[PHASE:[a-z0-9]+]]: index, %[[SPLITS:[a-z0-9]+]]: index, %[[PART:[a-z0-9]+]]: memref<?xf32>,
// CHECK-SAME: %[[BEGIN:[a-z0-9]+]]: index, %[[END:[a-z0-9]+]]: index)
// CHECK: %[[COMBINE:.+]] = arith.cmpi eq, %[[PHASE]], %c2{{.*}} : index
// CHECK: scf.if %[[COMBINE]] {
// CHECK: scf.for %{{.+}} = %[[BEGIN]] to %[[END]]
// CHECK: scf.for %{{.+}} = %{{.+}} to %[[SPLITS]] step %{{.+}} iter_args
// CHECK: memref.load %[[PART]]
// CHECK: arith.maximumf
// CHECK: scf.for %{{.+}} = %{{.+}} to %[[SPLITS]] step %{{.+}} iter_args
// CHECK: %[[EMPTY:.+]] = arith.cmpf oeq, %{{.+}}, %cst
// CHECK: %[[E:.+]] = math.exp
// CHECK: arith.select %[[EMPTY]], %{{.+}}, %[[E]] : f32
// CHECK: memref.store %{{.+}}, %[[O]]
// CHECK: } else {
// CHECK: %[[PARTIAL:.+]] = arith.cmpi eq, %[[PHASE]], %c1{{.*}} : index
// CHECK: %[[S:.+]] = arith.select %[[PARTIAL]], %[[SPLITS]], %c1{{.*}} : index
// CHECK: scf.for %[[W:.+]] = %[[BEGIN]] to %[[END]]
// CHECK: arith.divsi %[[W]], %[[S]]
// CHECK: %[[RANGE:.+]] = arith.remsi %[[W]], %[[S]]
// CHECK: memref.load %[[LENS]]
// CHECK: %[[TILES:.+]] = arith.ceildivsi %{{.+}}, %c32
// CHECK: %[[PER:.+]] = arith.ceildivsi %[[TILES]], %[[S]]
// CHECK: %[[FIRST:.+]] = arith.muli %[[RANGE]], %[[PER]]
// CHECK: scf.for %[[KT:.+]] = %[[KB:.+]] to %[[KE:.+]] step %c32
/// The next tile's pages are prefetched: per page, its table entry, then
/// each K and V row of the KV head (one 64-byte line of 16 floats each here).
// CHECK: %[[NEXT:.+]] = arith.addi %[[KT]], %c32
// CHECK: scf.if
// CHECK: %[[FIRSTPAGE:.+]] = arith.divui %[[NEXT]], %{{.+}}
// CHECK: scf.for %[[P:.+]] = %[[FIRSTPAGE]] to
// CHECK: memref.load %{{.+}}[%{{.+}}, %[[P]]] : memref<?x?xi32>
// CHECK: memref.prefetch %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}, %c0{{.*}}], read, locality<3>, data
// CHECK: memref.prefetch %{{.+}}[%{{.+}}, %{{.+}}, %{{.+}}, %c48{{.*}}], read, locality<3>, data
// CHECK: scf.if %[[PARTIAL]] {
// CHECK: arith.muli %[[W]], %{{.+}} : index
// CHECK: memref.store %{{.+}}, %[[PART]]
// CHECK: } else {
// CHECK: memref.store %{{.+}}, %[[O]]
func.func @paged_split(%q: memref<?x8x1x64xf32>, %k: memref<?x2x16x64xf32, strided<[?, 1024, 64, 1]>>,
                       %t: memref<?x?xi32>, %l: memref<?xi32>, %o: memref<?x8x1x64xf32>) {
  attn.attention q(%q : memref<?x8x1x64xf32>) k(%k : memref<?x2x16x64xf32, strided<[?, 1024, 64, 1]>>) v(%k : memref<?x2x16x64xf32, strided<[?, 1024, 64, 1]>>) out(%o : memref<?x8x1x64xf32>) paged(%t, %l : memref<?x?xi32>, memref<?xi32>) kernel = softmax align = end scale = 0.125 schedule = #attn.schedule<block_q = 64, block_k = 32>
  return
}
