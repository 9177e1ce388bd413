// A file's identity (device, inode, size, mtime, mode) as recorded in images,
// to refuse a restore when the file changed since the dump.
#pragma once

#include <string>

#include "base/result.h"
#include "images/criu_lite.pb.h"

namespace crl {

// stat(PATH) into ID (follows links: /proc/PID/exe, /proc/PID/map_files/...).
Status FillFileId(const std::string& path, img::FileId* id);

}  // namespace crl
