# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# Writes OUTPUT, a header holding each CUDA kernel template of
# runtime/kernels as a string, so the compiler emits whole translation units
# without reading files at run time. Usage: -DOUTPUT=... -DINPUTS=a.cuh;b.cuh
set(text "// Generated from runtime/kernels by cmake/EmbedKernels.cmake.\n#pragma once\n")
foreach(f ${INPUTS})
  get_filename_component(base ${f} NAME_WE)
  string(REPLACE "_" ";" parts ${base})
  set(name "k")
  foreach(p ${parts})
    string(SUBSTRING ${p} 0 1 first)
    string(TOUPPER ${first} first)
    string(SUBSTRING ${p} 1 -1 rest)
    string(APPEND name "${first}${rest}")
  endforeach()
  file(READ ${f} body)
  string(APPEND text "static const char ${name}Cuh[] = R\"attnc_cuh(${body})attnc_cuh\";\n")
endforeach()
include(${CMAKE_CURRENT_LIST_DIR}/WriteIfChanged.cmake)
attnc_write_if_changed(${OUTPUT} "${text}")
