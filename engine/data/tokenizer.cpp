// The caption vocabulary: specials, then the grammar's fixed words, then every palette, shape,
// size and motion word — collected from world.h's own tables so the two cannot drift apart.
#include "engine/data/tokenizer.h"

#include <cctype>

#include "engine/common/error.h"
#include "engine/data/world.h"

namespace longshot::data {

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::string cur;
  for (char ch : text) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (std::isalnum(u)) {
      cur.push_back(static_cast<char>(std::tolower(u)));
    } else if (!cur.empty()) {
      words.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) words.push_back(cur);
  return words;
}

Tokenizer::Tokenizer() {
  auto add = [this](const std::string& phrase) {
    for (const std::string& w : split_words(phrase)) {
      if (ids_.emplace(w, static_cast<int64_t>(words_.size())).second) words_.push_back(w);
    }
  };
  for (const char* special : {"<pad>", "<unk>", "<bos>"}) {
    ids_.emplace(special, static_cast<int64_t>(words_.size()));
    words_.push_back(special);
  }
  add("a an and on the as camera pans left right background plain gradient checkered");
  for (const auto& c : object_colors()) add(c.name);
  for (const auto& c : background_colors()) add(c.name);
  for (Shape s : {Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond}) add(to_string(s));
  for (Size s : {Size::Small, Size::Medium, Size::Large}) add(to_string(s));
  for (int m = 0; m <= static_cast<int>(Motion::Still); ++m) add(motion_phrase(static_cast<Motion>(m)));
}

int64_t Tokenizer::id_of(const std::string& word) const {
  const auto it = ids_.find(word);
  return it == ids_.end() ? kUnk : it->second;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, int64_t length) const {
  if (length < 2) throw ParameterError("text_length", "must be at least 2 (<bos> and one word), got " + std::to_string(length));
  std::vector<int64_t> ids;
  ids.reserve(length);
  ids.push_back(kBos);
  for (const std::string& w : split_words(text)) {
    if (static_cast<int64_t>(ids.size()) == length) break;
    ids.push_back(id_of(w));
  }
  ids.resize(length, kPad);
  return ids;
}

torch::Tensor Tokenizer::encode_tensor(const std::string& text, int64_t length) const {
  const auto ids = encode(text, length);
  return torch::tensor(ids, torch::kInt64).unsqueeze(0);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) {
    if (id == kPad) continue;
    if (!out.empty()) out += ' ';
    out += (id >= 0 && id < vocab_size()) ? words_[id] : "<unk>";
  }
  return out;
}

}  // namespace longshot::data
