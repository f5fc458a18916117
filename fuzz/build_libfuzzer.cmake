# fuzz/BuildLibFuzzer: configures and builds the standalone fuzz project with clang (libFuzzer) in
# BUILD (registered only where clang links libFuzzer programs: fuzz/CMakeLists.txt asks).
file(MAKE_DIRECTORY "${BUILD}")
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${BUILD}" -DCMAKE_CXX_COMPILER=${CLANGXX}
                        -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_PREFIX_PATH=${PREFIX_PATH}"
                        "-DLONGSHOT_MAIN_BUILD_FUZZ=${MAIN_BUILD_FUZZ}"
                RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "configuring the fuzz project failed")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD}" -j2 RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "building the fuzz targets failed")
endif()
