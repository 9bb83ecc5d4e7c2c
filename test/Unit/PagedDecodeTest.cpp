//===- PagedDecodeTest.cpp - Decode straight from a BlockPool's pages -*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The way a serving loop uses the paged form: sequences live in a BlockPool
// (shared prefixes, a partly filled last page, an empty sequence), and a
// paged kernel reads one layer's pages in place through the pool's views and
// block tables. The expected output is computed in f64 from what
// BlockPool::read gives back, a path that shares nothing with the kernel.
// Bad tables and lengths come back as errors.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
#include "attnc/runtime/Cuda.h"
#include "attnc/runtime/DevicePages.h"
#include "attnc/runtime/KvCache.h"
#include "attnc/runtime/StagedUploads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <random>
#include <vector>

using namespace attnc;

namespace {
constexpr int kHq = 4, kHkv = 2, kD = 64, kPage = 16, kLayers = 2, kS = 2;

std::string specFor(kv::Quant quant, int groups = 2) {
  std::string codes = quant == kv::Quant::bf16 ? "bf16" : kv::quantName(quant);
  std::string g = std::to_string(groups);
  std::string scales = quant == kv::Quant::bf16
                           ? ""
                           : ", ks: f32[P, 2, 16, " + g + "], vs: f32[P, 2, 16, " + g + "]";
  std::string args = quant == kv::Quant::bf16 ? "pages, lens" : "pages, lens, ks, vs";
  return "attention decode(q: bf16[B, 4, 2, 64], k: " + codes + "[P, 2, 16, 64], v: " + codes +
         "[P, 2, 16, 64]" + scales +
         ", pages: i32[B, M], lens: i32[B])\n"
         "    -> (o: f32[B, 4, 2, 64], lse: f32[B, 4, 2]) {\n"
         "  kv = paged(" + args + ")\n"
         "  align = end\n"
         "  mask(b, h, i, j) = j <= i\n"
         "}\n";
}

struct PoolFixture {
  std::unique_ptr<kv::BlockPool> pool;
  std::vector<kv::SeqId> seqs;
};

/// Four sequences: 100 tokens; a fork of it grown to 137 (shared pages,
/// copy on write of the partial page); empty; exactly one page.
PoolFixture makePool(kv::Quant quant, int groupSize = 32) {
  kv::PoolConfig cfg;
  cfg.layers = kLayers;
  cfg.kvHeads = kHkv;
  cfg.headDim = kD;
  cfg.pageTokens = kPage;
  cfg.quant = quant;
  cfg.groupSize = groupSize;
  kv::Error error;
  PoolFixture f;
  f.pool = kv::BlockPool::create(cfg, error);
  EXPECT_TRUE(f.pool) << error;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  auto append = [&](kv::SeqId s, int64_t tokens) {
    std::vector<float> k(kLayers * kHkv * tokens * kD), v(k.size());
    for (float &x : k) x = normal(rng);
    for (float &x : v) x = normal(rng);
    EXPECT_EQ(f.pool->append(s, k.data(), v.data(), tokens), "");
  };
  kv::SeqId a = f.pool->createSequence();
  append(a, 100);
  kv::SeqId b = f.pool->fork(a);
  append(b, 37);
  kv::SeqId c = f.pool->createSequence();
  kv::SeqId d = f.pool->createSequence();
  append(d, kPage);
  f.seqs = {a, b, c, d};
  return f;
}

/// o and lse of causal, end-aligned attention for sequence `n`, in f64 from
/// BlockPool::read.
void expected(const kv::BlockPool &pool, kv::SeqId seq, const std::vector<float> &q, int n,
              int layer, std::vector<double> &o, std::vector<double> &lse) {
  int64_t T = pool.length(seq);
  std::vector<float> k(kLayers * kHkv * T * kD), v(k.size());
  if (T)
    EXPECT_EQ(pool.read(seq, 0, T, k.data(), v.data()), "");
  o.assign(kHq * kS * kD, 0.0);
  lse.assign(kHq * kS, -INFINITY);
  double scale = 1.0 / std::sqrt(double(kD));
  for (int h = 0; h < kHq; ++h)
    for (int r = 0; r < kS; ++r) {
      int64_t i = T - kS + r;
      const float *qr = &q[((n * kHq + h) * kS + r) * kD];
      auto kRow = [&](int64_t j) { return &k[((layer * kHkv + h / 2) * T + j) * kD]; };
      auto vRow = [&](int64_t j) { return &v[((layer * kHkv + h / 2) * T + j) * kD]; };
      double m = -INFINITY;
      std::vector<double> s(T);
      for (int64_t j = 0; j < T && j <= i; ++j) {
        double dot = 0;
        for (int d = 0; d < kD; ++d)
          dot += double(qr[d]) * kRow(j)[d];
        s[j] = scale * dot;
        m = std::max(m, s[j]);
      }
      double l = 0;
      for (int64_t j = 0; j < T && j <= i; ++j) {
        double p = std::exp(s[j] - m);
        l += p;
        for (int d = 0; d < kD; ++d)
          o[(h * kS + r) * kD + d] += p * vRow(j)[d];
      }
      if (l > 0) {
        for (int d = 0; d < kD; ++d)
          o[(h * kS + r) * kD + d] /= l;
        lse[h * kS + r] = m + std::log(l);
      }
    }
}

/// Random bf16 queries for `B` sequences: the raw bits and their values.
void randomQueries(int64_t B, unsigned seed, std::vector<uint16_t> &bits,
                   std::vector<float> &values) {
  bits.resize(B * kHq * kS * kD);
  values.resize(bits.size());
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  for (size_t n = 0; n < bits.size(); ++n) {
    bits[n] = floatToBF16(normal(rng));
    values[n] = bf16ToFloat(bits[n]);
  }
}

/// The decode spec's tensors, in argument order: q, the layer's K and V
/// views (and scales), table, lengths, o and lse.
std::vector<TensorView> decodeTensors(void *q, std::vector<TensorView> pages, void *table,
                                      void *lens, void *o, void *lse, int64_t B, int64_t width) {
  std::vector<TensorView> t = {{q, DType::bf16, {B, kHq, kS, kD}, {}}};
  t.insert(t.end(), pages.begin(), pages.end());
  t.push_back({table, DType::i32, {B, width}, {}});
  t.push_back({lens, DType::i32, {B}, {}});
  t.push_back({o, DType::f32, {B, kHq, kS, kD}, {}});
  t.push_back({lse, DType::f32, {B, kHq, kS}, {}});
  return t;
}

/// o and lse of every sequence against `expected`, within `tolerance`; rows
/// without keys must have lse = -inf when `emptyRowsToo`.
void expectDecoded(const PoolFixture &f, const std::vector<float> &q, int layer,
                   const std::vector<float> &o, const std::vector<float> &lse, double tolerance,
                   bool emptyRowsToo) {
  for (size_t n = 0; n < f.seqs.size(); ++n) {
    std::vector<double> eo, el;
    expected(*f.pool, f.seqs[n], q, static_cast<int>(n), layer, eo, el);
    for (int x = 0; x < kHq * kS * kD; ++x)
      ASSERT_NEAR(o[n * kHq * kS * kD + x], eo[x], tolerance)
          << "sequence " << n << " element " << x;
    for (int x = 0; x < kHq * kS; ++x) {
      if (!std::isinf(el[x]))
        EXPECT_NEAR(lse[n * kHq * kS + x], el[x], tolerance);
      else if (emptyRowsToo)
        EXPECT_TRUE(std::isinf(lse[n * kHq * kS + x]) && lse[n * kHq * kS + x] < 0);
    }
  }
}

/// A decode test's GPU buffers: q (uploaded), o, lse, and room for block
/// tables of up to 64 pages and the lengths; freed with the object.
struct GpuDecodeBuffers {
  explicit GpuDecodeBuffers(int64_t B)
      : oBytes(B * kHq * kS * kD * 4), lBytes(B * kHq * kS * 4), tBytes(4 * B * 64),
        nBytes(4 * B) {}
  ~GpuDecodeBuffers() {
    for (void *p : {q, o, l, t, n})
      if (p)
        cuda::free(p);
  }
  bool allocate(const std::vector<uint16_t> &qBits, std::string &why) {
    return cuda::malloc(&q, qBits.size() * 2, why) && cuda::malloc(&o, oBytes, why) &&
           cuda::malloc(&l, lBytes, why) && cuda::malloc(&t, tBytes, why) &&
           cuda::malloc(&n, nBytes, why) &&
           cuda::copyToDevice(q, qBits.data(), qBits.size() * 2, why);
  }
  size_t oBytes, lBytes, tBytes, nBytes;
  void *q = nullptr, *o = nullptr, *l = nullptr, *t = nullptr, *n = nullptr;
};

class PagedDecode : public ::testing::TestWithParam<kv::Quant> {};

/// Sets an environment variable for a scope, restoring what was there.
struct ScopedEnv {
  ScopedEnv(const char *name, const char *value) : name(name) {
    if (const char *old = std::getenv(name))
      saved = old, had = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had)
      setenv(name, saved.c_str(), 1);
    else
      unsetenv(name);
  }
  const char *name;
  std::string saved;
  bool had = false;
};

TEST_P(PagedDecode, ReadsThePoolInPlace) {
  kv::Quant quant = GetParam();
  PoolFixture f = makePool(quant);
  CompileOptions options;
  options.cacheDir = "off";
  // The f32 (and bf16-pair) products first; the int8 scores that q4 keys
  // take on CPUs with AVX512-VNNI are checked after them.
  std::optional<ScopedEnv> exactScores(std::in_place, "ATTNC_CPU_INT8_DOT", "0");
  Result<Kernel> kernel = compileString(specFor(quant), "decode.attn", options);
  exactScores.reset();
  ASSERT_TRUE(kernel) << kernel.error();

  int64_t B = static_cast<int64_t>(f.seqs.size());
  std::vector<int32_t> table, lens;
  int64_t width = 0;
  ASSERT_EQ(f.pool->batchTables(f.seqs, table, lens, width), "");
  std::vector<uint16_t> qBits;
  std::vector<float> q;
  randomQueries(B, 3, qBits, q);
  std::vector<float> o(B * kHq * kS * kD, NAN), lse(B * kHq * kS, NAN);
  const int layer = 1;
  std::vector<TensorView> pages = {f.pool->kvView(layer, 0), f.pool->kvView(layer, 1)};
  if (quant != kv::Quant::bf16) {
    pages.push_back(f.pool->scaleView(layer, 0));
    pages.push_back(f.pool->scaleView(layer, 1));
  }
  std::vector<TensorView> tensors = decodeTensors(qBits.data(), pages, table.data(), lens.data(),
                                                  o.data(), lse.data(), B, width);
  Status st = kernel->run(tensors, {}, 2);
  ASSERT_TRUE(st) << st.error();
  expectDecoded(f, q, layer, o, lse, 2e-4, /*emptyRowsToo=*/true);

  // The default scores (int8 for q4 keys where the CPU has AVX512-VNNI): q
  // in two int8 terms per 8 features is within 1/512 of a code, and must
  // meet the same bound. (One term, 1/254 of the largest |q|, moved these
  // outputs by about 1e-3.)
  Result<Kernel> defaults = compileString(specFor(quant), "decode.attn", options);
  ASSERT_TRUE(defaults) << defaults.error();
  std::fill(o.begin(), o.end(), NAN);
  std::fill(lse.begin(), lse.end(), NAN);
  st = defaults->run(tensors, {}, 2);
  ASSERT_TRUE(st) << st.error();
  expectDecoded(f, q, layer, o, lse, 2e-4, /*emptyRowsToo=*/true);

  // A length past the table's row, and a page past the pool, are errors.
  std::vector<int32_t> badLens = lens;
  badLens[0] = static_cast<int32_t>(width * kPage + 1);
  tensors[tensors.size() - 3].data = badLens.data();
  st = kernel->run(tensors, {}, 2);
  EXPECT_FALSE(st);
  EXPECT_NE(st.error().find("has length"), std::string::npos) << st.error();
  tensors[tensors.size() - 3].data = lens.data();
  std::vector<int32_t> badTable = table;
  badTable[0] = static_cast<int32_t>(tensors[1].shape[0]);
  tensors[tensors.size() - 4].data = badTable.data();
  st = kernel->run(tensors, {}, 2);
  EXPECT_FALSE(st);
  EXPECT_NE(st.error().find("block table entry"), std::string::npos) << st.error();
}

INSTANTIATE_TEST_SUITE_P(Formats, PagedDecode,
                         ::testing::Values(kv::Quant::bf16, kv::Quant::q8, kv::Quant::q4),
                         [](const auto &info) { return std::string(kv::quantName(info.param)); });

TEST(PagedDecode, RejectsStridesInsideAPage) {
  PoolFixture f = makePool(kv::Quant::bf16);
  CompileOptions options;
  options.cacheDir = "off";
  Result<Kernel> kernel = compileString(specFor(kv::Quant::bf16), "decode.attn", options);
  ASSERT_TRUE(kernel) << kernel.error();
  TensorView k = f.pool->kvView(0, 0);
  k.strides[2] *= 2; // rows of a page apart: not the paged layout
  std::vector<uint16_t> q(kHq * kS * kD);
  std::vector<int32_t> table(8, 0), lens(1, 1);
  std::vector<float> o(kHq * kS * kD), lse(kHq * kS);
  Status st = kernel->run({{q.data(), DType::bf16, {1, kHq, kS, kD}, {}}, k, f.pool->kvView(0, 1),
                           {table.data(), DType::i32, {1, 8}, {}},
                           {lens.data(), DType::i32, {1}, {}},
                           {o.data(), DType::f32, {1, kHq, kS, kD}, {}},
                           {lse.data(), DType::f32, {1, kHq, kS}, {}}});
  EXPECT_FALSE(st);
  EXPECT_NE(st.error().find("row-major within a page"), std::string::npos) << st.error();
}
} // namespace

namespace {
TEST(PagedDecode, RejectsTablesThatDoNotFitTheBatch) {
  PoolFixture f = makePool(kv::Quant::bf16);
  CompileOptions options;
  options.cacheDir = "off";
  Result<Kernel> kernel = compileString(specFor(kv::Quant::bf16), "decode.attn", options);
  ASSERT_TRUE(kernel) << kernel.error();
  std::vector<uint16_t> q(2 * kHq * kS * kD);
  std::vector<int32_t> table(8, 0), lens(1, 1); // one row for a batch of two
  std::vector<float> o(2 * kHq * kS * kD), lse(2 * kHq * kS);
  Status st = kernel->run({{q.data(), DType::bf16, {2, kHq, kS, kD}, {}}, f.pool->kvView(0, 0),
                           f.pool->kvView(0, 1), {table.data(), DType::i32, {1, 8}, {}},
                           {lens.data(), DType::i32, {1}, {}},
                           {o.data(), DType::f32, {2, kHq, kS, kD}, {}},
                           {lse.data(), DType::f32, {2, kHq, kS}, {}}});
  EXPECT_FALSE(st);
  // The spec names the batch B in both; attn IR without names gets the
  // explicit check ("... but q has batch 2").
  EXPECT_TRUE(st.error().find("B = 1") != std::string::npos ||
              st.error().find("but q has batch 2") != std::string::npos)
      << st.error();
}

TEST(PagedDecode, QuantizedPoolsKeepScalesAligned) {
  kv::PoolConfig cfg;
  cfg.kvHeads = 1;
  cfg.pageTokens = 1;
  cfg.headDim = 2;
  cfg.groupSize = 2;
  cfg.quant = kv::Quant::q4; // one byte of codes per row: the scales would be misaligned
  kv::Error error;
  EXPECT_FALSE(kv::BlockPool::create(cfg, error));
  EXPECT_NE(error.find("aligned"), std::string::npos) << error;
}
} // namespace

/// The same decode on the GPU, reading a DevicePages copy of the pool: the
/// pages read back byte for byte; the tensor-core kernel (bf16, and q4 in
/// groups of 16) matches the f64 expectation within the GPU bar (2e-2: the
/// products take bf16 operands); one appended token uploads one page. Skipped
/// without a GPU.
TEST(PagedDecode, RunsOnTheGpuFromDevicePages) {
  std::string why;
  if (!cuda::init(why))
    GTEST_SKIP() << "no GPU: " << why;
  for (kv::Quant quant : {kv::Quant::bf16, kv::Quant::q4}) {
    SCOPED_TRACE(kv::quantName(quant));
    PoolFixture f = makePool(quant, 16);
    kv::Error error;
    std::unique_ptr<kv::DevicePages> dev =
        kv::DevicePages::create(*f.pool, static_cast<int64_t>(f.pool->pagesCreated()) + 4, error);
    ASSERT_TRUE(dev) << error;
    // Every page in use reads back from the GPU byte for byte.
    auto samePages = [&]() {
      const uint8_t *devBase = static_cast<const uint8_t *>(dev->kvView(*f.pool, 0, 0).data);
      std::vector<uint8_t> page(f.pool->pageBytes());
      const kv::BlockPool &pool = *f.pool;
      for (size_t p = 0; p < pool.pagesCreated(); ++p) {
        if (!pool.pageInUse(static_cast<kv::PageId>(p)))
          continue;
        ASSERT_TRUE(cuda::copyToHost(page.data(), devBase + p * page.size(), page.size(), why))
            << why;
        ASSERT_EQ(std::memcmp(page.data(), pool.pageData(static_cast<kv::PageId>(p)), page.size()),
                  0)
            << "page " << p;
      }
    };
    ASSERT_EQ(dev->sync(*f.pool), "");
    EXPECT_EQ(dev->pagesUploaded(), static_cast<int64_t>(f.pool->pagesInUse()));
    samePages();
    ASSERT_EQ(dev->sync(*f.pool), ""); // nothing changed: nothing to upload
    EXPECT_EQ(dev->pagesUploaded(), static_cast<int64_t>(f.pool->pagesInUse()));

    CompileOptions options;
    options.cacheDir = "off";
    options.target = Target::cuda;
    Result<Kernel> kernel = compileString(specFor(quant, kD / 16), "decode.attn", options);
    ASSERT_TRUE(kernel) << kernel.error();

    const int64_t B = static_cast<int64_t>(f.seqs.size());
    std::vector<uint16_t> qBits;
    std::vector<float> q;
    randomQueries(B, 5, qBits, q);
    std::mt19937 rng(6);
    std::normal_distribution<float> normal;
    GpuDecodeBuffers gpu(B);
    ASSERT_TRUE(gpu.allocate(qBits, why)) << why;
    void *qD = gpu.q, *oD = gpu.o, *lD = gpu.l, *tD = gpu.t, *nD = gpu.n;
    const size_t oBytes = gpu.oBytes, lBytes = gpu.lBytes, tBytes = gpu.tBytes;

    const int layer = 1;
    auto decodeAndCheck = [&]() {
      std::vector<int32_t> table, lens;
      int64_t width = 0;
      ASSERT_EQ(f.pool->batchTables(f.seqs, table, lens, width), "");
      ASSERT_LE(table.size() * 4, tBytes);
      ASSERT_TRUE(cuda::copyToDevice(tD, table.data(), table.size() * 4, why)) << why;
      ASSERT_TRUE(cuda::copyToDevice(nD, lens.data(), lens.size() * 4, why)) << why;
      std::vector<TensorView> pages = {dev->kvView(*f.pool, layer, 0),
                                       dev->kvView(*f.pool, layer, 1)};
      if (quant != kv::Quant::bf16) {
        pages.push_back(dev->scaleView(*f.pool, layer, 0));
        pages.push_back(dev->scaleView(*f.pool, layer, 1));
      }
      Status st = kernel->run(decodeTensors(qD, pages, tD, nD, oD, lD, B, width), {});
      ASSERT_TRUE(st) << st.error();
      std::vector<float> o(B * kHq * kS * kD), lse(B * kHq * kS);
      ASSERT_TRUE(cuda::copyToHost(o.data(), oD, oBytes, why)) << why;
      ASSERT_TRUE(cuda::copyToHost(lse.data(), lD, lBytes, why)) << why;
      expectDecoded(f, q, layer, o, lse, 2e-2, /*emptyRowsToo=*/false);
    };
    decodeAndCheck();

    // One more token for the sequence of 137 (a partly filled page of its own).
    std::vector<float> k(kLayers * kHkv * kD), v(k.size());
    for (float &x : k) x = normal(rng);
    for (float &x : v) x = normal(rng);
    ASSERT_EQ(f.pool->append(f.seqs[1], k.data(), v.data(), 1), "");
    int64_t before = dev->pagesUploaded();
    ASSERT_EQ(dev->sync(*f.pool), "");
    EXPECT_EQ(dev->pagesUploaded(), before + 1);
    samePages();
    decodeAndCheck();

    // Another pool, and a pool that outgrows the copy, are errors, and
    // nothing is uploaded.
    PoolFixture other = makePool(quant, 16);
    kv::Error wrong = dev->sync(*other.pool);
    EXPECT_NE(wrong.find("another pool"), std::string::npos) << wrong;
    std::vector<float> big(kLayers * kHkv * 5 * kPage * kD, 0.5f);
    kv::SeqId grown = f.pool->createSequence();
    ASSERT_EQ(f.pool->append(grown, big.data(), big.data(), 5 * kPage), "");
    before = dev->pagesUploaded();
    kv::Error full = dev->sync(*f.pool);
    EXPECT_NE(full.find("more than the"), std::string::npos) << full;
    EXPECT_EQ(dev->pagesUploaded(), before);

  }
}

/// syncAsync stages a snapshot: the host may append again at once, the
/// stream's next kernel reads the staged pages, and the later change goes
/// up with the next sync. Tables go up through StagedUploads as well.
TEST(PagedDecode, AsyncSyncUploadsASnapshotInStreamOrder) {
  std::string why;
  if (!cuda::init(why))
    GTEST_SKIP() << "no GPU: " << why;
  PoolFixture f = makePool(kv::Quant::q4, 16);
  kv::Error error;
  std::unique_ptr<kv::DevicePages> dev =
      kv::DevicePages::create(*f.pool, static_cast<int64_t>(f.pool->pagesCreated()) + 4, error);
  ASSERT_TRUE(dev) << error;
  void *stream = nullptr;
  ASSERT_TRUE(cuda::streamCreate(&stream, why)) << why;
  ASSERT_EQ(dev->syncAsync(*f.pool, stream), "");
  EXPECT_EQ(dev->pagesUploaded(), static_cast<int64_t>(f.pool->pagesInUse()));

  CompileOptions options;
  options.cacheDir = "off";
  options.target = Target::cuda;
  Result<Kernel> kernel = compileString(specFor(kv::Quant::q4, kD / 16), "decode.attn", options);
  ASSERT_TRUE(kernel) << kernel.error();
  const int64_t B = static_cast<int64_t>(f.seqs.size());
  std::vector<uint16_t> qBits;
  std::vector<float> q;
  randomQueries(B, 5, qBits, q);
  GpuDecodeBuffers gpu(B);
  ASSERT_TRUE(gpu.allocate(qBits, why)) << why;
  void *qD = gpu.q, *oD = gpu.o, *lD = gpu.l, *tD = gpu.t, *nD = gpu.n;
  const size_t oBytes = gpu.oBytes, lBytes = gpu.lBytes, tBytes = gpu.tBytes;
  cuda::StagedUploads tables;

  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  std::vector<float> k(kLayers * kHkv * kD), v(k.size());
  auto appendOne = [&](kv::SeqId s) {
    for (float &x : k) x = normal(rng);
    for (float &x : v) x = normal(rng);
    ASSERT_EQ(f.pool->append(s, k.data(), v.data(), 1), "");
  };
  const int layer = 0;
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    appendOne(f.seqs[1]);
    int64_t before = dev->pagesUploaded();
    ASSERT_EQ(dev->syncAsync(*f.pool, stream), "");
    EXPECT_GT(dev->pagesUploaded(), before); // this step's page, and the last step's changes
    std::vector<int32_t> table, lens;
    int64_t width = 0;
    ASSERT_EQ(f.pool->batchTables(f.seqs, table, lens, width), "");
    ASSERT_LE(table.size() * 4, tBytes);
    ASSERT_TRUE(tables.add(tD, table.data(), table.size() * 4, why) &&
                tables.add(nD, lens.data(), lens.size() * 4, why) && tables.submit(stream, why))
        << why;
    std::vector<TensorView> pages = {dev->kvView(*f.pool, layer, 0), dev->kvView(*f.pool, layer, 1),
                                     dev->scaleView(*f.pool, layer, 0),
                                     dev->scaleView(*f.pool, layer, 1)};
    Status st = kernel->launch(decodeTensors(qD, pages, tD, nD, oD, lD, B, width), {}, stream);
    ASSERT_TRUE(st) << st.error();
    // What the kernel must read is the pool as it is now: take the f64
    // expectation and the bytes of every page in use, then change the pool
    // (a row in a page just staged, a new page) before waiting.
    const kv::BlockPool &pool = *f.pool;
    std::vector<std::vector<double>> eo(B), el(B);
    for (int64_t n = 0; n < B; ++n)
      expected(pool, f.seqs[n], q, static_cast<int>(n), layer, eo[n], el[n]);
    std::vector<std::pair<size_t, std::vector<uint8_t>>> staged;
    for (size_t p = 0; p < pool.pagesCreated(); ++p)
      if (pool.pageInUse(static_cast<kv::PageId>(p))) {
        const uint8_t *bytes = pool.pageData(static_cast<kv::PageId>(p));
        staged.emplace_back(p, std::vector<uint8_t>(bytes, bytes + pool.pageBytes()));
      }
    appendOne(f.seqs[1]);
    appendOne(f.seqs[3]);
    std::vector<float> o(B * kHq * kS * kD), lse(B * kHq * kS);
    ASSERT_TRUE(cuda::copyToHostAsync(o.data(), oD, oBytes, stream, why) &&
                cuda::copyToHostAsync(lse.data(), lD, lBytes, stream, why) &&
                cuda::streamSynchronize(stream, why))
        << why;
    for (int64_t n = 0; n < B; ++n) {
      for (int x = 0; x < kHq * kS * kD; ++x)
        ASSERT_NEAR(o[n * kHq * kS * kD + x], eo[n][x], 2e-2) << "sequence " << n << " element " << x;
      for (int x = 0; x < kHq * kS; ++x)
        if (!std::isinf(el[n][x]))
          EXPECT_NEAR(lse[n * kHq * kS + x], el[n][x], 2e-2);
    }
    const uint8_t *devBase = static_cast<const uint8_t *>(dev->kvView(pool, 0, 0).data);
    std::vector<uint8_t> page(pool.pageBytes());
    for (const auto &[p, bytes] : staged) {
      ASSERT_TRUE(cuda::copyToHost(page.data(), devBase + p * page.size(), page.size(), why)) << why;
      ASSERT_EQ(page, bytes) << "page " << p;
    }
  }
  EXPECT_EQ(tables.copies(), 6); // two per step
  cuda::streamDestroy(stream);
}

/// Bad requests get errors, with or without a GPU.
TEST(PagedDecode, DevicePagesRefuseWhatTheyCannotDo) {
  PoolFixture f = makePool(kv::Quant::q8);
  kv::Error error;
  EXPECT_FALSE(kv::DevicePages::create(*f.pool, 0, error));
  EXPECT_NE(error.find("capacity must be positive"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(kv::DevicePages::create(*f.pool, INT64_MAX, error));
  EXPECT_NE(error.find("do not fit"), std::string::npos) << error;
  // Every pool has its own id, which the GPU copy checks on every sync.
  PoolFixture other = makePool(kv::Quant::q8);
  EXPECT_NE(f.pool->uniqueId(), other.pool->uniqueId());
  std::string why;
  if (!cuda::init(why)) {
    error.clear();
    EXPECT_FALSE(kv::DevicePages::create(*f.pool, 8, error));
    EXPECT_NE(error.find("need a GPU"), std::string::npos) << error;
  }
}
