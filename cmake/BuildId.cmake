# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Writes OUTPUT with ATTNC_BUILD_ID, a hash of the sources that decide what
# code the compiler generates (the passes' headers too: CpuLowering.h holds
# code). The JIT's disk cache keys objects by it, so a changed lowering never
# reuses an object an older compiler made.
file(GLOB_RECURSE sources
  ${SRC}/dialects/*.cpp ${SRC}/dialects/*.td ${SRC}/passes/*.cpp ${SRC}/passes/*.h
  ${SRC}/passes/*.td
  ${SRC}/frontends/spec/*.cpp ${SRC}/compiler/*.cpp)
list(SORT sources)
set(all "")
foreach(f ${sources})
  file(SHA256 ${f} h)
  string(APPEND all ${h})
endforeach()
string(SHA256 id "${all}")
string(SUBSTRING ${id} 0 16 id)
set(text "#define ATTNC_BUILD_ID \"${id}\"\n")
include(${CMAKE_CURRENT_LIST_DIR}/WriteIfChanged.cmake)
attnc_write_if_changed(${OUTPUT} "${text}")
