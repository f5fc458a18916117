// libFuzzer target: the umT5 tokenizer (engine/text/tokenizer.cpp) through libsentencepiece. The
// first byte chooses what the rest is:
//   byte % 4 == 0: a spiece.model file (an in-memory memfd) — Tokenizer's load, and on success an
//                  encode of a fixed prompt;
//   otherwise:     a prompt, encoded with a valid model (LONGSHOT_FUZZ_SPIECE: a unigram model with
//                  umT5's nmt_nfkc normaliser, fuzz/spiece/) at max_len 512, 8 or 1 (byte % 4).
// Any exception but longshot::Error is a finding; so is (trap) clean_prompt output that is not
// UTF-8, or Tokens that break encode's contract: max_len ids and mask, EOS after the pieces,
// padding after, every id inside the vocabulary. libsentencepiece is Debian's, not instrumented.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/common/error.h"
#include "engine/text/tokenizer.h"

namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int n = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
    if (n < 0 || i + size_t(n) >= s.size()) return false;
    uint32_t cp = n == 0 ? b : n == 1 ? (b & 0x1fu) : n == 2 ? (b & 0x0fu) : (b & 0x07u);
    for (int k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3fu);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
        cp > 0x10ffff)
      return false;
    i += size_t(n) + 1;
  }
  return true;
}

void check_tokens(const longshot::text::Tokenizer& tok, const longshot::text::Tokens& t) {
  const auto n = size_t(tok.max_len());
  if (t.ids.size() != n || t.mask.size() != n || t.length < 1 || t.length > tok.max_len()) __builtin_trap();
  if (t.ids[size_t(t.length - 1)] != tok.eos_id()) __builtin_trap();
  const int64_t vocab = tok.vocab_size();
  for (size_t i = 0; i < n; ++i) {
    const bool piece = int64_t(i) < t.length;
    if (t.mask[i] != (piece ? 1 : 0)) __builtin_trap();
    if (!piece && t.ids[i] != tok.pad_id()) __builtin_trap();
    if (t.ids[i] < 0 || t.ids[i] >= vocab) __builtin_trap();
  }
}

void load_model(const uint8_t* data, size_t size) {
  const int fd = ::memfd_create("spiece.model", MFD_CLOEXEC);
  if (fd < 0) return;
  if (size == 0 || ::write(fd, data, size) == ssize_t(size)) {
    try {
      longshot::text::Tokenizer tok("/proc/self/fd/" + std::to_string(fd), 16);
      check_tokens(tok, tok.encode("a cat walks along the beach &amp; waves"));
    } catch (const longshot::Error&) {
    }
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned mode = data[0] % 4;
  if (mode == 0) {
    load_model(data + 1, size - 1);
    return 0;
  }
  // One valid model per max_len, loaded on first use (a load reads and parses the whole file).
  static std::unique_ptr<longshot::text::Tokenizer> tokenizers[4];
  auto& tok = tokenizers[mode];
  if (!tok) tok = std::make_unique<longshot::text::Tokenizer>(LONGSHOT_FUZZ_SPIECE, mode == 1 ? 512 : mode == 2 ? 8 : 1);
  const std::string prompt(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!valid_utf8(longshot::text::clean_prompt(prompt))) __builtin_trap();
  try {
    check_tokens(*tok, tok->encode(prompt));
  } catch (const longshot::Error&) {
  }
  return 0;
}
