//===- KvFile.cpp - Save and restore KV caches as safetensors -------------===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Files are untrusted input: the header is parsed by a small strict JSON
// reader with size and depth limits, every tensor must be exactly the one
// the metadata implies, offsets must tile the data section, and the data's
// CRC-32C must match before a restored sequence exists (and before any
// cached prefix is evicted to make room for it).
//
//===----------------------------------------------------------------------===//

#include "attnc/runtime/KvFile.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <random>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <vector>

using namespace attnc;
using namespace attnc::kv;

namespace {
constexpr uint64_t kMaxHeader = 16u << 20;

//===----------------------------------------------------------------------===//
// A strict JSON reader for the header: objects, arrays, strings, integers.
//===----------------------------------------------------------------------===//

struct Json {
  enum Kind { object, array, string, number } kind = object;
  std::map<std::string, Json> members;
  std::vector<Json> items;
  std::string text;
  int64_t value = 0;
};

class JsonReader {
public:
  JsonReader(const std::string &s) : s(s) {}
  bool parse(Json &out, std::string &error) {
    if (!value(out, 0)) {
      error = "malformed header JSON at byte " + std::to_string(pos) + (why.empty() ? "" : ": " + why);
      return false;
    }
    skip();
    if (pos != s.size()) {
      error = "trailing bytes after the header JSON";
      return false;
    }
    return true;
  }

private:
  void skip() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t' || s[pos] == '\r'))
      ++pos;
  }
  bool str(std::string &out) {
    if (pos >= s.size() || s[pos] != '"')
      return false;
    ++pos;
    while (pos < s.size() && s[pos] != '"') {
      char c = s[pos++];
      if (static_cast<unsigned char>(c) < 0x20)
        return why = "control character in a string", false;
      if (c == '\\') {
        if (pos >= s.size())
          return false;
        char e = s[pos++];
        switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          if (pos + 4 > s.size())
            return false;
          unsigned code = static_cast<unsigned>(std::strtoul(s.substr(pos, 4).c_str(), nullptr, 16));
          pos += 4;
          if (code < 0x80) out += static_cast<char>(code);
          else if (code < 0x800) {
            out += static_cast<char>(0xC0 | (code >> 6));
            out += static_cast<char>(0x80 | (code & 0x3F));
          } else {
            out += static_cast<char>(0xE0 | (code >> 12));
            out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code & 0x3F));
          }
          break;
        }
        default: return why = "bad escape", false;
        }
      } else {
        out += c;
      }
    }
    if (pos >= s.size())
      return false;
    ++pos;
    return true;
  }
  /// `open item (, item)* close` or `open close`, the opening character at
  /// `pos`; `item` parses one element.
  template <typename Item> bool list(char close, Item item) {
    ++pos;
    skip();
    if (pos < s.size() && s[pos] == close)
      return ++pos, true;
    while (true) {
      skip();
      if (!item())
        return false;
      skip();
      if (pos < s.size() && s[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < s.size() && s[pos] == close)
        return ++pos, true;
      return false;
    }
  }
  bool value(Json &out, int depth) {
    if (depth > 8)
      return why = "nested too deep", false;
    skip();
    if (pos >= s.size())
      return false;
    char c = s[pos];
    if (c == '{') {
      out.kind = Json::object;
      return list('}', [&] {
        std::string key;
        if (!str(key))
          return false;
        if (out.members.count(key))
          return why = "duplicate key '" + key + "'", false;
        skip();
        if (pos >= s.size() || s[pos++] != ':')
          return false;
        return value(out.members[key], depth + 1);
      });
    }
    if (c == '[') {
      out.kind = Json::array;
      return list(']', [&] {
        out.items.emplace_back();
        return out.items.size() <= 64 && value(out.items.back(), depth + 1);
      });
    }
    if (c == '"') {
      out.kind = Json::string;
      return str(out.text);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      out.kind = Json::number;
      size_t start = pos;
      if (c == '-')
        ++pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        ++pos;
      if (pos - start > 18)
        return why = "number too long", false;
      out.value = std::strtoll(s.substr(start, pos - start).c_str(), nullptr, 10);
      return pos > start + (c == '-');
    }
    return false;
  }
  const std::string &s;
  size_t pos = 0;
  std::string why;
};

std::string jsonEscape(const std::string &in) {
  std::string out;
  for (char c : in) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

//===----------------------------------------------------------------------===//
// What a file of given metadata must hold
//===----------------------------------------------------------------------===//

struct TensorSpec {
  std::string name, dtype;
  std::vector<int64_t> shape;
  /// 128 bits: a crafted header's sizes must not wrap.
  unsigned __int128 bytes = 0;
  int layer = 0, which = 0; // K = 0, V = 1
  bool scales = false;
};

size_t rowBytesOf(Quant q, int headDim) {
  return q == Quant::bf16 ? 2 * static_cast<size_t>(headDim)
         : q == Quant::q8 ? static_cast<size_t>(headDim)
                          : static_cast<size_t>(headDim) / 2;
}

/// The tensors in file order, for `meta`.
std::vector<TensorSpec> expectedTensors(const KvFileMeta &m) {
  std::vector<TensorSpec> out;
  const char *dtype = m.quant == Quant::bf16 ? "BF16" : m.quant == Quant::q8 ? "I8" : "U8";
  int64_t width = m.quant == Quant::q4 ? m.headDim / 2 : m.headDim;
  int64_t groups = m.quant == Quant::bf16 ? 0 : m.headDim / m.groupSize;
  for (int l = 0; l < m.layers; ++l)
    for (const char *which : {"k", "v"}) {
      TensorSpec t;
      t.name = "layer" + std::to_string(l) + "." + which;
      t.dtype = dtype;
      t.shape = {m.kvHeads, m.tokens, width};
      t.bytes = static_cast<unsigned __int128>(m.kvHeads) * static_cast<uint64_t>(m.tokens) *
                rowBytesOf(m.quant, m.headDim);
      t.layer = l;
      t.which = which[0] == 'v';
      out.push_back(t);
      if (groups) {
        TensorSpec s = t;
        s.name = t.name + "_scale";
        s.dtype = "F32";
        s.shape = {m.kvHeads, m.tokens, groups};
        s.bytes = static_cast<unsigned __int128>(m.kvHeads) * static_cast<uint64_t>(m.tokens) *
                  groups * 4;
        s.scales = true;
        out.push_back(s);
      }
    }
  return out;
}

bool toInt(const std::map<std::string, Json> &meta, const char *key, int64_t lo, int64_t hi,
           int64_t &out, Error &error) {
  auto it = meta.find(key);
  if (it == meta.end() || it->second.kind != Json::string) {
    error = std::string("metadata has no '") + key + "'";
    return false;
  }
  const std::string &t = it->second.text;
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end || errno || v < lo || v > hi) {
    error = std::string("metadata '") + key + "' = '" + t + "' is not an integer in [" +
            std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return false;
  }
  out = v;
  return true;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// A restore's reads: at most this many runs or bytes per preadv (the
/// batch is checksummed while it is in cache).
constexpr size_t kReadBatchRuns = 256;
constexpr size_t kReadBatchBytes = 512u << 10;

/// Fills `v`'s buffers in order from `offset` on; false on an error or an
/// early end of file. (`v` is a copy: a short read advances its entries.)
bool readVectors(int fd, std::vector<iovec> v, uint64_t offset) {
  size_t first = 0;
  while (first < v.size()) {
    ssize_t got = ::preadv(fd, v.data() + first, static_cast<int>(v.size() - first),
                           static_cast<off_t>(offset));
    if (got <= 0) {
      if (got < 0 && errno == EINTR)
        continue;
      return false;
    }
    offset += static_cast<uint64_t>(got);
    for (size_t n = static_cast<size_t>(got); n;) {
      size_t take = std::min(n, v[first].iov_len);
      v[first].iov_base = static_cast<uint8_t *>(v[first].iov_base) + take;
      v[first].iov_len -= take;
      n -= take;
      if (!v[first].iov_len)
        ++first;
    }
    while (first < v.size() && !v[first].iov_len)
      ++first;
  }
  return true;
}

bool readAll(int fd, void *buf, size_t n, uint64_t offset) {
  uint8_t *p = static_cast<uint8_t *>(buf);
  while (n) {
    ssize_t got = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (got <= 0) {
      if (got < 0 && errno == EINTR)
        continue;
      return false;
    }
    p += got;
    n -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return true;
}

/// Parses and checks the header; `dataStart` is where the data begins.
Error parseHeader(int fd, uint64_t fileBytes, KvFileMeta &meta, uint64_t &dataStart) {
  meta = KvFileMeta();
  meta.fileBytes = fileBytes;
  if (fileBytes < 8)
    return "the file is " + std::to_string(fileBytes) + " bytes: too short for a safetensors header";
  uint8_t lenBytes[8];
  if (!readAll(fd, lenBytes, 8, 0))
    return "cannot read the header length";
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | lenBytes[i];
  if (n > kMaxHeader || n > fileBytes - 8)
    return "the header length (" + std::to_string(n) + ") runs past the end of the file (" +
           std::to_string(fileBytes) + " bytes): truncated or not a safetensors file";
  std::string text(n, '\0');
  if (n && !readAll(fd, &text[0], n, 8))
    return "cannot read the header";
  Json root;
  Error error;
  if (!JsonReader(text).parse(root, error))
    return error;
  if (root.kind != Json::object)
    return "the header is not a JSON object";
  auto metaIt = root.members.find("__metadata__");
  if (metaIt == root.members.end() || metaIt->second.kind != Json::object)
    return "the header has no __metadata__: not an attnc KV cache file";
  const auto &md = metaIt->second.members;
  for (const auto &kv : md)
    if (kv.second.kind != Json::string)
      return "metadata '" + kv.first + "' is not a string";
  auto format = md.find("format");
  if (format == md.end() || format->second.text != "attnc-kv")
    return "metadata 'format' is not 'attnc-kv': not an attnc KV cache file";
  int64_t v;
  if (!toInt(md, "format_version", 0, 1 << 20, v, error))
    return error;
  meta.version = static_cast<int>(v);
  if (meta.version != kKvFormatVersion)
    return "format version " + std::to_string(meta.version) + ", this attnc reads version " +
           std::to_string(kKvFormatVersion);
  auto quant = md.find("quant");
  if (quant == md.end() || !parseQuant(quant->second.text, meta.quant))
    return "metadata 'quant' must be bf16, q8 or q4";
  constexpr int64_t kMax = 1 << 16;
  int64_t layers, heads, dim, page, group, tokens, offset;
  if (!toInt(md, "layers", 1, kMax, layers, error) || !toInt(md, "kv_heads", 1, kMax, heads, error) ||
      !toInt(md, "head_dim", 1, kMax, dim, error) || !toInt(md, "page_tokens", 1, kMax, page, error) ||
      !toInt(md, "group_size", 0, kMax, group, error) ||
      !toInt(md, "tokens", 0, int64_t(1) << 40, tokens, error) ||
      !toInt(md, "position_offset", 0, int64_t(1) << 40, offset, error))
    return error;
  meta.layers = static_cast<int>(layers);
  meta.kvHeads = static_cast<int>(heads);
  meta.headDim = static_cast<int>(dim);
  meta.pageTokens = static_cast<int>(page);
  meta.groupSize = static_cast<int>(group);
  meta.tokens = tokens;
  meta.positionOffset = offset;
  if (meta.quant != Quant::bf16 &&
      (group < 1 || dim % group || (meta.quant == Quant::q4 && group % 2)))
    return "group size " + std::to_string(group) + " does not fit head dim " + std::to_string(dim);
  if (auto model = md.find("model_id"); model != md.end())
    meta.modelId = model->second.text;
  auto sum = md.find("checksum");
  if (sum == md.end() || sum->second.text.rfind("crc32c:", 0) != 0 || sum->second.text.size() != 15)
    return "metadata 'checksum' must be 'crc32c:' and 8 hex digits";
  char *end = nullptr;
  meta.checksum = static_cast<uint32_t>(std::strtoul(sum->second.text.c_str() + 7, &end, 16));
  if (*end)
    return "metadata 'checksum' is not hexadecimal";

  // The tensors must be exactly those the metadata implies, back to back.
  dataStart = 8 + n;
  std::vector<TensorSpec> want = expectedTensors(meta);
  unsigned __int128 implied = 0;
  for (const TensorSpec &t : want)
    implied += t.bytes;
  if (dataStart + implied > fileBytes)
    return "the header describes " + std::to_string(meta.layers) + " layers x " +
           std::to_string(meta.kvHeads) + " KV heads x " + std::to_string(meta.tokens) +
           " tokens, more data than the file's " + std::to_string(fileBytes) +
           " bytes: the file is truncated or its header is corrupted";
  if (root.members.size() != want.size() + 1)
    return "the header lists " + std::to_string(root.members.size() - 1) + " tensors, expected " +
           std::to_string(want.size());
  uint64_t at = 0; // no wrap: the sizes fit in the file
  for (const TensorSpec &t : want) {
    auto it = root.members.find(t.name);
    if (it == root.members.end() || it->second.kind != Json::object)
      return "tensor '" + t.name + "' is missing";
    const auto &e = it->second.members;
    auto dtype = e.find("dtype");
    auto shape = e.find("shape");
    auto offs = e.find("data_offsets");
    if (dtype == e.end() || shape == e.end() || offs == e.end() || e.size() != 3)
      return "tensor '" + t.name + "' needs exactly dtype, shape and data_offsets";
    if (dtype->second.text != t.dtype)
      return "tensor '" + t.name + "' is " + dtype->second.text + ", expected " + t.dtype;
    std::vector<int64_t> dims;
    for (const Json &d : shape->second.items)
      dims.push_back(d.kind == Json::number ? d.value : -1);
    if (shape->second.kind != Json::array || dims != t.shape)
      return "tensor '" + t.name + "' has the wrong shape for the metadata";
    const auto &o = offs->second.items;
    if (offs->second.kind != Json::array || o.size() != 2 || o[0].kind != Json::number ||
        o[1].kind != Json::number || o[0].value != static_cast<int64_t>(at) ||
        o[1].value != static_cast<int64_t>(at + static_cast<uint64_t>(t.bytes)))
      return "tensor '" + t.name + "' has data offsets that do not follow the previous tensor";
    at += static_cast<uint64_t>(t.bytes);
  }
  meta.dataBytes = at;
  if (dataStart + at != fileBytes)
    return "the data section is " + std::to_string(fileBytes - dataStart) + " bytes, the header "
           "describes " + std::to_string(at) + ": the file is truncated or has trailing bytes";
  return "";
}

Error openFile(const std::string &path, Fd &f, uint64_t &size) {
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0)
    return "cannot open '" + path + "': " + std::strerror(errno);
  struct stat st;
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode))
    return "'" + path + "' is not a regular file";
  size = static_cast<uint64_t>(st.st_size);
  return "";
}

/// Writes `data` to `fd`; a test hook ($ATTNC_KV_TEST_DIE_AFTER bytes) ends
/// the process part way, as a killed writer would.
bool writeAll(int fd, const void *data, size_t n, uint64_t &written) {
  const char *dieAfter = std::getenv("ATTNC_KV_TEST_DIE_AFTER");
  const uint8_t *p = static_cast<const uint8_t *>(data);
  while (n) {
    size_t chunk = n;
    if (dieAfter) {
      uint64_t limit = std::strtoull(dieAfter, nullptr, 10);
      if (written >= limit)
        ::_exit(86);
      chunk = static_cast<size_t>(std::min<uint64_t>(chunk, limit - written));
    }
    ssize_t put = ::write(fd, p, chunk);
    if (put < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += put;
    n -= static_cast<size_t>(put);
    written += static_cast<uint64_t>(put);
  }
  return true;
}

/// Visits tensor `t` of a sequence as runs of consecutive tokens that sit
/// back to back in one page (BlockPool::rowOffset keeps a head's slots in
/// order): fn(page, byte offset in the page, byte offset in the tensor, bytes).
template <typename Fn>
void forEachRun(const BlockPool &pool, const std::vector<PageId> &table, int64_t tokens,
                const TensorSpec &t, Fn fn) {
  const PoolConfig &c = pool.config();
  size_t rowBytes = t.scales ? pool.scaleCount() * sizeof(float) : pool.rowBytes();
  for (int h = 0; h < c.kvHeads; ++h)
    for (int64_t at = 0; at < tokens;) {
      int slot = static_cast<int>(at % c.pageTokens);
      int64_t n = std::min<int64_t>(c.pageTokens - slot, tokens - at);
      fn(table[at / c.pageTokens], pool.rowOffset(t.layer, t.which, h, slot, t.scales),
         (static_cast<size_t>(h) * tokens + at) * rowBytes, static_cast<size_t>(n) * rowBytes);
      at += n;
    }
}

Error crcMismatch(uint32_t got, uint32_t want) {
  char g[16], w[16];
  std::snprintf(g, sizeof(g), "%08x", got);
  std::snprintf(w, sizeof(w), "%08x", want);
  return std::string("the data's CRC-32C is ") + g + ", the header records " + w +
         ": the file is corrupted";
}

/// Checks the data section against the header's CRC-32C, streaming it
/// through a 1 MiB buffer.
Error checkData(int fd, const KvFileMeta &meta, uint64_t dataStart) {
  std::vector<uint8_t> buf(1 << 20);
  uint32_t crc = 0;
  for (uint64_t at = 0; at < meta.dataBytes;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), meta.dataBytes - at));
    if (!readAll(fd, buf.data(), n, dataStart + at))
      return "cannot read the data at byte " + std::to_string(dataStart + at);
    crc = crc32c(buf.data(), n, crc);
    at += n;
  }
  return crc == meta.checksum ? "" : crcMismatch(crc, meta.checksum);
}

/// Opens `path` and checks its header.
Error openAndParse(const std::string &path, Fd &f, KvFileMeta &meta, uint64_t &dataStart) {
  uint64_t size = 0;
  Error e = openFile(path, f, size);
  return e.empty() ? parseHeader(f.fd, size, meta, dataStart) : e;
}
} // namespace

Error kv::saveSequence(const BlockPool &pool, SeqId seq, const std::string &path,
                       const std::string &modelId, int64_t positionOffset) {
  if (!pool.hasSequence(seq))
    return "no sequence " + std::to_string(seq);
  const PoolConfig &c = pool.config();
  KvFileMeta m;
  m.version = kKvFormatVersion;
  m.quant = c.quant;
  m.groupSize = c.quant == Quant::bf16 ? 0 : c.groupSize;
  m.pageTokens = c.pageTokens;
  m.layers = c.layers;
  m.kvHeads = c.kvHeads;
  m.headDim = c.headDim;
  m.tokens = pool.length(seq);
  m.positionOffset = positionOffset;
  m.modelId = modelId;
  const std::vector<PageId> &table = pool.blockTable(seq);

  std::vector<TensorSpec> tensors = expectedTensors(m);

  // The header names the data's checksum, which is known only after the
  // data: it goes out first with a placeholder of the same length and is
  // written again at the end. The data streams through one buffer, a tensor
  // at a time, so a save needs memory for one tensor, not the whole file.
  auto headerWith = [&](uint32_t crc) {
    char sum[16];
    std::snprintf(sum, sizeof(sum), "%08x", crc);
    std::string header = "{\"__metadata__\":{\"format\":\"attnc-kv\",\"format_version\":\"" +
                         std::to_string(kKvFormatVersion) + "\",\"quant\":\"" +
                         quantName(c.quant) + "\",\"group_size\":\"" +
                         std::to_string(m.groupSize) + "\",\"page_tokens\":\"" +
                         std::to_string(c.pageTokens) + "\",\"layers\":\"" +
                         std::to_string(c.layers) + "\",\"kv_heads\":\"" +
                         std::to_string(c.kvHeads) + "\",\"head_dim\":\"" +
                         std::to_string(c.headDim) + "\",\"tokens\":\"" +
                         std::to_string(m.tokens) + "\",\"position_offset\":\"" +
                         std::to_string(positionOffset) + "\",\"model_id\":\"" +
                         jsonEscape(modelId) + "\",\"checksum\":\"crc32c:" + sum + "\"}";
    uint64_t at = 0;
    for (const TensorSpec &t : tensors) {
      uint64_t bytes = static_cast<uint64_t>(t.bytes);
      header += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" +
                std::to_string(t.shape[0]) + "," + std::to_string(t.shape[1]) + "," +
                std::to_string(t.shape[2]) + "],\"data_offsets\":[" + std::to_string(at) +
                "," + std::to_string(at + bytes) + "]}";
      at += bytes;
    }
    header += "}";
    while (header.size() % 8)
      header += ' '; // keeps the data 8-byte aligned
    return header;
  };
  std::string header = headerWith(0);
  uint8_t len[8];
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<uint8_t>(n >> (8 * i));

  // Temporary file, fsync, rename, fsync the directory: a reader sees the
  // old file or the new one, never a part. Each save has a temporary of its
  // own, so two threads saving to one path leave one whole file, the last.
  static std::atomic<unsigned long> saves{0};
  std::string tmp =
      path + ".tmp." + std::to_string(::getpid()) + "." +
      std::to_string(saves.fetch_add(1, std::memory_order_relaxed));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return "cannot create '" + tmp + "': " + std::strerror(errno);
  uint64_t written = 0;
  bool ok = writeAll(fd, len, 8, written) && writeAll(fd, header.data(), header.size(), written);
  std::unique_ptr<uint8_t[]> buffer;
  size_t capacity = 0;
  uint32_t crc = 0;
  for (const TensorSpec &t : tensors) {
    if (!ok)
      break;
    size_t bytes = static_cast<size_t>(t.bytes);
    if (bytes > capacity) {
      buffer.reset(new uint8_t[bytes]); // no zero fill: every byte is gathered below
      capacity = bytes;
    }
    uint8_t *out = buffer.get();
    forEachRun(pool, table, m.tokens, t,
               [&](PageId page, size_t pageOff, size_t fileOff, size_t runBytes) {
                 std::memcpy(out + fileOff, pool.pageData(page) + pageOff, runBytes);
               });
    crc = crc32c(out, bytes, crc);
    ok = writeAll(fd, out, bytes, written);
  }
  if (ok) {
    std::string final = headerWith(crc);
    ok = final.size() == header.size() &&
         ::pwrite(fd, final.data(), final.size(), 8) == static_cast<ssize_t>(final.size());
  }
  // $ATTNC_KV_NO_FSYNC skips the flush to disk (benchmarks measure both);
  // the rename still makes the switch atomic for readers.
  if (!std::getenv("ATTNC_KV_NO_FSYNC"))
    ok = ok && ::fsync(fd) == 0;
  int savedErrno = errno;
  ok = (::close(fd) == 0) && ok;
  if (!ok) {
    ::unlink(tmp.c_str());
    return "cannot write '" + tmp + "': " + std::strerror(savedErrno);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    savedErrno = errno;
    ::unlink(tmp.c_str());
    return "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(savedErrno);
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty())
    dir = "/";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return "";
}

Error kv::readHeader(const std::string &path, KvFileMeta &meta) {
  Fd f;
  uint64_t dataStart = 0;
  return openAndParse(path, f, meta, dataStart);
}

Error kv::verifyFile(const std::string &path, KvFileMeta &meta) {
  Fd f;
  uint64_t dataStart = 0;
  Error e = openAndParse(path, f, meta, dataStart);
  return e.empty() ? checkData(f.fd, meta, dataStart) : e;
}

Error kv::restoreSequence(BlockPool &pool, const std::string &path, SeqId &seq, KvFileMeta &meta,
                          const std::string &modelId) {
  seq = -1;
  Fd f;
  uint64_t dataStart = 0;
  Error e = openAndParse(path, f, meta, dataStart);
  if (!e.empty())
    return e;
  const PoolConfig &c = pool.config();
  int poolGroup = c.quant == Quant::bf16 ? 0 : c.groupSize;
  if (meta.quant != c.quant || meta.groupSize != poolGroup || meta.layers != c.layers ||
      meta.kvHeads != c.kvHeads || meta.headDim != c.headDim)
    return std::string("the file holds ") + quantName(meta.quant) + " (group " +
           std::to_string(meta.groupSize) + "), " + std::to_string(meta.layers) + " layers x " +
           std::to_string(meta.kvHeads) + " KV heads x head dim " + std::to_string(meta.headDim) +
           "; the pool holds " + quantName(c.quant) + " (group " + std::to_string(poolGroup) +
           "), " + std::to_string(c.layers) + " x " + std::to_string(c.kvHeads) + " x " +
           std::to_string(c.headDim);
  if (!modelId.empty() && meta.modelId != modelId)
    return "the file is for model '" + meta.modelId + "', not '" + modelId + "'";
  // A restore that fits in free pages reads the file once, straight into
  // fresh pages, and checks the CRC as it goes: a bad file gives those
  // pages back and nothing else changed. One that must evict cached
  // prefixes to make room checks the whole data section first, so that a
  // bad file evicts nothing; it then reads the data a second time.
  // $ATTNC_KV_CHECK_FIRST=1 takes the second way always (tests, benchmarks).
  size_t need = static_cast<size_t>((meta.tokens + c.pageTokens - 1) / c.pageTokens);
  const char *checkFirstEnv = std::getenv("ATTNC_KV_CHECK_FIRST");
  bool checkFirst = pool.pagesFreeWithoutEviction() < need ||
                    (checkFirstEnv && std::string(checkFirstEnv) == "1");
  if (checkFirst) {
    e = checkData(f.fd, meta, dataStart);
    if (!e.empty())
      return e;
  }
  std::vector<PageId> table;
  SeqId id = pool.createWithPages(meta.tokens, table, e);
  if (id < 0)
    return e;
  // Test hook: change the file's last data byte in place here, as another
  // process could between a checked restore's two reads.
  if (checkFirst && std::getenv("ATTNC_KV_TEST_TOUCH_BETWEEN_READS") && meta.dataBytes) {
    int wfd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    uint8_t x = 0;
    uint64_t last = dataStart + meta.dataBytes - 1;
    if (wfd >= 0 && ::pread(wfd, &x, 1, static_cast<off_t>(last)) == 1) {
      x ^= 0x5a;
      (void)!::pwrite(wfd, &x, 1, static_cast<off_t>(last));
    }
    if (wfd >= 0)
      ::close(wfd);
  }
  // The tensors lie back to back in the file and forEachRun gives each
  // one's runs (a page's tokens of one head) in file order, so the data
  // section is one sequence of runs: preadv reads them straight into the
  // pages, a batch at a time, and each batch is checksummed while it is
  // still in cache.
  uint32_t crc = 0;
  uint64_t at = 0; // data bytes read so far
  std::vector<iovec> batch;
  size_t batchBytes = 0;
  bool readFailed = false;
  auto flush = [&]() {
    if (batch.empty() || readFailed)
      return;
    if (!readVectors(f.fd, batch, dataStart + at)) {
      readFailed = true;
      return;
    }
    for (const iovec &v : batch)
      crc = crc32c(v.iov_base, v.iov_len, crc);
    at += batchBytes;
    batch.clear();
    batchBytes = 0;
  };
  for (const TensorSpec &t : expectedTensors(meta))
    forEachRun(pool, table, meta.tokens, t,
               [&](PageId page, size_t pageOff, size_t, size_t runBytes) {
                 batch.push_back({pool.pageData(page) + pageOff, runBytes});
                 batchBytes += runBytes;
                 if (batch.size() == kReadBatchRuns || batchBytes >= kReadBatchBytes)
                   flush();
               });
  flush();
  if (readFailed) {
    pool.free(id);
    return "cannot read the data at byte " + std::to_string(dataStart + at);
  }
  if (crc != meta.checksum) {
    pool.free(id);
    if (checkFirst)
      return "the file changed while it was read: its data no longer matches its CRC-32C";
    return crcMismatch(crc, meta.checksum);
  }
  seq = id;
  return "";
}

Error kv::synthesizeFile(const std::string &path, const PoolConfig &config, int64_t tokens,
                         const std::string &modelId, uint32_t seed) {
  if (tokens < 0)
    return "the token count must not be negative";
  PoolConfig c = config;
  c.byteBudget = 0;
  Error e;
  auto pool = BlockPool::create(c, e);
  if (!pool)
    return e;
  SeqId seq = pool->createSequence();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  // In chunks, so a long cache needs no f32 copy of itself: up to 256
  // tokens and 64 MiB of f32 rows each for K and V.
  size_t per = static_cast<size_t>(c.layers) * c.kvHeads * c.headDim;
  constexpr size_t kChunkFloats = size_t(16) << 20;
  if (per > kChunkFloats)
    return "one token's keys take " + std::to_string(per * 4 >> 20) +
           " MiB as f32 (layers x KV heads x head dim); synth takes at most 64 "
           "MiB";
  const int64_t chunk =
      static_cast<int64_t>(std::min<size_t>(256, kChunkFloats / per));
  std::vector<float> k(per * chunk), v(per * chunk);
  for (int64_t done = 0; done < tokens; done += chunk) {
    int64_t n = std::min(chunk, tokens - done);
    for (size_t i = 0; i < per * static_cast<size_t>(n); ++i) {
      k[i] = normal(rng);
      v[i] = normal(rng);
    }
    e = pool->append(seq, k.data(), v.data(), n);
    if (!e.empty())
      return e;
  }
  return saveSequence(*pool, seq, path, modelId, 0);
}
