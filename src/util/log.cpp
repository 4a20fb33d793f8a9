#include "util/log.h"

#include <syslog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace fwha::log {
namespace {

std::string g_node = "fwhad";
bool g_syslog = false;
Level g_min = Level::Info;
std::mutex g_mutex;

const char* level_name(Level l) {
  switch (l) {
    case Level::Debug: return "DEBUG";
    case Level::Info: return "INFO";
    case Level::Notice: return "NOTICE";
    case Level::Warning: return "WARNING";
    case Level::Error: return "ERROR";
  }
  return "?";
}

int syslog_priority(Level l) {
  switch (l) {
    case Level::Debug: return LOG_DEBUG;
    case Level::Info: return LOG_INFO;
    case Level::Notice: return LOG_NOTICE;
    case Level::Warning: return LOG_WARNING;
    case Level::Error: return LOG_ERR;
  }
  return LOG_INFO;
}

}  // namespace

void init(std::string_view node, bool use_syslog) {
  std::lock_guard lock(g_mutex);
  g_node = node;
  g_syslog = use_syslog;
  if (use_syslog) openlog("fwhad", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void set_min_level(Level level) { g_min = level; }

void write(Level level, std::string_view component, std::string_view message) {
  if (level < g_min) return;
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s.%03dZ %s %s %.*s: %.*s\n", stamp, static_cast<int>(ms.count()),
               g_node.c_str(), level_name(level), static_cast<int>(component.size()),
               component.data(), static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  if (g_syslog && level >= Level::Notice) {
    // RFC 5424 structured data would need a syslog daemon that keeps it; the key=value body
    // carries node and component for every receiver.
    syslog(syslog_priority(level), "node=%s component=%.*s %.*s", g_node.c_str(),
           static_cast<int>(component.size()), component.data(),
           static_cast<int>(message.size()), message.data());
  }
}

}  // namespace fwha::log
