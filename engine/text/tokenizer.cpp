// Prompt cleaning (UTF-8 → code points → Wan's ftfy/html/whitespace steps → UTF-8) and the
// SentencePiece wrapper. libsentencepiece is reached through engine/text/spm/spm_shim.cpp, a
// module opened with RTLD_DEEPBIND (its bundled protobuf-lite must not meet LibTorch's libprotobuf
// in one symbol scope). LONGSHOT_WITH_SENTENCEPIECE and LONGSHOT_SPM_SHIM (the module's build
// path) are set on this file alone by engine/CMakeLists.txt; without them the Tokenizer refuses.
#include "engine/text/tokenizer.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/common/error.h"

namespace longshot::text {

namespace {

using U32 = std::u32string;

U32 utf8_decode(const std::string& s) {
  U32 out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int n = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
    char32_t cp = n == 0 ? b : n == 1 ? (b & 0x1f) : n == 2 ? (b & 0x0f) : (b & 0x07);
    bool ok = n >= 0 && i + size_t(n) < s.size();
    for (int k = 1; ok && k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((c & 0xc0) != 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    if (ok && ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
               (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff))
      ok = false;
    if (!ok) {
      out.push_back(0xfffd);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += size_t(n) + 1;
  }
  return out;
}

std::string utf8_encode(const U32& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xc0 | (c >> 6));
      out += char(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += char(0xe0 | (c >> 12));
      out += char(0x80 | ((c >> 6) & 0x3f));
      out += char(0x80 | (c & 0x3f));
    } else {
      out += char(0xf0 | (c >> 18));
      out += char(0x80 | ((c >> 12) & 0x3f));
      out += char(0x80 | ((c >> 6) & 0x3f));
      out += char(0x80 | (c & 0x3f));
    }
  }
  return out;
}

// Python's str.isspace(): what \s matches in Wan's re.sub(r'\s+', ' ', text) and what strip() drops.
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Windows-1252 for 0x80–0x9F (html.unescape's numeric references and ftfy's C1 fix); 0: undefined.
constexpr char32_t kCp1252[32] = {0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
                                  0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0,      0x017d, 0,
                                  0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
                                  0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178};

// Named entities html.unescape resolves; the common ones (HTML5 has 2,231).
const std::pair<const char*, char32_t> kEntities[] = {
    {"amp", '&'},        {"lt", '<'},          {"gt", '>'},         {"quot", '"'},        {"apos", '\''},
    {"nbsp", 0xa0},      {"copy", 0xa9},       {"reg", 0xae},       {"trade", 0x2122},    {"hellip", 0x2026},
    {"mdash", 0x2014},   {"ndash", 0x2013},    {"lsquo", 0x2018},   {"rsquo", 0x2019},    {"ldquo", 0x201c},
    {"rdquo", 0x201d},   {"sbquo", 0x201a},    {"bdquo", 0x201e},   {"laquo", 0xab},      {"raquo", 0xbb},
    {"bull", 0x2022},    {"middot", 0xb7},     {"deg", 0xb0},       {"plusmn", 0xb1},     {"times", 0xd7},
    {"divide", 0xf7},    {"frac12", 0xbd},     {"frac14", 0xbc},    {"frac34", 0xbe},     {"euro", 0x20ac},
    {"pound", 0xa3},     {"yen", 0xa5},        {"cent", 0xa2},      {"sect", 0xa7},       {"para", 0xb6},
    {"iexcl", 0xa1},     {"iquest", 0xbf},     {"eacute", 0xe9},    {"egrave", 0xe8},     {"agrave", 0xe0},
    {"aacute", 0xe1},    {"ouml", 0xf6},       {"uuml", 0xfc},      {"auml", 0xe4},       {"szlig", 0xdf},
    {"ntilde", 0xf1},    {"ccedil", 0xe7},     {"shy", 0xad},       {"ensp", 0x2002},     {"emsp", 0x2003},
    {"thinsp", 0x2009},  {"larr", 0x2190},     {"rarr", 0x2192},    {"hearts", 0x2665},   {"micro", 0xb5},
};
// Legacy names html.unescape also accepts without the ';' (a subset of HTML5's list).
const char* kBareEntities[] = {"amp", "lt", "gt", "quot", "nbsp", "copy", "reg"};

bool is_alnum(char32_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Python's html.unescape for numeric references and the names above.
U32 html_unescape(const U32& s) {
  U32 out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < s.size() && s[j] == '#') {
      ++j;
      const bool hex = j < s.size() && (s[j] == 'x' || s[j] == 'X');
      if (hex) ++j;
      const size_t start = j;
      uint64_t num = 0;
      while (j < s.size() && (hex ? (is_alnum(s[j]) && std::isxdigit(int(s[j]))) : (s[j] >= '0' && s[j] <= '9'))) {
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + uint64_t(std::isdigit(int(s[j])) ? s[j] - '0' : (std::tolower(int(s[j])) - 'a' + 10)),
                                 0x7fffffff);
        ++j;
      }
      if (j == start) {  // "&#" without digits stays as written
        out.push_back(s[i++]);
        continue;
      }
      if (j < s.size() && s[j] == ';') ++j;
      i = j;
      if (num >= 0x80 && num <= 0x9f && kCp1252[num - 0x80]) out.push_back(kCp1252[num - 0x80]);
      else if (num == 0 || (num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) out.push_back(0xfffd);
      else if (num == 0x0d) out.push_back('\r');
      else if ((num >= 0x1 && num <= 0x8) || (num >= 0xe && num <= 0x1f) || (num >= 0x7f && num <= 0x9f) ||
               (num >= 0xfdd0 && num <= 0xfdef) || num == 0xb || (num & 0xfffe) == 0xfffe)
        ;  // html's invalid code points: dropped
      else out.push_back(char32_t(num));
      continue;
    }
    // Named: the longest known name followed by ';', else a bare legacy name.
    size_t k = j;
    while (k < s.size() && k - j < 32 && is_alnum(s[k])) ++k;
    std::string name;
    for (size_t p = j; p < k; ++p) name += char(s[p]);
    bool done = false;
    if (k < s.size() && s[k] == ';') {
      for (const auto& [n, cp] : kEntities)
        if (name == n) {
          out.push_back(cp);
          i = k + 1;
          done = true;
          break;
        }
    }
    if (!done) {
      for (const char* n : kBareEntities) {
        const std::string bare(n);
        if (name.compare(0, bare.size(), bare) == 0) {
          for (const auto& [en, cp] : kEntities)
            if (bare == en) out.push_back(cp);
          i = j + bare.size();
          done = true;
          break;
        }
      }
    }
    if (!done) out.push_back(s[i++]);
  }
  return out;
}

// ftfy.fix_text's steps that change SentencePiece's input (see tokenizer.h for what is left out).
U32 ftfy_fixes(U32 s) {
  if (s.find(U'<') == U32::npos) s = html_unescape(s);  // ftfy's unescape_html="auto"
  U32 out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == 0x1b && i + 1 < s.size() && s[i + 1] == '[') {  // terminal escape: ESC [ digits/; letter
      size_t j = i + 2;
      while (j < s.size() && ((s[j] >= '0' && s[j] <= '9') || s[j] == ';')) ++j;
      if (j < s.size() && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z'))) {
        i = j;
        continue;
      }
    }
    if (c >= 0x80 && c <= 0x9f && kCp1252[c - 0x80]) c = kCp1252[c - 0x80];  // C1 controls as Windows-1252
    if (c >= 0xfb00 && c <= 0xfb06) {  // Latin ligatures
      static const char* kLig[] = {"ff", "fi", "fl", "ffi", "ffl", "\u017ft", "st"};
      const U32 r = utf8_decode(kLig[c - 0xfb00]);
      out += r;
      continue;
    }
    if (c == 0x2bc || (c >= 0x2018 && c <= 0x201b)) c = '\'';
    else if (c >= 0x201c && c <= 0x201f) c = '"';
    const bool control = c <= 0x08 || c == 0x0b || (c >= 0x0e && c <= 0x1f) || c == 0x7f || (c >= 0x206a && c <= 0x206f) ||
                         c == 0xfeff || (c >= 0xfff9 && c <= 0xfffc);
    if (!control) out.push_back(c);
  }
  return out;
}

}  // namespace

std::string clean_prompt(const std::string& prompt) {
  U32 s = html_unescape(html_unescape(ftfy_fixes(utf8_decode(prompt))));
  U32 out;
  out.reserve(s.size());
  bool space = false;
  for (char32_t c : s) {
    if (py_space(c)) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return utf8_encode(out);
}

// ---------------------------------------------------------------------------------------------

// The shim's C functions, resolved once per process.
struct SpmApi {
  void* (*open)(const char*, char*, size_t) = nullptr;
  void (*close)(void*) = nullptr;
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t) = nullptr;
  int (*eos_id)(void*) = nullptr;
  int (*pad_id)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  std::string error;  // why it could not be loaded; empty when loaded
};

namespace {

// Sanitizer runtimes refuse RTLD_DEEPBIND (a deep-bound module would bypass their malloc). The
// fuzz build (LONGSHOT_SPM_NO_DEEPBIND) loads the module into a process without LibTorch, where
// no second protobuf exists to collide with.
#ifdef LONGSHOT_SPM_NO_DEEPBIND
constexpr int kSpmOpenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kSpmOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

const SpmApi& spm_api() {
  static SpmApi api;
  static std::once_flag once;
  std::call_once(once, [] {
#ifndef LONGSHOT_WITH_SENTENCEPIECE
    api.error = "this Longshot was built without SentencePiece (install libsentencepiece-dev, reconfigure)";
#else
    // Where the module may be: LONGSHOT_SPM_SHIM, beside an installed binary, the build folder.
    std::vector<std::string> tried;
    if (const char* env = std::getenv("LONGSHOT_SPM_SHIM"); env && *env) tried.push_back(env);
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) tried.push_back((exe.parent_path().parent_path() / "lib/longshot/liblongshot_spm.so").string());
    tried.push_back(LONGSHOT_SPM_SHIM);
    void* lib = nullptr;
    std::string why;
    for (const auto& p : tried) {
      if (!std::filesystem::exists(p, ec)) continue;
      lib = ::dlopen(p.c_str(), kSpmOpenFlags);
      if (lib) break;
      why += std::string("; ") + ::dlerror();
    }
    if (!lib) {
      api.error = "the SentencePiece module liblongshot_spm.so was not found or not loadable (looked at";
      for (const auto& p : tried) api.error += " '" + p + "'";
      api.error += why + "); set LONGSHOT_SPM_SHIM to its path";
      return;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      if (!fn && api.error.empty()) api.error = std::string("liblongshot_spm.so lacks ") + name;
    };
    sym(api.open, "lsp_open");
    sym(api.close, "lsp_close");
    sym(api.encode, "lsp_encode");
    sym(api.eos_id, "lsp_eos_id");
    sym(api.pad_id, "lsp_pad_id");
    sym(api.piece_size, "lsp_piece_size");
#endif
  });
  return api;
}

}  // namespace

struct Tokenizer::Impl {
  void* handle = nullptr;
  ~Impl() {
    if (handle) spm_api().close(handle);
  }
};

bool Tokenizer::available() { return spm_api().error.empty(); }

Tokenizer::Tokenizer(const std::string& path, int64_t max_len) : path_(path), max_len_(max_len) {
  if (max_len < 1) throw ParameterError("max-len", "the tokenizer needs room for at least the EOS token");
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) path_ = (fs::path(path) / "spiece.model").string();
  if (!fs::is_regular_file(path_, ec))
    throw IoError("tokenizer '" + path_ + "': no such file (give spiece.model or the folder holding it)");
  const auto& api = spm_api();
  if (!api.error.empty())
    throw IoError("tokenizer '" + path_ + "': " + api.error + "; or give precomputed embeddings (--text-embeddings)");
  impl_ = std::make_unique<Impl>();
  char err[512] = {0};
  impl_->handle = api.open(path_.c_str(), err, sizeof err);
  if (!impl_->handle) throw IoError("tokenizer '" + path_ + "' is not a SentencePiece model: " + err);
  if (api.eos_id(impl_->handle) < 0) throw IoError("tokenizer '" + path_ + "' has no EOS piece (umT5's is id 1)");
  eos_ = api.eos_id(impl_->handle);
  pad_ = api.pad_id(impl_->handle) >= 0 ? api.pad_id(impl_->handle) : 0;  // transformers pads umT5 with id 0
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::pieces(const std::string& text) const {
  const auto& api = spm_api();
  std::vector<int> ids(text.size() + 16);
  char err[512] = {0};
  for (int attempt = 0; attempt < 2; ++attempt) {
    const long n = api.encode(impl_->handle, text.data(), text.size(), ids.data(), ids.size(), err, sizeof err);
    if (n < 0) throw Error("tokenizer '" + path_ + "': " + err);
    if (size_t(n) <= ids.size()) {
      ids.resize(size_t(n));
      return ids;
    }
    ids.resize(size_t(n));
  }
  throw Error("tokenizer '" + path_ + "': the piece count changed between two encodings of one text");
}

Tokens Tokenizer::encode(const std::string& prompt) const {
  const auto p = pieces(clean_prompt(prompt));
  Tokens t;
  const size_t keep = std::min(p.size(), size_t(max_len_ - 1));
  t.truncated = keep < p.size();
  t.ids.assign(p.begin(), p.begin() + std::ptrdiff_t(keep));
  t.ids.push_back(eos_);
  t.length = int64_t(t.ids.size());
  t.mask.assign(size_t(t.length), 1);
  t.ids.resize(size_t(max_len_), pad_);
  t.mask.resize(size_t(max_len_), 0);
  return t;
}

int64_t Tokenizer::vocab_size() const { return spm_api().piece_size(impl_->handle); }

std::string Tokenizer::identity() const {
  struct stat st {};
  ::stat(path_.c_str(), &st);
  std::ostringstream s;
  std::error_code ec;
  s << std::filesystem::absolute(path_, ec).lexically_normal().string() << '|' << st.st_size << '|' << st.st_mtim.tv_sec
    << '.' << st.st_mtim.tv_nsec;
  return s.str();
}

}  // namespace longshot::text
