# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
# libattnc.so: the host API (attnc.h) as one shared library, so a host
# program needs neither MLIR headers nor our static libraries; it pulls in
# libMLIR/libLLVM at run time. Installed with a CMake package:
# find_package(attnc) gives attnc::attnc.
include(CMakePackageConfigHelpers)
add_library(AttncShared SHARED ${CMAKE_CURRENT_SOURCE_DIR}/PublicApi.cpp)
target_link_libraries(AttncShared PRIVATE
  "$<LINK_LIBRARY:WHOLE_ARCHIVE,AttncCompiler>" ${ATTNC_MLIR_LIBS})
target_include_directories(AttncShared PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
  $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/runtime/include>
  $<INSTALL_INTERFACE:include>)
if(ATTNC_SANITIZE)
  # The sanitizer runtimes come from the executable that loads the library.
  target_link_options(AttncShared PRIVATE -Wl,-z,undefs)
endif()
set_target_properties(AttncShared PROPERTIES
  OUTPUT_NAME attnc EXPORT_NAME attnc
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib
  INSTALL_RPATH "${LLVM_LIBRARY_DIR}"
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})

install(TARGETS AttncShared EXPORT attncTargets LIBRARY DESTINATION lib)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/include/attnc/attnc.h DESTINATION include/attnc)
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/attnc/runtime/Tensor.h
              ${PROJECT_SOURCE_DIR}/runtime/include/attnc/runtime/ThreadPool.h
              ${PROJECT_SOURCE_DIR}/runtime/include/attnc/runtime/Cuda.h
        DESTINATION include/attnc/runtime)
install(EXPORT attncTargets NAMESPACE attnc:: DESTINATION lib/cmake/attnc)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/attncConfig.cmake
  "include(\"\${CMAKE_CURRENT_LIST_DIR}/attncTargets.cmake\")\n")
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/attncConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/attncConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/attncConfigVersion.cmake
        DESTINATION lib/cmake/attnc)
install(PROGRAMS $<TARGET_FILE:attnc> $<TARGET_FILE:attnc-opt> DESTINATION bin)
