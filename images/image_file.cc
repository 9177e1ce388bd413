#include "images/image_file.h"

#include <endian.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/interrupt.h"
#include "base/scoped_fd.h"
#include "images/criu_lite.pb.h"

namespace crl {
namespace {

// Every kind of image record, one row each: its magic (image_file.h), its
// name in messages and `show`, and the record it holds.
template <typename M>
std::unique_ptr<google::protobuf::Message> New() {
  return std::make_unique<M>();
}
struct KindRow {
  ImageKind kind;
  const char* name;
  std::unique_ptr<google::protobuf::Message> (*make)();
};
constexpr KindRow kKinds[] = {
    {ImageKind::kInventory, "inventory", New<img::Inventory>},
    {ImageKind::kCore, "core", New<img::TaskCore>},
    {ImageKind::kMm, "mm", New<img::MmState>},
    {ImageKind::kPagemap, "pagemap", New<img::Pagemap>},
    {ImageKind::kFds, "fds", New<img::Fds>},
    {ImageKind::kStats, "stats", New<img::Stats>},
    {ImageKind::kShared, "shared", New<img::Shared>},
    {ImageKind::kTracking, "tracking", New<img::Tracking>},
};

const KindRow* RowOf(ImageKind kind) {
  for (const KindRow& r : kKinds)
    if (r.kind == kind) return &r;
  return nullptr;
}

std::unique_ptr<google::protobuf::Message> NewMessageFor(ImageKind kind) {
  const KindRow* r = RowOf(kind);
  return r ? r->make() : nullptr;
}

Status WriteAll(int fd, const void* data, size_t len, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) {
      TRY(CheckStop());
      continue;
    }
    if (n < 0) return ErrnoError("write(%s)", path.c_str());
    p += n;
    len -= n;
  }
  return Ok{};
}

struct RawImage {
  uint32_t magic;
  uint32_t version;
  std::string payload;
};

// Only a regular file, read to the size it had when opened: a FIFO would
// block, /dev/zero would never end.
Result<std::string> ReadRegularFile(const std::string& path) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    if (errno == ENOENT) return MakeError("image file %s is missing", path.c_str());
    return ErrnoError("open(%s)", path.c_str());
  }
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return ErrnoError("fstat(%s)", path.c_str());
  if (!S_ISREG(st.st_mode)) return MakeError("image file %s is not a regular file", path.c_str());
  std::string out(st.st_size, '\0');
  for (size_t done = 0; done < out.size();) {
    ssize_t n = pread(fd.get(), out.data() + done, out.size() - done, done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read(%s)", path.c_str());
    if (n == 0) return MakeError("image file %s shrank while being read", path.c_str());
    done += n;
  }
  return out;
}

Result<RawImage> ParseRaw(const std::string& path, const std::string* content);

Result<RawImage> ReadRaw(const std::string& path) {
  auto content = ReadRegularFile(path);
  if (!content.ok()) return content.error();
  return ParseRaw(path, &*content);
}

Result<RawImage> ParseRaw(const std::string& path, const std::string* content) {
  if (content->size() < sizeof(ImageHeader))
    return MakeError("image file %s is truncated: %zu bytes, shorter than the %zu-byte header",
                     path.c_str(), content->size(), sizeof(ImageHeader));
  ImageHeader h;
  memcpy(&h, content->data(), sizeof h);
  RawImage raw{le32toh(h.magic), le32toh(h.version), {}};
  uint64_t len = le64toh(h.payload_len);
  if (content->size() - sizeof h < len)
    return MakeError("image file %s is truncated: header says %lu payload bytes, file has %zu",
                     path.c_str(), len, content->size() - sizeof h);
  if (content->size() - sizeof h > len)
    return MakeError("image file %s has %zu bytes of trailing garbage", path.c_str(),
                     content->size() - sizeof h - len);
  raw.payload = content->substr(sizeof h);
  return raw;
}

Status CheckMagicAndVersion(const std::string& path, const RawImage& raw, ImageKind want) {
  if (raw.magic != static_cast<uint32_t>(want)) {
    if (NewMessageFor(static_cast<ImageKind>(raw.magic)) &&
        strcmp(ImageKindName(static_cast<ImageKind>(raw.magic)), "unknown") != 0)
      return MakeError("image file %s holds a %s record, expected %s", path.c_str(),
                       ImageKindName(static_cast<ImageKind>(raw.magic)), ImageKindName(want));
    return MakeError("image file %s is not a criu-lite image (magic 0x%08x)", path.c_str(),
                     raw.magic);
  }
  if (raw.version > kImageFormatVersion)
    return MakeError(
        "image file %s has format version %u, newer than this criu-lite understands (%u); "
        "restore it with a newer criu-lite",
        path.c_str(), raw.version, kImageFormatVersion);
  if (raw.version == 0) return MakeError("image file %s has format version 0", path.c_str());
  return Ok{};
}

}  // namespace

const char* ImageKindName(ImageKind kind) {
  const KindRow* r = RowOf(kind);
  return r ? r->name : "unknown";
}

Status WriteImage(const std::string& path, ImageKind kind, const google::protobuf::Message& msg) {
  std::string payload;
  if (!msg.SerializeToString(&payload))
    return MakeError("serializing the %s record for %s failed", ImageKindName(kind), path.c_str());
  ImageHeader h{htole32(static_cast<uint32_t>(kind)), htole32(kImageFormatVersion),
                htole64(payload.size())};
  std::string tmp = path + ".tmp";
  ScopedFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("open(%s)", tmp.c_str());
  TRY(WriteAll(fd.get(), &h, sizeof h, tmp));
  TRY(WriteAll(fd.get(), payload.data(), payload.size(), tmp));
  fd.reset();
  if (rename(tmp.c_str(), path.c_str()) < 0) return ErrnoError("rename(%s)", tmp.c_str());
  return Ok{};
}

Status WriteImage(ImageOutput& out, const std::string& name, ImageKind kind,
                  const google::protobuf::Message& msg) {
  std::string payload;
  if (!msg.SerializeToString(&payload))
    return MakeError("serializing the %s record for %s failed", ImageKindName(kind), name.c_str());
  ImageHeader h{htole32(static_cast<uint32_t>(kind)), htole32(kImageFormatVersion),
                htole64(payload.size())};
  std::string data(reinterpret_cast<const char*>(&h), sizeof h);
  data += payload;
  return out.PutFile(name, data);
}

Status ParseImage(const std::string& name, const std::string& bytes, ImageKind kind,
                  google::protobuf::Message* msg) {
  RawImage raw = TRY(ParseRaw(name, &bytes));
  TRY(CheckMagicAndVersion(name, raw, kind));
  if (!msg->ParseFromString(raw.payload))
    return MakeError("image file %s is corrupt: its %s record does not parse", name.c_str(),
                     ImageKindName(kind));
  return Ok{};
}

Status ReadImage(const std::string& path, ImageKind kind, google::protobuf::Message* msg) {
  RawImage raw = TRY(ReadRaw(path));
  TRY(CheckMagicAndVersion(path, raw, kind));
  if (!msg->ParseFromString(raw.payload))
    return MakeError("image file %s is corrupt: its %s record does not parse", path.c_str(),
                     ImageKindName(kind));
  return Ok{};
}

Result<std::string> ImageToJson(const std::string& path) {
  RawImage raw = TRY(ReadRaw(path));
  auto kind = static_cast<ImageKind>(raw.magic);
  auto msg = NewMessageFor(kind);
  if (!msg || strcmp(ImageKindName(kind), "unknown") == 0)
    return MakeError("%s is not a criu-lite image (magic 0x%08x)", path.c_str(), raw.magic);
  TRY(CheckMagicAndVersion(path, raw, kind));
  if (!msg->ParseFromString(raw.payload))
    return MakeError("image file %s is corrupt: its %s record does not parse", path.c_str(),
                     ImageKindName(kind));
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  auto st = google::protobuf::util::MessageToJsonString(*msg, &json, opts);
  if (!st.ok())
    return MakeError("printing %s as JSON failed: %s", path.c_str(), st.ToString().c_str());
  return "{\"kind\": \"" + std::string(ImageKindName(kind)) +
         "\", \"version\": " + std::to_string(raw.version) + ", \"record\": " + json + "}\n";
}

}  // namespace crl
