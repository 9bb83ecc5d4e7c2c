//===- PublicApi.cpp - Anchor of libattnc.so --------------------*- C++ -*-===//
//
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// libattnc.so is the static compiler library linked whole; this file gives
// the shared library target a source of its own.
//
//===----------------------------------------------------------------------===//

#include "attnc/attnc.h"
