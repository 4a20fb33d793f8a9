// The control socket (UNIX stream, one request line per connection, answer, close) that
// `fwhactl` talks to. Requests are validated: bounded length, a deadline (the session closes
// after it, answered or not), known commands only; a bad request gets an error line naming what was wrong, never a crash.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "fwha/asio.h"

namespace fwha::control {

class ControlServer {
 public:
  // Answers one request line (without the newline) by calling `reply` once, now or later
  // (a switchover answers when the peer did), on the server's io_context.
  using Reply = std::function<void(std::string)>;
  using Handler = std::function<void(const std::string& request, Reply reply)>;

  ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
  ~ControlServer();

  std::error_code start();
  void stop();

 private:
  class Session;
  void accept_next();

  boost::asio::io_context& io_;
  std::string path_;
  Handler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  bool started_ = false;
};

}  // namespace fwha::control
