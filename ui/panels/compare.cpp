#include "ui/panels/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "ui/compare.h"
#include "ui/jobs.h"
#include "ui/panels/panel_kit.h"

namespace longshot::ui {

void ComparePanel::set_jobs(uint64_t job_a, uint64_t job_b) {
  job_a_ = job_a;
  job_b_ = job_b;
  show_ab_ = true;
}

void ComparePanel::set_sweep(SweepJobs jobs) {
  sweep_.set_jobs(std::move(jobs));
  show_sweep_ = true;
}

void ComparePanel::set_calibration(std::shared_ptr<const calibrate::TableTrace> trace, std::string error, bool show) {
  calibration_.set_trace(std::move(trace), std::move(error));
  show_calibration_ = show_calibration_ || show;
}

bool ComparePanel::draw(PanelContext& ctx) {
  bool has = false;
  if (ImGui::BeginTabBar("cmp_tabs")) {
    if (ImGui::BeginTabItem("A vs B", nullptr, show_ab_ ? ImGuiTabItemFlags_SetSelected : 0)) {
      has = draw_ab(ctx);
      ImGui::EndTabItem();
    }
    show_ab_ = false;
    const bool select_sweep = show_sweep_;
    show_sweep_ = false;
    if (ImGui::BeginTabItem("Sweep", nullptr, select_sweep ? ImGuiTabItemFlags_SetSelected : 0)) {
      uint64_t a = 0, b = 0;
      has = sweep_.draw(ctx, a, b);
      if (a && b) set_jobs(a, b);  // a click on a point: its frames against dense
      ImGui::EndTabItem();
    }
    const bool select_calibration = show_calibration_;
    show_calibration_ = false;
    if (ImGui::BeginTabItem("Calibration", nullptr, select_calibration ? ImGuiTabItemFlags_SetSelected : 0)) {
      has = calibration_.draw(ctx);
      ImGui::EndTabItem();
    }
    ImGui::EndTabBar();
  }
  return has;
}

// Controls flow onto the next line when the panel is narrow (1280x800: a third of the width).
void ComparePanel::draw_controls(PanelContext& ctx) {
  kit::mode_combo("A", ctx.view.compare_mode_a, ctx.modes);
  kit::flow(130);
  kit::mode_combo("B", ctx.view.compare_mode_b, ctx.modes);
  const char* run_label = "Run A vs B";
  kit::flow(kit::text_w(run_label) + 2 * ImGui::GetStyle().FramePadding.x);
  if (ImGui::Button(run_label)) ctx.actions.run_compare = true;
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("Generates the dock's request twice with one seed, under modes A and B.\n"
                      "The side whose mode is the dock's uses the dock's sliders; the other its defaults.");
}

bool ComparePanel::pick_pair(const StudioState& s, const RunRecord*& a, const RunRecord*& b) {
  a = s.find(job_a_);
  b = s.find(job_b_);
  const bool waiting = job_a_ && job_b_ && ((!a && s.queued() > 0) || (!b && s.queued() > 0));
  if (waiting) {
    kit::hint(("Comparing jobs " + std::to_string(job_a_) + " and " + std::to_string(job_b_) +
               ": waiting for both to finish.").c_str());
    return false;
  }
  const bool pinned = a && b;
  if (!pinned) {
    // Fallback: the last two finished runs, but only a pair made from one recipe.
    a = b = nullptr;
    for (auto it = s.runs().rbegin(); it != s.runs().rend(); ++it) {
      if (it->status != RunStatus::Finished || !it->frames()) continue;
      if (!b) b = &*it;
      else if (request_differences(it->request, b->request).empty()) {
        a = &*it;
        break;
      }
    }
  }
  if (pinned && (a->status == RunStatus::Running || b->status == RunStatus::Running)) {
    kit::hint(("Comparing jobs " + std::to_string(a->job_id) + " and " + std::to_string(b->job_id) +
               ": waiting for both to finish.").c_str());
    return false;
  }
  const VideoPtr va = a ? a->frames() : nullptr, vb = b ? b->frames() : nullptr;
  if (!va || !vb) {
    kit::hint("Needs two finished runs of one recipe (same prompt, seed, model, frames, size, steps): press "
              "'Run A vs B', or right-click a job in the Jobs list.");
    return false;
  }
  const auto diffs = request_differences(a->request, b->request);
  if (!diffs.empty() || va->width != vb->width || va->height != vb->height || va->frames != vb->frames) {
    std::string why = "Jobs " + std::to_string(a->job_id) + " and " + std::to_string(b->job_id) +
                      " are not one recipe under two modes, so PSNR would mean nothing:";
    for (const auto& d : diffs) why += "\n  " + d;
    if (diffs.empty())
      why += "\n  their frames differ (" + std::to_string(va->frames) + " vs " + std::to_string(vb->frames) + ")";
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1, 0.55f, 0.45f, 1));
    ImGui::TextWrapped("%s", why.c_str());
    ImGui::PopStyleColor();
    return false;
  }
  return true;
}

bool ComparePanel::draw_ab(PanelContext& ctx) {
  draw_controls(ctx);
  const RunRecord *a = nullptr, *b = nullptr;
  if (!pick_pair(ctx.state, a, b)) return false;
  const VideoPtr va = a->frames(), vb = b->frames();
  const int frames = std::min(va->frames, vb->frames);
  if (frames_key(a) != measured_a_ || frames_key(b) != measured_b_) {
    const auto p = per_frame_psnr(*va, *vb);
    psnr_.assign(p.begin(), p.end());
    for (float& x : psnr_) x = std::min(x, 99.f);  // identical frames: infinite PSNR, drawn as 99 dB
    const auto q = per_frame_ssim(*va, *vb);
    ssim_.assign(q.begin(), q.end());
    measured_a_ = frames_key(a);
    measured_b_ = frames_key(b);
    frame_drawn_ = -1;
  }
  frame_ = std::clamp(frame_, 0, frames - 1);
  double mean = 0, mean_ssim = 0;
  for (float x : psnr_) mean += x;
  for (float x : ssim_) mean_ssim += x;
  mean /= std::max<size_t>(1, psnr_.size());
  mean_ssim /= std::max<size_t>(1, ssim_.size());
  draw_table(*a, *b);
  const double sa = kit::mean_step_ms(a), sb = kit::mean_step_ms(b);
  ImGui::TextWrapped("PSNR %.2f dB (frame %d: %.2f)  SSIM %.3f  speed-up B/A x%.2f", mean, frame_,
                     psnr_.empty() ? 0.0 : psnr_[frame_], mean_ssim, sb > 0 ? sa / sb : 0.0);
  ImGui::SetNextItemWidth(std::max(60.f, ImGui::GetContentRegionAvail().x));
  ImGui::SliderInt("##cmpframe", &frame_, 0, frames - 1, "frame %d");
  draw_frames(*va, *vb, frames);
  return true;
}

// Quality / speed side by side: each side's mode and parameters as the run used them.
void ComparePanel::draw_table(const RunRecord& a, const RunRecord& b) {
  auto side_text = [](const RunRecord& r) {
    const std::string mode = r.steps.empty() ? r.request.attention.mode : r.steps.back().mode;
    const auto& params = r.steps.empty() ? r.request.attention.params : r.steps.back().mode_params;
    std::string t = mode;
    for (const auto& [k, val] : params) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s %s=%.3g", t == mode ? ":" : ",", k.c_str(), val);
      t += buf;
    }
    return t;
  };
  if (!ImGui::BeginTable("cmp", 4, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_BordersInnerH)) return;
  ImGui::TableSetupColumn("");
  ImGui::TableSetupColumn("mode and parameters");
  ImGui::TableSetupColumn("step");
  ImGui::TableSetupColumn("sparsity");
  ImGui::TableHeadersRow();
  for (const RunRecord* r : {&a, &b}) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::Text("%s #%llu", r == &a ? "A" : "B", static_cast<unsigned long long>(r->job_id));
    ImGui::TableNextColumn();
    ImGui::TextWrapped("%s", side_text(*r).c_str());
    ImGui::TableNextColumn();
    ImGui::Text("%.0f ms", kit::mean_step_ms(r));
    ImGui::TableNextColumn();
    ImGui::Text("%.0f%%", 100.0 * r->mean_sparsity);
  }
  ImGui::EndTable();
}

// A, B and |A − B| ×4 of the chosen frame, then PSNR per frame.
void ComparePanel::draw_frames(const Video& va, const Video& vb, int frames) {
  if (frame_ != frame_drawn_) {
    gl::upload_texture(a_tex_, va.width, va.height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, va.frame(frame_), GL_LINEAR);
    gl::upload_texture(b_tex_, vb.width, vb.height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, vb.frame(frame_), GL_LINEAR);
    const auto diff = difference_image(va, vb, frame_, 4.f);
    gl::upload_texture(diff_tex_, va.width, va.height, GL_RGB8, GL_RGB, GL_UNSIGNED_BYTE, diff.data(), GL_NEAREST);
    frame_drawn_ = frame_;
  }
  const float plot_h = 54;
  ImVec2 avail = ImGui::GetContentRegionAvail();
  avail.y -= plot_h + ImGui::GetTextLineHeightWithSpacing() + 4;
  const ImVec2 tile =
      kit::fit({(avail.x - 16) / 3, avail.y}, static_cast<float>(va.width), static_cast<float>(va.height));
  const char* labels[3] = {"A", "B", "|A - B| x4"};
  const gl::Texture* texs[3] = {&a_tex_, &b_tex_, &diff_tex_};
  for (int i = 0; i < 3; ++i) {
    if (i) ImGui::SameLine();
    ImGui::BeginGroup();
    ImGui::TextUnformatted(labels[i]);
    ImGui::Image(kit::tex_id(*texs[i]), tile);
    ImGui::EndGroup();
  }
  float pmin = 99, pmax = 0;
  for (float x : psnr_) pmin = std::min(pmin, x), pmax = std::max(pmax, x);
  kit::step_plot("PSNR per frame", {{&psnr_, IM_COL32(120, 220, 140, 255), 2.f, "A vs B"}}, frames,
                 std::floor(pmin - 1), std::ceil(pmax + 1), {}, plot_h, "%.0f dB", 1.f, "frame");
}

}  // namespace longshot::ui
