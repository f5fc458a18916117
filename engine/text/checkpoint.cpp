// Checkpoint reading: a file, a folder or a shard index resolved to safetensors (engine/io's reader,
// every stored dtype accepted) or a torch.save archive (checkpoint_pth.cpp); identities for caches.
#include "engine/text/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "engine/common/error.h"

namespace longshot::text {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The weights file a folder stands for: model.safetensors, else its one shard index, else its one
// safetensors file; anything else is ambiguous.
std::string resolve_folder(const std::string& path) {
  std::error_code ec;
  std::vector<std::string> indexes, singles;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const auto name = e.path().filename().string();
    if (ends_with(name, ".safetensors.index.json")) indexes.push_back(e.path().string());
    else if (ends_with(name, ".safetensors")) singles.push_back(e.path().string());
  }
  std::sort(indexes.begin(), indexes.end());
  std::sort(singles.begin(), singles.end());
  const auto model = (fs::path(path) / "model.safetensors").string();
  if (fs::exists(model)) return model;
  if (indexes.size() == 1) return indexes[0];
  if (indexes.empty() && singles.size() == 1) return singles[0];
  throw IoError("text encoder folder '" + path + "': expected model.safetensors, one *.safetensors.index.json or one " +
                "*.safetensors; found " + std::to_string(indexes.size()) + " indexes and " +
                std::to_string(singles.size()) + " safetensors files");
}

}  // namespace

int64_t StoredTensor::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

Checkpoint::Checkpoint(const std::string& path) : path_(path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw IoError("text encoder weights '" + path + "': no such file or folder");
  if (fs::is_directory(path, ec)) path_ = resolve_folder(path);
  if (!ends_with(path_, ".json") && !ends_with(path_, ".safetensors")) {
    add_archive(path_);
    return;
  }
  safetensors_ = std::make_unique<io::SafetensorsSet>(path_, io::DtypeSet::All);
  files_ = safetensors_->files();
  for (const auto& name : safetensors_->names()) {
    const auto& i = safetensors_->info(name);
    StoredTensor t;
    t.name = name;
    t.file = safetensors_->shard(name).path();
    t.dtype = i.dtype;
    t.shape = i.shape;
    tensors_[name] = std::move(t);
  }
}

Checkpoint::~Checkpoint() = default;

std::vector<std::string> Checkpoint::files() const { return files_; }

uint64_t Checkpoint::file_bytes() const {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& f : files_) n += uint64_t(fs::file_size(f, ec));
  return n;
}

namespace {
std::string stat_line(const std::string& file) {
  struct stat st {};
  ::stat(file.c_str(), &st);
  std::error_code ec;
  std::ostringstream s;
  s << fs::absolute(file, ec).lexically_normal().string() << '|' << st.st_size << '|' << st.st_mtim.tv_sec << '.'
    << st.st_mtim.tv_nsec << ';';
  return s.str();
}
}  // namespace

std::string checkpoint_identity(const std::string& path) {
  std::error_code ec;
  const bool dir = fs::is_directory(path, ec);
  if (!dir && !ends_with(path, ".json")) return stat_line(path);
  const auto folder = dir ? fs::path(path) : fs::path(path).parent_path();
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(folder.empty() ? fs::path(".") : folder, ec)) {
    const auto name = e.path().filename().string();
    if (e.is_regular_file() && (ends_with(name, ".safetensors") || ends_with(name, ".json"))) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::string id;
  for (const auto& f : files) id += stat_line(f);
  return id;
}

std::string Checkpoint::identity() const {
  std::string id;
  for (const auto& f : files_) id += stat_line(f);
  return id;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

const StoredTensor& Checkpoint::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw IoError("text encoder weights '" + path_ + "': tensor '" + name + "' is missing");
  return it->second;
}

torch::Tensor Checkpoint::load(const std::string& name) const {
  info(name);  // the IoError naming the tensor when absent
  auto a = archive_.find(name);
  if (a != archive_.end()) return a->second.contiguous();
  return safetensors_->load(name);
}

}  // namespace longshot::text
