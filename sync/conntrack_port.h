// The kernel's conntrack table as fwha sees it: a thin seam, so the replication logic is
// unit-tested against a fake and the namespace lab proves the real adapter
// (conntrack_netlink.cpp, the only file that includes libnetfilter_conntrack).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "fwha/flow.h"

namespace fwha::sync {

// Entries written with part of their state left out because the kernel refused it (see
// CtOmit in conntrack_convert.h): the rest of each entry was applied.
struct WriterCounters {
  uint64_t labels_refused = 0;   // ENOSPC: no connlabel extension in this netns
  uint64_t helpers_refused = 0;  // EOPNOTSUPP: helper unknown here, or entry without one
};

// Writes entries into the local kernel table (the sink side of replication).
class ConntrackWriter {
 public:
  virtual ~ConntrackWriter() = default;
  virtual WriterCounters counters() const { return {}; }
  // New/Update: create the entry, or update it when it exists (NAT bindings are set on create
  // only; the kernel does not allow changing them). Destroy: delete; a missing entry is not an
  // error. Returns the kernel's error otherwise.
  virtual std::error_code apply(const FlowChange& change) = 0;
  // Applies changes in order with as few syscalls as possible (many netlink messages per
  // sendmsg, ACKs read back in bulk). `errors` is resized to changes.size(); errors[i] is the
  // result of changes[i] (same semantics as apply()). Changes to the same entry take effect in
  // their order; changes to different entries may reach the kernel in any order. The default
  // (one apply() per change) suits fakes; the netlink writer batches.
  virtual void apply_batch(std::span<const FlowChange> changes,
                           std::vector<std::error_code>& errors) {
    errors.resize(changes.size());
    for (size_t i = 0; i < changes.size(); ++i) errors[i] = apply(changes[i]);
  }
};

// A dump in progress, read part by part.
class ConntrackDump {
 public:
  virtual ~ConntrackDump() = default;
  // Appends the entries of the next part to `out`. False once the dump has ended (`ec` says
  // why if it failed); the call that returns false may still have appended the last part.
  virtual bool next(std::vector<FlowEntry>& out, std::error_code& ec) = 0;
  // Entries read so far that could not be carried (unparseable, or not IPv4/IPv6).
  virtual uint64_t uncarried() const { return 0; }
};

// Reads the local kernel table (the source side).
class ConntrackReader {
 public:
  virtual ~ConntrackReader() = default;
  // Calls `visit` for every entry currently in the table (IPv4 and IPv6).
  virtual std::error_code dump(const std::function<void(const FlowEntry&)>& visit) = 0;
  // A dump to read at the caller's pace. The default takes the whole table now and hands it
  // out in parts (fine for fakes); the kernel adapter reads a datagram per part.
  virtual std::unique_ptr<ConntrackDump> open_dump(std::error_code& ec);
  // Entries in the table (this namespace's nf_conntrack_count), cheaply; nullopt if unknown.
  virtual std::optional<uint64_t> count() { return std::nullopt; }
  // The entry with this original tuple and zone (ENOENT when there is none). Used where the
  // kernel changes an entry without an event: a helper's NAT sequence adjustment.
  virtual std::error_code get(const FlowTuple& original, uint16_t zone, FlowEntry& out) {
    (void)original;
    (void)zone;
    (void)out;
    return std::make_error_code(std::errc::operation_not_supported);
  }
};

// Subscription to conntrack events (new, update, destroy). Non-blocking: the owner polls fd()
// for readability and calls drain().
class ConntrackEvents {
 public:
  virtual ~ConntrackEvents() = default;
  virtual int fd() const = 0;
  // Reads every event available now without blocking, calling `on_change` for each.
  // Returns std::errc::no_buffer_space when the kernel dropped events (ENOBUFS overrun): the
  // caller must resync, since events were lost. Other errors are returned as they are.
  virtual std::error_code drain(const std::function<void(const FlowChange&)>& on_change) = 0;
  // Events read that could not be carried (unparseable, or not IPv4/IPv6), since opening.
  virtual uint64_t uncarried() const { return 0; }
  // What the kernel holds for us and we have not read yet, against what it may hold before
  // it drops events (an overrun): how close the event socket is to its limit. Bytes as the
  // kernel charges them (a socket buffer's accounting, ~1.3 KiB per event).
  struct Backlog {
    size_t queued_bytes = 0;
    size_t limit_bytes = 0;
  };
  virtual std::optional<Backlog> backlog() const { return std::nullopt; }
};

// Real adapters over ctnetlink. `rcvbuf_bytes` is forced with SO_RCVBUFFORCE (needs
// CAP_NET_ADMIN) so bursts do not overrun the event socket.
std::unique_ptr<ConntrackWriter> make_netlink_writer(std::error_code& ec);
std::unique_ptr<ConntrackReader> make_netlink_reader(std::error_code& ec);
std::unique_ptr<ConntrackEvents> make_netlink_events(size_t rcvbuf_bytes, std::error_code& ec);

}  // namespace fwha::sync
