// MP4 reader for tests and probing: demux the best video stream, decode every frame.
extern "C" {
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

#include <mutex>

#include "engine/common/error.h"
#include "engine/io/libav_handles.h"
#include "engine/io/mp4.h"

namespace longshot::io {

namespace {
std::map<std::string, std::string> tags_of(const AVFormatContext* fmt) {
  std::map<std::string, std::string> out;
  const AVDictionaryEntry* e = nullptr;
  while ((e = av_dict_get(fmt->metadata, "", e, AV_DICT_IGNORE_SUFFIX))) out[e->key] = e->value;
  return out;
}

// Opens `path` with the MP4/QuickTime demuxer alone, reading local files only. Left to probe,
// libav would pick whichever of its ~300 demuxers scores best on the bytes (playlists that open
// other files or URLs, subtitle and script formats: the fuzzer reached them within a minute);
// our files are MP4. A dozen streams is plenty for a video (ours have one): a file declaring
// hundreds would make stream probing slow for nothing.
av::InputPtr open_mp4(const std::string& path, const std::string& where) {
  if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
  // libav trusts the counts a file declares: a 4 KB MP4 found by fuzz_mp4 made it grow three
  // buffers to ~950 MB each (2.8 GB resident; ffprobe does the same) before it gave up. No one
  // libav allocation a video needs comes near 256 MiB (a 4K frame is 25 MB), so that is the cap,
  // for the whole process (libav has no per-file one); a larger request fails as out of memory.
  static std::once_flag cap;
  std::call_once(cap, [] { av_max_alloc(size_t(256) << 20); });
  AVDictionary* options = nullptr;
  av_dict_set(&options, "protocol_whitelist", "file", 0);
  av_dict_set(&options, "max_streams", "16", 0);
  AVFormatContext* raw = nullptr;
  const int rc = avformat_open_input(&raw, path.c_str(), av_find_input_format("mp4"), &options);
  av_dict_free(&options);
  if (rc < 0) throw IoError(where + ": not a readable MP4 file");
  return av::InputPtr(raw);
}
}  // namespace

std::map<std::string, std::string> read_mp4_metadata(const std::string& path) {
  const auto in = open_mp4(path, "cannot read video '" + path + "'");
  return tags_of(in.get());
}

Mp4Info read_mp4(const std::string& path, Video* frames) {
  const std::string where = "cannot read video '" + path + "'";
  const auto in = open_mp4(path, where);
  if (avformat_find_stream_info(in.get(), nullptr) < 0) throw IoError(where + ": no stream information");
  const AVCodec* codec = nullptr;
  const int si = av_find_best_stream(in.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (si < 0 || !codec) throw IoError(where + ": no decodable video stream");
  AVStream* st = in->streams[si];
  av::CodecContextPtr dec(avcodec_alloc_context3(codec));
  if (!dec || avcodec_parameters_to_context(dec.get(), st->codecpar) < 0)
    throw IoError(where + ": cannot set up decoder " + codec->name);
  if (avcodec_open2(dec.get(), codec, nullptr) < 0) throw IoError(where + ": cannot open decoder " + codec->name);

  Mp4Info info;
  info.width = dec->width;
  info.height = dec->height;
  info.codec = codec->name;
  info.metadata = tags_of(in.get());
  info.fps = st->avg_frame_rate.den ? av_q2d(st->avg_frame_rate) : 0;
  if (frames) {
    *frames = Video{};
    frames->width = info.width;
    frames->height = info.height;
    frames->fps = info.fps;
  }
  av::FramePtr frame(av_frame_alloc());
  av::PacketPtr pkt(av_packet_alloc());
  av::SwsPtr sws;
  auto receive = [&]() {
    while (avcodec_receive_frame(dec.get(), frame.get()) == 0) {
      ++info.frames;
      if (frames) {
        // A stream may change size or pixel format mid-way (a new H.264 SPS): the cached context
        // is rebuilt then, as a converter made for other frames would read past this one's planes.
        // No converter (a size of 0, a format swscale lacks): the file is refused, not scaled.
        sws.reset(sws_getCachedContext(sws.release(), frame->width, frame->height, AVPixelFormat(frame->format),
                                       info.width, info.height, AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr,
                                       nullptr));
        if (!sws) throw IoError(where + ": cannot convert its frames to RGB");
        const size_t off = frames->rgb.size();
        frames->rgb.resize(off + size_t(info.width) * info.height * 3);
        uint8_t* dst[1] = {frames->rgb.data() + off};
        const int stride[1] = {info.width * 3};
        sws_scale(sws.get(), frame->data, frame->linesize, 0, frame->height, dst, stride);
        frames->frames = info.frames;
      }
      av_frame_unref(frame.get());
    }
  };
  while (av_read_frame(in.get(), pkt.get()) >= 0) {
    if (pkt->stream_index == si) {
      if (avcodec_send_packet(dec.get(), pkt.get()) < 0) {
        av_packet_unref(pkt.get());
        throw IoError(where + ": corrupt video data");
      }
      receive();
    }
    av_packet_unref(pkt.get());
  }
  avcodec_send_packet(dec.get(), nullptr);
  receive();
  return info;
}

}  // namespace longshot::io
