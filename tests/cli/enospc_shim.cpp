// A disk that fills up, for the disk-full tests (tests/cli/test_disk_full_cli.cpp), without mounting
// a small filesystem (CI may not allow mount). Built only with the tests, loaded with LD_PRELOAD:
//   LONGSHOT_ENOSPC_DIR=/some/folder   files whose path lies under it share one byte budget
//   LONGSHOT_ENOSPC_BYTES=N            that budget; once it is spent, writes fail with ENOSPC
// A write that crosses the budget is short (what a filling disk does), the next one fails.
// Interposes the entry points our writers reach through the PLT: write/writev/pwrite (libav's file
// protocol, libstdc++'s filebuf) and fwrite (libpng; glibc's own flushes call its internal write,
// which no preload sees, so stdio is limited where the data enters it). Plain C ABI, libc only.
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

using WriteFn = ssize_t (*)(int, const void*, size_t);
using WritevFn = ssize_t (*)(int, const struct iovec*, int);
using PwriteFn = ssize_t (*)(int, const void*, size_t, off_t);
using FwriteFn = size_t (*)(const void*, size_t, size_t, FILE*);

template <class Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

unsigned long long g_used = 0;  // bytes written under the folder so far (atomic builtins)

// Is `fd` a file under $LONGSHOT_ENOSPC_DIR?
bool limited(int fd) {
  const char* dir = getenv("LONGSHOT_ENOSPC_DIR");
  if (!dir || !*dir || fd < 0) return false;
  char link[64], target[4096];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  const size_t len = strlen(dir);
  return strncmp(target, dir, len) == 0 && (target[len] == '/' || target[len] == '\0');
}

// How many of `want` bytes may still go to a limited file (takes them from the budget); 0 = full.
size_t take(size_t want) {
  const char* text = getenv("LONGSHOT_ENOSPC_BYTES");
  const unsigned long long budget = text ? strtoull(text, nullptr, 10) : 0;
  unsigned long long used = __atomic_load_n(&g_used, __ATOMIC_SEQ_CST);
  for (;;) {
    if (used >= budget) return 0;
    const unsigned long long grant = budget - used < want ? budget - used : want;
    if (__atomic_compare_exchange_n(&g_used, &used, used + grant, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
      return static_cast<size_t>(grant);
  }
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t count) {
  static const WriteFn real = next<WriteFn>("write");
  if (count == 0 || !limited(fd)) return real(fd, buf, count);
  const size_t grant = take(count);
  if (grant == 0) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, grant);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static const PwriteFn real = next<PwriteFn>("pwrite");
  if (count == 0 || !limited(fd)) return real(fd, buf, count, offset);
  const size_t grant = take(count);
  if (grant == 0) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, grant, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off_t offset) { return pwrite(fd, buf, count, offset); }

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  static const WritevFn real = next<WritevFn>("writev");
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
  if (total == 0 || !limited(fd)) return real(fd, iov, iovcnt);
  const size_t grant = take(total);
  if (grant == 0) {
    errno = ENOSPC;
    return -1;
  }
  if (grant == total) return real(fd, iov, iovcnt);
  // A short write: the granted bytes from the front of the vector, in order.
  static const WriteFn real_write = next<WriteFn>("write");
  size_t done = 0;
  for (int i = 0; i < iovcnt && done < grant; ++i) {
    const size_t part = iov[i].iov_len < grant - done ? iov[i].iov_len : grant - done;
    const ssize_t w = real_write(fd, iov[i].iov_base, part);
    if (w < 0) return done ? static_cast<ssize_t>(done) : -1;
    done += static_cast<size_t>(w);
    if (static_cast<size_t>(w) < part) break;
  }
  return static_cast<ssize_t>(done);
}

size_t fwrite(const void* ptr, size_t size, size_t nmemb, FILE* stream) {
  static const FwriteFn real = next<FwriteFn>("fwrite");
  if (size == 0 || nmemb == 0 || !limited(fileno(stream))) return real(ptr, size, nmemb, stream);
  const size_t grant = take(size * nmemb);
  const size_t items = grant / size;
  if (items == nmemb) return real(ptr, size, nmemb, stream);
  const size_t wrote = items ? real(ptr, size, items, stream) : 0;
  errno = ENOSPC;
  stream->_flags |= _IO_ERR_SEEN;  // what glibc records when its own write fails: ferror() is true
  return wrote;
}

}  // extern "C"
