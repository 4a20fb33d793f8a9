// fwhactl: the operator's tool. Talks to fwhad over its UNIX control socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>

#include "config/config.h"
#include "fwha/unique_fd.h"

namespace {

// Sends one request line and prints the reply. Exit code 0, or 1 when fwhad is unreachable.
int request(const std::string& socket_path, const std::string& line) {
  fwha::UniqueFd s{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    std::cerr << "fwhactl: socket path too long: " << socket_path << "\n";
    return 1;
  }
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  timeval tv{3, 0};
  setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    std::cerr << "fwhactl: cannot reach fwhad at " << socket_path << ": " << std::strerror(errno)
              << " (is fwhad running? -s selects another socket)\n";
    return 1;
  }
  const std::string req = line + "\n";
  if (write(s.get(), req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    std::cerr << "fwhactl: sending the request failed: " << std::strerror(errno) << "\n";
    return 1;
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    ssize_t n = read(s.get(), buf, sizeof buf);
    if (n < 0) {
      std::cerr << "fwhactl: no answer from fwhad: " << std::strerror(errno) << "\n";
      return 1;
    }
    if (n == 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  std::cout << reply;
  return reply.rfind("error:", 0) == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fwhactl - control and inspect fwhad, the fwha firewall HA daemon", "fwhactl"};
  std::string socket_path;
  std::string config_path = fwha::config::kDefaultPath;
  app.add_option("-s,--socket", socket_path,
                 "fwhad's control socket (default: node.control_socket from the config, "
                 "else " + std::string(fwha::config::kDefaultControlSocket) + ")");
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.require_subcommand(1);

  bool json = false;
  auto* status = app.add_subcommand(
      "status",
      "role of the VRRP group and why, peer seen or not, sync link, replication lag and "
      "queue, resyncs and their causes, replication counters");
  status->add_flag("--json", json, "machine-readable output");
  auto* check = app.add_subcommand("check-config", "validate the configuration file");
  auto* switchover = app.add_subcommand(
      "switchover",
      "on the Master: hand the group over to the peer. The peer takes over once it holds every "
      "entry this node sent, then this node is Backup (gap: a round trip). Refused when this "
      "node is not Master, the sync link is down, or the peer is in Fault; this node then stays "
      "Master. A node with preempt does not take the group back until it is Master again. "
      "Exit status 1 when it did not happen.");
  CLI11_PARSE(app, argc, argv);

  if (check->parsed()) {
    auto r = fwha::config::load(config_path);
    if (auto* e = std::get_if<fwha::config::Error>(&r)) {
      std::cerr << "invalid configuration: " << e->to_string() << "\n";
      return 2;
    }
    std::cout << config_path << ": OK\n";
    return 0;
  }
  if (socket_path.empty()) {
    socket_path = fwha::config::kDefaultControlSocket;
    auto r = fwha::config::load(config_path);
    if (auto* c = std::get_if<fwha::config::Config>(&r)) socket_path = c->control_socket;
  }
  if (switchover->parsed()) return request(socket_path, "switchover");
  return request(socket_path, json ? "status --json" : "status");
}
