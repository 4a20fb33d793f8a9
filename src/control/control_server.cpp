#include "control/control_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "util/log.h"

namespace fwha::control {

namespace asio = boost::asio;
using asio::local::stream_protocol;

namespace {
constexpr size_t kMaxRequestBytes = 1024;
// Covers reading the request and a switchover's answer (the handover deadline is 500 ms).
constexpr auto kRequestDeadline = std::chrono::seconds(2);
}  // namespace

class ControlServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(stream_protocol::socket socket, Handler& handler)
      : socket_(std::move(socket)), deadline_(socket_.get_executor()), handler_(handler),
        buffer_(kMaxRequestBytes) {}

  void start() {
    deadline_.expires_after(kRequestDeadline);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->close();
    });
    asio::async_read_until(socket_, buffer_, '\n',
                           [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                             self->on_request(ec, n);
                           });
  }

 private:
  void on_request(boost::system::error_code ec, size_t n) {
    if (ec == asio::error::not_found) {
      return reply("error: request longer than " + std::to_string(kMaxRequestBytes) +
                   " bytes\n");
    }
    if (ec) return close();
    std::string line(asio::buffers_begin(buffer_.data()),
                     asio::buffers_begin(buffer_.data()) + static_cast<std::ptrdiff_t>(n));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    handler_(line, [self = shared_from_this()](std::string text) { self->reply(std::move(text)); });
  }

  void reply(std::string text) {
    if (replied_) return;
    replied_ = true;
    out_ = std::move(text);
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](boost::system::error_code, size_t) {
                        self->close();
                      });
  }

  void close() {
    boost::system::error_code ec;
    deadline_.cancel();
    socket_.close(ec);
  }

  stream_protocol::socket socket_;
  asio::steady_timer deadline_;
  Handler& handler_;
  asio::streambuf buffer_;
  std::string out_;
  bool replied_ = false;
};

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler)
    : io_(io), path_(std::move(path)), handler_(std::move(handler)), acceptor_(io) {}

ControlServer::~ControlServer() { stop(); }

std::error_code ControlServer::start() {
  std::error_code fs_ec;
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path(), fs_ec);
  ::unlink(path_.c_str());  // a stale socket from a crashed run
  boost::system::error_code ec;
  stream_protocol::endpoint ep(path_);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(8, ec);
  if (ec) return std::error_code(ec.value(), std::generic_category());
  ::chmod(path_.c_str(), 0660);  // root and the fwha group only: switchover is privileged
  started_ = true;
  accept_next();
  return {};
}

void ControlServer::stop() {
  if (!started_) return;
  started_ = false;
  boost::system::error_code ec;
  acceptor_.close(ec);
  ::unlink(path_.c_str());
}

void ControlServer::accept_next() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream_protocol::socket s) {
    if (!started_ || ec == asio::error::operation_aborted) return;
    if (!ec) std::make_shared<Session>(std::move(s), handler_)->start();
    accept_next();
  });
}

}  // namespace fwha::control
