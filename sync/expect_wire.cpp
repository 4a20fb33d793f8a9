#include "sync/expect_wire.h"

#include "sync/flow_wire.h"

namespace fwha::sync {
namespace {

// Longest lifetime accepted from the peer: helper policies are minutes (FTP 300 s, SIP 180 s,
// H.323 240 s); a day leaves room without accepting nonsense.
constexpr uint32_t kMaxExpectTimeoutS = 86400;
// NF_CT_MAX_EXPECT_CLASSES is 4 (include/net/netfilter/nf_conntrack_helper.h).
constexpr uint32_t kMaxExpectClass = 3;

bool same_family(const FlowTuple& a, const FlowTuple& b) {
  return a.src.family == b.src.family && a.dst.family == b.src.family;
}

}  // namespace

void to_wire(const ExpectChange& c, wire::ExpectChange* out) {
  out->set_kind(c.kind == ExpectChangeKind::New ? wire::ExpectChange::NEW
                                                 : wire::ExpectChange::DESTROY);
  const ExpectEntry& e = c.entry;
  wire::Expectation* x = out->mutable_expectation();
  tuple_to_wire(e.master, x->mutable_master());
  tuple_to_wire(e.tuple, x->mutable_tuple());
  tuple_to_wire(e.mask, x->mutable_mask());
  x->set_zone(e.zone);
  x->set_timeout_s(e.timeout_s);
  x->set_flags(e.flags);
  x->set_expect_class(e.expect_class);
  x->set_helper(name_to_string(e.helper));
  x->set_function(name_to_string(e.function));
  if (e.has_nat) {
    x->set_nat_dir(e.nat_dir);
    tuple_to_wire(e.nat, x->mutable_nat());
  }
}

std::optional<ExpectChange> from_wire(const wire::ExpectChange& c, std::string& error) {
  ExpectChange out;
  switch (c.kind()) {
    case wire::ExpectChange::NEW: out.kind = ExpectChangeKind::New; break;
    case wire::ExpectChange::DESTROY: out.kind = ExpectChangeKind::Destroy; break;
    case wire::ExpectChange::KIND_UNSPECIFIED:
    case wire::ExpectChange_Kind_ExpectChange_Kind_INT_MIN_SENTINEL_DO_NOT_USE_:
    case wire::ExpectChange_Kind_ExpectChange_Kind_INT_MAX_SENTINEL_DO_NOT_USE_:
    default:
      error = "expectation change of unknown kind " + std::to_string(c.kind());
      return std::nullopt;
  }
  const wire::Expectation& x = c.expectation();
  if (!c.has_expectation() || !x.has_master() || !x.has_tuple() || !x.has_mask()) {
    error = "expectation without master, tuple or mask";
    return std::nullopt;
  }
  ExpectEntry& e = out.entry;
  auto master = tuple_from_wire(x.master(), "expectation master", error);
  if (!master) return std::nullopt;
  auto tuple = tuple_from_wire(x.tuple(), "expectation tuple", error);
  if (!tuple) return std::nullopt;
  auto mask = tuple_from_wire(x.mask(), "expectation mask", error);
  if (!mask) return std::nullopt;
  e.master = *master;
  e.tuple = *tuple;
  e.mask = *mask;
  if (!same_family(e.master, e.tuple) || !same_family(e.tuple, e.mask)) {
    error = "expectation tuples of different families";
    return std::nullopt;
  }
  if (x.zone() > 65535 || x.timeout_s() > kMaxExpectTimeoutS ||
      x.expect_class() > kMaxExpectClass || (x.flags() & ~kExpectSettableFlags) != 0 ||
      x.nat_dir() > 1) {
    error = "expectation zone, timeout, class, flags or NAT direction out of range";
    return std::nullopt;
  }
  e.zone = static_cast<uint16_t>(x.zone());
  e.timeout_s = x.timeout_s();
  e.flags = x.flags();
  e.expect_class = x.expect_class();
  if (!name_from_wire(x.helper(), "expectation helper", e.helper, error) ||
      !name_from_wire(x.function(), "expectation function", e.function, error))
    return std::nullopt;
  if (x.has_nat()) {
    auto nat = tuple_from_wire(x.nat(), "expectation NAT", error);
    if (!nat) return std::nullopt;
    if (!same_family(*nat, e.tuple)) {
      error = "expectation NAT tuple of another family";
      return std::nullopt;
    }
    e.has_nat = true;
    e.nat_dir = x.nat_dir();
    e.nat = *nat;
  }
  return out;
}

}  // namespace fwha::sync
