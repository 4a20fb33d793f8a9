// The sync link: one TCP connection between the two nodes carrying length-prefixed frames.
// Both nodes listen on their sync address; the node with the lower address also connects
// (and reconnects every kRedial, 50 ms, while down), so exactly one side dials and a
// restarted peer is back within 50 ms of listening. With 200 ms the median 250k bulk sync
// took 1.919 s, with 50 ms 1.775 s (12 runs each, docs/performance.md).
// While the peer's daemon is down each try is a SYN answered by a reset; while its host is
// unreachable a try lasts up to its 1 s timeout: so the rate stays small. A connect gets
// 1 s (the link is direct): a SYN or SYN-ACK that a firewall drops would otherwise hold the
// dial for the kernel's SYN retries (~2 min). Dials failing for 5 s are logged, then every
// 30 s, with what usually causes them. Only the configured peer address may connect; a new
// connection from it replaces the old one (the peer restarted while our side still believed
// in the old connection).
//
// Asio style: one write in flight behind a queue bounded in bytes; overflow resets the link
// (the reconnect resyncs) instead of growing memory; no exception crosses a handler.
#pragma once

#include "fwha/asio.h"
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "fwha/ip_address.h"
#include "sync/frame_codec.h"
#include "sync/replicator.h"

namespace fwha::sync {

class SyncLink : public FrameTransport {
 public:
  struct Handlers {
    std::function<void()> connected;
    std::function<void()> disconnected;
    std::function<bool(const wire::Frame&)> frame;  // false: drop the connection
    std::function<void(const std::string&)> bad_frame;
    std::function<void()> input_done;  // a read's frames are all handled (batching acks)
  };
  struct Counters {
    uint64_t connects = 0;
    uint64_t disconnects = 0;
    uint64_t rejected_connections = 0;  // from an address other than the peer's
    uint64_t queue_overflows = 0;
  };

  SyncLink(boost::asio::io_context& io, IpAddress local, IpAddress peer, uint16_t port,
           Handlers handlers, size_t max_queue_bytes = 64 * 1024 * 1024);
  ~SyncLink() override;

  std::error_code start();  // bind and listen; start dialling if we are the lower address
  void stop();

  bool connected() const override;
  bool send(const wire::Frame& frame) override;
  bool send_encoded(const std::string& bytes) override;
  // Closes the current connection from the loop, as a failed send does (`why` is logged);
  // the link then comes back as after any disconnect.
  void close(const std::string& why);

  size_t queued_bytes() const { return queued_bytes_; }
  // Bytes received from the peer that we have not read yet (0 without a connection).
  size_t unread_bytes() const;

  const Counters& counters() const { return counters_; }

 private:
  class Connection;
  void accept_next();
  static constexpr std::chrono::milliseconds kRedial{50};
  void dial();
  void schedule_dial();
  void dial_failed(const std::string& why);
  void adopt(boost::asio::ip::tcp::socket socket);
  void on_connection_closed(Connection* conn, const std::string& why);
  bool queue(std::string bytes);

  boost::asio::io_context& io_;
  IpAddress local_;
  IpAddress peer_;
  uint16_t port_;
  Handlers handlers_;
  size_t max_queue_bytes_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer dial_timer_;
  std::unique_ptr<boost::asio::ip::tcp::socket> dialing_;
  uint64_t dial_attempt_ = 0;   // names the attempt its handlers belong to
  uint64_t dial_failures_ = 0;  // in a row; reset by a connection
  std::chrono::steady_clock::time_point dial_failing_since_;
  std::optional<std::chrono::steady_clock::time_point> dial_warned_at_;
  std::shared_ptr<Connection> current_;
  size_t queued_bytes_ = 0;

  bool stopped_ = false;
  Counters counters_;
};

}  // namespace fwha::sync
