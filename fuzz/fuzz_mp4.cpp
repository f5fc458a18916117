// libFuzzer target: the MP4 reader (engine/io/mp4_reader.cpp) over the input as a file (an
// in-memory memfd): read_mp4_metadata (the tags `generate --from` and the studio's drop read the
// recipe from), then read_mp4 with frames (`vae-encode --video`). Any exception but
// longshot::Error is a finding, as is a video whose pixels do not match its frame count and size
// (trap). libav is Debian's, not instrumented: coverage guides by our reader's branches only, and
// ASan sees libav's memory errors only where they crash or pass through an intercepted call.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" {
#include <libavutil/log.h>
}

#include "engine/common/error.h"
#include "engine/io/mp4.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libav's own complaints about broken files would be most of the output (and of the time).
  static const bool quiet = (av_log_set_level(AV_LOG_QUIET), true);
  (void)quiet;
  const int fd = ::memfd_create("fuzz.mp4", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size && ::write(fd, data, size) != ssize_t(size)) {
    ::close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    longshot::io::read_mp4_metadata(path);
  } catch (const longshot::Error&) {
  }
  try {
    longshot::Video video;
    const auto info = longshot::io::read_mp4(path, &video);
    if (video.frames != info.frames || video.width != info.width || video.height != info.height ||
        video.rgb.size() != video.frame_bytes() * size_t(video.frames))
      __builtin_trap();
  } catch (const longshot::Error&) {
  }
  ::close(fd);
  return 0;
}
