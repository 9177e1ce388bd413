// A seeded mutation fuzzer for what criu-lite reads from others: image
// records, parsed and validated as restore does before any task exists, and
// page server frames, as the receiver reads them. Built with AddressSanitizer
// and UndefinedBehaviorSanitizer (any finding aborts the run); g++ has no
// libFuzzer, so the mutations are ours: bit flips, interesting values,
// deletions, insertions, duplications and splices of the corpus entries.
//
//   fuzz_images CORPUS_DIR ITERATIONS [SEED]
//
// The corpus (tests/fuzz/corpus) holds one file per record kind, named by
// kind: inventory, core, mm, pagemap (validated against the mm entry), fds,
// shared, tracking, stats; wire-* are page server sessions as sent.
#include <dirent.h>
#include <endian.h>
#include <google/protobuf/stubs/logging.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "images/criu_lite.pb.h"
#include "images/image_file.h"
#include "images/validate.h"
#include "pageserver/wire.h"

namespace crl {
namespace {

// A channel over bytes in memory: what a peer sent.
class MemChannel : public Channel {
 public:
  explicit MemChannel(const std::string& data) : data_(data) {}
  Status Send(const void*, size_t) override { return Ok{}; }
  Status Recv(void* out, size_t len) override {
    if (data_.size() - pos_ < len) return MakeError("the peer hung up mid-stream");
    memcpy(out, data_.data() + pos_, len);
    pos_ += len;
    return Ok{};
  }
  int plain_fd() const override { return -1; }
  std::string peer() const override { return ""; }

 private:
  const std::string& data_;
  size_t pos_ = 0;
};

img::MmState g_mm;  // the corpus's mm, for pagemaps

template <typename M>
void Parse(const std::string& bytes, ImageKind kind, const std::function<void(const M&)>& check) {
  M m;
  if (ParseImage("fuzz", bytes, kind, &m).ok()) check(m);
}

// One input, for the kind the corpus entry named.
void Target(const std::string& kind, const std::string& bytes) {
  if (kind == "inventory")
    Parse<img::Inventory>(bytes, ImageKind::kInventory,
                          [](const img::Inventory& m) { (void)ValidateTree(m); });
  else if (kind == "core")
    Parse<img::TaskCore>(bytes, ImageKind::kCore,
                         [](const img::TaskCore& m) { (void)ValidateCore(m); });
  else if (kind == "mm")
    Parse<img::MmState>(bytes, ImageKind::kMm, [](const img::MmState& m) { (void)ValidateMm(m); });
  else if (kind == "pagemap")
    Parse<img::Pagemap>(bytes, ImageKind::kPagemap,
                        [](const img::Pagemap& m) { (void)ValidatePagemap(m, g_mm); });
  else if (kind == "fds")
    Parse<img::Fds>(bytes, ImageKind::kFds, [](const img::Fds& m) { (void)ValidateFds(m); });
  else if (kind == "shared")
    Parse<img::Shared>(bytes, ImageKind::kShared, [](const img::Shared&) {});
  else if (kind == "tracking")
    Parse<img::Tracking>(bytes, ImageKind::kTracking, [](const img::Tracking&) {});
  else if (kind == "stats")
    Parse<img::Stats>(bytes, ImageKind::kStats, [](const img::Stats&) {});
  else if (kind == "wire") {
    MemChannel c(bytes);
    for (int i = 0; i < 1000; i++) {
      auto h = RecvHeader(c);
      if (!h.ok()) break;
      (void)WireTypeName(h->type());
      std::string payload(std::min<uint64_t>(h->payload_len(), 1 << 20), '\0');
      if (!c.Recv(payload.data(), payload.size()).ok()) break;
    }
  }
}

std::string Mutate(std::string s, const std::vector<std::string>& others, std::mt19937_64& rng) {
  auto pick = [&](uint64_t n) { return n ? rng() % n : 0; };
  static const uint64_t kInteresting[] = {0,          1,          0x7f,       0x80,
                                          0xff,       0x1000,     0x7fffffff, 0x80000000,
                                          0xffffffff, 1ull << 52, ~0ull,      ~0ull >> 1};
  int rounds = 1 + pick(4);
  for (int r = 0; r < rounds; r++) {
    switch (pick(8)) {
      case 0:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= 1 << pick(8);
        break;
      case 1:  // a random byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
        break;
      case 2: {  // an interesting value, 1, 2, 4 or 8 bytes wide
        size_t w = 1u << pick(4);
        if (s.size() < w) break;
        uint64_t v = kInteresting[pick(std::size(kInteresting))];
        memcpy(&s[pick(s.size() - w + 1)], &v, w);
        break;
      }
      case 3:  // delete a range
        if (!s.empty()) {
          size_t at = pick(s.size());
          s.erase(at, 1 + pick(std::min<size_t>(64, s.size() - at)));
        }
        break;
      case 4: {  // insert random bytes
        std::string ins(1 + pick(16), '\0');
        for (char& c : ins) c = static_cast<char>(rng());
        s.insert(pick(s.size() + 1), ins);
        break;
      }
      case 5:  // duplicate a range (a repeated field twice)
        if (!s.empty()) {
          size_t at = pick(s.size()), len = 1 + pick(std::min<size_t>(256, s.size() - at));
          s.insert(pick(s.size() + 1), s.substr(at, len));
        }
        break;
      case 6:  // truncate
        s.resize(pick(s.size() + 1));
        break;
      case 7: {  // splice another entry's tail in
        const std::string& o = others[pick(others.size())];
        if (!o.empty()) s = s.substr(0, pick(s.size() + 1)) + o.substr(pick(o.size()));
        break;
      }
    }
  }
  return s;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace
}  // namespace crl

int main(int argc, char** argv) {
  using namespace crl;
  google::protobuf::SetLogHandler(
      nullptr);  // a string that is not UTF-8 is an error, not a log line
  if (argc < 3) {
    fprintf(stderr, "usage: fuzz_images CORPUS_DIR ITERATIONS [SEED]\n");
    return 2;
  }
  std::string dir = argv[1];
  long iterations = atol(argv[2]);
  uint64_t seed = argc > 3 ? strtoull(argv[3], nullptr, 10) : std::random_device{}();
  std::vector<std::pair<std::string, std::string>> corpus;  // kind, bytes
  DIR* d = opendir(dir.c_str());
  if (!d) {
    perror(dir.c_str());
    return 2;
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name[0] == '.') continue;
    std::string kind = name.substr(0, name.find_first_of("-."));
    corpus.push_back({kind, ReadAll(dir + "/" + name)});
  }
  closedir(d);
  for (const auto& [kind, bytes] : corpus)
    if (kind == "mm" && !ParseImage("mm", bytes, ImageKind::kMm, &g_mm).ok()) {
      fprintf(stderr, "fuzz_images: the corpus's mm does not parse\n");
      return 2;
    }
  if (corpus.empty()) {
    fprintf(stderr, "fuzz_images: no corpus in %s\n", dir.c_str());
    return 2;
  }
  std::vector<std::string> all;
  for (const auto& c : corpus) all.push_back(c.second);
  // Every seed as it is first: the corpus itself must pass.
  for (const auto& [kind, bytes] : corpus) Target(kind, bytes);
  printf("fuzz_images: seed %lu (pass it as the third argument to repeat this run)\n", seed);
  fflush(stdout);
  std::mt19937_64 rng(seed);
  for (long i = 0; i < iterations; i++) {
    const auto& [kind, bytes] = corpus[i % corpus.size()];
    // Half of the time the record itself is mutated behind a header that
    // stays valid (its length fixed up): most mutants then get past the
    // header to the parser and the checks.
    if (kind != "wire" && bytes.size() >= 16 && (rng() & 1)) {
      std::string payload = Mutate(bytes.substr(16), all, rng);
      std::string header = bytes.substr(0, 16);
      uint64_t len = htole64(payload.size());
      memcpy(&header[8], &len, 8);
      Target(kind, header + payload);
    } else {
      Target(kind, Mutate(bytes, all, rng));
    }
  }
  printf("fuzz_images: %ld inputs over %zu corpus entries (seed %lu): no finding\n", iterations,
         corpus.size(), seed);
  return 0;
}
