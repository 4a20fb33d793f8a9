// FlowEntry/FlowChange <-> wire::Flow/wire::FlowChange. from_wire() validates everything a
// peer sends (address lengths and families, port and protocol ranges) before an entry can
// reach the kernel: a forged entry is a hole in the firewall, a malformed one must not crash.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "fwha/flow.h"
#include "fwha_sync.pb.h"

namespace fwha::sync {

// imply_reply: leave the reply tuple out when it is the mirror of the original (the peer
// said implied_reply in its Hello).
void to_wire(const FlowEntry& entry, wire::Flow* out, bool imply_reply = false);
void to_wire(const FlowChange& change, wire::FlowChange* out, bool imply_reply = false);

// The reply tuple of a flow without NAT: the original with addresses and ports swapped
// (ICMP's fields as they are, so an echo's reply, another type, is never implied).
FlowTuple mirror(const FlowTuple& original);

// One tuple (shared with the expectation wire format); `which` prefixes the error.
void tuple_to_wire(const FlowTuple& t, wire::Tuple* out);
std::optional<FlowTuple> tuple_from_wire(const wire::Tuple& t, const char* which,
                                         std::string& error);
// A helper or expectfn name into a NUL-terminated buffer: [A-Za-z0-9._-], shorter than out.
bool name_from_wire(const std::string& name, const char* field, std::span<char> out,
                    std::string& error);
std::string name_to_string(std::span<const char> name);

// nullopt with `error` naming the field that is wrong.
std::optional<FlowEntry> from_wire(const wire::Flow& flow, std::string& error);
std::optional<FlowChange> from_wire(const wire::FlowChange& change, std::string& error);

}  // namespace fwha::sync
