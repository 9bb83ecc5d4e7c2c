//===- DevicePages.cpp - A BlockPool's pages in GPU memory -----------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/DevicePages.h"

#include "attnc/runtime/Cuda.h"

#include <cstdint>

namespace attnc {
namespace kv {

std::unique_ptr<DevicePages> DevicePages::create(const BlockPool &pool, int64_t pages,
                                                 Error &error) {
  if (pages <= 0) {
    error = "device pages: the capacity must be positive, not " + std::to_string(pages);
    return nullptr;
  }
  if (static_cast<uint64_t>(pages) > SIZE_MAX / pool.pageBytes()) {
    error = "device pages: " + std::to_string(pages) + " pages of " +
            std::to_string(pool.pageBytes()) + " bytes do not fit in memory";
    return nullptr;
  }
  std::string why;
  if (!cuda::init(why)) {
    error = "device pages need a GPU: " + why;
    return nullptr;
  }
  std::unique_ptr<DevicePages> d(new DevicePages());
  d->owner = pool.uniqueId();
  d->pages = pages;
  d->pageBytes = pool.pageBytes();
  void *mem = nullptr;
  if (!cuda::malloc(&mem, static_cast<size_t>(pages) * d->pageBytes, why)) {
    error = "device pages: cannot allocate " + std::to_string(pages) + " pages of " +
            std::to_string(d->pageBytes) + " bytes: " + why;
    return nullptr;
  }
  d->base = static_cast<uint8_t *>(mem);
  d->versions.assign(static_cast<size_t>(pages), 0);
  return d;
}

DevicePages::~DevicePages() {
  if (base)
    cuda::free(base);
}

Error DevicePages::uploadStale(
    const BlockPool &pool,
    const std::function<bool(int64_t first, int64_t end, std::string &why)> &upload) {
  // Versions only mean something for the pool they were read from.
  if (pool.uniqueId() != owner)
    return "device pages: sync was given another pool than the one they were made for";
  int64_t created = static_cast<int64_t>(pool.pagesCreated());
  if (created > pages)
    return "device pages: the pool has " + std::to_string(created) +
           " pages, more than the " + std::to_string(pages) + " the GPU copy holds";
  // Runs of consecutive stale pages go up in one copy each.
  std::string why;
  for (int64_t p = 0; p < created;) {
    auto stale = [&](int64_t q) {
      PageId id = static_cast<PageId>(q);
      return pool.pageInUse(id) && pool.pageVersion(id) != versions[q];
    };
    if (!stale(p)) {
      ++p;
      continue;
    }
    int64_t end = p + 1;
    while (end < created && stale(end))
      ++end;
    if (!upload(p, end, why))
      return "device pages: upload failed: " + why;
    for (int64_t q = p; q < end; ++q)
      versions[q] = pool.pageVersion(static_cast<PageId>(q));
    uploadedPages += end - p;
    uploadedBytes += static_cast<size_t>(end - p) * pageBytes;
    p = end;
  }
  syncedPages = created;
  return "";
}

Error DevicePages::sync(const BlockPool &pool) {
  return uploadStale(pool, [&](int64_t p, int64_t end, std::string &why) {
    return cuda::copyToDevice(base + p * pageBytes, pool.pageData(static_cast<PageId>(p)),
                              static_cast<size_t>(end - p) * pageBytes, why);
  });
}

Error DevicePages::syncAsync(const BlockPool &pool, void *stream) {
  std::vector<std::pair<int64_t, int64_t>> staged;
  Error e = uploadStale(pool, [&](int64_t p, int64_t end, std::string &why) {
    staged.emplace_back(p, end);
    return staging.add(base + p * pageBytes, pool.pageData(static_cast<PageId>(p)),
                       static_cast<size_t>(end - p) * pageBytes, why);
  });
  std::string why;
  if (e.empty() && !staging.submit(stream, why))
    e = "device pages: upload failed: " + why;
  if (!e.empty() && !staged.empty()) {
    // Nothing of this call reaches the GPU: its pages stay stale.
    staging.discard();
    for (auto [p, end] : staged)
      for (int64_t q = p; q < end; ++q)
        versions[q] = 0;
  }
  return e;
}

TensorView DevicePages::onDevice(const BlockPool &pool, TensorView view) const {
  const uint8_t *arena = pool.pageData(0);
  view.data = base + (static_cast<const uint8_t *>(view.data) - arena);
  view.shape[0] = syncedPages;
  return view;
}

TensorView DevicePages::kvView(const BlockPool &pool, int layer, int which) const {
  return onDevice(pool, pool.kvView(layer, which));
}

TensorView DevicePages::scaleView(const BlockPool &pool, int layer, int which) const {
  return onDevice(pool, pool.scaleView(layer, which));
}

} // namespace kv
} // namespace attnc
