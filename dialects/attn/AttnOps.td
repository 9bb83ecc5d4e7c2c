//===- AttnOps.td - attn operations -------------------------*- tablegen -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// attn.attention and the ops that may appear in its regions.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_DIALECTS_ATTN_ATTNOPS_TD
#define ATTNC_DIALECTS_ATTN_ATTNOPS_TD

include "dialects/attn/AttnDialect.td"
include "dialects/attn/AttnAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"   // Pure, MemRead, MemWrite
include "mlir/Interfaces/ControlFlowInterfaces.td"  // ReturnLike
include "mlir/IR/OpAsmInterface.td"                 // block argument names

def Attn_QKVType : MemRefRankOf<[F32, BF16, F16, I8], [4]>;
def Attn_OutType : MemRefRankOf<[F32, BF16, F16], [4]>;
def Attn_LseType : MemRefRankOf<[F32], [3]>;

def Attn_AttentionOp : Attn_Op<"attention", [AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<OpAsmOpInterface, ["getAsmBlockArgumentNames"]>]> {
  let summary = "One fused attention program";
  let description = [{
    Computes, for every batch `b`, query head `h`, query row `r` and value
    feature `d`:

    ```
    i         = r                     (align = start)
              = r + T - S             (align = end)
    s(j)      = score(scale * dot(q[b,h,r,:], k[b,h/G,j,:]), b, h, i, j)
    keep(j)   = mask(b, h, i, j)
    softmax:  p(j) = keep(j) ? exp(s(j) - m) / sum_keep exp(s - m) : 0
    sigmoid:  p(j) = keep(j) ? sigmoid(s(j)) : 0
    o[b,h,r,d] = gate(sum_j p(j) * v[b,h/G,j,d], b, h, i, d)
    lse[b,h,r] = m + log(sum_keep exp(s - m))          (softmax only)
    ```

    with `q: [B, Hq, S, D]`, `k: [B, Hkv, T, D]`, `v: [B, Hkv, T, Dv]`,
    `out: [B, Hq, S, Dv]`, `lse: [B, Hq, S]` and `G = Hq / Hkv` query heads
    per KV head (GQA; MQA when `Hkv = 1`). A row whose keys are all masked
    gets `o = gate(0)` and `lse = -inf`, never NaN. Scores and accumulation
    are f32 whatever the input type.

    The variant lives in three optional single-block regions, terminated by
    `attn.yield`:

    | region  | block arguments                      | yields |
    | ------- | ------------------------------------ | ------ |
    | `score` | `s: f32, b, h, i, j: index`          | `f32`  |
    | `mask`  | `b, h, i, j: index`                  | `i1`   |
    | `gate`  | `x: f32, b, h, i, d: index`          | `f32`  |

    An absent region means identity score, no mask, identity gate. Regions
    may hold `arith`, `math` and `attn` ops only, all pure; a value from
    outside a region must be a constant or one of the op's `extras` (runtime
    parameters and extra input tensors, such as ALiBi slopes or document
    ids). Constants may live outside because folding hoists them there.

    **Paged keys and values.** With `paged(%table, %lens)` the keys and
    values live in pages: `k: [P, Hkv, PS, D]` and `v: [P, Hkv, PS, Dv]`
    hold `P` pages of `PS` tokens, `table: [B, M]` (i32) lists each
    sequence's pages and `lens: [B]` (i32) its length. Key `j` of batch `b`
    is `k[table[b, j / PS], h / G, j % PS, :]`, and only keys
    `j < lens[b] <= M * PS` exist; in the formulas above `T` is `lens[b]`
    per batch (so `align = end` puts the queries at the end of each
    sequence, as decode needs). The page dim may have any stride, so the
    kernel reads a pool's pages where they are.

    With `kv_quant = q8` or `q4` the paged keys and values are `i8` codes
    (`q4`: two per byte, so the last dim is `D / 2`) and
    `scales(%ks, %vs)` gives f32 scales `[P, Hkv, PS, D / g]`, one per
    group of `g` features; a feature is its code times its group's scale.

    **Example**

    ```mlir
    attn.attention q(%q : memref<1x4x128x64xf32>) k(%k : memref<1x4x128x64xf32>)
        v(%v : memref<1x4x128x64xf32>) out(%o : memref<1x4x128x64xf32>)
        kernel = softmax align = start scale = 1.250000e-01
        mask {
        ^bb0(%b: index, %h: index, %i: index, %j: index):
          %c = arith.cmpi ule, %j, %i : index
          attn.yield %c : i1
        }
    ```

    **Verifier errors**

    - q, k, v and out disagree on batch, heads, lengths or feature dims;
    - the query heads are not a multiple of the KV heads;
    - q, k and v have different element types;
    - lse is not `[B, Hq, S]`, or is given with `kernel = sigmoid`;
    - the scale is not finite;
    - a region has the wrong block arguments, a wrong terminator or yields
      the wrong type;
    - a region holds an op outside `arith`, `math` and `attn`, or an op with
      side effects (`attn.read` and `attn.listed` excepted), or uses a value from above that
      is neither a constant nor an extra;
    - an extra is neither a memref nor an integer, index or float scalar;
    - paged: the table is not `[B, M]` or the lengths not `[B]`; k and v
      disagree on pages, heads or page size; a page's inner dims are not
      contiguous; `kv_quant` without paging or scales, scales without
      `kv_quant`, codes that are not i8, a scale tensor whose groups do not
      divide the static head dim.

    **Lowering**

    `convert-attn-to-cpu` emits a tiled online-softmax loop nest; the
    regions are inlined into the innermost loop.
  }];

  let arguments = (ins
    Arg<Attn_QKVType, "queries", [MemRead]>:$query,
    Arg<Attn_QKVType, "keys", [MemRead]>:$key,
    Arg<Attn_QKVType, "values", [MemRead]>:$value,
    Arg<Attn_OutType, "output", [MemWrite]>:$output,
    Arg<Optional<Attn_LseType>, "log-sum-exp output", [MemWrite]>:$lse,
    Arg<Variadic<AnyType>, "parameters and extra tensors", [MemRead]>:$extras,
    Arg<Optional<MemRefRankOf<[I32], [2]>>, "block table [B, M]", [MemRead]>:$pageTable,
    Arg<Optional<MemRefRankOf<[I32], [1]>>, "sequence lengths [B]", [MemRead]>:$seqLens,
    Arg<Optional<MemRefRankOf<[F32], [4]>>, "key scales", [MemRead]>:$keyScale,
    Arg<Optional<MemRefRankOf<[F32], [4]>>, "value scales", [MemRead]>:$valueScale,
    Attn_KernelKind:$kernel,
    Attn_QueryAlign:$align,
    F64Attr:$scale,
    OptionalAttr<Attn_ScheduleAttr>:$schedule,
    OptionalAttr<Attn_KVQuant>:$kvQuant
  );
  let regions = (region MaxSizedRegion<1>:$score, MaxSizedRegion<1>:$mask,
                        MaxSizedRegion<1>:$gate);

  let assemblyFormat = [{
    `q` `(` $query `:` type($query) `)`
    `k` `(` $key `:` type($key) `)`
    `v` `(` $value `:` type($value) `)`
    `out` `(` $output `:` type($output) `)`
    (`lse` `(` $lse^ `:` type($lse) `)`)?
    (`extras` `(` $extras^ `:` type($extras) `)`)?
    (`paged` `(` $pageTable^ `,` $seqLens `:` type($pageTable) `,` type($seqLens) `)`)?
    (`scales` `(` $keyScale^ `,` $valueScale `:` type($keyScale) `,` type($valueScale) `)`)?
    (`kv_quant` `=` $kvQuant^)?
    `kernel` `=` $kernel `align` `=` $align `scale` `=` $scale
    (`schedule` `=` qualified($schedule)^)?
    attr-dict-with-keyword
    (`score` $score^)?
    (`mask` $mask^)?
    (`gate` $gate^)?
  }];

  let hasVerifier = 1;
  let hasRegionVerifier = 1;
  let hasCanonicalizer = 1;

  let extraClassDeclaration = [{
    /// Query heads per KV head; 0 when either is dynamic.
    int64_t getStaticGroupSize();
    /// True when `v` is one of the extras (a parameter or extra tensor).
    bool isExtra(::mlir::Value v);
    /// Keys and values are read through a block table.
    bool isPaged() { return static_cast<bool>(getPageTable()); }
    /// The head dim of the keys as the scores see it (k's last dim, twice
    /// that for q4 codes).
    int64_t getStaticHeadDim();
  }];
}

def Attn_YieldOp : Attn_Op<"yield", [Pure, Terminator, ReturnLike,
                                     HasParent<"AttentionOp">]> {
  let summary = "Ends a region of attn.attention with its value";
  let description = [{
    Yields the region's single result: the new score (`f32`) in `score`,
    the keep bit (`i1`) in `mask`, the output element (`f32`) in `gate`.

    ```mlir
    attn.yield %s : f32
    ```
  }];
  let arguments = (ins AnyType:$value);
  let assemblyFormat = "$value attr-dict `:` type($value)";
}

def Attn_ReadOp : Attn_Op<"read", [HasParent<"AttentionOp">,
    TypesMatchWith<"result is the element type of the tensor", "source",
                   "result",
                   "::llvm::cast<::mlir::MemRefType>($_self).getElementType()">]> {
  let summary = "Reads one element of an extra input tensor inside a region";
  let description = [{
    `attn.read %t[%i0, ..., %iN]` is `%t[%i0, ..., %iN]`, with one index per
    dimension of `%t`. `%t` must be one of the enclosing op's extras. An
    index out of range is undefined behaviour in the kernels; the reference
    and the `attnc --run` checker report it as an error.

    ```mlir
    %slope = attn.read %slopes[%h] : memref<32xf32>
    ```

    **Verifier errors**

    - the number of indices differs from the rank of the tensor.
  }];
  let arguments = (ins Arg<AnyMemRef, "extra tensor", [MemRead]>:$source,
                       Variadic<Index>:$indices);
  let results = (outs AnyType:$result);
  let assemblyFormat = [{
    $source `[` $indices `]` attr-dict `:` type($source)
  }];
  let hasVerifier = 1;
}

def Attn_ListedOp : Attn_Op<"listed", [HasParent<"AttentionOp">]> {
  let summary = "Whether a value is among the first entries of a list row";
  let description = [{
    `attn.listed %x in %list[%p0, ..., %pK] count %n` is true when `%x`
    equals one of `%list[%p0, ..., %pK, t]` for `0 <= t < min(%n, L)`,
    where `L` is the last dimension of `%list` (so `%n` past the row's end
    reads the whole row and a negative `%n` reads none). `%list` is an
    integer extra tensor of rank `K + 2`. This is how a block index list
    (FlexAttention's `kv_indices` with `kv_num_blocks`) becomes a mask:

    ```mlir
    %keep = attn.listed %kb in %kv_indices[%b, %h, %qb] count %n
        : memref<?x16x?x?xi32>
    ```

    The tile bounds scan the row once per tile: a tile inside one listed
    block is FULL, a tile of an unlisted block EMPTY. A prefix index out of
    range is undefined behaviour in the kernels; the reference and the
    `attnc --run` checker report it as an error.

    **Verifier errors**

    - the list does not have integer elements;
    - the number of prefix indices is not the rank of the list minus one.
  }];
  let arguments = (ins Index:$value,
                       Arg<AnyMemRef, "list tensor", [MemRead]>:$list,
                       Variadic<Index>:$prefix,
                       Index:$count);
  let results = (outs I1:$result);
  let assemblyFormat = [{
    $value `in` $list `[` $prefix `]` `count` $count attr-dict `:` type($list)
  }];
  let hasVerifier = 1;
}

def Attn_TopKOp : Attn_Op<"topk", [Pure, HasParent<"AttentionOp">]> {
  let summary = "Whether a key block is among a query block's top-k (MoBA, SeerAttention)";
  let description = [{
    In a mask region, `attn.topk %b, %h, %i, %j` is true when key block
    `j / block_k` is one of the `top_k` key blocks selected for query block
    `i / block_q` of batch `%b` and query head `%h` of the enclosing
    attn.attention. The selection pools each block by its mean: `pq` over
    the block's query rows (positions, so `align = end` counts from the
    end) and `pk` over the block's keys of KV head `h / G`; a block's score
    is `dot(pq, pk)`. The candidates are every key block, or with `causal`
    those that start no later than the query block's last position; the
    `top_k` highest scores win (ties: the lower block), all candidates when
    there are no more than `top_k`.

    ```mlir
    %sel = attn.topk %b, %h, %i, %j {top_k = 8, block_q = 128, block_k = 64, causal}
    ```

    Kernels do not evaluate it per element: `attn-materialize-topk` turns
    it into a read of a selection table the runtime fills before each
    launch, so the tile bounds skip unselected blocks exactly.

    **Verifier errors**

    - `top_k`, `block_q` or `block_k` is not positive;
    - the op is outside a mask region.
  }];
  let arguments = (ins Index:$b, Index:$h, Index:$i, Index:$j,
                       I64Attr:$top_k, I64Attr:$block_q, I64Attr:$block_k,
                       UnitAttr:$causal);
  let results = (outs I1:$result);
  let assemblyFormat = "$b `,` $h `,` $i `,` $j attr-dict";
  let hasVerifier = 1;
}

def Attn_SizeOp : Attn_Op<"size", [Pure, HasParent<"AttentionOp">]> {
  let summary = "A problem size (batch, heads, lengths, dims) inside a region";
  let description = [{
    The size of one problem dimension of the enclosing `attn.attention`, as
    an `index`: `batch`, `q_heads`, `kv_heads`, `q_len` (S), `kv_len` (T),
    `head_dim` (D) or `value_dim` (Dv). Masks use it for positions that
    count from the end.

    ```mlir
    %t = attn.size kv_len
    ```
  }];
  let arguments = (ins Attn_SizeKind:$kind);
  let results = (outs Index:$result);
  let assemblyFormat = "$kind attr-dict";
}

#endif // ATTNC_DIALECTS_ATTN_ATTNOPS_TD
