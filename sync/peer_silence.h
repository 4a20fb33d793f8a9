// A peer whose daemon is stuck (a deadlocked sync thread, a process stopped inside a frame)
// still has a kernel that answers TCP keepalive probes and acknowledges what we send, so the
// sync link looks up while nothing comes over it: replication has stopped without a word, and
// a connection left inside a frame holds the stream for good. A connection that took the place
// of the real one (a peer restarting, or anything connecting from the peer's address) would
// also keep the pair apart for as long as it stays open.
//
// So every node speaks at least every kSpeakEvery (the Master's heartbeat, both nodes'
// Health, sync_service.cpp) and says so in its Hello (Hello.speaks_every_ms). A peer that
// introduced itself so and then says nothing for kLimit is not there: the connection is
// closed, and the reconnect either brings the peer back (and the resume loses nothing) or
// does not (the daemon's SyncWatch then alerts that the sync link is down). A peer sends
// its Hello first thing, so a connection without one for kLimit is closed too, whatever
// the peer's version.
//
// kLimit is 10 s, as the TCP user timeout (sync_link.cpp): a Backup busy with a table of a
// million entries has gone several seconds without reading, so 3 s would cut healthy links.
// Pure (clock and frame count passed in) so the rule is unit-tested.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace fwha::sync {

class PeerSilence {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kSpeakEvery{1000};
  static constexpr std::chrono::seconds kLimit{10};

  // A new connection, `frames` being the link's count of complete frames received so far.
  void connected(Clock::time_point now, uint64_t frames);

  // Called periodically while connected. `frames`: the same count (it only grows);
  // `hello_seen`: the peer introduced itself on this connection; `peer_speaks`: its Hello
  // promised a frame every so often. Returns why the connection is to be closed, once per
  // silence (the next needs another kLimit).
  std::optional<std::string> check(Clock::time_point now, uint64_t frames, bool hello_seen,
                                   bool peer_speaks);

 private:
  Clock::time_point last_heard_{};
  uint64_t frames_ = 0;
};

}  // namespace fwha::sync
