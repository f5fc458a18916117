// Model resolution. Sections: [files] · [detection] (DiT config from weights + config.json, text
// encoder width, VAE latent channels) · [layouts] (folder and file readers) · [resolve] · [search]
#include "engine/model/model_source.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/common/assets.h"
#include "engine/common/error.h"
#include "engine/io/safetensors.h"
#include "engine/model/builtin_model.h"
#include "engine/model/weights.h"

namespace longshot::model {

namespace fs = std::filesystem;
using nlohmann::json;

const char* to_string(ModelLayout layout) {
  switch (layout) {
    case ModelLayout::Registered: return "registered";
    case ModelLayout::Checkpoint: return "checkpoint";
    case ModelLayout::Diffusers: return "diffusers";
    case ModelLayout::WanRelease: return "wan2.1-release";
    case ModelLayout::Split: return "split files";
  }
  return "?";
}

std::string ResolvedModel::key() const {
  return std::string(to_string(layout)) + "|" + name + "|" + config.name + "|" + dit_weights + "|" + text_encoder + "|" +
         tokenizer + "|" + vae;
}

// ---- [files] ------------------------------------------------------------------------------------

namespace {

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

uint64_t bytes_under(const fs::path& p) {
  std::error_code ec;
  if (is_file(p)) return fs::file_size(p, ec);
  uint64_t total = 0;
  for (fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// The first of `names` that exists under `dir`, else "".
std::string first_existing(const fs::path& dir, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (is_file(dir / n)) return (dir / n).string();
  return "";
}

// Files in `dir` (not recursive) whose name matches `pattern`, sorted.
std::vector<std::string> matching(const fs::path& dir, const std::regex& pattern) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!is_dir(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && std::regex_match(e.path().filename().string(), pattern)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A checkpoint in `dir` under `stem`: its shard index, else the single file, else the one
// .safetensors there. Several shards without an index cannot be told apart from stray files.
std::string find_weights(const fs::path& dir, const std::string& stem, std::string* why = nullptr) {
  if (auto p = first_existing(dir, {stem + ".safetensors.index.json", stem + ".safetensors"}); !p.empty()) return p;
  const auto all = matching(dir, std::regex(R"(.*\.safetensors)"));
  if (all.size() == 1) return all[0];
  if (all.size() > 1 && why) *why = std::to_string(all.size()) + " .safetensors files but no " + stem + ".safetensors.index.json";
  return "";
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError("cannot open '" + path + "'");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw IoError("'" + path + "' is not valid JSON (" + e.what() + ")");
  }
}

int64_t json_int(const json& j, const char* key, int64_t fallback) {
  return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : fallback;
}

// A tokenizer given as a file or as a folder holding spiece.model (SentencePiece, what umT5 uses)
// or tokenizer.json.
std::string tokenizer_in(const fs::path& p) {
  if (is_file(p)) return p.string();
  if (is_dir(p)) return first_existing(p, {"spiece.model", "tokenizer.json"});
  return "";
}

// ---- [detection] --------------------------------------------------------------------------------

// What the DiT weights say about the network (the fields shapes can tell).
struct DitShapes {
  int64_t dim = 0, in_channels = 0, out_channels = 0, layers = 0, ffn = 0, text_dim = 0, freq_dim = 0;
  std::array<int64_t, 3> patch{0, 0, 0};
};

DitShapes read_shapes(const io::SafetensorsSet& f) {
  const auto layout = detect_layout(f.names());
  auto key = [&](const std::string& wan) { return layout == KeyLayout::Wan ? wan : to_diffusers_key(wan); };
  auto dims = [&](const std::string& wan_key, size_t rank) -> std::vector<int64_t> {
    const std::string k = key(wan_key);
    if (!f.contains(k)) throw IoError("checkpoint '" + f.path() + "' has no tensor '" + k + "'; cannot tell its config");
    const auto& s = f.info(k).shape;
    if (s.size() != rank)
      throw ShapeError("checkpoint '" + f.path() + "': tensor '" + k + "' has " + std::to_string(s.size()) +
                       " dimensions, expected " + std::to_string(rank));
    return s;
  };
  DitShapes d;
  const auto pe = dims("patch_embedding.weight", 5);
  d.dim = pe[0];
  d.in_channels = pe[1];
  d.patch = {pe[2], pe[3], pe[4]};
  d.text_dim = dims("text_embedding.0.weight", 2)[1];
  d.freq_dim = dims("time_embedding.0.weight", 2)[1];
  d.ffn = dims("blocks.0.ffn.0.weight", 2)[0];
  const auto head = dims("head.head.weight", 2)[0];
  const int64_t patch_volume = pe[2] * pe[3] * pe[4];
  d.out_channels = patch_volume > 0 && head % patch_volume == 0 ? head / patch_volume : 0;
  const std::regex block(R"(^blocks\.(\d+)\.)");
  for (const auto& n : f.names()) {
    std::smatch m;
    if (std::regex_search(n, m, block)) d.layers = std::max<int64_t>(d.layers, std::stoll(m[1]) + 1);
  }
  return d;
}

// The network fields a DiT config.json states: the original release's (dim, num_heads, in_dim ...)
// or diffusers' WanTransformer3DModel (num_attention_heads × attention_head_dim, in_channels ...).
struct DitJson {
  int64_t dim = 0, heads = 0, layers = 0, ffn = 0, in_channels = 0, out_channels = 0, text_dim = 0, freq_dim = 0;
  int64_t text_len = 0;
  double eps = 0;
  int cross_attn_norm = -1;  // -1 unstated
};

DitJson parse_dit_json(const std::string& path) {
  const json j = read_json(path);
  DitJson c;
  if (j.contains("num_attention_heads")) {  // diffusers
    c.heads = json_int(j, "num_attention_heads", 0);
    c.dim = c.heads * json_int(j, "attention_head_dim", 0);
    c.in_channels = json_int(j, "in_channels", 0);
    c.out_channels = json_int(j, "out_channels", 0);
  } else {  // Wan2.1 release
    c.dim = json_int(j, "dim", 0);
    c.heads = json_int(j, "num_heads", 0);
    c.in_channels = json_int(j, "in_dim", 0);
    c.out_channels = json_int(j, "out_dim", 0);
    c.text_len = json_int(j, "text_len", 0);
  }
  c.layers = json_int(j, "num_layers", 0);
  c.ffn = json_int(j, "ffn_dim", 0);
  c.text_dim = json_int(j, "text_dim", 0);
  c.freq_dim = json_int(j, "freq_dim", 0);
  if (j.contains("eps") && j["eps"].is_number()) c.eps = j["eps"].get<double>();
  if (j.contains("cross_attn_norm") && j["cross_attn_norm"].is_boolean()) c.cross_attn_norm = j["cross_attn_norm"].get<bool>();
  if (c.heads <= 0 || c.dim <= 0) throw IoError("DiT config '" + path + "' states no head count and width");
  return c;
}

std::string size_label(int64_t dim, int64_t layers) {
  if (dim == 1536 && layers == 30) return " (the 1.3B shape)";
  if (dim == 5120 && layers == 40) return " (the 14B shape)";
  return "";
}

// The DiT config of `weights` (+ its config.json when there is one): a registered config when
// every shape matches one, else a config named `name` built from the shapes. A config.json that
// disagrees with the weights is refused, naming both files.
DiTConfig detect_config(const std::string& weights, const std::string& json_path, const std::string& name) {
  io::SafetensorsSet file(weights, io::DtypeSet::All);  // shapes only: fp8 DiT files too
  const auto meta = file.metadata().find("longshot.config");
  if (meta != file.metadata().end() && has_config(meta->second) && json_path.empty()) return infer_config(weights);
  const DitShapes s = read_shapes(file);
  DitJson j;
  if (!json_path.empty()) {
    j = parse_dit_json(json_path);
    auto agree = [&](const char* field, int64_t stated, int64_t found) {
      if (stated > 0 && stated != found)
        throw ShapeError("DiT config '" + json_path + "' says " + field + " " + std::to_string(stated) +
                         size_label(j.dim, j.layers) + ", but the weights '" + weights + "' have " + field + " " +
                         std::to_string(found) + size_label(s.dim, s.layers) + ": the two do not belong together");
    };
    agree("dim", j.dim, s.dim);
    agree("num_layers", j.layers, s.layers);
    agree("ffn_dim", j.ffn, s.ffn);
    agree("text_dim", j.text_dim, s.text_dim);
    agree("freq_dim", j.freq_dim, s.freq_dim);
    agree("out_channels", j.out_channels, s.out_channels);
    if (j.in_channels > 0 && !position_channels_allowed(s.in_channels - j.in_channels))
      agree("in_channels", j.in_channels, s.in_channels);
  }
  for (const auto& c : registered_configs()) {
    if (c.dim == s.dim && c.num_layers == s.layers && c.ffn_dim == s.ffn && c.text_dim == s.text_dim &&
        c.freq_dim == s.freq_dim && c.out_channels == s.out_channels && c.patch == s.patch &&
        position_channels_allowed(s.in_channels - c.in_channels) && (j.heads == 0 || j.heads == c.num_heads)) {
      DiTConfig m = with_checkpoint_positions(c, weights);
      m.default_weights.clear();
      return m;
    }
  }
  DiTConfig c;  // Wan2.1 defaults for everything the shapes do not say (strides 4/8, sampling)
  c.name = name;
  c.dim = s.dim;
  c.num_layers = s.layers;
  c.ffn_dim = s.ffn;
  c.text_dim = s.text_dim;
  c.freq_dim = s.freq_dim;
  c.in_channels = j.in_channels > 0 ? j.in_channels : s.in_channels;
  c.position_channels = s.in_channels - c.in_channels;
  c.out_channels = s.out_channels;
  c.patch = s.patch;
  if (j.text_len > 0) c.text_len = j.text_len;
  if (j.eps > 0) c.eps = j.eps;
  if (j.cross_attn_norm >= 0) c.cross_attn_norm = j.cross_attn_norm == 1;
  // Heads leave no trace in the shapes; every Wan2.1 model uses head dim 128.
  c.num_heads = j.heads > 0 ? j.heads : (s.dim % 128 == 0 ? s.dim / 128 : 0);
  if (c.num_heads <= 0)
    throw IoError("checkpoint '" + weights + "' (dim " + std::to_string(s.dim) +
                  ") matches no registered config and has no config.json to state its head count");
  c.summary = "detected from " + weights + ": dim " + std::to_string(c.dim) + ", " + std::to_string(c.num_layers) +
              " layers, " + std::to_string(c.num_heads) + " heads";
  c.validate();
  return c;
}

// The embedding width of umT5 weights: diffusers' text_encoder/config.json (d_model), else the
// token embedding's shape in a safetensors file; 0 when it cannot be told without loading (.pth).
int64_t text_encoder_width(const std::string& path) {
  const fs::path p(path);
  const auto cfg = p.parent_path() / "config.json";
  if (ends_with(path, ".pth") || ends_with(path, ".pt")) return 0;
  // A config.json counts only in diffusers' text_encoder/ folder: beside split files it may be
  // anything's.
  if (p.parent_path().filename() == "text_encoder" && is_file(cfg)) {
    const json j = read_json(cfg.string());
    if (j.contains("d_model") && j["d_model"].is_number_integer()) return j["d_model"].get<int64_t>();
  }
  io::SafetensorsSet f(path, io::DtypeSet::All);  // shapes only: ComfyUI ships umT5 in fp8
  for (const char* k : {"shared.weight", "encoder.embed_tokens.weight", "token_embedding.weight"})
    if (f.contains(k) && f.info(k).shape.size() == 2) return f.info(k).shape[1];
  throw IoError("text encoder '" + path + "' has no token embedding (shared.weight, encoder.embed_tokens.weight or "
                "token_embedding.weight): is it a umT5 encoder?");
}

struct VaeFacts {
  int64_t z_dim = 0;  // latent channels; 0 unknown
  int temporal_stride = 0, spatial_stride = 0;
};

// Latent channels (and strides, from diffusers' config.json) of Wan VAE weights: config.json,
// else post_quant_conv (diffusers) / conv2 (original) in a safetensors file; .pth: unknown.
VaeFacts vae_facts(const std::string& path) {
  VaeFacts v;
  const auto cfg = fs::path(path).parent_path() / "config.json";
  if (fs::path(path).parent_path().filename() == "vae" && is_file(cfg)) {
    const json j = read_json(cfg.string());
    v.z_dim = json_int(j, "z_dim", 0);
    if (j.contains("temperal_downsample") && j["temperal_downsample"].is_array()) {
      v.temporal_stride = 1;
      for (const auto& b : j["temperal_downsample"])
        if (b.is_boolean() && b.get<bool>()) v.temporal_stride *= 2;
    }
    if (j.contains("dim_mult") && j["dim_mult"].is_array() && !j["dim_mult"].empty())
      v.spatial_stride = 1 << (j["dim_mult"].size() - 1);
    if (v.z_dim > 0) return v;
  }
  if (ends_with(path, ".pth") || ends_with(path, ".pt")) return v;
  io::SafetensorsSet f(path);
  for (const char* k : {"post_quant_conv.weight", "conv2.weight"})
    if (f.contains(k) && !f.info(k).shape.empty()) {
      v.z_dim = f.info(k).shape[0];
      return v;
    }
  throw IoError("VAE '" + path + "' has no post_quant_conv.weight or conv2.weight: is it a Wan VAE?");
}

// Refuses components that cannot work with the DiT, naming both; adopts the VAE's strides.
void check_components(ResolvedModel& m) {
  const std::string dit = m.dit_weights.empty() ? "config " + m.config.name : "'" + m.dit_weights + "'";
  if (!m.text_encoder.empty()) {
    const int64_t width = text_encoder_width(m.text_encoder);
    if (width > 0 && width != m.config.text_dim)
      throw ShapeError("text encoder '" + m.text_encoder + "' gives " + std::to_string(width) +
                       "-wide embeddings, but the DiT " + dit + " (" + m.config.name + ") takes text_dim " +
                       std::to_string(m.config.text_dim) + ": the two do not belong together");
  }
  if (!m.vae.empty()) {
    const VaeFacts v = vae_facts(m.vae);
    if (v.z_dim > 0 && v.z_dim != m.config.in_channels)
      throw ShapeError("VAE '" + m.vae + "' has " + std::to_string(v.z_dim) + " latent channels, but the DiT " + dit +
                       " (" + m.config.name + ") takes " + std::to_string(m.config.in_channels) +
                       ": the two do not belong together");
    if (v.temporal_stride > 0) m.config.temporal_stride = v.temporal_stride;
    if (v.spatial_stride > 0) m.config.spatial_stride = v.spatial_stride;
  }
}

// ---- [layouts] ----------------------------------------------------------------------------------

bool looks_diffusers(const fs::path& dir) { return is_file(dir / "model_index.json") || is_dir(dir / "transformer"); }

bool looks_wan_release(const fs::path& dir) {
  return !matching(dir, std::regex(R"(diffusion_pytorch_model.*\.safetensors(\.index\.json)?)")).empty();
}

void need(ResolvedModel& m, std::string& slot, const std::string& found, const char* component, const std::string& expected) {
  slot = found;
  if (found.empty()) m.missing.push_back(std::string(component) + " (expected " + expected + ")");
}

ResolvedModel read_diffusers(const fs::path& dir) {
  ResolvedModel m;
  m.layout = ModelLayout::Diffusers;
  m.root = dir.string();
  m.name = dir.filename().string();
  std::string why;
  need(m, m.dit_weights, find_weights(dir / "transformer", "diffusion_pytorch_model", &why), kComponentDiT,
       why.empty() ? "transformer/diffusion_pytorch_model.safetensors[.index.json]" : "transformer/: " + why);
  why.clear();
  need(m, m.text_encoder, find_weights(dir / "text_encoder", "model", &why), kComponentTextEncoder,
       why.empty() ? "text_encoder/model.safetensors[.index.json]" : "text_encoder/: " + why);
  need(m, m.tokenizer, tokenizer_in(dir / "tokenizer"), kComponentTokenizer, "tokenizer/spiece.model or tokenizer/tokenizer.json");
  need(m, m.vae, find_weights(dir / "vae", "diffusion_pytorch_model"), kComponentVae, "vae/diffusion_pytorch_model.safetensors");
  return m;
}

ResolvedModel read_wan_release(const fs::path& dir) {
  ResolvedModel m;
  m.layout = ModelLayout::WanRelease;
  m.root = dir.string();
  m.name = dir.filename().string();
  std::string why;
  need(m, m.dit_weights, find_weights(dir, "diffusion_pytorch_model", &why), kComponentDiT,
       why.empty() ? "diffusion_pytorch_model.safetensors[.index.json]" : why);
  std::string te = first_existing(dir, {"models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-bf16.safetensors"});
  if (te.empty()) {
    const auto any = matching(dir, std::regex(R"(models_t5.*\.(pth|safetensors))"));
    if (!any.empty()) te = any.front();
  }
  need(m, m.text_encoder, te, kComponentTextEncoder, "models_t5_umt5-xxl-enc-bf16.pth");
  need(m, m.tokenizer, tokenizer_in(dir / "google" / "umt5-xxl"), kComponentTokenizer,
       "google/umt5-xxl/spiece.model or tokenizer.json");
  need(m, m.vae, first_existing(dir, {"Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"}), kComponentVae, "Wan2.1_VAE.pth");
  return m;
}

// Reads the layout of `path`, detects the DiT config and checks the components it has.
ResolvedModel read_path(const fs::path& path) {
  ResolvedModel m;
  if (is_dir(path)) {
    if (looks_diffusers(path)) m = read_diffusers(path);
    else if (looks_wan_release(path)) m = read_wan_release(path);
    else
      throw IoError("'" + path.string() + "' is not a model folder: expected model_index.json and transformer/ "
                    "(diffusers) or diffusion_pytorch_model*.safetensors + config.json (the Wan2.1 release)");
  } else if (is_file(path)) {
    const std::string p = path.string();
    if (!ends_with(p, ".safetensors") && !ends_with(p, ".safetensors.index.json"))
      throw IoError("'" + p + "' is not a DiT checkpoint (.safetensors or .safetensors.index.json)");
    m.layout = ModelLayout::Checkpoint;
    m.root = p;
    m.dit_weights = p;
    m.name = path.filename().string();
    m.name = m.name.substr(0, m.name.find(".safetensors"));
  } else {
    throw IoError("no such model file or folder '" + path.string() + "'");
  }
  m.bytes_on_disk = bytes_under(path);
  if (!m.dit_weights.empty()) {
    std::string json_path;
    if (m.layout == ModelLayout::Diffusers) json_path = (path / "transformer" / "config.json").string();
    if (m.layout == ModelLayout::WanRelease) json_path = (path / "config.json").string();
    if (!json_path.empty() && !is_file(json_path)) json_path.clear();
    m.config = detect_config(m.dit_weights, json_path, m.name);
    check_components(m);
  }
  return m;
}

std::string search_path_text() {
  std::string s;
  for (const auto& d : model_search_path()) s += (s.empty() ? "" : ":") + d;
  return s;
}

// A name on the search path: a folder NAME or a file NAME.safetensors in one of its folders.
std::string find_on_search_path(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) return "";
  for (const auto& dir : model_search_path()) {
    if (is_dir(fs::path(dir) / name)) return (fs::path(dir) / name).string();
    if (is_file(fs::path(dir) / (name + ".safetensors"))) return (fs::path(dir) / (name + ".safetensors")).string();
  }
  return "";
}

}  // namespace

// ---- [resolve] ----------------------------------------------------------------------------------

ResolvedModel inspect_model(const std::string& path) { return read_path(fs::path(path)); }

ResolvedModel resolve_model(const ModelSpec& spec, const std::vector<std::string>& allow_missing) {
  ResolvedModel m;
  const bool split = !spec.dit.empty() || !spec.text_encoder.empty() || !spec.vae.empty() || !spec.tokenizer.empty();
  const std::string name = resolve_builtin_name(spec.model);
  if (name.empty() && spec.dit.empty()) {
    throw ParameterError("model", "name a model (--model NAME|DIR|FILE) or its DiT file (--dit FILE)");
  } else if (name.empty()) {
    m = read_path(fs::path(spec.dit));
    m.layout = ModelLayout::Split;
  } else if (has_config(name)) {
    m.layout = ModelLayout::Registered;
    m.name = name;
    m.config = find_config(name);
  } else if (fs::exists(name)) {
    m = read_path(fs::path(name));
  } else if (const auto found = find_on_search_path(name); !found.empty()) {
    m = read_path(fs::path(found));
  } else {
    std::string known;
    for (const auto& c : registered_configs()) known += (known.empty() ? "" : ", ") + c.name;
    throw ParameterError("model", "no model '" + name + "': not a registered name (" + known +
                                      "), not an existing folder or file, and not on the model search path (" +
                                      search_path_text() + ")");
  }
  if (split) {
    // Per-component files replace the folder's and clear what was missing of them.
    auto replace = [&](std::string& slot, const std::string& given, const char* component) {
      if (given.empty()) return;
      if (!fs::exists(given)) throw IoError(std::string(component) + " file '" + given + "' does not exist");
      slot = given;
      m.missing.erase(std::remove_if(m.missing.begin(), m.missing.end(),
                                     [&](const std::string& s) { return s.rfind(component, 0) == 0; }),
                      m.missing.end());
    };
    if (!spec.dit.empty() && !spec.model.empty()) {
      // --model NAME with --dit FILE: the file's config replaces the name's.
      const auto dit = read_path(fs::path(spec.dit));
      m.config = dit.config;
      replace(m.dit_weights, spec.dit, kComponentDiT);
    }
    replace(m.text_encoder, spec.text_encoder, kComponentTextEncoder);
    replace(m.vae, spec.vae, kComponentVae);
    if (!spec.tokenizer.empty()) {
      const auto tok = tokenizer_in(spec.tokenizer);
      if (tok.empty()) throw IoError("tokenizer '" + spec.tokenizer + "' is neither a file nor a folder with spiece.model or tokenizer.json");
      replace(m.tokenizer, tok, kComponentTokenizer);
    }
    if (m.layout == ModelLayout::Split) {
      // ComfyUI's files come without a tokenizer: the umT5 encoder needs one.
      if (m.tokenizer.empty() && !m.text_encoder.empty())
        m.missing.push_back(std::string(kComponentTokenizer) + " (give --tokenizer spiece.model)");
      if (m.text_encoder.empty()) m.missing.push_back(std::string(kComponentTextEncoder) + " (give --text-encoder FILE)");
      if (m.vae.empty()) m.missing.push_back(std::string(kComponentVae) + " (give --vae FILE)");
    }
    check_components(m);
  }
  std::string missing;
  for (const auto& item : m.missing) {
    bool allowed = false;
    for (const auto& a : allow_missing) allowed = allowed || item.rfind(a, 0) == 0;
    if (!allowed) missing += (missing.empty() ? "" : "; ") + item;
  }
  if (!missing.empty())
    throw IoError("model '" + (m.root.empty() ? m.name : m.root) + "' (" + to_string(m.layout) + ") is missing: " + missing);
  return m;
}

WanDiT load_dit(const ResolvedModel& m, uint64_t seed, torch::Device device, torch::ScalarType dtype, bool offload) {
  std::string weights = m.dit_weights;
  if (weights.empty() && m.layout == ModelLayout::Registered) {
    weights = m.config.default_weights;
    // A config that names its weights file needs it: noise from random weights is never a fallback
    // (random weights come only from a config that names none, e.g. tiny or --random-weights).
    if (!weights.empty() && !fs::exists(weights))
      throw IoError("model " + m.config.name + ": weights " + asset_search_text(fs::path(weights).filename().string()) +
                    ", or use --model tiny for random weights");
  }
  WanDiT model(m.config);
  if (weights.empty()) model->init_random(seed);
  else load_weights(*model, weights);
  model->place(device, dtype, offload);  // fp8 block weights stay bits; offload keeps blocks in host memory
  model->eval();
  return model;
}

// ---- [search] -----------------------------------------------------------------------------------

std::vector<std::string> model_search_path() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("LONGSHOT_MODELS"); env && *env) {
    std::string item;
    for (const char* c = env;; ++c) {
      if (*c == ':' || *c == 0) {
        if (!item.empty()) out.push_back(item);
        item.clear();
        if (*c == 0) break;
      } else {
        item += *c;
      }
    }
  }
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg) out.push_back((fs::path(xdg) / "longshot" / "models").string());
  else if (home && *home) out.push_back((fs::path(home) / ".local" / "share" / "longshot" / "models").string());
  return out;
}

std::vector<FoundModel> find_models() {
  std::vector<FoundModel> out;
  for (const auto& dir : model_search_path()) {
    if (!is_dir(dir)) continue;
    std::vector<fs::path> entries;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const auto p = e.path();
      if (is_dir(p) || (is_file(p) && ends_with(p.string(), ".safetensors"))) entries.push_back(p);
    }
    std::sort(entries.begin(), entries.end());
    for (const auto& p : entries) {
      FoundModel f;
      f.path = p.string();
      try {
        f.model = read_path(p);
      } catch (const std::exception& e) {
        f.error = e.what();
        f.model.name = p.filename().string();
      }
      out.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace longshot::model
