// MP4 reader for tests and probing: demux the best video stream, decode every frame.
extern "C" {
#include <libavutil/log.h>
}

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
}  // namespace

std::map<std::string, std::string> read_mp4_metadata(const std::string& path) {
  if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, path.c_str(), nullptr, nullptr) < 0)
    throw IoError("cannot read video '" + path + "': not a readable media file");
  av::InputPtr in(raw);
  return tags_of(in.get());
}

Mp4Info read_mp4(const std::string& path, Video* frames) {
  const std::string where = "cannot read video '" + path + "'";
  if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, path.c_str(), nullptr, nullptr) < 0) throw IoError(where + ": not a readable media file");
  av::InputPtr in(raw);
  if (avformat_find_stream_info(in.get(), nullptr) < 0) throw IoError(where + ": no stream information");
  const AVCodec* codec = nullptr;
  const int si = av_find_best_stream(in.get(), AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  if (si < 0 || !codec) throw IoError(where + ": no decodable video stream");
  AVStream* st = in->streams[si];
  av::CodecContextPtr dec(avcodec_alloc_context3(codec));
  avcodec_parameters_to_context(dec.get(), st->codecpar);
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
        if (!sws)
          sws.reset(sws_getContext(frame->width, frame->height, AVPixelFormat(frame->format), info.width, info.height,
                                   AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
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
