//===- AttnAttrs.td - attn enums and attributes -------------*- tablegen -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The kernel kind, the query alignment, problem-size names and the schedule.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_DIALECTS_ATTN_ATTNATTRS_TD
#define ATTNC_DIALECTS_ATTN_ATTNATTRS_TD

include "dialects/attn/AttnDialect.td"
include "mlir/IR/EnumAttr.td"

def Attn_KernelKind : I32EnumAttr<"KernelKind",
    "how scores become weights", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>
    ]> {
  let cppNamespace = "::attnc::attn";
  let description = [{
    `softmax`: weights are `exp(s - max) / sum`, computed online.
    `sigmoid`: weights are `sigmoid(s)` with no normalisation (sigmoid
    attention); masked pairs weigh 0.
  }];
}

def Attn_QueryAlign : I32EnumAttr<"QueryAlign",
    "where query positions start against the keys", [
      I32EnumAttrCase<"start", 0>,
      I32EnumAttrCase<"end", 1>
    ]> {
  let cppNamespace = "::attnc::attn";
  let description = [{
    `start`: query row `r` has position `i = r`.
    `end`: queries are the last `S` of `T` positions, `i = r + T - S`
    (chunked prefill and decode against a longer KV).
  }];
}

def Attn_KVQuant : I32EnumAttr<"KVQuant",
    "how paged keys and values are quantized", [
      I32EnumAttrCase<"q8", 0>,
      I32EnumAttrCase<"q4", 1>
    ]> {
  let cppNamespace = "::attnc::attn";
  let description = [{
    `q8`: one signed byte per feature, value `byte * scale`.
    `q4`: two features per byte, the even feature in the low nibble, value
    `(nibble - 8) * scale`. Scales are f32, one per group of features.
  }];
}

def Attn_SizeKind : I32EnumAttr<"SizeKind",
    "a problem size readable inside a region", [
      I32EnumAttrCase<"batch", 0>,
      I32EnumAttrCase<"q_heads", 1>,
      I32EnumAttrCase<"kv_heads", 2>,
      I32EnumAttrCase<"q_len", 3>,
      I32EnumAttrCase<"kv_len", 4>,
      I32EnumAttrCase<"head_dim", 5>,
      I32EnumAttrCase<"value_dim", 6>
    ]> {
  let cppNamespace = "::attnc::attn";
}

def Attn_ScheduleAttr : Attn_Attr<"Schedule", "schedule"> {
  let summary = "Tile sizes of the fused kernel";
  let description = [{
    `block_q` query rows and `block_k` keys per tile. Both are positive;
    the sparsity analysis classifies tiles of exactly this shape.

    ```mlir
    #attn.schedule<block_q = 64, block_k = 64>
    ```
  }];
  let parameters = (ins "int64_t":$blockQ, "int64_t":$blockK);
  let assemblyFormat = "`<` `block_q` `=` $blockQ `,` `block_k` `=` $blockK `>`";
  let genVerifyDecl = 1;
}

#endif // ATTNC_DIALECTS_ATTN_ATTNATTRS_TD
