// One image file: a 16-byte header (magic naming the record kind, format
// version, payload length; all little-endian) then one protobuf message.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "images/image_output.h"

namespace crl {

enum class ImageKind : uint32_t {
  kInventory = 0x4e494c43,  // "CLIN"
  kCore = 0x4f434c43,       // "CLCO"
  kMm = 0x4d4d4c43,         // "CLMM"
  kPagemap = 0x4d504c43,    // "CLPM"
  kFds = 0x44464c43,        // "CLFD"
  kStats = 0x54534c43,      // "CLST"
  kShared = 0x48534c43,     // "CLSH"
  kTracking = 0x52544c43,   // "CLTR"
};

constexpr uint32_t kImageFormatVersion = 1;

struct ImageHeader {
  uint32_t magic;
  uint32_t version;
  uint64_t payload_len;
};
static_assert(sizeof(ImageHeader) == 16);

const char* ImageKindName(ImageKind kind);

// Writes to PATH.tmp and renames, so that a crash never leaves a half file
// under the real name.
Status WriteImage(const std::string& path, ImageKind kind, const google::protobuf::Message& msg);
// The same, as file NAME of OUT (a directory on disk or a page server).
Status WriteImage(ImageOutput& out, const std::string& name, ImageKind kind,
                  const google::protobuf::Message& msg);
// Errors name the file and what is wrong with it: missing, foreign, newer,
// truncated, corrupt.
// Parses an image's bytes (as read from file NAME): for tests and the fuzz target.
Status ParseImage(const std::string& name, const std::string& bytes, ImageKind kind,
                  google::protobuf::Message* msg);
Status ReadImage(const std::string& path, ImageKind kind, google::protobuf::Message* msg);

// For `show`: reads any image file, whatever its kind, as JSON.
Result<std::string> ImageToJson(const std::string& path);

}  // namespace crl
