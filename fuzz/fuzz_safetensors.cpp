// libFuzzer target: the safetensors reader (header length, JSON header, dtype/shape/offset checks,
// overlap check) and every tensor's load. Any exception but longshot::Error is a finding, as is
// any sanitizer report. Input: the whole file.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/common/error.h"
#include "engine/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An in-memory file: no disk traffic per input, and the reader still open()s and mmap()s it.
  const int fd = ::memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size && ::write(fd, data, size) != ssize_t(size)) {
    ::close(fd);
    return 0;
  }
  try {
    longshot::io::SafetensorsFile file("/proc/self/fd/" + std::to_string(fd));
    for (const auto& name : file.names()) {
      const auto& info = file.info(name);
      if (info.end - info.begin <= (1u << 20)) file.load(name);
    }
    file.metadata();
  } catch (const longshot::Error&) {
  }
  ::close(fd);
  return 0;
}
