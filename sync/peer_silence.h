// A peer whose daemon is stuck (a deadlocked sync thread, a process stopped inside a frame)
// still has a kernel that answers TCP keepalive probes and acknowledges what we send, so the
// sync link looks up while nothing comes over it: replication has stopped without a word, and
// a connection left inside a frame holds the stream for good. A connection that took the place
// of the real one (a peer restarting, or anything connecting from the peer's address) would
// also keep the pair apart for as long as it stays open.
//
// So every node, once both have said Hello, speaks at least every kSpeakEvery (the Master's
// heartbeat, both nodes' Health, sync_service.cpp) and says so in its Hello
// (Hello.speaks_every_ms). A peer that introduced itself so and then says nothing for kLimit
// is not there: the connection is closed, and the reconnect either brings the peer back (and
// the resume loses nothing) or does not (the daemon's SyncWatch then alerts that the sync
// link is down). A peer sends
// its Hello first thing, so a connection without one for kLimit is closed too, whatever
// the peer's version. Not covered: a connection whose Hello promised nothing (an older
// fwhad, or anything posing as the peer with such a Hello) may stay silent; keepalive and
// the user timeout still end it once its host is gone.
//
// kLimit is also the sync link's TCP user timeout (sync_link.cpp): a Backup busy with a
// table of a million entries has gone several seconds without reading, so 3 s would cut
// healthy links. Pure (clock and counts passed in) so the rule is unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace fwha::sync {

class PeerSilence {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kSpeakEvery{1000};
  static constexpr std::chrono::seconds kLimit{10};
  // A promise to speak less often than this proves nothing within kLimit.
  static constexpr std::chrono::milliseconds kLongestPromise{
      std::chrono::milliseconds(kLimit) / 3};

  // A new connection, `frames` being the link's count of complete frames received so far.
  void connected(Clock::time_point now, uint64_t frames);

  // Called periodically while connected. `frames`: the same count (it only grows);
  // `bytes_unread`: whether the peer's bytes wait in our socket (then our thread was late,
  // not the peer), asked only when the limit is reached (a system call); `hello_seen`: the
  // peer introduced itself on this connection; `promise`: the interval its Hello promised a
  // frame at (0: none). Returns why the connection is to be closed, once per silence (the
  // next needs another kLimit).
  std::optional<std::string> check(Clock::time_point now, uint64_t frames,
                                   const std::function<bool()>& bytes_unread, bool hello_seen,
                                   std::chrono::milliseconds promise);

 private:
  Clock::time_point last_heard_{};
  uint64_t frames_ = 0;
};

}  // namespace fwha::sync
