# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# attnc_write_if_changed(FILE TEXT): writes TEXT to FILE unless FILE already
# holds it, so a regenerated header that did not change rebuilds nothing.
function(attnc_write_if_changed file text)
  set(old "")
  if(EXISTS ${file})
    file(READ ${file} old)
  endif()
  if(NOT "${old}" STREQUAL "${text}")
    file(WRITE ${file} "${text}")
  endif()
endfunction()
