// MP4 writer: RGB → yuv420p (swscale) → H.264 (or MPEG-4 fallback) → mp4 muxer, every libav
// handle owned by a unique_ptr with its free function (libav_handles.h).
#include <cerrno>
#include <memory>

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
}

#include "engine/common/error.h"
#include "engine/io/atomic_file.h"
#include "engine/io/libav_handles.h"
#include "engine/io/mp4.h"

namespace longshot::io {

namespace {

std::string av_err(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

}  // namespace

std::string write_mp4(const Video& video, const std::string& path, const Mp4Options& options) {
  if (video.frames < 1 || video.width < 2 || video.height < 2)
    throw ShapeError("video: nothing to encode (" + std::to_string(video.frames) + " frames of " +
                     std::to_string(video.width) + "x" + std::to_string(video.height) + ")");
  if (video.width % 2 || video.height % 2)
    throw ShapeError("video: yuv420p needs an even width and height, got " + std::to_string(video.width) + "x" +
                     std::to_string(video.height));
  if (video.rgb.size() != video.frame_bytes() * size_t(video.frames))
    throw ShapeError("video: rgb holds " + std::to_string(video.rgb.size()) + " bytes, expected frames*height*width*3");
  const double fps = options.fps > 0 ? options.fps : video.fps;
  if (!(fps > 0) || fps > 1000) throw ParameterError("fps", "must be in (0, 1000], got " + std::to_string(fps));

  TempFile tmp(path);
  const std::string where = "cannot write '" + path + "'";
  // libav's own chatter (x264's statistics) would drown the CLI's progress; errors still show.
  if (av_log_get_level() > AV_LOG_ERROR) av_log_set_level(AV_LOG_ERROR);

  const AVCodec* codec = nullptr;
  if (!options.encoder.empty()) {
    codec = avcodec_find_encoder_by_name(options.encoder.c_str());
    if (!codec) throw IoError(where + ": libavcodec has no encoder '" + options.encoder + "'");
  } else {
    codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec) {
      codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
      if (!codec) throw IoError(where + ": libavcodec has neither an H.264 nor an MPEG-4 encoder");
      spdlog::warn("this libavcodec has no H.264 encoder; writing '{}' as MPEG-4 Part 2 instead", path);
    }
  }

  AVFormatContext* raw_fmt = nullptr;
  int rc = avformat_alloc_output_context2(&raw_fmt, nullptr, "mp4", tmp.path().c_str());
  if (rc < 0 || !raw_fmt) throw IoError(where + ": " + av_err(rc));
  av::OutputPtr fmt(raw_fmt);

  av::CodecContextPtr enc(avcodec_alloc_context3(codec));
  if (!enc) throw IoError(where + ": out of memory");
  const AVRational rate = av_d2q(fps, 100000);
  enc->width = video.width;
  enc->height = video.height;
  enc->pix_fmt = AV_PIX_FMT_YUV420P;
  enc->time_base = av_inv_q(rate);
  enc->framerate = rate;
  enc->gop_size = 12;
  if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (codec->id == AV_CODEC_ID_H264) {
    av_opt_set(enc->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
    av_opt_set(enc->priv_data, "preset", "medium", 0);
  } else {
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * 3;
  }
  if ((rc = avcodec_open2(enc.get(), codec, nullptr)) < 0)
    throw IoError(where + ": cannot open encoder " + codec->name + ": " + av_err(rc));

  AVStream* stream = avformat_new_stream(fmt.get(), nullptr);
  if (!stream) throw IoError(where + ": cannot add a video stream");
  stream->time_base = enc->time_base;
  stream->avg_frame_rate = rate;
  avcodec_parameters_from_context(stream->codecpar, enc.get());

  if ((rc = avio_open(&fmt->pb, tmp.path().c_str(), AVIO_FLAG_WRITE)) < 0) throw IoError(where + ": " + av_err(rc));
  AVDictionary* header_opts = nullptr;
  for (const auto& [key, value] : options.metadata) {
    if (key.empty()) throw ParameterError("metadata", "an MP4 tag needs a name");
    av_dict_set(&fmt->metadata, key.c_str(), value.c_str(), 0);
  }
  // The default iTunes-style atoms keep only a fixed set of keys; mdta keys keep any name.
  if (!options.metadata.empty()) av_dict_set(&header_opts, "movflags", "use_metadata_tags", 0);
  rc = avformat_write_header(fmt.get(), &header_opts);
  av_dict_free(&header_opts);
  if (rc < 0) throw IoError(where + ": " + av_err(rc));

  av::SwsPtr sws(sws_getContext(video.width, video.height, AV_PIX_FMT_RGB24, video.width, video.height,
                                AV_PIX_FMT_YUV420P, SWS_BICUBIC, nullptr, nullptr, nullptr));
  av::FramePtr frame(av_frame_alloc());
  av::PacketPtr pkt(av_packet_alloc());
  if (!sws || !frame || !pkt) throw IoError(where + ": out of memory");
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = video.width;
  frame->height = video.height;
  if ((rc = av_frame_get_buffer(frame.get(), 0)) < 0) throw IoError(where + ": " + av_err(rc));

  auto drain = [&](bool flushing) {
    for (;;) {
      const int r = avcodec_receive_packet(enc.get(), pkt.get());
      if (r == AVERROR(EAGAIN) || (flushing && r == AVERROR_EOF)) return;
      if (r < 0) throw IoError(where + ": encoding failed: " + av_err(r));
      av_packet_rescale_ts(pkt.get(), enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      const int w = av_interleaved_write_frame(fmt.get(), pkt.get());
      if (w < 0) throw IoError(where + ": " + av_err(w));
    }
  };
  for (int i = 0; i < video.frames; ++i) {
    if ((rc = av_frame_make_writable(frame.get())) < 0) throw IoError(where + ": " + av_err(rc));
    const uint8_t* src[1] = {video.frame(i)};
    const int stride[1] = {video.width * 3};
    sws_scale(sws.get(), src, stride, 0, video.height, frame->data, frame->linesize);
    frame->pts = i;
    if ((rc = avcodec_send_frame(enc.get(), frame.get())) < 0) throw IoError(where + ": encoding failed: " + av_err(rc));
    drain(false);
  }
  avcodec_send_frame(enc.get(), nullptr);
  drain(true);
  if ((rc = av_write_trailer(fmt.get())) < 0) throw IoError(where + ": " + av_err(rc));
  avio_closep(&fmt->pb);
  fmt.reset();
  tmp.commit();
  return codec->name;
}

}  // namespace longshot::io
