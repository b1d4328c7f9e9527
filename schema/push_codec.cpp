#include "schema/push_codec.hpp"

#include "schema/capnp_util.hpp"
#include "schema/push.capnp.h"
#include "schema/registry_codec.hpp"

namespace conclave::wire {

using namespace detail;
namespace s = conclave::schema;
namespace r = conclave::registry;

std::string encode_subscription(const r::subscription& sub, const std::string& cluster_id) {
  capnp::MallocMessageBuilder builder;
  auto out = builder.initRoot<s::Subscription>();
  out.setClusterId(text_of(cluster_id));
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, r::watch_subscription>) {
          auto w = out.initWatch();
          w.setPrefix(text_of(m.prefix));
          w.setHasAfter(m.after.has_value());
          w.setAfter(m.after.value_or(0));
        } else if constexpr (std::is_same_v<T, r::lock_subscription>) {
          auto l = out.initLock();
          l.setName(text_of(m.name));
          l.setSession(m.session);
          l.setAfter(m.after);
        } else if constexpr (std::is_same_v<T, r::events_subscription>) {
          auto e = out.initEvents();
          e.setMember(text_of(m.member));
          e.setAfter(m.after);
        } else {
          out.setMembers();
        }
      },
      sub);
  return to_bytes(builder);
}

expected<r::subscription> decode_subscription(std::string_view bytes, const std::string& cluster_id) {
  return decode_root<s::Subscription>(bytes, [&](s::Subscription::Reader in) -> r::subscription {
    auto theirs = in.getClusterId();
    std::string_view their_id(theirs.cStr(), theirs.size());
    if (their_id != cluster_id) {
      throw invalid{errc::foreign_cluster, "cluster id '" + excerpt(their_id) + "', expected '" + cluster_id + "'"};
    }
    switch (in.which()) {
      case s::Subscription::WATCH: {
        auto w = in.getWatch();
        r::watch_subscription out{std::string(w.getPrefix().cStr(), w.getPrefix().size()), std::nullopt};
        if (w.getHasAfter()) out.after = w.getAfter();
        return out;
      }
      case s::Subscription::LOCK: {
        auto l = in.getLock();
        if (l.getSession() == 0) throw invalid{errc::invalid_argument, "a lock subscription needs a session"};
        return r::lock_subscription{std::string(l.getName().cStr(), l.getName().size()), l.getSession(), l.getAfter()};
      }
      case s::Subscription::EVENTS: {
        auto e = in.getEvents();
        return r::events_subscription{std::string(e.getMember().cStr(), e.getMember().size()), e.getAfter()};
      }
      case s::Subscription::MEMBERS: return r::members_subscription{};
    }
    throw invalid{errc::malformed, "unknown subscription kind"};
  });
}

std::string encode_push_state(const r::push& p) { return encode_registry_snapshot(p.state); }

expected<r::push> decode_push(std::uint8_t kind, std::string_view state) {
  if (kind > static_cast<std::uint8_t>(r::push_kind::progress)) {
    return make_error(errc::malformed, "unknown push kind " + std::to_string(kind));
  }
  auto st = decode_registry_snapshot(state);
  if (!st) return st.error();
  return r::push{static_cast<r::push_kind>(kind), std::move(*st)};
}

std::string encode_push_ids(const std::vector<std::uint64_t>& ids) {
  std::string out;
  out.reserve(ids.size() * 8);
  for (auto id : ids) {
    for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((id >> (8 * b)) & 0xff));
  }
  return out;
}

expected<std::vector<std::uint64_t>> decode_push_ids(std::string_view bytes) {
  if (bytes.empty() || bytes.size() % 8 != 0) {
    return make_error(errc::malformed, "push ids: " + std::to_string(bytes.size()) + " bytes, not a multiple of 8");
  }
  std::vector<std::uint64_t> ids(bytes.size() / 8);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    for (int b = 0; b < 8; ++b) ids[i] |= std::uint64_t{static_cast<unsigned char>(bytes[8 * i + b])} << (8 * b);
  }
  return ids;
}

}  // namespace conclave::wire
