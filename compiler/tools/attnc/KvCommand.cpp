//===- KvCommand.cpp - attnc kv: inspect, verify and synthesize KV files --===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   attnc kv inspect FILE     print the metadata of a saved KV cache
//   attnc kv verify FILE      exit 0 if the file is whole and consistent
//   attnc kv synth --out FILE --tokens N --layers L --kv-heads H
//                  --head-dim D --quant bf16|q8|q4 [--group-size G]
//                  [--page-tokens P] [--model-id ID] [--seed S]
//
//===----------------------------------------------------------------------===//

#include "compiler/tools/attnc/KvCommand.h"
#include "attnc/runtime/KvFile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

using namespace attnc::kv;

namespace {
int usage() {
  std::fprintf(stderr,
               "usage: attnc kv inspect FILE\n"
               "       attnc kv verify FILE\n"
               "       attnc kv synth --out FILE --tokens N --layers L --kv-heads H --head-dim D\n"
               "                      --quant bf16|q8|q4 [--group-size G] [--page-tokens P]\n"
               "                      [--model-id ID] [--seed S]\n");
  return 1;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "attnc: error: %s\n", message.c_str());
  return 1;
}

void print(const std::string &path, const KvFileMeta &m) {
  std::printf("file:            %s (%llu bytes)\n", path.c_str(),
              static_cast<unsigned long long>(m.fileBytes));
  std::printf("format:          attnc-kv version %d (safetensors)\n", m.version);
  std::printf("quantization:    %s", quantName(m.quant));
  if (m.quant != Quant::bf16)
    std::printf(", f32 scale per %d features", m.groupSize);
  std::printf("\nlayers:          %d\nkv heads:        %d\nhead dim:        %d\n", m.layers,
              m.kvHeads, m.headDim);
  std::printf("tokens:          %lld (position offset %lld)\n", static_cast<long long>(m.tokens),
              static_cast<long long>(m.positionOffset));
  std::printf("page tokens:     %d\nmodel id:        %s\ndata:            %llu bytes, crc32c %08x\n",
              m.pageTokens, m.modelId.c_str(), static_cast<unsigned long long>(m.dataBytes),
              m.checksum);
}

/// Parses a positive integer flag value.
bool number(const std::map<std::string, std::string> &flags, const char *name, long long lo,
            long long hi, long long &out, bool required, long long fallback, std::string &error) {
  auto it = flags.find(name);
  if (it == flags.end()) {
    if (required)
      error = std::string("kv synth needs ") + name;
    out = fallback;
    return !required;
  }
  char *end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end || v < lo || v > hi) {
    error = std::string(name) + " takes an integer in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "], got '" + it->second + "'";
    return false;
  }
  out = v;
  return true;
}
} // namespace

int attnc::runKvCommand(int argc, char **argv) {
  if (argc < 2)
    return usage();
  std::string verb = argv[1];
  if (verb == "inspect" || verb == "verify") {
    if (argc != 3)
      return usage();
    KvFileMeta meta;
    Error e = verb == "inspect" ? readHeader(argv[2], meta) : verifyFile(argv[2], meta);
    if (!e.empty())
      return fail(std::string(argv[2]) + ": " + e);
    if (verb == "inspect")
      print(argv[2], meta);
    else
      std::printf("%s: OK (%s, %lld tokens, %d layers x %d KV heads x %d, crc32c %08x)\n", argv[2],
                  quantName(meta.quant), static_cast<long long>(meta.tokens), meta.layers,
                  meta.kvHeads, meta.headDim, meta.checksum);
    return 0;
  }
  if (verb != "synth")
    return fail("unknown kv command '" + verb + "' (inspect, verify or synth)");
  std::map<std::string, std::string> flags;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc)
      return fail("kv synth: expected --flag VALUE, got '" + a + "'");
    flags[a] = argv[++i];
  }
  static const char *known[] = {"--out", "--tokens", "--layers", "--kv-heads", "--head-dim",
                                "--quant", "--group-size", "--page-tokens", "--model-id", "--seed"};
  for (const auto &f : flags)
    if (std::none_of(std::begin(known), std::end(known),
                     [&](const char *k) { return f.first == k; }))
      return fail("kv synth: unknown flag '" + f.first + "'");
  if (!flags.count("--out"))
    return fail("kv synth needs --out FILE");
  PoolConfig c;
  std::string error;
  long long tokens, layers, heads, dim, group, page, seed;
  if (!number(flags, "--tokens", 0, 1ll << 30, tokens, true, 0, error) ||
      !number(flags, "--layers", 1, 1 << 16, layers, true, 0, error) ||
      !number(flags, "--kv-heads", 1, 1 << 16, heads, true, 0, error) ||
      !number(flags, "--head-dim", 1, 1 << 16, dim, true, 0, error) ||
      !number(flags, "--group-size", 1, 1 << 16, group, false, 32, error) ||
      !number(flags, "--page-tokens", 1, 1 << 16, page, false, 16, error) ||
      !number(flags, "--seed", 0, 1ll << 31, seed, false, 1, error))
    return fail(error);
  if (!flags.count("--quant") || !parseQuant(flags["--quant"], c.quant))
    return fail("kv synth needs --quant bf16, q8 or q4");
  c.layers = static_cast<int>(layers);
  c.kvHeads = static_cast<int>(heads);
  c.headDim = static_cast<int>(dim);
  c.groupSize = static_cast<int>(group);
  c.pageTokens = static_cast<int>(page);
  Error e = synthesizeFile(flags["--out"], c, tokens, flags.count("--model-id") ? flags["--model-id"] : "synthetic",
                           static_cast<uint32_t>(seed));
  if (!e.empty())
    return fail(e);
  KvFileMeta meta;
  if (Error v = readHeader(flags["--out"], meta); !v.empty())
    return fail("the file just written does not read back: " + v);
  std::printf("wrote %s: %s, %lld tokens, %llu bytes\n", flags["--out"].c_str(),
              quantName(c.quant), tokens, static_cast<unsigned long long>(meta.fileBytes));
  return 0;
}
