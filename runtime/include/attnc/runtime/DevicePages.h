//===- DevicePages.h - A BlockPool's pages in GPU memory --------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The pool (KvCache.h) stays the one owner of tables, reference counts,
// quantization and files; DevicePages keeps a copy of its pages in GPU
// memory, page for page at the same ids, so that the CUDA paged kernels read
// the pool's block tables unchanged. sync() uploads only the pages whose
// version changed since their last upload (appended rows, copies on write,
// restored pages): a decode step that appended one token uploads one page.
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_RUNTIME_DEVICEPAGES_H
#define ATTNC_RUNTIME_DEVICEPAGES_H

#include "attnc/runtime/KvCache.h"
#include "attnc/runtime/StagedUploads.h"

#include <functional>
#include <memory>

namespace attnc {
namespace kv {

class DevicePages {
public:
  /// Room for `pages` pages of `pool` in GPU memory; null with `error` when
  /// there is no GPU or not enough memory.
  static std::unique_ptr<DevicePages> create(const BlockPool &pool, int64_t pages, Error &error);
  ~DevicePages();
  DevicePages(const DevicePages &) = delete;
  DevicePages &operator=(const DevicePages &) = delete;

  /// Uploads every page of `pool` that is in use and changed since its last
  /// upload. Fails, uploading nothing, for a pool other than the one
  /// create() was given, or once the pool has created more pages than this
  /// holds. The copies are the driver's synchronous host-to-device copies
  /// (ordered with the legacy default stream): kernels launched on other
  /// streams that may still read pages the pool has reused must be waited
  /// for first.
  Error sync(const BlockPool &pool);
  /// sync() without waiting: the stale pages are copied into page-locked
  /// staging memory and their uploads enqueued on `stream`, so the host
  /// may append to the pool again at once, and kernels enqueued on
  /// `stream` afterwards read the new pages. Kernels still reading a page
  /// the pool has reused must be on the same stream (or waited for), as
  /// with sync(). The same errors as sync(), before anything is staged.
  Error syncAsync(const BlockPool &pool, void *stream);
  /// kvView and scaleView of the pool, over the GPU copy (as of the last
  /// sync): device pointers for Kernel::run and Kernel::launch.
  TensorView kvView(const BlockPool &pool, int layer, int which) const;
  TensorView scaleView(const BlockPool &pool, int layer, int which) const;

  int64_t capacity() const { return pages; }
  /// Pages and bytes the syncs so far have uploaded.
  int64_t pagesUploaded() const { return uploadedPages; }
  size_t bytesUploaded() const { return uploadedBytes; }

private:
  DevicePages() = default;
  /// The checks and the stale runs of sync and syncAsync: `upload` gets
  /// each run of consecutive stale pages [first, end).
  Error uploadStale(const BlockPool &pool,
                    const std::function<bool(int64_t first, int64_t end, std::string &why)> &upload);
  TensorView onDevice(const BlockPool &pool, TensorView hostView) const;

  uint64_t owner = 0; // the pool's uniqueId()
  uint8_t *base = nullptr;
  int64_t pages = 0;
  size_t pageBytes = 0;
  std::vector<uint64_t> versions; // per page, as last uploaded; 0: never
  int64_t syncedPages = 0;        // pool.pagesCreated() at the last sync
  int64_t uploadedPages = 0;
  size_t uploadedBytes = 0;
  cuda::StagedUploads staging; // syncAsync's
};

} // namespace kv
} // namespace attnc

#endif // ATTNC_RUNTIME_DEVICEPAGES_H
