// Framing of the page server protocol: a 4-byte little-endian header length,
// the protobuf Header, then header.payload_len raw bytes.
#pragma once

#include <string>

#include "base/result.h"
#include "pageserver/channel.h"
#include "pageserver/wire.pb.h"

namespace crl {

constexpr uint32_t kWireVersion = 2;
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;

// Socket timeouts: a peer that makes no progress for SECONDS is "stalled".
Status SetSocketTimeouts(int fd, int seconds);
Status SendHeader(Channel& c, const wire::Header& h);
// Errors name what happened: the peer hung up mid-stream, stalled, or sent
// something that is not this protocol.
Result<wire::Header> RecvHeader(Channel& c);
const char* WireTypeName(wire::Header::Type t);

}  // namespace crl
