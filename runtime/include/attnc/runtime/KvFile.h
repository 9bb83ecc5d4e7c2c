//===- KvFile.h - Save and restore KV caches as safetensors -----*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// One sequence's cache as a safetensors file: an 8-byte little-endian header
// length, a JSON header, then raw buffers. Per layer l the tensors are
// `layer<l>.k` and `layer<l>.v` ([kv_heads, tokens, head_dim] as BF16 or I8;
// q4 packs two features per byte: U8 [kv_heads, tokens, head_dim / 2]) and,
// when quantized, `layer<l>.k_scale` / `layer<l>.v_scale` (F32 [kv_heads,
// tokens, head_dim / group_size]). `__metadata__` records everything a reader
// must agree on: format and version, quantization and group size, page size,
// layers, heads, head dim, token count, position offset, model id and a
// CRC-32C of the data. Files are written atomically (temporary file, fsync,
// rename); a restore checks all of it before touching the pool.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_KVFILE_H
#define ATTNC_RUNTIME_KVFILE_H

#include "attnc/runtime/KvCache.h"

#include <cstdint>
#include <string>

namespace attnc {
namespace kv {

constexpr int kKvFormatVersion = 1;

struct KvFileMeta {
  int version = 0;
  Quant quant = Quant::bf16;
  int groupSize = 0, pageTokens = 0, layers = 0, kvHeads = 0, headDim = 0;
  int64_t tokens = 0, positionOffset = 0;
  std::string modelId;
  uint32_t checksum = 0;
  uint64_t fileBytes = 0, dataBytes = 0;
};

/// Writes `seq` of `pool` to `path` atomically.
Error saveSequence(const BlockPool &pool, SeqId seq, const std::string &path,
                   const std::string &modelId, int64_t positionOffset = 0);

/// Reads and checks the header (layout, metadata, offsets, sizes) without
/// reading the data.
Error readHeader(const std::string &path, KvFileMeta &meta);

/// readHeader plus the data's checksum: the file is whole and consistent.
Error verifyFile(const std::string &path, KvFileMeta &meta);

/// Restores a saved sequence into `pool` as a new sequence `seq`: the file
/// must be whole, match the pool's layers, heads, head dim, quantization
/// and group size, and (when `modelId` is not empty) the model. Pages are
/// filled straight from the file, without requantizing. On any error the
/// pool is unchanged.
Error restoreSequence(BlockPool &pool, const std::string &path, SeqId &seq, KvFileMeta &meta,
                      const std::string &modelId = "");

/// Writes a valid cache of `tokens` random tokens (normal values) for
/// benchmarks and storage tests.
Error synthesizeFile(const std::string &path, const PoolConfig &config, int64_t tokens,
                     const std::string &modelId, uint32_t seed = 1);

/// CRC-32C (Castagnoli, as iSCSI and ext4 use) of `size` bytes, continuing
/// from `crc`; SSE 4.2's crc32 instruction where the CPU has it.
uint32_t crc32c(const void *data, size_t size, uint32_t crc = 0);

} // namespace kv
} // namespace attnc

#endif // ATTNC_RUNTIME_KVFILE_H
