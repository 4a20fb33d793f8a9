// ExpectChange <-> wire::ExpectChange. from_wire() validates what a peer sends before it can
// reach the kernel (an expectation is a hole in the firewall for one connection): families
// consistent, ranges, names, flags, NAT direction.
#pragma once

#include <optional>
#include <string>

#include "fwha_sync.pb.h"
#include "sync/expectation.h"

namespace fwha::sync {

void to_wire(const ExpectChange& change, wire::ExpectChange* out);
std::optional<ExpectChange> from_wire(const wire::ExpectChange& change, std::string& error);

}  // namespace fwha::sync
