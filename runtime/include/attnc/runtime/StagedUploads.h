//===- StagedUploads.h - Host-to-GPU copies through pinned memory -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Uploads that leave the host free at once: add() copies the bytes into
// page-locked staging memory, submit() enqueues the batch's copies on a
// stream and returns. The caller may change its own buffers right after
// add(), and the copies run in stream order behind the work already on the
// stream (a kernel still reading the old bytes finishes first). Two staging
// buffers alternate, so a batch is filled while the previous one's copies
// may still run; a batch waits only for the copies of the batch before last.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_STAGEDUPLOADS_H
#define ATTNC_RUNTIME_STAGEDUPLOADS_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnc {
namespace cuda {

class StagedUploads {
public:
  StagedUploads() = default;
  ~StagedUploads();
  StagedUploads(const StagedUploads &) = delete;
  StagedUploads &operator=(const StagedUploads &) = delete;

  /// Stages `bytes` of `src` for device address `dst`. Writes that continue
  /// the previous one on both sides become one copy. False with `error`
  /// (no GPU, no page-locked memory, an earlier batch's copies failed).
  bool add(void *dst, const void *src, size_t bytes, std::string &error);
  /// Enqueues the staged copies on `stream` (null: the legacy default
  /// stream) and starts a new batch in the other buffer. An empty batch
  /// enqueues nothing.
  bool submit(void *stream, std::string &error);
  /// Drops the staged batch (nothing of it is copied).
  void discard();
  /// Copies enqueued by the submits so far, and bytes staged.
  int64_t copies() const { return copyCount; }
  size_t bytes() const { return byteCount; }

private:
  struct Copy {
    uint8_t *dst;
    size_t offset, bytes;
  };
  struct Buffer {
    uint8_t *host = nullptr;
    size_t capacity = 0, used = 0;
    void *done = nullptr; // event recorded after the buffer's last copies
    bool inFlight = false;
    std::vector<Copy> copies;
  };
  Buffer buffers[2];
  int current = 0;
  int64_t copyCount = 0;
  size_t byteCount = 0;
};

} // namespace cuda
} // namespace attnc

#endif // ATTNC_RUNTIME_STAGEDUPLOADS_H
