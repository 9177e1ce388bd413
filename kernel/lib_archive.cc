#include "kernel/lib_archive.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace crl {
namespace {

// The soname Debian's libarchive13 installs (ABI 13 since libarchive 3.0).
constexpr char kSoname[] = "libarchive.so.13";

struct Loaded {
  LibArchive lib;
  std::string error;  // empty once loaded
};

const Loaded& Load() {
  static const Loaded loaded = [] {
    Loaded l;
    void* h = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      l.error = std::string("cannot load libarchive: ") + dlerror();
      return l;
    }
#define CRL_LIBARCHIVE_LOAD(name)                                    \
  l.lib.name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name)); \
  if (!l.lib.name && l.error.empty()) l.error = std::string(kSoname) + " lacks " #name;
    CRL_LIBARCHIVE_FUNCTIONS(CRL_LIBARCHIVE_LOAD)
#undef CRL_LIBARCHIVE_LOAD
    return l;
  }();
  return loaded;
}

}  // namespace

Status LoadLibArchive() {
  const Loaded& l = Load();
  if (!l.error.empty()) return MakeError("%s", l.error.c_str());
  return Ok{};
}

const LibArchive& Archive() {
  const Loaded& l = Load();
  if (!l.error.empty()) {
    // Never reached: each entry point loads it first, and fails cleanly.
    fprintf(stderr, "criu-lite: %s\n", l.error.c_str());
    abort();
  }
  return l.lib;
}

}  // namespace crl
