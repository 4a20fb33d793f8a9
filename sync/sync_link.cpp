#include "sync/sync_link.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>

#include "sync/peer_silence.h"
#include "util/log.h"

namespace fwha::sync {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

asio::ip::address to_asio(const IpAddress& a) {
  if (a.family == Family::V4) return asio::ip::make_address_v4(a.v4_host_order());
  asio::ip::address_v6::bytes_type b;
  std::copy_n(a.bytes.begin(), 16, b.begin());
  return asio::ip::address_v6(b);
}

// A dead peer (crashed, link cut) must be noticed within seconds even when we have nothing
// to send: TCP keepalive probes every second, and a user timeout for unacknowledged data.
// The user timeout also ends a connection whose receiver advertises a zero window for that
// long, and a Backup busy in the dump of a large table (1M entries: several seconds, more
// under CPU load) does not read meanwhile; 3 s cut such links (seen in the lab), 10 s does
// not; the same bound closes a peer that is silent (peer_silence.h). Failover does not wait
// for this: the election runs on VRRP adverts.
void tune(tcp::socket& s) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  s.set_option(asio::socket_base::keep_alive(true), ec);
  int fd = s.native_handle();
  int idle = 1, intvl = 1, cnt = 3;
  int user_timeout_ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(PeerSilence::kLimit).count());
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

}  // namespace

class SyncLink::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(SyncLink& link, tcp::socket socket) : link_(link), socket_(std::move(socket)) {}

  void start() { read(); }

  void close() {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // With nothing queued, a frame goes out in one send() from here. An async_write that
  // completes at once still posts its handler, and Asio then polls epoll once more before
  // running it: an extra system call per frame, which at one frame per coalescing round was
  // ~1 in 6 of the Master's calls (perf trace). What the kernel does not take at once is
  // queued behind an async_write, as before. A failed send closes the link from the loop, not
  // from here: the caller is inside the replicator, which must not see the link torn down
  // under it. And the send's own error is the one reported: the kernel hands a connection's
  // error (a reset, the user timeout) to one call only, and a later write would say EPIPE.
  void write(std::string bytes) {
    if (queue_.empty()) {
      const ssize_t n = ::send(socket_.native_handle(), bytes.data(), bytes.size(),
                               MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
          errno != ENOBUFS) {
        close_later("write failed: " + std::system_category().message(errno));
        return;
      }
      if (n > 0) {
        sent(static_cast<size_t>(n));
        if (static_cast<size_t>(n) == bytes.size()) return;
        bytes.erase(0, static_cast<size_t>(n));
      }
    }
    queue_.push_back(std::move(bytes));
    if (queue_.size() == 1) write_front();
  }

  size_t queue_bytes = 0;
  // Closing from the loop (close_later): sends fail, and connected() says down already.
  bool doomed = false;

  // The close runs from the loop, not from here: the caller is inside the replicator (a
  // flush, a repair answer's last frame), which must not see the link torn down under it.
  void close_later(const std::string& why) {
    doomed = true;
    asio::post(socket_.get_executor(), [self = shared_from_this(), why] {
      self->link_.on_connection_closed(self.get(), why);
    });
  }

  size_t unread() const {
    boost::system::error_code ec;
    const size_t n = socket_.available(ec);
    return ec ? 0 : n;
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              self->on_read(ec, n);
                            });
  }

  // A connection that was replaced or closed may still have a completed read queued: its
  // bytes belong to a session the replicator has already left, so they are dropped unread.
  bool current() const { return link_.current_.get() == this; }

  void on_read(boost::system::error_code ec, size_t n) {
    if (!current()) return;
    if (ec) {
      // A frame the stream ended inside of is lost with the connection: counted, as any
      // frame we could not use (the reconnect resumes from what was applied).
      if (decoder_.buffered() > 0) {
        link_.handlers_.bad_frame("the stream ended inside a frame (" +
                                  std::to_string(decoder_.buffered()) + " bytes of it)");
      }
      return link_.on_connection_closed(this, ec == asio::error::eof ? "peer closed"
                                                                        : ec.message());
    }
    decoder_.feed(buffer_.data(), n);
    for (;;) {
      auto r = decoder_.next();
      switch (r.status) {
        case FrameDecoder::Status::NeedMore:
          if (link_.handlers_.input_done) link_.handlers_.input_done();
          return read();
        case FrameDecoder::Status::Frame:
          if (!link_.handlers_.frame(r.frame)) {
            return link_.on_connection_closed(this, "protocol violation");
          }
          if (!current()) return;  // a handler reset or replaced the link
          break;
        case FrameDecoder::Status::BadFrame: link_.handlers_.bad_frame(r.error); break;
        case FrameDecoder::Status::Fatal:
          link_.handlers_.bad_frame(r.error);
          return link_.on_connection_closed(this, "unusable stream: " + r.error);
      }
    }
  }

  void write_front() {
    asio::async_write(socket_, asio::buffer(queue_.front()),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                        self->on_written(ec);
                      });
  }

  void on_written(boost::system::error_code ec) {
    if (ec) return link_.on_connection_closed(this, "write failed: " + ec.message());
    sent(queue_.front().size());
    queue_.pop_front();
    if (!queue_.empty()) write_front();
  }

  void sent(size_t n) {
    queue_bytes -= n;
    if (current()) link_.queued_bytes_ = queue_bytes;
  }

  SyncLink& link_;
  tcp::socket socket_;
  std::array<uint8_t, 64 * 1024> buffer_{};
  FrameDecoder decoder_;
  std::deque<std::string> queue_;
};

SyncLink::SyncLink(asio::io_context& io, IpAddress local, IpAddress peer, uint16_t port,
                   Handlers handlers, size_t max_queue_bytes)
    : io_(io),
      local_(local),
      peer_(peer),
      port_(port),
      handlers_(std::move(handlers)),
      max_queue_bytes_(max_queue_bytes),
      acceptor_(io),
      dial_timer_(io) {}

SyncLink::~SyncLink() { stop(); }

std::error_code SyncLink::start() {
  boost::system::error_code ec;
  tcp::endpoint ep(to_asio(local_), port_);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(4, ec);
  if (ec) return std::error_code(ec.value(), std::generic_category());
  accept_next();
  if (local_ < peer_) dial();
  return {};
}

void SyncLink::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  dial_timer_.cancel();
  if (dialing_) dialing_->close(ec);
  if (current_) current_->close();
  current_.reset();
}

// A connection being closed from the loop is down already: the replicator then keeps its
// frames for the resume instead of counting failed sends, and stops a repair answer.
bool SyncLink::connected() const { return current_ != nullptr && !current_->doomed; }

size_t SyncLink::unread_bytes() const { return current_ ? current_->unread() : 0; }

void SyncLink::close(const std::string& why) {
  if (connected()) current_->close_later(why);
}

bool SyncLink::send(const wire::Frame& frame) {
  if (!connected()) return false;
  std::string bytes;
  append_frame(frame, bytes);
  return queue(std::move(bytes));
}

bool SyncLink::send_encoded(const std::string& bytes) {
  if (!connected()) return false;
  return queue(bytes);
}

// Over the bound the connection is reset as a failed send() is, from the loop (close_later);
// until then it counts as down, and nothing goes out on it after the gap.
bool SyncLink::queue(std::string bytes) {
  if (current_->queue_bytes + bytes.size() > max_queue_bytes_) {
    ++counters_.queue_overflows;
    current_->close_later("send queue over " + std::to_string(max_queue_bytes_) +
                          " bytes: resetting the link to resync");
    return false;
  }
  current_->queue_bytes += bytes.size();
  queued_bytes_ = current_->queue_bytes;
  current_->write(std::move(bytes));
  return true;
}

void SyncLink::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      boost::system::error_code rec;
      auto remote = socket.remote_endpoint(rec).address();
      if (rec || remote != to_asio(peer_)) {
        ++counters_.rejected_connections;
        log::warning("sync", "rejected sync connection from " +
                                 (rec ? std::string("unknown") : remote.to_string()) +
                                 ": not the configured peer " + peer_.to_string());
      } else {
        adopt(std::move(socket));
      }
    }
    accept_next();
  });
}

void SyncLink::dial() {
  if (stopped_ || current_) return;
  boost::system::error_code ec;
  dialing_ = std::make_unique<tcp::socket>(io_);
  tcp::endpoint local(to_asio(local_), 0);
  dialing_->open(local.protocol(), ec);
  if (!ec) dialing_->bind(local, ec);  // the source must be our sync address
  if (ec) return dial_failed("bind to " + local_.to_string() + ": " + ec.message());
  const uint64_t attempt = ++dial_attempt_;
  dialing_->async_connect(tcp::endpoint(to_asio(peer_), port_),
                          [this, attempt](boost::system::error_code cec) {
                            // A timed-out attempt's socket is gone: its late answer is moot.
                            if (stopped_ || !dialing_ || dial_attempt_ != attempt) return;
                            if (cec) return dial_failed(cec.message());
                            dial_timer_.cancel();
                            auto s = std::move(*dialing_);
                            dialing_.reset();
                            adopt(std::move(s));
                          });
  dial_timer_.expires_after(std::chrono::seconds(1));
  dial_timer_.async_wait([this, attempt](boost::system::error_code tec) {
    if (tec || stopped_ || !dialing_ || dial_attempt_ != attempt) return;
    dial_failed("no answer within 1 s");
  });
}

void SyncLink::dial_failed(const std::string& why) {
  if (dialing_) {
    boost::system::error_code ignored;
    dialing_->close(ignored);
    dialing_.reset();
  }
  const auto now = std::chrono::steady_clock::now();
  if (dial_failures_++ == 0) {
    dial_failing_since_ = now;
    dial_warned_at_.reset();
  }
  // A peer that restarts refuses for a second or two: not worth a line. 5 s is something.
  if (now - dial_failing_since_ >= std::chrono::seconds(5) &&
      (!dial_warned_at_ || now - *dial_warned_at_ >= std::chrono::seconds(30))) {
    dial_warned_at_ = now;
    log::warning("sync", "cannot connect to the peer " + peer_.to_string() + ":" +
                             std::to_string(port_) + " (" + std::to_string(dial_failures_) +
                             " attempts in a row, last: " + why +
                             "): is fwhad running there, and does each node's ruleset accept "
                             "the sync link's packets? They are ct state untracked "
                             "(docs/running.md)");
  }
  schedule_dial();
}

void SyncLink::schedule_dial() {
  if (stopped_ || !(local_ < peer_)) return;
  dial_timer_.expires_after(kRedial);
  dial_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) dial();
  });
}

void SyncLink::adopt(tcp::socket socket) {
  if (current_) on_connection_closed(current_.get(), "replaced by a new connection from the peer");
  tune(socket);
  current_ = std::make_shared<Connection>(*this, std::move(socket));
  queued_bytes_ = 0;
  ++counters_.connects;
  dial_failures_ = 0;
  log::notice("sync", "sync link up peer=" + peer_.to_string());
  current_->start();
  handlers_.connected();
}

void SyncLink::on_connection_closed(Connection* conn, const std::string& why) {
  if (!current_ || current_.get() != conn) return;  // an old connection's late handler
  current_->close();
  current_.reset();
  queued_bytes_ = 0;
  ++counters_.disconnects;
  log::notice("sync", "sync link down peer=" + peer_.to_string() + " reason=" + why);
  handlers_.disconnected();
  schedule_dial();
}

}  // namespace fwha::sync
