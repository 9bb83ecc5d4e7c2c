//===- StagedUploads.cpp - Host-to-GPU copies through pinned memory --------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/StagedUploads.h"

#include "attnc/runtime/Cuda.h"

#include <algorithm>
#include <cstring>

using namespace attnc::cuda;

StagedUploads::~StagedUploads() {
  for (Buffer &b : buffers) {
    std::string error;
    // The copies may still read the buffer: wait before freeing it.
    if (b.inFlight)
      eventSynchronize(b.done, error);
    eventDestroy(b.done);
    hostFree(b.host);
  }
}

bool StagedUploads::add(void *dst, const void *src, size_t bytes, std::string &error) {
  Buffer &b = buffers[current];
  if (b.inFlight) {
    // This buffer's previous copies must be done before it is overwritten.
    if (!eventSynchronize(b.done, error))
      return false;
    b.inFlight = false;
  }
  if (b.used + bytes > b.capacity) {
    size_t capacity = std::max({b.used + bytes, 2 * b.capacity, size_t(1) << 20});
    void *grown = nullptr;
    if (!hostAlloc(&grown, capacity, error))
      return false;
    if (b.used)
      std::memcpy(grown, b.host, b.used);
    hostFree(b.host);
    b.host = static_cast<uint8_t *>(grown);
    b.capacity = capacity;
  }
  std::memcpy(b.host + b.used, src, bytes);
  uint8_t *to = static_cast<uint8_t *>(dst);
  if (!b.copies.empty() && b.copies.back().dst + b.copies.back().bytes == to &&
      b.copies.back().offset + b.copies.back().bytes == b.used)
    b.copies.back().bytes += bytes;
  else
    b.copies.push_back({to, b.used, bytes});
  b.used += bytes;
  byteCount += bytes;
  return true;
}

bool StagedUploads::submit(void *stream, std::string &error) {
  Buffer &b = buffers[current];
  if (b.copies.empty())
    return true;
  if (!b.done && !eventCreate(&b.done, error))
    return false;
  bool enqueued = true;
  for (const Copy &c : b.copies)
    if (!(enqueued = copyToDeviceAsync(c.dst, b.host + c.offset, c.bytes, stream, error)))
      break;
  if (!enqueued || !eventRecord(b.done, stream, error)) {
    // Copies enqueued before the failure may still read the buffer: wait
    // for them (best effort), then drop the batch.
    std::string ignored;
    streamSynchronize(stream, ignored);
    discard();
    return false;
  }
  copyCount += static_cast<int64_t>(b.copies.size());
  b.inFlight = true;
  b.used = 0;
  b.copies.clear();
  current ^= 1;
  return true;
}

void StagedUploads::discard() {
  Buffer &b = buffers[current];
  byteCount -= b.used;
  b.used = 0;
  b.copies.clear();
}
