#include "sync/peer_silence.h"

namespace fwha::sync {

void PeerSilence::connected(Clock::time_point now, uint64_t frames) {
  last_heard_ = now;
  frames_ = frames;
}

std::optional<std::string> PeerSilence::check(Clock::time_point now, uint64_t frames,
                                              const std::function<bool()>& bytes_unread,
                                              bool hello_seen,
                                              std::chrono::milliseconds promise) {
  if (frames != frames_) {
    frames_ = frames;
    last_heard_ = now;
    return std::nullopt;
  }
  if (now - last_heard_ < kLimit) return std::nullopt;
  if (bytes_unread()) {
    last_heard_ = now;
    return std::nullopt;
  }
  const std::string limit = std::to_string(kLimit.count()) + " s";
  if (!hello_seen) {
    last_heard_ = now;
    return "no Hello from the peer within " + limit +
           " of connecting (its daemon is stuck, or something else connected from its "
           "address)";
  }
  // An older peer promised nothing; one that promised too little proves nothing by silence.
  if (promise.count() <= 0 || promise > kLongestPromise) return std::nullopt;
  last_heard_ = now;
  return "nothing from the peer for " + limit + " although it sends a frame every " +
         std::to_string(promise.count()) +
         " ms at least (its daemon is stuck, or the link carries one way only)";
}

}  // namespace fwha::sync
