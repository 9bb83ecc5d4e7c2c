//===- AttnDialect.td - The attn dialect and its base classes -*- tablegen -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The attn dialect describes one attention program per op. Every file of the
// dialect includes this one for the base classes.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_DIALECTS_ATTN_ATTNDIALECT_TD
#define ATTNC_DIALECTS_ATTN_ATTNDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::attnc::attn";
  let summary = "Attention programs: masks, score modifiers, gates and kernels";
  let description = [{
    The `attn` dialect carries one attention variant per `attn.attention` op.
    The variant is written as small regions over `arith` and `math` ops:

    - `score(s, b, h, i, j) -> f32` rewrites the scaled dot product `s`;
    - `mask(b, h, i, j) -> i1` says which key `j` query `i` may see;
    - `gate(x, b, h, i, d) -> f32` rewrites each output element after the
      normalisation.

    `b` is the batch index, `h` the query head, `i` the query position, `j`
    the key position and `d` the feature index of the value/output. Regions
    are pure: they may read extra input tensors through `attn.read` and
    problem sizes through `attn.size`, and nothing else. Passes analyse the
    regions (which tiles are empty, which need no mask) and lower the op to
    one fused kernel per target.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect"
  ];
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 0;
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

class Attn_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Attn_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

#endif // ATTNC_DIALECTS_ATTN_ATTNDIALECT_TD
