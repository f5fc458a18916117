# packaging/DebInstall: builds the .deb with CPack in BUILD_DIR, unpacks it into a temporary root
# with dpkg-deb, and checks what a user gets: both programs on PATH, the desktop entry, the icon,
# the built-in model's weights in share/longshot; then, with TEST_CLI given, the installed longshot
# generates the built-in model's clip from that root, source tree out of reach, and the clip shows
# its prompt (test_cli's InstalledDeb.* case, which skips unless LONGSHOT_DEB_ROOT is set).
set(_work "${BUILD_DIR}/deb-check")
file(REMOVE_RECURSE "${_work}")
file(MAKE_DIRECTORY "${_work}/root")
execute_process(COMMAND "${CMAKE_CPACK_COMMAND}" -G DEB -B "${_work}" --config "${BUILD_DIR}/CPackConfig.cmake"
                WORKING_DIRECTORY "${BUILD_DIR}" RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "cpack -G DEB failed (${_rc}):\n${_out}\n${_err}")
endif()
file(GLOB _debs "${_work}/*.deb")
list(LENGTH _debs _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "expected one .deb in ${_work}, found ${_n}: ${_debs}")
endif()
execute_process(COMMAND "${DPKG_DEB}" -x "${_debs}" "${_work}/root" RESULT_VARIABLE _rc ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "dpkg-deb -x ${_debs} failed: ${_err}")
endif()
execute_process(COMMAND "${DPKG_DEB}" --field "${_debs}" Package Version Depends OUTPUT_VARIABLE _fields)
message(STATUS "${_debs}:\n${_fields}")
foreach(_f usr/bin/longshot usr/bin/longshot-studio usr/share/applications/longshot-studio.desktop
           usr/share/icons/hicolor/scalable/apps/longshot-studio.svg usr/share/longshot/colormaps/ember.txt
           usr/share/longshot/longshot-builtin.safetensors usr/share/longshot/longshot-builtin-text.safetensors)
  if(NOT EXISTS "${_work}/root/${_f}")
    message(FATAL_ERROR "the .deb lacks /${_f}")
  endif()
endforeach()
file(READ "${_work}/root/usr/share/applications/longshot-studio.desktop" _desktop)
if(NOT _desktop MATCHES "Exec=longshot-studio" OR NOT _desktop MATCHES "Icon=longshot-studio")
  message(FATAL_ERROR "the desktop entry does not start longshot-studio with its icon")
endif()
execute_process(COMMAND "${_work}/root/usr/bin/longshot-studio" --help RESULT_VARIABLE _rc OUTPUT_VARIABLE _out)
if(NOT _rc EQUAL 0 OR NOT _out MATCHES "usage: longshot-studio")
  message(FATAL_ERROR "the installed longshot-studio --help failed (${_rc}): ${_out}")
endif()
message(STATUS "the .deb installs into a temporary root with longshot, longshot-studio, desktop entry and icon")
if(NOT TEST_CLI)
  message(FATAL_ERROR "TEST_CLI (the test_cli binary) not given: the .deb's generation check cannot run")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "LONGSHOT_DEB_ROOT=${_work}/root" "${TEST_CLI}"
                        "--gtest_filter=InstalledDeb.*"
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0 OR NOT _out MATCHES "\\[  PASSED  \\] 1 test" OR _out MATCHES "SKIPPED")
  message(FATAL_ERROR "the unpacked .deb did not generate the built-in model's clip (${_rc}):\n${_out}\n${_err}")
endif()
string(REGEX MATCH "installed \\.deb: adherence[^\n]*" _adh "${_out}")
message(STATUS "the unpacked .deb generates from its own share/longshot: ${_adh}")

