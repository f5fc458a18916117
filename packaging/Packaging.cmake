# Install layout and the CPack .deb: longshot and longshot-studio on PATH, a desktop entry, an
# icon, the colormaps. `cpack -G DEB` in a build folder makes the package; the CTest test
# packaging/DebInstall builds it and unpacks it into a temporary root to check its contents.
include(GNUInstallDirs)
# `cmake --install` / cpack install what is built and do not first build every target (all tests,
# benchmarks): build the programs first, as README's commands do.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# The built-in models' weights (DiT + text encoder) go to share/longshot/, where the programs look
# for them beside themselves (engine/common/assets.cpp); without them an installed Longshot has no
# default model. Component cli: `cmake --install --component cli` gives a runnable CLI alone.
file(GLOB _longshot_weights "${PROJECT_SOURCE_DIR}/assets/*.safetensors")
install(FILES ${_longshot_weights} DESTINATION "${CMAKE_INSTALL_DATADIR}/longshot" COMPONENT cli)
# Their motion routers and regime lookup tables (--regime auto; docs/calibration.md).
# The labelled prompts a Wan router trains on (calibrate --train-router --labelled) come along.
file(GLOB _longshot_routing "${PROJECT_SOURCE_DIR}/assets/*-router.json" "${PROJECT_SOURCE_DIR}/assets/*-calibration.json"
     "${PROJECT_SOURCE_DIR}/assets/*-motion-prompts.tsv")
install(FILES ${_longshot_routing} DESTINATION "${CMAKE_INSTALL_DATADIR}/longshot" COMPONENT cli)
# The method presets (--preset NAME): one JSON file per paper setting.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/assets/presets" DESTINATION "${CMAKE_INSTALL_DATADIR}/longshot" COMPONENT cli)
# The install prefix is compiled into the asset lookup alone (one object rebuilds when it changes).
set_property(SOURCE "${PROJECT_SOURCE_DIR}/engine/common/assets.cpp" DIRECTORY "${PROJECT_SOURCE_DIR}/engine"
             APPEND PROPERTY COMPILE_DEFINITIONS LONGSHOT_INSTALL_PREFIX="${CMAKE_INSTALL_PREFIX}")

if(LONGSHOT_BUILD_STUDIO)
  install(FILES "${CMAKE_CURRENT_LIST_DIR}/longshot-studio.desktop" DESTINATION "${CMAKE_INSTALL_DATADIR}/applications")
  install(FILES "${CMAKE_CURRENT_LIST_DIR}/longshot-studio.svg"
          DESTINATION "${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps")
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/assets/colormaps" DESTINATION "${CMAKE_INSTALL_DATADIR}/longshot")
endif()
if(EXISTS "${PROJECT_SOURCE_DIR}/docs/studio.md")
  install(FILES "${PROJECT_SOURCE_DIR}/README.md" "${PROJECT_SOURCE_DIR}/docs/studio.md"
          DESTINATION "${CMAKE_INSTALL_DOCDIR}")
endif()

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "longshot")
set(CPACK_PACKAGE_VENDOR "Longshot")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "Longshot maintainers <longshot@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Long-video generation with sparse-attention video diffusion transformers, and a live attention studio")
set(CPACK_PACKAGE_DESCRIPTION
    "Longshot generates long videos with Wan2.1-style diffusion transformers whose attention is block-sparse
(radial, dynamic, Hilbert-ordered LVSA). longshot is the headless CLI; longshot-studio is the Qt 6 +
Dear ImGui desktop app that shows the attention masks, heatmaps and sparsity live while a video is made.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "graphics")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_STRIP_FILES ON)
# Library dependencies come from dpkg-shlibdeps (Debian's libtorch, Qt 6, FFmpeg...). A CUDA build
# links libraries no Debian package owns, so it lists none and relies on the toolkit being there.
find_program(LONGSHOT_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(LONGSHOT_DPKG_SHLIBDEPS AND NOT LONGSHOT_HAS_CUDA)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libgl1-mesa-dri")
include(CPack)

if(LONGSHOT_BUILD_TESTS AND LONGSHOT_BUILD_STUDIO)
  find_program(LONGSHOT_DPKG_DEB dpkg-deb)
  if(LONGSHOT_DPKG_DEB)
    add_test(NAME packaging/DebInstall
      COMMAND "${CMAKE_COMMAND}" -DBUILD_DIR=${CMAKE_BINARY_DIR} -DDPKG_DEB=${LONGSHOT_DPKG_DEB}
              "-DTEST_CLI=$<$<TARGET_EXISTS:test_cli>:$<TARGET_FILE:test_cli>>"
              -P "${CMAKE_CURRENT_LIST_DIR}/check_deb.cmake")
    set_tests_properties(packaging/DebInstall PROPERTIES LABELS "packaging" TIMEOUT 900)
  endif()
endif()
