// The umT5 tokenizer: Wan's prompt cleaning, then SentencePiece (libsentencepiece) on the user's
// spiece.model, EOS appended, padded or cut to 512 with an attention mask.
// Text room: strings in, token ids out — no encoder, no pipeline, no UI.
//
// Wan (wan/modules/tokenizers.py, clean='whitespace') and diffusers (pipeline_wan.prompt_clean)
// clean a prompt as ftfy.fix_text → html.unescape twice → strip → collapse \s+ to one space.
// clean_prompt() reproduces: the whole html.unescape for numeric references and the common named
// entities (&amp; &lt; &gt; &quot; &apos; &#39; &nbsp; and ~40 more, see tokenizer.cpp; a
// name outside the table stays as written), Python's str.isspace set for \s, and these ftfy
// fixes: control characters removed (ftfy's set: C0 except \t \n \f \r, DEL, U+206A–U+206F,
// U+FEFF, U+FFF9–U+FFFC), terminal escape sequences removed, curly quotes straightened
// (U+02BC, U+2018–U+201B → ', U+201C–U+201F → "), Latin ligatures split (ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ).
// Not reproduced: ftfy's mojibake repair (text decoded with the wrong codec), its width and NFC
// normalisation (SentencePiece's own nmt_nfkc normaliser in spiece.model covers both), and
// HTML5's rarer named entities. Invalid UTF-8 bytes become U+FFFD.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace longshot::text {

std::string clean_prompt(const std::string& prompt);

struct Tokens {
  std::vector<int64_t> ids;   // max_len ids: the pieces, EOS, then padding
  std::vector<int64_t> mask;  // 1 for the pieces and EOS, 0 for padding
  int64_t length = 0;         // pieces + EOS (the 1s in mask)
  bool truncated = false;     // the prompt had more than max_len − 1 pieces; the rest was cut
};

class Tokenizer {
 public:
  // False when Longshot was built without SentencePiece (then the constructor throws).
  static bool available();
  // `path`: a spiece.model file or a folder holding one (diffusers `tokenizer/`, google/umt5-xxl).
  // Throws IoError naming the file when it is missing or not a SentencePiece model.
  explicit Tokenizer(const std::string& path, int64_t max_len = 512);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // clean_prompt, SentencePiece, then as transformers' T5 tokenizer with padding="max_length",
  // truncation=True, max_length=max_len: at most max_len − 1 pieces, EOS, pad ids to max_len.
  Tokens encode(const std::string& prompt) const;
  // SentencePiece's ids for `text` as is: no cleaning, no EOS, no padding (what spm_encode prints).
  std::vector<int> pieces(const std::string& text) const;

  const std::string& path() const { return path_; }
  std::string identity() const;  // path, size and mtime of the model file (cache keys)
  int64_t max_len() const { return max_len_; }
  int64_t eos_id() const { return eos_; }
  int64_t pad_id() const { return pad_; }
  int64_t vocab_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  int64_t max_len_, eos_ = 1, pad_ = 0;
};

}  // namespace longshot::text
