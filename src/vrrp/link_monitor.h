// Carrier of the group's interfaces, from rtnetlink link events (RTMGRP_LINK): the kernel
// says at once when a link loses carrier, where missing adverts would take a
// Master_Down_Interval to notice. The only file of the election that listens to rtnetlink.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "fwha/asio.h"
#include "fwha/mnl_socket.h"

namespace fwha::vrrp {

class LinkMonitor {
 public:
  // (ifindex, has carrier) for every link event of an interface; the owner filters.
  using OnChange = std::function<void(int ifindex, bool carrier)>;

  explicit LinkMonitor(boost::asio::io_context& io);
  ~LinkMonitor();

  std::error_code open(OnChange on_change);

  // Carrier now (IFF_UP and IFF_LOWER_UP), read once at start-up.
  static bool carrier(const std::string& ifname);

 private:
  void wait();
  void read();

  boost::asio::io_context& io_;
  MnlSocketPtr sock_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor_;
  std::vector<char> buf_;
  OnChange on_change_;
};

}  // namespace fwha::vrrp
