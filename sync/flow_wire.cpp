#include "sync/flow_wire.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace fwha::sync {
namespace {

void tuple_to_wire_impl(const FlowTuple& t, wire::Tuple* out) {
  // (pointer, size): assigned into the message's string, whose buffer a reused Frame keeps.
  out->set_src(reinterpret_cast<const char*>(t.src.bytes.data()), t.src.size());
  out->set_dst(reinterpret_cast<const char*>(t.dst.bytes.data()), t.dst.size());
  out->set_l4proto(t.l4proto);
  out->set_src_port(t.src_port);
  out->set_dst_port(t.dst_port);
  out->set_icmp_id(t.icmp_id);
  out->set_icmp_type(t.icmp_type);
  out->set_icmp_code(t.icmp_code);
}

bool in_range(uint32_t v, uint32_t max, const char* field, std::string& error) {
  if (v <= max) return true;
  error = std::string(field) + " " + std::to_string(v) + " exceeds " + std::to_string(max);
  return false;
}

}  // namespace

std::optional<FlowTuple> tuple_from_wire(const wire::Tuple& t, const char* which,
                                         std::string& error) {
  FlowTuple out;
  auto src = IpAddress::from_bytes(reinterpret_cast<const uint8_t*>(t.src().data()),
                                   t.src().size());
  auto dst = IpAddress::from_bytes(reinterpret_cast<const uint8_t*>(t.dst().data()),
                                   t.dst().size());
  if (!src || !dst) {
    error = std::string(which) + " address is not 4 or 16 bytes";
    return std::nullopt;
  }
  if (src->family != dst->family) {
    error = std::string(which) + " source and destination are of different families";
    return std::nullopt;
  }
  if (!in_range(t.l4proto(), 255, "l4proto", error) ||
      !in_range(t.src_port(), 65535, "src_port", error) ||
      !in_range(t.dst_port(), 65535, "dst_port", error) ||
      !in_range(t.icmp_id(), 65535, "icmp_id", error) ||
      !in_range(t.icmp_type(), 255, "icmp_type", error) ||
      !in_range(t.icmp_code(), 255, "icmp_code", error)) {
    error = std::string(which) + " " + error;
    return std::nullopt;
  }
  out.src = *src;
  out.dst = *dst;
  out.l4proto = static_cast<uint8_t>(t.l4proto());
  out.src_port = static_cast<uint16_t>(t.src_port());
  out.dst_port = static_cast<uint16_t>(t.dst_port());
  out.icmp_id = static_cast<uint16_t>(t.icmp_id());
  out.icmp_type = static_cast<uint8_t>(t.icmp_type());
  out.icmp_code = static_cast<uint8_t>(t.icmp_code());
  return out;
}

void tuple_to_wire(const FlowTuple& t, wire::Tuple* out) {
  tuple_to_wire_impl(t, out);
}

bool name_from_wire(const std::string& name, const char* field, std::span<char> out,
                    std::string& error) {
  if (name.size() + 1 > out.size()) {
    error = std::string(field) + " longer than " + std::to_string(out.size() - 1) + " bytes";
    return false;
  }
  // Kernel helper and expectfn names are short identifiers ("ftp", "nat-follow-master");
  // anything else (a NUL, a control character) is not something our peer's kernel reported.
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) {
      error = std::string(field) + " has a character outside [A-Za-z0-9._-]";
      return false;
    }
  }
  std::fill(out.begin(), out.end(), '\0');
  name.copy(out.data(), name.size());
  return true;
}

std::string name_to_string(std::span<const char> name) {
  return std::string(name.data(), strnlen(name.data(), name.size()));
}

namespace {

void seqadj_to_wire(const SeqAdj& s, wire::SeqAdj* out) {
  out->set_correction_pos(s.correction_pos);
  out->set_offset_before(s.offset_before);
  out->set_offset_after(s.offset_after);
}

SeqAdj seqadj_from_wire(const wire::SeqAdj& s) {
  return SeqAdj{s.correction_pos(), s.offset_before(), s.offset_after()};
}

}  // namespace

FlowTuple mirror(const FlowTuple& t) {
  FlowTuple m = t;
  std::swap(m.src, m.dst);
  std::swap(m.src_port, m.dst_port);
  return m;
}

void to_wire(const FlowEntry& e, wire::Flow* out, bool imply_reply) {
  tuple_to_wire(e.original, out->mutable_original());
  if (!imply_reply || e.reply != mirror(e.original)) {
    tuple_to_wire(e.reply, out->mutable_reply());
  } else {
    out->clear_reply();  // a reused message must not keep an earlier flow's
  }
  out->set_status(e.status);
  out->set_timeout_s(e.timeout_s);
  out->set_mark(e.mark);
  out->set_zone(e.zone);
  out->set_tcp_state(e.tcp_state);
  out->set_sctp_state(e.sctp_state);
  out->set_sctp_vtag_original(e.sctp_vtag_original);
  out->set_sctp_vtag_reply(e.sctp_vtag_reply);
  // Optional fields stay absent when unused: no bytes on the wire for the common entry.
  if (e.labels[0] != 0) out->set_labels_low(e.labels[0]);
  if (e.labels[1] != 0) out->set_labels_high(e.labels[1]);
  if (e.has_helper()) out->set_helper(name_to_string(e.helper));
  if (!e.seqadj_original.empty()) seqadj_to_wire(e.seqadj_original, out->mutable_seqadj_original());
  if (!e.seqadj_reply.empty()) seqadj_to_wire(e.seqadj_reply, out->mutable_seqadj_reply());
}

void to_wire(const FlowChange& c, wire::FlowChange* out, bool imply_reply) {
  switch (c.kind) {
    case FlowChangeKind::New: out->set_kind(wire::FlowChange::NEW); break;
    case FlowChangeKind::Update: out->set_kind(wire::FlowChange::UPDATE); break;
    case FlowChangeKind::Destroy: out->set_kind(wire::FlowChange::DESTROY); break;
  }
  if (c.kind == FlowChangeKind::New && c.replaces_copy) out->set_created(true);
  to_wire(c.entry, out->mutable_flow(), imply_reply);
}

std::optional<FlowEntry> from_wire(const wire::Flow& f, std::string& error) {
  if (!f.has_original()) {
    error = "flow without original tuple";
    return std::nullopt;
  }
  auto original = tuple_from_wire(f.original(), "original", error);
  if (!original) return std::nullopt;
  // No reply: the mirror of the original (we said implied_reply in our Hello).
  auto reply = f.has_reply() ? tuple_from_wire(f.reply(), "reply", error) : mirror(*original);
  if (!reply) return std::nullopt;
  if (original->src.family != reply->src.family || original->l4proto != reply->l4proto) {
    error = "original and reply tuples disagree on family or protocol";
    return std::nullopt;
  }
  // TCP_CONNTRACK_MAX is 10 (include/uapi/linux/netfilter/nf_conntrack_tcp.h).
  if (!in_range(f.zone(), 65535, "zone", error) || !in_range(f.tcp_state(), 9, "tcp_state", error))
    return std::nullopt;
  if (f.tcp_state() != 0 && original->l4proto != IPPROTO_TCP) {
    error = "tcp_state set on a non-TCP flow";
    return std::nullopt;
  }
  // SCTP_CONNTRACK_MAX is 10 (include/uapi/linux/netfilter/nf_conntrack_sctp.h).
  if (!in_range(f.sctp_state(), 9, "sctp_state", error)) return std::nullopt;
  if ((f.sctp_state() != 0 || f.sctp_vtag_original() != 0 || f.sctp_vtag_reply() != 0) &&
      original->l4proto != IPPROTO_SCTP) {
    error = "SCTP state or tags set on a non-SCTP flow";
    return std::nullopt;
  }
  // The kernel keeps sequence adjustment for TCP only (nf_ct_seqadj_set).
  if ((f.has_seqadj_original() || f.has_seqadj_reply()) && original->l4proto != IPPROTO_TCP) {
    error = "NAT sequence adjustment set on a non-TCP flow";
    return std::nullopt;
  }
  FlowEntry e;
  if (!name_from_wire(f.helper(), "helper", e.helper, error)) return std::nullopt;
  e.labels = {f.labels_low(), f.labels_high()};
  if (f.has_seqadj_original()) e.seqadj_original = seqadj_from_wire(f.seqadj_original());
  if (f.has_seqadj_reply()) e.seqadj_reply = seqadj_from_wire(f.seqadj_reply());
  e.original = *original;
  e.reply = *reply;
  e.status = f.status();
  e.timeout_s = f.timeout_s();
  e.mark = f.mark();
  e.zone = static_cast<uint16_t>(f.zone());
  e.tcp_state = static_cast<uint8_t>(f.tcp_state());
  e.sctp_state = static_cast<uint8_t>(f.sctp_state());
  e.sctp_vtag_original = f.sctp_vtag_original();
  e.sctp_vtag_reply = f.sctp_vtag_reply();
  return e;
}

std::optional<FlowChange> from_wire(const wire::FlowChange& c, std::string& error) {
  FlowChange out;
  switch (c.kind()) {
    case wire::FlowChange::NEW: out.kind = FlowChangeKind::New; break;
    case wire::FlowChange::UPDATE: out.kind = FlowChangeKind::Update; break;
    case wire::FlowChange::DESTROY: out.kind = FlowChangeKind::Destroy; break;
    case wire::FlowChange::KIND_UNSPECIFIED:
    case wire::FlowChange_Kind_FlowChange_Kind_INT_MIN_SENTINEL_DO_NOT_USE_:
    case wire::FlowChange_Kind_FlowChange_Kind_INT_MAX_SENTINEL_DO_NOT_USE_:
    default:
      error = "flow change of unknown kind " + std::to_string(c.kind());
      return std::nullopt;
  }
  if (!c.has_flow()) {
    error = "flow change without a flow";
    return std::nullopt;
  }
  auto e = from_wire(c.flow(), error);
  if (!e) return std::nullopt;
  out.entry = *e;
  out.replaces_copy = out.kind == FlowChangeKind::New && c.created();
  return out;
}

}  // namespace fwha::sync
