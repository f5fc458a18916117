# Finds every third-party package, failing early with the command that fixes it.
set(_fix "Run: sudo bash packaging/setup.sh   (installs Longshot's Debian 12 packages)")

if(LONGSHOT_THIRD_PARTY_DIR)
  list(PREPEND CMAKE_PREFIX_PATH "${LONGSHOT_THIRD_PARTY_DIR}")
endif()

find_package(Torch QUIET)
if(NOT Torch_FOUND)
  message(FATAL_ERROR "LibTorch not found. ${_fix}\n"
    "On a machine with python torch: -DCMAKE_PREFIX_PATH=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')")
endif()
message(STATUS "Longshot: LibTorch ${Torch_VERSION} (${TORCH_LIBRARIES})")

find_package(Threads REQUIRED)

# spdlog: header-only headers from LONGSHOT_THIRD_PARTY_DIR when it has them (a system spdlog
# there may expect another fmt than the newer one LibTorch ships), else Debian's compiled package.
if(LONGSHOT_THIRD_PARTY_DIR AND EXISTS "${LONGSHOT_THIRD_PARTY_DIR}/include/spdlog/spdlog.h")
  add_library(longshot_spdlog INTERFACE)
  # Not SYSTEM: -I folders are searched before LibTorch's -isystem ones, whose fmt/ is another
  # version than the carried spdlog was written for.
  target_include_directories(longshot_spdlog BEFORE INTERFACE "${LONGSHOT_THIRD_PARTY_DIR}/include")
  target_compile_definitions(longshot_spdlog INTERFACE SPDLOG_HEADER_ONLY FMT_HEADER_ONLY)
  add_library(spdlog::spdlog ALIAS longshot_spdlog)
else()
  find_package(spdlog QUIET)
  if(NOT spdlog_FOUND)
    message(FATAL_ERROR "spdlog not found. ${_fix}")
  endif()
endif()

find_package(nlohmann_json QUIET)
if(NOT nlohmann_json_FOUND)
  if(LONGSHOT_THIRD_PARTY_DIR AND EXISTS "${LONGSHOT_THIRD_PARTY_DIR}/include/nlohmann/json.hpp")
    add_library(longshot_json INTERFACE)
    target_include_directories(longshot_json SYSTEM INTERFACE "${LONGSHOT_THIRD_PARTY_DIR}/include")
    add_library(nlohmann_json::nlohmann_json ALIAS longshot_json)
  else()
    message(FATAL_ERROR "nlohmann-json not found. ${_fix}")
  endif()
endif()

if(LONGSHOT_WITH_FFMPEG)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(LIBAV IMPORTED_TARGET libavformat libavcodec libswscale libavutil)
  endif()
  if(NOT LIBAV_FOUND)
    message(FATAL_ERROR "FFmpeg libav not found. ${_fix}\n(or configure with -DLONGSHOT_WITH_FFMPEG=OFF)")
  endif()
endif()

# libpng: PNG frame export (engine/io/png.cpp). AUTO requires it on a normal build; a machine
# configured with LONGSHOT_THIRD_PARTY_DIR (the GPU machine: no apt) builds without it, the PNG
# writer then refusing with its own message.
set(LONGSHOT_WITH_PNG AUTO CACHE STRING
    "Write PNG frames with libpng: AUTO (required unless LONGSHOT_THIRD_PARTY_DIR is set), ON, OFF")
set_property(CACHE LONGSHOT_WITH_PNG PROPERTY STRINGS AUTO ON OFF)
set(LONGSHOT_HAS_PNG OFF)
if(NOT LONGSHOT_WITH_PNG STREQUAL "OFF")
  find_package(PNG QUIET)
  if(PNG_FOUND)
    set(LONGSHOT_HAS_PNG ON)
  elseif(LONGSHOT_WITH_PNG STREQUAL "ON" OR NOT LONGSHOT_THIRD_PARTY_DIR)
    message(FATAL_ERROR "libpng (libpng-dev) not found. ${_fix}\n"
      "(or configure with -DLONGSHOT_WITH_PNG=OFF: no PNG frame export)")
  else()
    message(STATUS "Longshot: libpng not found; PNG frame export is left out (LONGSHOT_THIRD_PARTY_DIR build)")
  endif()
endif()

# SentencePiece: the umT5 tokenizer (engine/text/tokenizer.cpp). AUTO requires it on a normal
# build; a machine configured with LONGSHOT_THIRD_PARTY_DIR (the GPU machine: no apt, token ids
# come precomputed) builds without it, the tokenizer then refusing with its own message.
set(LONGSHOT_WITH_SENTENCEPIECE AUTO CACHE STRING
    "Build the umT5 tokenizer with libsentencepiece: AUTO (required unless LONGSHOT_THIRD_PARTY_DIR is set), ON, OFF")
set_property(CACHE LONGSHOT_WITH_SENTENCEPIECE PROPERTY STRINGS AUTO ON OFF)
set(LONGSHOT_HAS_SENTENCEPIECE OFF)
if(NOT LONGSHOT_WITH_SENTENCEPIECE STREQUAL "OFF")
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(SENTENCEPIECE IMPORTED_TARGET sentencepiece)
  endif()
  if(SENTENCEPIECE_FOUND)
    set(LONGSHOT_HAS_SENTENCEPIECE ON)
  elseif(LONGSHOT_WITH_SENTENCEPIECE STREQUAL "ON" OR NOT LONGSHOT_THIRD_PARTY_DIR)
    message(FATAL_ERROR "SentencePiece (libsentencepiece-dev) not found. ${_fix}\n"
      "(or configure with -DLONGSHOT_WITH_SENTENCEPIECE=OFF: no tokenizer, prompts need precomputed embeddings)")
  else()
    message(STATUS "Longshot: SentencePiece not found; the umT5 tokenizer is left out (LONGSHOT_THIRD_PARTY_DIR build)")
  endif()
endif()

if(LONGSHOT_BUILD_STUDIO)
  find_package(Qt6 QUIET COMPONENTS Core Gui Widgets OpenGL OpenGLWidgets)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(IMGUI IMPORTED_TARGET imgui)
  endif()
  find_package(OpenGL QUIET)
  if(NOT Qt6_FOUND OR NOT IMGUI_FOUND OR NOT OpenGL_FOUND)
    message(FATAL_ERROR "Studio needs Qt 6, Dear ImGui and OpenGL. ${_fix}\n(or configure with -DLONGSHOT_BUILD_STUDIO=OFF)")
  endif()
endif()

if(LONGSHOT_BUILD_TESTS OR LONGSHOT_BUILD_BENCH)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    if(LONGSHOT_THIRD_PARTY_DIR AND EXISTS "${LONGSHOT_THIRD_PARTY_DIR}/googletest/CMakeLists.txt")
      set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
      add_subdirectory("${LONGSHOT_THIRD_PARTY_DIR}/googletest" "${CMAKE_BINARY_DIR}/_googletest" EXCLUDE_FROM_ALL)
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    else()
      message(FATAL_ERROR "GoogleTest not found. ${_fix}")
    endif()
  endif()
  include(GoogleTest)
endif()
