#include "schema/client_codec.hpp"

#include "schema/capnp_util.hpp"
#include "schema/client.capnp.h"

namespace conclave::client {

errc code_from_name(const std::string& name) {
  for (int c = 0; c <= static_cast<int>(errc::resource_exhausted); ++c) {
    if (code_name(static_cast<errc>(c)) == name) return static_cast<errc>(c);
  }
  return errc::unavailable;
}

std::string code_name(errc code) {
  switch (code) {
    case errc::io_error: return "io_error";
    case errc::map_full: return "map_full";
    case errc::disk_full: return "disk_full";
    case errc::out_of_order: return "out_of_order";
    case errc::compacted: return "compacted";
    case errc::unavailable: return "unavailable";
    case errc::hard_state_regression: return "hard_state_regression";
    case errc::corrupt: return "corrupt";
    case errc::not_found: return "not_found";
    case errc::foreign_cluster: return "foreign_cluster";
    case errc::unsupported_version: return "unsupported_version";
    case errc::malformed: return "malformed";
    case errc::too_large: return "too_large";
    case errc::not_leader: return "not_leader";
    case errc::busy: return "busy";
    case errc::transferring: return "transferring";
    case errc::config_change_pending: return "config_change_pending";
    case errc::not_caught_up: return "not_caught_up";
    case errc::outcome_unknown: return "outcome_unknown";
    case errc::unauthenticated: return "unauthenticated";
    case errc::invalid_argument: return "invalid_argument";
    case errc::resource_exhausted: return "resource_exhausted";
  }
  return "unknown";
}

}  // namespace conclave::client

namespace conclave::wire {
namespace {

using namespace detail;
namespace s = conclave::schema;

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

}  // namespace

std::string encode_request(const client::request& r, std::string_view cluster_id) {
  capnp::MallocMessageBuilder builder;
  auto out = builder.initRoot<s::ClientRequest>();
  out.setClusterId(capnp::Text::Reader(cluster_id.data(), cluster_id.size()));
  out.setProtocolVersion(protocol_version);
  auto body = out.initBody();
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, client::propose>) {
          body.setPropose(data_of(m.command));
        } else if constexpr (std::is_same_v<T, client::read>) {
          body.setRead(data_of(m.query));
        } else if constexpr (std::is_same_v<T, client::status_request>) {
          body.setStatus();
        } else if constexpr (std::is_same_v<T, client::transfer_leadership>) {
          body.setTransferLeadership(m.target);
        } else if constexpr (std::is_same_v<T, client::keepalive>) {
          auto k = body.initKeepalive();
          k.setSession(m.session);
          k.setPayload(data_of(m.payload));
          k.setDetached(m.detached);
        } else if constexpr (std::is_same_v<T, client::stale_read>) {
          body.setStaleRead(data_of(m.query));
        } else {
          auto c = body.initChangeMembership();
          c.setKind(m.kind);
          c.setId(m.id);
          c.setAddress(text_of(m.address));
        }
      },
      r);
  return to_bytes(builder);
}

expected<client::request> decode_request(std::string_view bytes, std::string_view cluster_id) {
  return decode_root<s::ClientRequest>(bytes, [&](s::ClientRequest::Reader in) -> client::request {
    auto theirs = in.getClusterId();
    std::string_view their_id(theirs.cStr(), theirs.size());
    if (their_id != cluster_id) {
      throw invalid{errc::foreign_cluster,
                    "cluster id '" + excerpt(their_id) + "', expected '" + std::string(cluster_id) + "'"};
    }
    if (in.getProtocolVersion() != protocol_version) {
      throw invalid{errc::unsupported_version, "version " + std::to_string(in.getProtocolVersion())};
    }
    auto body = in.getBody();
    switch (body.which()) {
      case s::ClientRequest::Body::PROPOSE: return client::propose{std::string(view(body.getPropose()))};
      case s::ClientRequest::Body::READ: return client::read{std::string(view(body.getRead()))};
      case s::ClientRequest::Body::STATUS: return client::status_request{};
      case s::ClientRequest::Body::TRANSFER_LEADERSHIP: return client::transfer_leadership{body.getTransferLeadership()};
      // The fault hooks left the client protocol (a test-only channel now).
      case s::ClientRequest::Body::RETIRED6:
      case s::ClientRequest::Body::RETIRED7: throw invalid{errc::malformed, "a retired request type (fault hook)"};
      case s::ClientRequest::Body::CHANGE_MEMBERSHIP: {
        auto c = body.getChangeMembership();
        if (c.getKind() > 2) throw invalid{errc::malformed, "unknown membership change"};
        return client::change_membership{c.getKind(), c.getId(), text(c.getAddress())};
      }
      case s::ClientRequest::Body::STALE_READ: return client::stale_read{std::string(view(body.getStaleRead()))};
      case s::ClientRequest::Body::KEEPALIVE: {
        auto k = body.getKeepalive();
        return client::keepalive{k.getSession(), std::string(view(k.getPayload())), k.getDetached()};
      }
    }
    throw invalid{errc::malformed, "unknown request type"};
  });
}

std::string encode_response(const client::response& r) {
  capnp::MallocMessageBuilder builder;
  auto body = builder.initRoot<s::ClientResponse>().initBody();
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, client::committed>) {
          auto c = body.initCommitted();
          c.setIndex(m.index);
          c.setTerm(m.term);
          c.setResult(data_of(m.result));
        } else if constexpr (std::is_same_v<T, client::read_result>) {
          auto c = body.initReadResult();
          c.setIndex(m.index);
          c.setResult(data_of(m.result));
        } else if constexpr (std::is_same_v<T, client::status>) {
          auto c = body.initStatus();
          c.setId(m.id);
          c.setRole(text_of(m.role));
          c.setTerm(m.term);
          c.setLeaderId(m.leader_id);
          c.setLeaderAddress(text_of(m.leader_address));
          c.setCommitIndex(m.commit_index);
          c.setAppliedIndex(m.applied_index);
          c.setLastIndex(m.last_index);
          c.setDigest(text_of(m.digest));
          c.setStorageError(text_of(m.storage_error));
          auto members = c.initMembers(static_cast<unsigned>(m.members.size()));
          for (unsigned i = 0; i < m.members.size(); ++i) {
            members[i].setId(m.members[i].id);
            members[i].setAddress(text_of(m.members[i].address));
            members[i].setLearner(m.members[i].learner);
          }
        } else if constexpr (std::is_same_v<T, client::ok>) {
          body.setOk();
        } else {
          auto c = body.initError();
          c.setCode(text_of(m.code));
          c.setMessage(text_of(m.message));
          c.setLeaderId(m.leader_id);
          c.setLeaderAddress(text_of(m.leader_address));
        }
      },
      r);
  return to_bytes(builder);
}

std::string response_code(std::string_view bytes) {
  auto code = decode_root<s::ClientResponse>(bytes, [](s::ClientResponse::Reader in) {
    auto body = in.getBody();
    return body.which() == s::ClientResponse::Body::ERROR ? text(body.getError().getCode()) : std::string();
  });
  return code ? *code : client::code_name(errc::malformed);
}

expected<client::response> decode_response(std::string_view bytes) {
  return decode_root<s::ClientResponse>(bytes, [](s::ClientResponse::Reader in) -> client::response {
    auto body = in.getBody();
    switch (body.which()) {
      case s::ClientResponse::Body::COMMITTED: {
        auto c = body.getCommitted();
        return client::committed{c.getIndex(), c.getTerm(), std::string(view(c.getResult()))};
      }
      case s::ClientResponse::Body::READ_RESULT: {
        auto c = body.getReadResult();
        return client::read_result{c.getIndex(), std::string(view(c.getResult()))};
      }
      case s::ClientResponse::Body::STATUS: {
        auto c = body.getStatus();
        client::status st{c.getId(),          text(c.getRole()),      c.getTerm(),         c.getLeaderId(),
                          text(c.getLeaderAddress()), c.getCommitIndex(), c.getAppliedIndex(), c.getLastIndex(),
                          text(c.getDigest()),  text(c.getStorageError()), {}};
        for (auto x : c.getMembers()) st.members.push_back(client::config_member{x.getId(), text(x.getAddress()), x.getLearner()});
        return st;
      }
      case s::ClientResponse::Body::OK: return client::ok{};
      case s::ClientResponse::Body::ERROR: {
        auto c = body.getError();
        return client::failure{text(c.getCode()), text(c.getMessage()), c.getLeaderId(), text(c.getLeaderAddress())};
      }
    }
    throw invalid{errc::malformed, "unknown response type"};
  });
}

}  // namespace conclave::wire
