//===- PagedDecodeToCUDA.cpp - Emit the paged decode kernels --------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The paged form (block tables over a pool of pages, docs/kv-cache.md) gets
// its own kernels: a split-KV decode kernel, on the tensor cores on sm_90
// and up, and a combine kernel that merges the splits.
//
//===----------------------------------------------------------------------===//

#include "passes/CudaEmission.h"
#include "passes/KernelTemplates.h"

#include <algorithm>
#include <cstdlib>

using namespace mlir;
using namespace attnc;
using namespace attnc::attn;
using namespace attnc::cuda_emit;

/// Bytes of a row of `features` in a paged format (0 bf16/f16, 1 q8, 2 q4).
static int64_t kRowBytes(int64_t features, int format) {
  return format == 0 ? 2 * features : format == 1 ? features : features / 2;
}

/// The paged form: the split-KV decode kernel and its combine kernel. On
/// sm_90 and up with D = Dv of 64 or 128 (and quantized scale rows of a
/// multiple of four groups, or of one or two) the tensor-core kernel, else
/// the portable one.
LogicalResult cuda_emit::emitPagedDecode(func::FuncOp fn, AttentionOp op, int64_t d,
                                          int64_t dv, StringRef arch, CudaKernel &out) {
  out = CudaKernel();
  out.decode = true;
  out.entry = "attnc_" + fn.getSymName().str();
  out.threads = 128;
  std::optional<KVQuant> quant = op.getKvQuant();
  int format = !quant ? 0 : *quant == KVQuant::q8 ? 1 : 2;
  auto groups = [&](Value scales) -> int64_t {
    return scales ? cast<MemRefType>(scales.getType()).getDimSize(3) : 1;
  };
  int64_t groupsK = groups(op.getKeyScale()), groupsV = groups(op.getValueScale());
  const char *mmaKnob = std::getenv("ATTNC_DECODE_MMA"); // 0: the portable kernel, to compare
  // Scale rows of one or two groups are not whole 16-byte pieces, which the
  // tensor-core kernel's bulk copies need: it copies them lane by lane.
  bool scaleLanes = format != 0 && (groupsK % 4 != 0 || groupsV % 4 != 0);
  bool mma = smNumber(arch) >= 90 && d == dv && (d == 64 || d == 128) &&
             (format == 0 || ((groupsK % 4 == 0 || groupsK < 4) &&
                              (groupsV % 4 == 0 || groupsV < 4))) &&
             !(mmaKnob && std::string(mmaKnob) == "0");
  out.decodeScaleLanes = mma && scaleLanes;
  // q4 rows whose scale groups are whole 64-feature blocks: the tensor-core
  // kernel multiplies raw codes and applies K's scales to the f32 scores and
  // V's to the weights (fewer roundings), which needs each product's
  // features in one group. $ATTNC_DECODE_Q4_RAW=0 turns it off, to compare.
  const char *rawKnob = std::getenv("ATTNC_DECODE_Q4_RAW");
  bool rawCodes = mma && format == 2 && d % groupsK == 0 && d % groupsV == 0 &&
                  (d / groupsK) % 64 == 0 && (d / groupsV) % 64 == 0 &&
                  !(rawKnob && std::string(rawKnob) == "0");
  // q8 rows of one scale each, K's and V's: the same with the codes
  // themselves (exact in bf16); scaled codes rounded each K value to bf16,
  // which a random spec's bf16 row of 64 features took past the tolerance
  // on the H200 (0.023 against 0.02, a gate doubling it).
  // $ATTNC_DECODE_Q8_RAW=0 turns it off, to compare.
  const char *raw8Knob = std::getenv("ATTNC_DECODE_Q8_RAW");
  bool rawCodes8 = mma && format == 1 && groupsK == 1 && groupsV == 1 &&
                   !(raw8Knob && std::string(raw8Knob) == "0");
  int minBlocks;
  int64_t tk;
  if (mma) {
    // Stages of 4 to 8 KB (16 to 64 keys), two per warp. Three CTAs per SM
    // for bf16/f16 rows (12 warps with ~96 KB of copies in flight) and four
    // for quantized ones, whose dequantizing needs more warps to hide its
    // latency: on the H200 (docs/kv-cache.md) bf16 pages ran at 4.07 TB/s
    // against 3.91 with two CTAs of three stages, q4 at 1.96 against 1.45.
    int64_t keyBytes = 2 * kRowBytes(d, format) + (format ? 4 * (groupsK + groupsV) : 0);
    tk = 16;
    while (tk < 64 && 2 * tk * keyBytes <= 8192)
      tk *= 2;
    if (const char *env = std::getenv("ATTNC_DECODE_TK")) {
      int64_t v = std::atoi(env);
      if (v == 16 || v == 32 || v == 64)
        tk = v;
    }
    int64_t stages = 2;
    if (const char *env = std::getenv("ATTNC_DECODE_STAGES"))
      stages = std::clamp<int64_t>(std::atoi(env), 2, 8);
    minBlocks = format == 0 ? 3 : 4;
    if (const char *env = std::getenv("ATTNC_DECODE_MIN_BLOCKS"))
      minBlocks = std::clamp(std::atoi(env), 1, 16);
    int64_t ringOffset = (4 * stages * 16 + 127) / 128 * 128;
    out.decodeMma = true;
    out.decodeRows = 8;
    out.decodeStages = static_cast<int>(stages);
    // Splits hold whole tiles for each of the four warps.
    out.decodeTileKeys = static_cast<int>(4 * tk);
    out.decodeSmemFixed =
        ringOffset + std::max<int64_t>(4 * stages * tk * keyBytes, 4 * 8 * dv * 4 + 256);
  } else {
    // About 16 KB of raw rows per tile, so that a CTA keeps enough loads in
    // flight; quantized rows are smaller, so their tiles hold more keys.
    int64_t rowBytes = (d + dv) * (format == 0 ? 2 : 1) / (format == 2 ? 2 : 1);
    tk = rowBytes >= 512 ? 32 : rowBytes >= 256 ? 64 : 128; // divides the 128 threads
    // Tuning knobs, recorded in the source (so in the cache key):
    // $ATTNC_DECODE_TK (32, 64 or 128) and $ATTNC_DECODE_MIN_BLOCKS.
    auto tileBytes = [&](int64_t keys) {
      return keys * (kRowBytes(d, format) + 16 + kRowBytes(dv, format) + 16) +
             4 * keys * (groupsK + groupsV);
    };
    if (const char *env = std::getenv("ATTNC_DECODE_TK")) {
      int64_t v = std::atoi(env);
      // Two tiles must hold the key groups' final sums (16 KB).
      if ((v == 32 || v == 64 || v == 128) && 2 * tileBytes(v) >= 16384)
        tk = v;
    }
    // Four CTAs per SM measured best for bf16 pages on the H100 (2.43 against
    // 2.04 TB/s with no bound, docs/kv-cache.md).
    minBlocks = 4;
    if (const char *env = std::getenv("ATTNC_DECODE_MIN_BLOCKS"))
      minBlocks = std::clamp(std::atoi(env), 1, 16);
    out.decodeTileKeys = static_cast<int>(tk);
    // Query rows per CTA: their slices of q live in registers.
    out.decodeRows = d <= 128 ? 4 : 2;
    int64_t kRow = kRowBytes(d, format), vRow = kRowBytes(dv, format);
    // Two tiles of rows and scales (at the end, the key groups' sums, 16 KB),
    // weights [TK][4], row statistics, two tiles of page checks.
    out.decodeSmemFixed =
        2 * (tk * (kRow + 16) + tk * (vRow + 16) + 4 * tk * (groupsK + groupsV)) + 16 * tk + 48 +
        8 * tk;
  }
  out.decodeSmemPerRow = 0;
  out.blockQ = 1;
  out.blockK = static_cast<int>(tk);

  std::string text;
  llvm::raw_string_ostream os(text);
  if (failed(emitArgsAndRegions(fn, op, os, out)))
    return failure();
  auto argNo = [&](Value v) { return cast<BlockArgument>(v).getArgNumber(); };
  os << "\n#define ATTNC_KERNEL " << out.entry << "\n"
     << "#define ATTNC_COMBINE " << out.entry << "_combine\n"
     << "#define ATTNC_D " << d << "\n#define ATTNC_DV " << dv << "\n"
     << "#define ATTNC_OUT " << dtypeCode(op.getOutput().getType().getElementType()) << "\n"
     << "#define ATTNC_KV_FORMAT " << format << "\n"
     << "#define ATTNC_GROUPS_K " << groupsK << "\n#define ATTNC_GROUPS_V " << groupsV << "\n"
     << "#define ATTNC_SCALE_LANES " << (out.decodeScaleLanes ? 1 : 0) << "\n"
     << "#define ATTNC_Q4_RAW " << (rawCodes ? 1 : 0) << "\n"
     << "#define ATTNC_Q8_RAW " << (rawCodes8 ? 1 : 0) << "\n"
     << "#define ATTNC_DECODE_TK " << tk << "\n"
     << "#define ATTNC_DECODE_STAGES " << out.decodeStages << "\n"

     << "#define ATTNC_DECODE_ROWS " << out.decodeRows << "\n"
     << "#define ATTNC_MIN_BLOCKS " << minBlocks << "\n"
     << "#define ATTNC_SCALE " << floatLiteral(op.getScale().convertToDouble()) << "\n";
  emitVariantDefines(op, os);
  os << "#define ATTNC_PAGE_TABLE(a) (a).x" << argNo(op.getPageTable()) << "\n"
     << "#define ATTNC_TABLE_WIDTH(a) (a).x" << argNo(op.getPageTable()) << "_d1\n"
     << "#define ATTNC_SEQ_LENS(a) (a).x" << argNo(op.getSeqLens()) << "\n";
  if (quant)
    os << "#define ATTNC_K_SCALE(a) (a).x" << argNo(op.getKeyScale()) << "\n"
       << "#define ATTNC_V_SCALE(a) (a).x" << argNo(op.getValueScale()) << "\n";
  os << (mma ? kAttnDecodeMmaCuh : kAttnDecodePagedCuh) << kAttnDecodeCombineCuh;
  out.source = std::move(text);
  return success();
}
