// Semantic motion router: labels, training, routing with its explanation, the file (router.h).
#include "engine/calibrate/router.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "engine/calibrate/json_file.h"
#include "engine/common/error.h"

namespace longshot::calibrate {

using nlohmann::json;

namespace {

constexpr const char* kFormat = "longshot-router";
constexpr int kVersion = 1;

bool translates(data::Motion m) { return m != data::Motion::Pulse && m != data::Motion::Still; }

// Pooled rows as doubles (the training and routing arithmetic is double, in a fixed order).
std::vector<double> pooled_values(const torch::Tensor& tokens) {
  auto p = pool_embedding(tokens).to(torch::kCPU, torch::kDouble).contiguous();
  return std::vector<double>(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
}

// Logits of standardised features z: W z + b.
std::vector<double> logits_of(const MotionRouter& r, const std::vector<double>& z) {
  const size_t R = r.regimes.size(), D = size_t(r.dim);
  std::vector<double> out(R);
  for (size_t c = 0; c < R; ++c) {
    double s = r.bias[c];
    for (size_t d = 0; d < D; ++d) s += r.weight[c * D + d] * z[d];
    out[c] = s;
  }
  return out;
}

std::vector<double> softmax(std::vector<double> v) {
  const double m = *std::max_element(v.begin(), v.end());
  double sum = 0;
  for (auto& x : v) sum += (x = std::exp(x - m));
  for (auto& x : v) x /= sum;
  return v;
}

std::vector<double> standardise(const MotionRouter& r, const std::vector<double>& p) {
  std::vector<double> z(p.size());
  for (size_t d = 0; d < p.size(); ++d) z[d] = (p[d] - r.mean[d]) * r.inv_std[d];
  return z;
}

void require(bool ok, const std::string& path, const std::string& why) {
  if (!ok) throw IoError("router file '" + path + "': " + why);
}

std::vector<double> numbers(const json& j, const char* key, size_t n, const std::string& path) {
  require(j.contains(key) && j[key].is_array() && j[key].size() == n, path,
          std::string("'") + key + "' is not an array of " + std::to_string(n) + " numbers");
  std::vector<double> out;
  out.reserve(n);
  for (const auto& v : j[key]) {
    require(v.is_number() && std::isfinite(v.get<double>()), path, std::string("'") + key + "' holds a non-finite value or a non-number");
    out.push_back(v.get<double>());
  }
  return out;
}

}  // namespace

// ---- [labels] -----------------------------------------------------------------------------------

std::string world_regime(const data::CaptionInfo& info) {
  if (info.objects.empty()) throw ParameterError("prompt", "names no object of the world, so it has no motion regime");
  for (const auto& o : info.objects)
    if (translates(o.motion)) return "fast";
  return info.pan != data::Pan::None ? "slow" : "static";
}

std::vector<LabelledPrompt> read_labelled_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("labelled prompts '" + path + "': cannot be read");
  std::vector<LabelledPrompt> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    const auto last = line.find_last_not_of(" \t");
    if (tab == std::string::npos || tab == 0 || last == std::string::npos || last <= tab)
      throw IoError("labelled prompts '" + path + "' line " + std::to_string(n) + ": expected 'regime<TAB>prompt', got '" +
                    line.substr(0, 80) + "'");
    out.push_back({line.substr(tab + 1, last - tab), line.substr(0, tab)});
  }
  if (out.empty()) throw IoError("labelled prompts '" + path + "': no prompt in it");
  return out;
}

std::vector<LabelledPrompt> world_prompts(uint64_t seed, int per_regime) {
  if (per_regime < 1) throw ParameterError("prompts", "need at least one prompt per regime");
  std::vector<LabelledPrompt> out;
  data::WorldOptions no_pan;
  no_pan.allow_pan = false;
  // Each regime's captions are built from fresh draws of the world's sampler, changed only where
  // the regime needs it: the sampler alone makes static scenes (every object pulsing, no pan) in
  // ~5 % of clips and pans in 15 %, too few for balanced classes.
  for (int i = 0; i < per_regime; ++i) {
    const uint64_t s = seed * 0x9e3779b97f4a7c15ULL + uint64_t(i) * 3 + 1;
    data::ClipSpec fast = data::sample_clip(s, no_pan);
    bool any = false;
    for (const auto& o : fast.objects) any = any || translates(o.motion);
    if (!any) fast.objects[0].motion = data::Motion(s % 4);  // a bounce (right, left, vertical) or a fall
    data::ClipSpec still = data::sample_clip(s + 1, no_pan);
    for (auto& o : still.objects) o.motion = data::Motion::Pulse;
    data::ClipSpec pan = data::sample_clip(s + 2, no_pan);
    for (auto& o : pan.objects) o.motion = data::Motion::Still;
    pan.pan = (s >> 3) % 2 ? data::Pan::Left : data::Pan::Right;
    pan.pan_speed = 0.014;
    out.push_back({data::caption(still), "static"});
    out.push_back({data::caption(pan), "slow"});
    out.push_back({data::caption(fast), "fast"});
  }
  return out;
}

// ---- [router] -----------------------------------------------------------------------------------

torch::Tensor pool_embedding(const torch::Tensor& tokens) {
  if (!tokens.defined() || tokens.dim() != 2)
    throw ShapeError("router: token embeddings must be [L, D], got " +
                     (tokens.defined() ? c10::str(tokens.sizes()) : std::string("an undefined tensor")));
  auto t = tokens.to(torch::kCPU, torch::kDouble);
  auto used = t.abs().sum(1) > 0;
  const int64_t n = used.sum().item<int64_t>();
  if (n == 0) throw ShapeError("router: every token embedding row is zero (an empty prompt?)");
  return t.index({used}).mean(0);
}

MotionRouter train_router(const std::vector<torch::Tensor>& embeddings, const std::vector<std::string>& labels,
                          const std::vector<std::string>& regimes, const std::string& model,
                          const RouterTrainOptions& options) {
  if (embeddings.empty()) throw ParameterError("router", "no training prompt");
  if (embeddings.size() != labels.size())
    throw ParameterError("router", std::to_string(embeddings.size()) + " embeddings but " + std::to_string(labels.size()) + " labels");
  if (regimes.size() < 2) throw ParameterError("router", "needs at least two regimes");
  if (options.epochs < 1 || !(options.learning_rate > 0) || !(options.l2 >= 0))
    throw ParameterError("router", "epochs >= 1, learning rate > 0 and l2 >= 0 are needed");
  const size_t N = embeddings.size(), R = regimes.size();
  std::vector<size_t> y(N);
  std::vector<int> per_class(R, 0);
  for (size_t i = 0; i < N; ++i) {
    const auto it = std::find(regimes.begin(), regimes.end(), labels[i]);
    if (it == regimes.end()) throw ParameterError("router", "label '" + labels[i] + "' of example " + std::to_string(i) + " is no regime");
    y[i] = size_t(it - regimes.begin());
    ++per_class[y[i]];
  }
  for (size_t c = 0; c < R; ++c)
    if (!per_class[c]) throw ParameterError("router", "regime '" + regimes[c] + "' has no training example");

  std::vector<std::vector<double>> x(N);
  for (size_t i = 0; i < N; ++i) x[i] = pooled_values(embeddings[i]);
  const size_t D = x[0].size();
  for (size_t i = 1; i < N; ++i)
    if (x[i].size() != D) throw ShapeError("router: example " + std::to_string(i) + " has width " + std::to_string(x[i].size()) + ", the first " + std::to_string(D));

  MotionRouter r;
  r.model = model;
  r.regimes = regimes;
  r.dim = int64_t(D);
  r.options = options;
  r.examples = int(N);
  r.mean.assign(D, 0.0);
  r.inv_std.assign(D, 1.0);
  for (const auto& v : x)
    for (size_t d = 0; d < D; ++d) r.mean[d] += v[d] / double(N);
  for (size_t d = 0; d < D; ++d) {
    double var = 0;
    for (const auto& v : x) var += (v[d] - r.mean[d]) * (v[d] - r.mean[d]) / double(N);
    r.inv_std[d] = 1.0 / std::sqrt(var + 1e-8);  // a constant feature stays 0 after centring
  }
  std::vector<std::vector<double>> z(N);
  for (size_t i = 0; i < N; ++i) z[i] = standardise(r, x[i]);
  r.weight.assign(R * D, 0.0);
  r.bias.assign(R, 0.0);
  std::vector<double> gw(R * D), gb(R);
  for (int e = 0; e < options.epochs; ++e) {
    std::fill(gw.begin(), gw.end(), 0.0);
    std::fill(gb.begin(), gb.end(), 0.0);
    for (size_t i = 0; i < N; ++i) {
      const auto p = softmax(logits_of(r, z[i]));
      for (size_t c = 0; c < R; ++c) {
        const double g = (p[c] - (c == y[i] ? 1.0 : 0.0)) / double(N);
        gb[c] += g;
        for (size_t d = 0; d < D; ++d) gw[c * D + d] += g * z[i][d];
      }
    }
    for (size_t k = 0; k < R * D; ++k) r.weight[k] -= options.learning_rate * (gw[k] + options.l2 * r.weight[k]);
    for (size_t c = 0; c < R; ++c) r.bias[c] -= options.learning_rate * gb[c];
  }
  r.train_accuracy = router_accuracy(r, embeddings, labels);
  return r;
}

RouteDecision route(const MotionRouter& r, const torch::Tensor& tokens, const std::vector<std::string>& token_names) {
  const auto p = pooled_values(tokens);
  if (int64_t(p.size()) != r.dim)
    throw ShapeError("router: the prompt embedding is " + std::to_string(p.size()) + " wide, the router (trained on " +
                     r.model + ") takes " + std::to_string(r.dim));
  const auto logits = logits_of(r, standardise(r, p));
  const auto probs = softmax(logits);
  const size_t R = probs.size(), D = size_t(r.dim);
  // Ties go to the earlier regime (the router's order): deterministic.
  size_t best = 0, second = best == 0 ? 1 : 0;
  for (size_t c = 1; c < R; ++c)
    if (probs[c] > probs[best]) best = c;
  second = best == 0 ? 1 : 0;
  for (size_t c = 0; c < R; ++c)
    if (c != best && probs[c] > probs[second]) second = c;
  RouteDecision out;
  out.regime = r.regimes[best];
  out.confidence = probs[best];
  for (size_t c = 0; c < R; ++c) out.probabilities.emplace_back(r.regimes[c], probs[c]);

  // Margin = Σ_d (W_b − W_s)_d · (mean_i e_id − μ_d) / σ_d + (b_b − b_s): token i's share is
  // Σ_d (W_b − W_s)_d · e_id / σ_d / n; the centring and the biases are the constant rest.
  auto t = tokens.to(torch::kCPU, torch::kDouble).contiguous();
  const int64_t L = t.size(0);
  const double* e = t.data_ptr<double>();
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < L; ++i) {
    bool any = false;
    for (size_t d = 0; d < D && !any; ++d) any = e[i * int64_t(D) + int64_t(d)] != 0.0;
    if (any) rows.push_back(i);
  }
  std::vector<TokenShare> shares;
  for (int64_t i : rows) {
    double s = 0;
    for (size_t d = 0; d < D; ++d)
      s += (r.weight[best * D + d] - r.weight[second * D + d]) * e[i * int64_t(D) + int64_t(d)] * r.inv_std[d];
    TokenShare ts;
    ts.position = i;
    ts.token = size_t(i) < token_names.size() ? token_names[size_t(i)] : std::string();
    ts.logit = s / double(rows.size());
    shares.push_back(ts);
  }
  std::stable_sort(shares.begin(), shares.end(), [](const TokenShare& a, const TokenShare& b) { return a.logit > b.logit; });
  if (shares.size() > 3) shares.resize(3);
  out.top_tokens = shares;

  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << out.regime << " (p " << out.confidence << "; ";
  for (size_t c = 0; c < R; ++c) os << (c ? ", " : "") << r.regimes[c] << " " << probs[c];
  os << "), most for it over " << r.regimes[second] << ":";
  for (const auto& s : out.top_tokens)
    os << " " << (s.token.empty() ? "token " + std::to_string(s.position) : "'" + s.token + "'") << " " << std::showpos
       << s.logit << std::noshowpos;
  out.reason = os.str();
  return out;
}

double router_accuracy(const MotionRouter& r, const std::vector<torch::Tensor>& embeddings,
                       const std::vector<std::string>& labels) {
  if (embeddings.empty() || embeddings.size() != labels.size())
    throw ParameterError("router", "accuracy needs as many labels as embeddings, and at least one");
  size_t right = 0;
  for (size_t i = 0; i < embeddings.size(); ++i) right += route(r, embeddings[i]).regime == labels[i];
  return double(right) / double(embeddings.size());
}

// ---- [file] -------------------------------------------------------------------------------------

void write_router(const MotionRouter& r, const std::string& path) {
  json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["model"] = r.model;
  j["regimes"] = r.regimes;
  j["dim"] = r.dim;
  j["pooling"] = "mean of non-zero token rows";
  j["mean"] = r.mean;
  j["inv_std"] = r.inv_std;
  j["weight"] = r.weight;
  j["bias"] = r.bias;
  j["training"] = {{"examples", r.examples},
                   {"accuracy", r.train_accuracy},
                   {"epochs", r.options.epochs},
                   {"learning_rate", r.options.learning_rate},
                   {"l2", r.options.l2}};
  write_json_file(path, "router file", j, -1);
}

MotionRouter read_router(const std::string& path) {
  json j = read_versioned_json(path, "router file", kFormat, kVersion);
  require(j.contains("model") && j["model"].is_string(), path, "has no 'model'");
  require(j.contains("dim") && j["dim"].is_number_integer() && j["dim"].get<int64_t>() > 0 &&
              j["dim"].get<int64_t>() <= (1 << 16),
          path, "has no positive integer 'dim'");
  require(j.contains("regimes") && j["regimes"].is_array() && j["regimes"].size() >= 2, path,
          "'regimes' is not a list of at least two names");
  MotionRouter r;
  r.model = j["model"].get<std::string>();
  r.dim = j["dim"].get<int64_t>();
  std::set<std::string> seen;
  for (const auto& name : j["regimes"]) {
    require(name.is_string() && !name.get<std::string>().empty(), path, "a regime name is empty or not a string");
    require(seen.insert(name.get<std::string>()).second, path, "regime '" + name.get<std::string>() + "' appears twice");
    r.regimes.push_back(name.get<std::string>());
  }
  const size_t D = size_t(r.dim), R = r.regimes.size();
  r.mean = numbers(j, "mean", D, path);
  r.inv_std = numbers(j, "inv_std", D, path);
  r.weight = numbers(j, "weight", R * D, path);
  r.bias = numbers(j, "bias", R, path);
  if (j.contains("training") && j["training"].is_object()) {
    r.examples = j["training"].value("examples", 0);
    r.train_accuracy = j["training"].value("accuracy", 0.0);
  }
  return r;
}

}  // namespace longshot::calibrate
