#include "track/next_hop_monitor.h"

#include "util/log.h"

namespace fwha::track {

NextHopMonitor::NextHopMonitor(boost::asio::io_context& io, const std::vector<IpAddress>& targets,
                               std::chrono::milliseconds interval, uint32_t misses,
                               OnRound on_round)
    : tracker_(targets, misses),
      echo_(io, [this](const IpAddress& from) { on_answer(from); }),
      timer_(io),
      interval_(interval),
      on_round_(std::move(on_round)),
      send_failed_(targets.size(), false) {}

std::error_code NextHopMonitor::open() {
  std::vector<IpAddress> addresses;
  for (const auto& t : tracker_.targets()) addresses.push_back(t.address);
  return echo_.open(addresses);
}

void NextHopMonitor::start() { round(); }

// A send that fails (no route, the interface down) is a probe that will not be answered: it
// counts as sent, so the target turns unreachable after `misses` of them like any other.
void NextHopMonitor::round() {
  bool changed = std::exchange(changed_since_round_, false);
  for (size_t i = 0; i < tracker_.targets().size(); ++i) {
    changed = tracker_.probe_sent(i) || changed;
    const auto& address = tracker_.targets()[i].address;
    if (auto ec = echo_.send(address)) {
      if (!send_failed_[i]) {
        log::warning("track", "echo request to next-hop " + address.to_string() +
                                  " not sent: " + ec.message());
      }
      send_failed_[i] = true;
    } else {
      send_failed_[i] = false;
    }
  }
  if (on_round_) on_round_(tracker_.degraded(), changed);
  timer_.expires_after(interval_);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) round();
  });
}

void NextHopMonitor::on_answer(const IpAddress& from) {
  const int i = tracker_.find(from);
  if (i < 0) return;  // an answer to another echo of ours, from an address we do not track
  if (tracker_.answer_received(static_cast<size_t>(i))) changed_since_round_ = true;
}

std::string NextHopMonitor::unreachable() const {
  std::string out;
  for (const auto& t : tracker_.targets()) {
    if (!t.reachable) out += (out.empty() ? "" : ", ") + t.address.to_string();
  }
  return out;
}

}  // namespace fwha::track
