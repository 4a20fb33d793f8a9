// FlowEntry/FlowChange <-> wire::Flow/wire::FlowChange. from_wire() validates everything a
// peer sends (address lengths and families, port and protocol ranges) before an entry can
// reach the kernel: a forged entry is a hole in the firewall, a malformed one must not crash.
#pragma once

#include <optional>
#include <string>

#include "fwha/flow.h"
#include "fwha_sync.pb.h"

namespace fwha::sync {

void to_wire(const FlowEntry& entry, wire::Flow* out);
void to_wire(const FlowChange& change, wire::FlowChange* out);

// nullopt with `error` naming the field that is wrong.
std::optional<FlowEntry> from_wire(const wire::Flow& flow, std::string& error);
std::optional<FlowChange> from_wire(const wire::FlowChange& change, std::string& error);

}  // namespace fwha::sync
