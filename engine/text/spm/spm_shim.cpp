// A C doorway to libsentencepiece, built as its own module and opened by engine/text/tokenizer.cpp
// with RTLD_DEEPBIND. Why: Debian's libsentencepiece bundles protobuf-lite and exports its
// symbols; loaded into the same global scope as LibTorch's libprotobuf, protobuf's static
// initialisers call into the wrong copy and crash before main(). Opened deep-bound, this module
// and libsentencepiece resolve their protobuf symbols within themselves. Text room; no LibTorch.
#include <sentencepiece_processor.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#define LSP_API extern "C" __attribute__((visibility("default")))

namespace {
void put_error(const std::string& what, char* err, size_t cap) {
  if (!err || cap == 0) return;
  std::strncpy(err, what.c_str(), cap - 1);
  err[cap - 1] = '\0';
}
}  // namespace

// A processor for the model at `path`, or null with the reason in `err`. Owned until returned:
// Load throws for some damaged models (Darts' "zero-length key" for an empty piece), and a bare
// pointer leaked the half-loaded processor then (fuzz_tokenizer, docs/hardening.md finding 8).
LSP_API void* lsp_open(const char* path, char* err, size_t cap) {
  try {
    auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = sp->Load(path);
    if (!status.ok()) {
      put_error(status.ToString(), err, cap);
      return nullptr;
    }
    return sp.release();
  } catch (const std::exception& e) {
    put_error(e.what(), err, cap);
    return nullptr;
  }
}

LSP_API void lsp_close(void* h) { delete static_cast<sentencepiece::SentencePieceProcessor*>(h); }

// Ids of `text` into `out` (up to `cap`); returns how many there are (call again with a larger
// buffer when that exceeds `cap`), or −1 with the reason in `err`.
LSP_API long lsp_encode(void* h, const char* text, size_t len, int* out, size_t cap, char* err, size_t err_cap) {
  try {
    std::vector<int> ids;
    const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(h)->Encode(std::string(text, len), &ids);
    if (!status.ok()) {
      put_error(status.ToString(), err, err_cap);
      return -1;
    }
    for (size_t i = 0; i < ids.size() && i < cap; ++i) out[i] = ids[i];
    return long(ids.size());
  } catch (const std::exception& e) {
    put_error(e.what(), err, err_cap);
    return -1;
  }
}

LSP_API int lsp_eos_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->eos_id(); }
LSP_API int lsp_pad_id(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->pad_id(); }
LSP_API int lsp_piece_size(void* h) { return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize(); }
