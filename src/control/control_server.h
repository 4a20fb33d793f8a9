// The control socket (UNIX stream, one request line per connection, answer, close) that
// `fwhactl` talks to. Requests are validated: bounded length, a deadline, known commands
// only; a bad request gets an error line naming what was wrong, never a crash.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "fwha/asio.h"

namespace fwha::control {

class ControlServer {
 public:
  // Returns the reply for one request line (without the newline).
  using Handler = std::function<std::string(const std::string& request)>;

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
