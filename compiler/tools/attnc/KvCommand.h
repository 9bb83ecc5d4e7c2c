//===- KvCommand.h - attnc kv subcommands -----------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTNC_COMPILER_TOOLS_ATTNC_KVCOMMAND_H
#define ATTNC_COMPILER_TOOLS_ATTNC_KVCOMMAND_H

namespace attnc {
/// `attnc kv ...`: argv[0] is "kv". Returns the exit code.
int runKvCommand(int argc, char **argv);
} // namespace attnc

#endif // ATTNC_COMPILER_TOOLS_ATTNC_KVCOMMAND_H
