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

    Before: `attn.attention ... kernel = softmax align = start scale = ...`
    After:  `attn.attention ... schedule = #attn.schedule<block_q = 64, block_k = 64>`
  }];
  let options = [
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "Target the tiles are chosen for: cpu or cuda">
  ];
  let dependentDialects = ["::attnc::attn::AttnDialect"];
}

#endif // ATTNC_PASSES_PASSES_TD
