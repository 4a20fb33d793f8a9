// Logging: one line per event to stderr (what the lab and journald read) and to syslog
// (facility daemon) for warnings and above plus every role change, so alerts reach the
// operator's log pipeline. Lines carry key=value pairs so they can be grepped and parsed.
#pragma once

#include <string>
#include <string_view>

namespace fwha::log {

enum class Level { Debug, Info, Notice, Warning, Error };

// Called once at start-up; `node` is prefixed to every line.
void init(std::string_view node, bool use_syslog);
void set_min_level(Level level);

void write(Level level, std::string_view component, std::string_view message);

// Rate limit for a recurring problem (bad input from outside): log the first few, then every
// 1000th, so a flood of bad input cannot flood the log too. `count` includes this one.
inline bool should_log(unsigned long long count) { return count <= 5 || count % 1000 == 0; }

inline void debug(std::string_view c, std::string_view m) { write(Level::Debug, c, m); }
inline void info(std::string_view c, std::string_view m) { write(Level::Info, c, m); }
// Notice goes to syslog as well: role changes, peer loss/return, resyncs.
inline void notice(std::string_view c, std::string_view m) { write(Level::Notice, c, m); }
inline void warning(std::string_view c, std::string_view m) { write(Level::Warning, c, m); }
inline void error(std::string_view c, std::string_view m) { write(Level::Error, c, m); }

}  // namespace fwha::log
