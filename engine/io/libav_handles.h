// Owning pointers for the libav handles the MP4 reader and writer hold (one deleter per free
// function, as ggml-cpp.h does for ggml's handles): every exit path, thrown errors included, frees
// them. For the mp4_*.cpp files only (built with FFmpeg); knows nothing of the engine's types.
#pragma once
#include <memory>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}

namespace longshot::io::av {

struct InputDeleter {  // a demuxer opened with avformat_open_input
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct OutputDeleter {  // a muxer from avformat_alloc_output_context2, with its file if opened
  void operator()(AVFormatContext* f) const {
    if (f->pb) avio_closep(&f->pb);
    avformat_free_context(f);
  }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

using InputPtr = std::unique_ptr<AVFormatContext, InputDeleter>;
using OutputPtr = std::unique_ptr<AVFormatContext, OutputDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;

}  // namespace longshot::io::av
