// Shared by the fuzz targets (test/fuzz/*_fuzz.cpp): the cluster id the
// seeds are encoded for, a check that aborts (a fuzz target reports a bug by
// crashing), field-by-field equality for the plain structs that have no
// operator==, and a scratch directory for the targets that need files.
//
// Header-only and CAF-free: every target is compiled on its own, once as a
// libFuzzer executable and once (with LLVMFuzzerTestOneInput renamed) into
// the replay test.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "actors/registry/registry.hpp"
#include "schema/client_protocol.hpp"
#include "schema/registry_codec.hpp"

namespace conclave::fuzz {

// The cluster id the peer-message and client-request seeds are encoded for.
inline constexpr std::string_view cluster = "fuzz";

inline void remove_scratch_dirs();

// A bug: print what broke and abort, so that libFuzzer saves the input.
[[noreturn]] inline void fail(const char* target, const std::string& what) {
  std::fprintf(stderr, "fuzz target %s: %s\n", target, what.c_str());
  std::fflush(stderr);
  remove_scratch_dirs();  // abort() runs no destructors
  std::abort();
}

#define FUZZ_CHECK(target, cond, what)                                    \
  do {                                                                    \
    if (!(cond)) ::conclave::fuzz::fail(target, std::string("check failed: " #cond ": ") + (what)); \
  } while (0)

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// --- equality where the structs have none ------------------------------------

// Doubles compare by bits: a NaN must survive a round trip unchanged too.
inline bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

inline bool same(const client::request& a, const client::request& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, client::propose>) return x.command == y.command;
        if constexpr (std::is_same_v<T, client::read>) return x.query == y.query;
        if constexpr (std::is_same_v<T, client::status_request>) return true;
        if constexpr (std::is_same_v<T, client::transfer_leadership>) return x.target == y.target;
        if constexpr (std::is_same_v<T, client::keepalive>) {
          return x.session == y.session && x.payload == y.payload && x.detached == y.detached;
        }
        if constexpr (std::is_same_v<T, client::stale_read>) return x.query == y.query;
        if constexpr (std::is_same_v<T, client::change_membership>) {
          return x.kind == y.kind && x.id == y.id && x.address == y.address;
        }
      },
      a);
}

inline bool same(const client::response& a, const client::response& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, client::committed>) {
          return x.index == y.index && x.term == y.term && x.result == y.result;
        }
        if constexpr (std::is_same_v<T, client::read_result>) return x.index == y.index && x.result == y.result;
        if constexpr (std::is_same_v<T, client::status>) {
          return x.id == y.id && x.role == y.role && x.term == y.term && x.leader_id == y.leader_id &&
                 x.leader_address == y.leader_address && x.commit_index == y.commit_index &&
                 x.applied_index == y.applied_index && x.last_index == y.last_index && x.digest == y.digest &&
                 x.storage_error == y.storage_error && x.members.size() == y.members.size() &&
                 std::equal(x.members.begin(), x.members.end(), y.members.begin(), [](const auto& m, const auto& n) {
                   return m.id == n.id && m.address == n.address && m.learner == n.learner;
                 });
        }
        if constexpr (std::is_same_v<T, client::ok>) return true;
        if constexpr (std::is_same_v<T, client::failure>) {
          return x.code == y.code && x.message == y.message && x.leader_id == y.leader_id &&
                 x.leader_address == y.leader_address;
        }
      },
      a);
}

inline bool same(const registry::resources& a, const registry::resources& b) {
  return same_bits(a.cpu_percent, b.cpu_percent) && same_bits(a.load_average, b.load_average) &&
         a.memory_used_bytes == b.memory_used_bytes && a.memory_available_bytes == b.memory_available_bytes &&
         a.disk_available_bytes == b.disk_available_bytes;
}

inline bool same(const registry::member& a, const registry::member& b) {
  return a.id == b.id && a.role == b.role && a.host == b.host && a.port == b.port &&
         a.start_time_ms == b.start_time_ms && a.labels == b.labels && same(a.usage, b.usage) &&
         a.status == b.status && a.session == b.session && a.changed == b.changed && a.incarnation == b.incarnation;
}

// Every overload, declared before the templates that call them.
inline bool same(const client::request& a, const client::request& b);
inline bool same(const client::response& a, const client::response& b);
inline bool same(const registry::resources& a, const registry::resources& b);
inline bool same(const registry::member& a, const registry::member& b);
inline bool same(const registry::key_value& a, const registry::key_value& b);
inline bool same(const registry::lock& a, const registry::lock& b);
inline bool same(const registry::session& a, const registry::session& b);
inline bool same(const registry::event& a, const registry::event& b);
inline bool same(const std::pair<std::string, registry::key_value>& a, const std::pair<std::string, registry::key_value>& b);
inline bool same(const registry::change& a, const registry::change& b);
inline bool same(const registry::key_range& a, const registry::key_range& b);
inline bool same(const registry::compare& a, const registry::compare& b);
inline bool same(const registry::txn_op& a, const registry::txn_op& b);
inline bool same(const registry::op_result& a, const registry::op_result& b);
inline bool same(const registry::command& a, const registry::command& b);
inline bool same(const wire::registry_result& a, const wire::registry_result& b);
inline bool same(const registry::registry_state& a, const registry::registry_state& b);
inline bool same(const registry::query& a, const registry::query& b);
inline bool same(const registry::query_result& a, const registry::query_result& b);
template <class T>
bool same(const std::optional<T>& a, const std::optional<T>& b);
template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b);
template <class T>
bool same(const std::optional<T>& a, const std::optional<T>& b) {
  return a.has_value() == b.has_value() && (!a || same(*a, *b));
}

template <class T>
bool same(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) return false;
  }
  return true;
}

inline bool same(const registry::key_value& a, const registry::key_value& b) {
  return a.value == b.value && a.created == b.created && a.modified == b.modified && a.version == b.version &&
         a.session == b.session;
}

inline bool same(const registry::lock& a, const registry::lock& b) {
  return a.holder == b.holder && a.token == b.token && a.waiters == b.waiters;
}

inline bool same(const registry::session& a, const registry::session& b) {
  return a.id == b.id && a.owner == b.owner && a.ttl_ms == b.ttl_ms && a.remaining_ms == b.remaining_ms;
}

inline bool same(const registry::event& a, const registry::event& b) {
  return a.seq == b.seq && a.from == b.from && a.to == b.to && a.payload == b.payload && a.recipients == b.recipients;
}

inline bool same(const registry::change& a, const registry::change& b);

inline bool same(const std::pair<std::string, registry::key_value>& a,
                 const std::pair<std::string, registry::key_value>& b) {
  return a.first == b.first && same(a.second, b.second);
}

inline bool same(const registry::change& a, const registry::change& b) {
  return a.rev == b.rev && a.deleted == b.deleted && a.key == b.key && a.value == b.value && a.created == b.created &&
         a.version == b.version && a.session == b.session && same(a.prev, b.prev);
}

inline bool same(const registry::key_range& a, const registry::key_range& b) { return a.key == b.key && a.end == b.end; }

inline bool same(const registry::compare& a, const registry::compare& b) {
  return same(a.range, b.range) && a.target == b.target && a.op == b.op && a.value == b.value && a.number == b.number;
}

inline bool same(const registry::txn_op& a, const registry::txn_op& b) {
  return a.kind == b.kind && same(a.range, b.range) && a.value == b.value && a.session == b.session &&
         a.ignore_value == b.ignore_value && a.ignore_session == b.ignore_session;
}

inline bool same(const registry::op_result& a, const registry::op_result& b) { return same(a.keys, b.keys); }

inline bool same(const registry::command& a, const registry::command& b) {
  namespace r = registry;
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, r::register_member>) return same(x.m, y.m) && x.ttl_ms == y.ttl_ms;
        if constexpr (std::is_same_v<T, r::report_usage>) {
          if (x.reports.size() != y.reports.size()) return false;
          for (std::size_t i = 0; i < x.reports.size(); ++i) {
            if (x.reports[i].first != y.reports[i].first || !same(x.reports[i].second, y.reports[i].second)) {
              return false;
            }
          }
          return true;
        }
        if constexpr (std::is_same_v<T, r::set_member_status>) return x.id == y.id && x.status == y.status;
        if constexpr (std::is_same_v<T, r::open_session>) {
          return x.owner == y.owner && x.ttl_ms == y.ttl_ms && x.id == y.id;
        }
        if constexpr (std::is_same_v<T, r::close_session>) return x.id == y.id && x.expired == y.expired;
        if constexpr (std::is_same_v<T, r::checkpoint_sessions>) return x.remaining_ms == y.remaining_ms;
        if constexpr (std::is_same_v<T, r::put>) {
          return x.key == y.key && x.value == y.value && x.session == y.session && x.if_version == y.if_version;
        }
        if constexpr (std::is_same_v<T, r::remove_key>) return x.key == y.key && x.if_version == y.if_version;
        if constexpr (std::is_same_v<T, r::acquire_lock>) {
          return x.name == y.name && x.session == y.session && x.wait == y.wait;
        }
        if constexpr (std::is_same_v<T, r::release_lock>) return x.name == y.name && x.session == y.session;
        if constexpr (std::is_same_v<T, r::cancel_lock_wait>) return x.name == y.name && x.session == y.session;
        if constexpr (std::is_same_v<T, r::publish_event>) {
          return x.from == y.from && x.to == y.to && x.payload == y.payload;
        }
        if constexpr (std::is_same_v<T, r::ack_events>) return x.member == y.member && x.upto == y.upto;
        if constexpr (std::is_same_v<T, r::txn>) {
          return same(x.compares, y.compares) && same(x.success, y.success) && same(x.failure, y.failure);
        }
        if constexpr (std::is_same_v<T, r::compact>) return x.rev == y.rev;
      },
      a);
}

inline bool same(const wire::registry_result& a, const wire::registry_result& b) {
  if (a.outcome.code != b.outcome.code || a.outcome.value != b.outcome.value || a.outcome.detail != b.outcome.detail ||
      a.outcome.succeeded != b.outcome.succeeded || !same(a.outcome.ops, b.outcome.ops) ||
      a.grants.size() != b.grants.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.grants.size(); ++i) {
    const auto& x = a.grants[i];
    const auto& y = b.grants[i];
    if (x.name != y.name || x.session != y.session || x.token != y.token) return false;
  }
  return true;
}

inline bool same(const registry::registry_state& a, const registry::registry_state& b) {
  if (a.rev != b.rev || a.event_seq != b.event_seq || a.history_floor != b.history_floor ||
      a.last_session != b.last_session || a.applied != b.applied || a.compacted != b.compacted) {
    return false;
  }
  if (a.members.size() != b.members.size()) return false;
  for (auto i = a.members.begin(), j = b.members.begin(); i != a.members.end(); ++i, ++j) {
    if (i->first != j->first || !same(i->second, j->second)) return false;
  }
  if (a.sessions.size() != b.sessions.size()) return false;
  for (auto i = a.sessions.begin(), j = b.sessions.begin(); i != a.sessions.end(); ++i, ++j) {
    const auto& x = i->second;
    const auto& y = j->second;
    if (i->first != j->first || x.id != y.id || x.owner != y.owner || x.ttl_ms != y.ttl_ms ||
        x.remaining_ms != y.remaining_ms) {
      return false;
    }
  }
  if (a.keys.size() != b.keys.size()) return false;
  for (auto i = a.keys.begin(), j = b.keys.begin(); i != a.keys.end(); ++i, ++j) {
    const auto& x = i->second;
    const auto& y = j->second;
    if (i->first != j->first || x.value != y.value || x.created != y.created || x.modified != y.modified ||
        x.version != y.version || x.session != y.session) {
      return false;
    }
  }
  if (a.locks.size() != b.locks.size()) return false;
  for (auto i = a.locks.begin(), j = b.locks.begin(); i != a.locks.end(); ++i, ++j) {
    const auto& x = i->second;
    const auto& y = j->second;
    if (i->first != j->first || x.holder != y.holder || x.token != y.token || x.waiters != y.waiters) return false;
  }
  if (a.events.size() != b.events.size()) return false;
  for (std::size_t i = 0; i < a.events.size(); ++i) {
    const auto& x = a.events[i];
    const auto& y = b.events[i];
    if (x.seq != y.seq || x.from != y.from || x.to != y.to || x.payload != y.payload || x.recipients != y.recipients) {
      return false;
    }
  }
  if (a.events_acked != b.events_acked) return false;
  if (a.history.size() != b.history.size()) return false;
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    const auto& x = a.history[i];
    const auto& y = b.history[i];
    if (!same(x, y)) return false;
  }
  return true;
}

inline bool same(const registry::query& a, const registry::query& b) {
  namespace r = registry;
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, r::get_key>) return x.key == y.key;
        if constexpr (std::is_same_v<T, r::list_prefix>) return x.prefix == y.prefix;
        if constexpr (std::is_same_v<T, r::members_query>) return x.only == y.only;
        if constexpr (std::is_same_v<T, r::lock_query>) return x.name == y.name;
        if constexpr (std::is_same_v<T, r::session_query>) return x.id == y.id && x.with_keys == y.with_keys;
        if constexpr (std::is_same_v<T, r::sessions_query>) return true;
        if constexpr (std::is_same_v<T, r::range_query>) return same(x.range, y.range) && x.at == y.at;
        if constexpr (std::is_same_v<T, r::state_query>) return x.summary == y.summary;
        if constexpr (std::is_same_v<T, r::events_query>) return x.member == y.member;
        if constexpr (std::is_same_v<T, r::changes_query>) return x.after == y.after && x.prefix == y.prefix;
        if constexpr (std::is_same_v<T, r::revision_query>) return true;
        if constexpr (std::is_same_v<T, r::digest_query>) return true;
      },
      a);
}

inline bool same(const registry::query_result& a, const registry::query_result& b) {
  namespace r = registry;
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const auto& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, r::key_result>) return same(x.value, y.value) && x.rev == y.rev;
        if constexpr (std::is_same_v<T, r::keys_result>) return x.rev == y.rev && same(x.keys, y.keys);
        if constexpr (std::is_same_v<T, r::members_result>) return same(x.members, y.members);
        if constexpr (std::is_same_v<T, r::lock_result>) return same(x.value, y.value);
        if constexpr (std::is_same_v<T, r::session_result>) return same(x.value, y.value) && x.keys == y.keys;
        if constexpr (std::is_same_v<T, r::sessions_result>) return same(x.sessions, y.sessions);
        if constexpr (std::is_same_v<T, r::state_result>) {
          return x.state && y.state ? same(*x.state, *y.state) : x.state == y.state;
        }
        if constexpr (std::is_same_v<T, r::range_result>) {
          return x.rev == y.rev && x.floor == y.floor && x.status == y.status && same(x.keys, y.keys);
        }
        if constexpr (std::is_same_v<T, r::events_result>) return same(x.events, y.events);
        if constexpr (std::is_same_v<T, r::changes_result>) {
          return x.rev == y.rev && x.compacted == y.compacted && same(x.changes, y.changes);
        }
        if constexpr (std::is_same_v<T, r::revision_result>) return x.rev == y.rev;
        if constexpr (std::is_same_v<T, r::digest_result>) return x.rev == y.rev && x.digest == y.digest;
        if constexpr (std::is_same_v<T, r::query_error>) return x.message == y.message;
      },
      a);
}

// --- scratch files -------------------------------------------------------------

struct scratch_holder {
  std::string name;
  std::string path;
  scratch_holder(const char* n, std::string p) : name(n), path(std::move(p)) {}
  ~scratch_holder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline std::vector<std::unique_ptr<scratch_holder>>& scratch_dirs() {
  static std::vector<std::unique_ptr<scratch_holder>> dirs;
  return dirs;
}

inline void remove_scratch_dirs() { scratch_dirs().clear(); }

// A directory for this process's scratch files, one per `name`, made on
// first use (in /dev/shm when there is one: the snapshot store fsyncs every
// save; CONCLAVE_FUZZ_TMPDIR overrides) and removed at exit.
inline const std::string& scratch_dir(const char* name) {
  auto& dirs = scratch_dirs();
  for (const auto& d : dirs) {
    if (d->name == name) return d->path;
  }
  const char* env = std::getenv("CONCLAVE_FUZZ_TMPDIR");
  std::string base = env && *env ? env : (::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  std::string pattern = base + "/conclave-fuzz-" + name + "-XXXXXX";
  if (!::mkdtemp(pattern.data())) fail(name, "cannot create a scratch directory under " + base);
  dirs.push_back(std::make_unique<scratch_holder>(name, pattern));
  return dirs.back()->path;
}

}  // namespace conclave::fuzz
