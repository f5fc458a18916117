// Word-level tokenizer for the caption grammar of the procedural world: a fixed vocabulary built
// from the grammar's words, so the built-in text encoder's embedding table never changes size.
// Data room: knows the world's words, nothing of the model that embeds the ids.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/types.h>

namespace longshot::data {

// Lower-case alphanumeric words of `text`; everything else separates words. Shared by the
// tokenizer and the caption parser so both read a prompt the same way.
std::vector<std::string> split_words(const std::string& text);

class Tokenizer {
 public:
  static constexpr int64_t kPad = 0;
  static constexpr int64_t kUnk = 1;
  static constexpr int64_t kBos = 2;

  // The vocabulary of every word the caption grammar can produce, in a fixed order.
  Tokenizer();

  // Lower-cases, splits on anything not a letter or digit, maps unknown words to <unk>, prepends
  // <bos> and pads with <pad> (or truncates) to `length` ids. Deterministic.
  std::vector<int64_t> encode(const std::string& text, int64_t length) const;
  // [1, length] int64 ids of one prompt.
  torch::Tensor encode_tensor(const std::string& text, int64_t length) const;
  // The words of `ids`, <pad> dropped.
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const { return static_cast<int64_t>(words_.size()); }
  int64_t id_of(const std::string& word) const;
  const std::vector<std::string>& words() const { return words_; }

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace longshot::data
