#include "nft/conntrack_exemption.h"

#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4.h>
#include <sys/time.h>

#include <map>
#include <vector>

#include "nft/notrack_rule.h"

namespace fwha::nft {
namespace {

constexpr size_t kBatchLimit = 64 * 1024;  // a handful of rules: far below

// One nftables transaction (NFNL_MSG_BATCH_BEGIN ... END). Every message asks for an ACK; the
// kernel answers in order, an error for a refused message, and applies all or none.
class Batch {
 public:
  // libmnl lets the last message run past the limit: the buffer is twice as large.
  Batch() : buf_(2 * kBatchLimit), batch_(mnl_nlmsg_batch_start(buf_.data(), kBatchLimit)) {
    if (!batch_) return;
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    full_ = !mnl_nlmsg_batch_next(batch_);
  }
  ~Batch() {
    if (batch_) mnl_nlmsg_batch_stop(batch_);
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  bool ok() const { return batch_ && !full_; }

  // Starts a message; `label` names it in errors. Call next() once its payload is built.
  nlmsghdr* add(uint16_t type, uint16_t flags, std::string label) {
    labels_[seq_] = std::move(label);
    last_seq_ = seq_;
    return nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type,
                                 NFPROTO_INET, flags | NLM_F_ACK, seq_++);
  }
  void next() { full_ = full_ || !mnl_nlmsg_batch_next(batch_); }

  std::error_code commit(mnl_socket* nl, std::string& what) {
    if (ok()) {
      nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
      next();
    }
    if (!ok()) {
      what = "building the nftables batch";
      return std::make_error_code(std::errc::no_buffer_space);
    }
    if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(batch_), mnl_nlmsg_batch_size(batch_)) < 0) {
      what = "sending the nftables batch";
      return {errno, std::generic_category()};
    }
    // The kernel has processed the batch when sendto returns; its answers (one per message:
    // it acks neither BEGIN nor END unless the whole batch is refused) are queued. Bounded:
    // every datagram read either holds an answer or is counted, and the socket has a receive
    // timeout.
    std::vector<char> rx(MNL_SOCKET_BUFFER_SIZE);
    for (size_t datagrams = 0; datagrams <= 2 * labels_.size() + 2; ++datagrams) {
      const ssize_t n = mnl_socket_recvfrom(nl, rx.data(), rx.size());
      if (n < 0) {
        what = "waiting for the kernel's answer to the nftables batch";
        return {errno, std::generic_category()};
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<const nlmsghdr*>(rx.data()); mnl_nlmsg_ok(h, len);
           h = mnl_nlmsg_next(h, &len)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(h));
        if (err->error != 0) {
          auto it = labels_.find(h->nlmsg_seq);
          what = it != labels_.end() ? it->second : "the nftables batch";
          return {-err->error, std::generic_category()};
        }
        if (h->nlmsg_seq == last_seq_) return {};
      }
    }
    what = "the kernel's answer to the nftables batch";
    return std::make_error_code(std::errc::protocol_error);
  }

 private:
  std::vector<char> buf_;
  mnl_nlmsg_batch* batch_;
  bool full_ = false;
  uint32_t seq_ = 1;
  uint32_t last_seq_ = 0;
  std::map<uint32_t, std::string> labels_;
};

// What the operator can do about a refusal of the table itself.
std::string table_hint(std::error_code ec) {
  if (ec == std::errc::file_exists) return " exists and is not fwhad's (someone else's table)";
  if (ec == std::errc::operation_not_permitted)
    return " belongs to another running fwhad in this network namespace";
  if (ec == std::errc::operation_not_supported || ec == std::errc::invalid_argument)
    return ": this kernel lacks nftables' table owner flag (Linux 5.12 or later)";
  return "";
}

}  // namespace

std::unique_ptr<ConntrackExemption> ConntrackExemption::install(
    std::span<const NotrackRule> rules, std::error_code& ec, std::string& what) {
  const std::string table = std::string("table inet ") + kTableName;
  auto fail = [&](std::error_code e, std::string w) {
    ec = e;
    what = std::move(w);
    return nullptr;
  };
  const auto no_memory = std::make_error_code(std::errc::not_enough_memory);
  MnlSocketPtr nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return fail({errno, std::generic_category()}, "nftables netlink socket");
  }
  const timeval timeout{.tv_sec = 2, .tv_usec = 0};
  if (setsockopt(mnl_socket_get_fd(nl.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                 sizeof timeout) != 0) {
    return fail({errno, std::generic_category()}, "nftables netlink socket (receive timeout)");
  }

  Batch batch;
  NftnlTable t(nftnl_table_alloc());
  if (!batch.ok() || !t) return fail(no_memory, table);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, kTableName);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, NFT_TABLE_F_OWNER);
  // NLM_F_EXCL: a table of that name that someone else made is theirs, not replaced.
  nftnl_table_nlmsg_build_payload(
      batch.add(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, table), t.get());
  batch.next();
  for (const Hook hook : {Hook::Prerouting, Hook::Output}) {
    NftnlChain c(nftnl_chain_alloc());
    if (!c) return fail(no_memory, table);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, kTableName);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain_name(hook));
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM,
                        hook == Hook::Prerouting ? NF_INET_PRE_ROUTING : NF_INET_LOCAL_OUT);
    nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, NF_IP_PRI_RAW);  // -300: before conntrack
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nftnl_chain_nlmsg_build_payload(
        batch.add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, table + " chain " + chain_name(hook)), c.get());
    batch.next();
  }
  for (const auto& spec : rules) {
    NftnlRule r = build_rule(spec);
    if (!r) return fail(no_memory, table + " rule " + describe(spec));
    nftnl_rule_nlmsg_build_payload(
        batch.add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, table + " rule " + describe(spec)),
        r.get());
    batch.next();
  }
  if ((ec = batch.commit(nl.get(), what))) {
    if (what == table) what += table_hint(ec);
    if (ec == std::errc::no_such_file_or_directory && what != table) {
      what += " (no nftables notrack support: the nft_ct module?)";
    }
    return nullptr;
  }
  return std::make_unique<ConntrackExemption>(Key{}, std::move(nl));
}

}  // namespace fwha::nft
