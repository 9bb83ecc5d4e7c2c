//===- Passes.td - attnc passes -----------------------------*- tablegen -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_PASSES_PASSES_TD
#define ATTNC_PASSES_PASSES_TD

include "mlir/Pass/PassBase.td"

def AttnSelectSchedulePass : Pass<"attn-select-schedule", "::mlir::func::FuncOp"> {
  let summary = "Choose tile sizes for every attn.attention without a schedule";
  let description = [{
    Sets `schedule = #attn.schedule<block_q = BQ, block_k = BK>` on each
    `attn.attention` that has none. A schedule already present is kept: a
    user or an earlier pass chose it.

    The CPU target keeps a query tile and a key tile of K and V in L1/L2:
    `block_q = 64` and `block_k = 64` for head dims up to 128, 32 x 32
    above. The CUDA target uses the Hopper kernel's tiles: 128 x 128 for
    head dims up to 64, 128 x 64 up to 128, 64 x 64 above. A dynamic head
    dim takes the choice for 128. Query tiles never exceed a static query
    length rounded up to 16, so decode does not pay for 64 empty rows.
    With `amx` (the CPU lowering will use AMX tiles), bf16 ops whose head
    dim is a multiple of 32 take 128-key tiles: the per-row softmax work
    and the accumulator's tile loads and stores are paid per key tile.

    Before: `attn.attention ... kernel = softmax align = start scale = ...`
    After:  `attn.attention ... schedule = #attn.schedule<block_q = 64, block_k = 64>`
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "Target the tiles are chosen for: cpu or cuda">,
    Option<"amx", "amx", "bool", /*default=*/"false",
           "cpu: AMX tiles follow (convert-attn-to-cpu amx=true)">
  ];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

def ConvertAttnToCPUPass : Pass<"convert-attn-to-cpu", "::mlir::func::FuncOp"> {
  let summary = "Lower attn.attention to a fused online-softmax loop nest";
  let description = [{
    Replaces the function's `attn.attention` with loops on `scf`, `vector`,
    `memref`, `arith` and `math`. Work items are (batch, query head, query
    tile) flattened with the query tile fastest; the function gains two
    trailing `index` arguments `work_begin` and `work_end` and computes items
    in `[work_begin, work_end)`, so a thread pool splits the range. The op
    must carry a schedule (`attn-select-schedule`). Paged ops also take, before
    the range, split-KV's `phase` (0 whole items, 1 one key range per work
    index into a slot of the f32 `partials`, 2 merge each item's ranges),
    the number of key ranges per item, and `partials`.

    Per query row: `q` scaled once into a buffer; per key tile of `block_k`
    keys, scores are dot products vectorized over the head dim with the
    score and mask regions inlined (a masked score is -inf), then the
    accumulator is rescaled once and `p * v` added, vectorized over the
    value dim. Rows whose keys are all masked get `gate(0)` and lse `-inf`.
    Head and value dims need not be multiples of the vector width: the tail
    is read with a mask and padded with zeros.
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", /*default=*/"16",
           "f32 lanes per vector (16 for AVX-512, 8 for AVX2)">,
    Option<"skipTiles", "skip-tiles", "bool", /*default=*/"true",
           "Bound the mask per key tile: skip EMPTY tiles, unmask FULL ones "
           "(off: evaluate the mask everywhere, for comparison)">,
    Option<"amx", "amx", "bool", /*default=*/"false",
           "bf16 q, k and v with head and value dims that are multiples of "
           "32 (not paged): both matrix products of items with more than "
           "one row group on AMX tiles (tdpbf16ps, f32 accumulation)">,
    Option<"amxDot", "amx-dot", "bool", /*default=*/"false",
           "with amx: the same layout and blocking, the products as AVX512-BF16 "
           "dot products (vdpbf16ps) instead of tile ops, for CPUs without AMX">,
    Option<"int8Dot", "int8-dot", "std::string", /*default=*/"\"off\"",
           "decode items over quantized keys with a bf16 or f16 q: scores as "
           "AVX512-VNNI int8 dot products (vpdpbusd) of the codes with q "
           "quantized in two int8 terms per 8 (q4) or 4 (q8) features; off, "
           "q4 (q4 keys only) or all (q4 and q8)">,
    Option<"bf16Dot", "bf16-dot", "bool", /*default=*/"false",
           "decode items with a bf16 q and bf16 keys: scores as AVX512-BF16 "
           "dot products (vdpbf16ps) of the rows as stored">,
    Option<"fastExp", "fast-exp", "bool", /*default=*/"false",
           "with vector-width=16 (AVX-512 with DQ): softmax weights, and the exponential "
           "in sigmoid weights, as 2^t through vreduceps, a degree-5 polynomial "
           "(7.5e-8 relative) and vscalefps, about 9 instructions a vector "
           "instead of math.exp's 25">,
    Option<"keyCacheFloats", "key-cache-floats", "int64_t", /*default=*/"2097152",
           "floats of a call's cache of one head's transposed K tiles; a head "
           "past it keeps its first tiles there and transposes the rest per "
           "item (tests make it small to reach that path)">
  ];
  let dependentDialects = [
    "::mlir::amx::AMXDialect", "::mlir::LLVM::LLVMDialect",
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect", "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def AttnApproximateMathPass : Pass<"attn-approximate-math", "::mlir::func::FuncOp"> {
  let summary = "Replace f32 exp, log and tanh by inline polynomials";
  let description = [{
    Rewrites `math.exp`, `math.log` and `math.tanh` on f32 scalars and
    vectors into MLIR's polynomial approximations (range reduction plus a
    minimax polynomial, a few ulp of error), so that vector code stays
    vector code instead of one libm call per lane.

    Before: `%p = math.exp %x : vector<8xf32>`
    After:  arith/math.fma ops on `vector<8xf32>`, no `math.exp`.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect"
  ];
}

def AttnInferBlockSparsityPass : Pass<"attn-infer-block-sparsity", "::mlir::func::FuncOp"> {
  let summary = "Classify every tile as EMPTY, FULL or PARTIAL at compile time";
  let description = [{
    For an `attn.attention` with a schedule, static query and key lengths and
    a mask that depends only on `i`, `j`, constants and static sizes, bounds
    the mask over each (query tile, key tile) box in interval arithmetic (the
    same evaluation the CPU kernel runs per tile) and folds the bounds:

    - EMPTY (0): no pair of the tile is visible; the kernels never visit it;
    - FULL (2): no pair is masked; the kernels drop the mask there;
    - PARTIAL (1): anything else; the mask runs per element.

    The plan is recorded as `attn.block_plan = dense<...> : tensor<NQxNKxi8>`
    and `attn.key_tile_ranges` (per query tile, the first and one-past-last
    key tile that is not EMPTY: the closed-form key range of causal, window,
    chunked and neighborhood masks), and summarized in a remark. Masks that
    read runtime parameters or tensors, depend on the batch or head, or have
    symbolic lengths get a remark saying the kernel classifies tiles at run
    time instead. Every bound is sound: an op the analysis cannot follow
    makes the tile PARTIAL, never EMPTY or FULL.
  }];
  let options = [
    Option<"maxTiles", "max-tiles", "int64_t", /*default=*/"65536",
           "Largest plan to build at compile time">
  ];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::func::FuncDialect"];
}

def AttnMaterializeTopKPass : Pass<"attn-materialize-topk", "::mlir::func::FuncOp"> {
  let summary = "Turn attn.topk into a read of a selection table the runtime fills";
  let description = [{
    A top-k block selection depends on all of q and k, so kernels do not
    evaluate it per element. This pass gives the function one more argument,
    last: `%sel: memref<?x?x?x?xi32>`, `[B, Hq, QB, KB]` with one entry per
    (query block, key block), marked `attn.hidden = "topk"` with the
    selection's parameters in `attn.topk = [top_k, block_q, block_k,
    causal]`. Each `attn.topk %b, %h, %i, %j` becomes
    `attn.read %sel[%b, %h, %i / block_q, %j / block_k] != 0`, and `%sel`
    joins the extras. The runtime computes the table before every launch
    (the CPU in `runtime/src/TopKSelect.cpp`, the GPU in a kernel of the
    same module), and the tile bounds read it like any block mask: tiles of
    unselected blocks are skipped, selected ones run without mask code.

    A function may select with one set of parameters only; two different
    `topk` calls are an error.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect", "::mlir::memref::MemRefDialect"];
}

#endif // ATTNC_PASSES_PASSES_TD
