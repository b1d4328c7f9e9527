// The queue behind etcd's Lock and Election services, as etcd's concurrency
// package builds it from keys: the holder or candidate of NAME owns the key
// NAME/LEASEHEX, and they line up by create revision (the lowest holds the
// lock or leads). A key_queue keeps the keys under NAME/ current at this
// master by a push subscription, so a request waits for its turn without
// polling the registry.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

using keys_map = std::map<std::string, registry::key_value>;

// A request's key: NAME/LEASEHEX, the lease in lowercase hex as Go's %x prints it.
std::string queue_key(const std::string& name, std::int64_t lease);
// The range of the keys that start with `prefix` (etcd's prefix range end).
registry::key_range prefix_range(const std::string& prefix);

// A lease for a request that names none (0): as etcd's servers, a new one of
// 60 s that no one keeps alive. Otherwise `lease` itself.
expected<std::int64_t> lease_or_new(api& a, std::int64_t lease, steady::time_point until);

// etcd's Lock and Election servers are clients of its KV: a refusal they
// pass on reaches their client with code UNKNOWN and the KV's message.
grpc::Status as_passed_on(const grpc::Status& s);

// A place in line (etcd's tryAcquire and Campaign): the request's key, put
// with `value` and the lease unless it exists (then found as it is), and every
// key under NAME/ as of that revision.
struct place {
  std::string key;
  registry::revision rev = 0;      // of the claim
  std::uint64_t term = 0;          // the claim committed in
  bool created = false;            // the claim put the key
  registry::key_value kv;          // the key after the claim
  keys_map keys;                   // under NAME/ at `rev`
};
grpc::Status claim(api& a, const std::string& name, std::int64_t lease, const std::string& value,
                   steady::time_point until, place& out);

// The key created first (none: no key), and the one created last before
// revision `created` (none: `created` is first in line).
const keys_map::value_type* first_created(const keys_map& keys);
const keys_map::value_type* last_before(const keys_map& keys, registry::revision created);

// A comparison that holds while `key` is the one created at revision `created`.
registry::compare created_at(const std::string& key, registry::revision created);

class key_queue {
 public:
  // Follows the keys under `prefix` from `keys`, as read at revision `rev`
  // through the leader, on; unsubscribes when destroyed.
  key_queue(api& a, std::string prefix, registry::revision rev, keys_map keys);
  ~key_queue();
  key_queue(const key_queue&) = delete;
  key_queue& operator=(const key_queue&) = delete;

  // The keys under the prefix as of `rev()`.
  const keys_map& keys() const { return keys_; }
  registry::revision rev() const { return rev_; }

  // Moves to the next revision that changed a key under the prefix, waiting
  // for it until `deadline` or until the client cancels: then
  // DEADLINE_EXCEEDED or CANCELLED.
  grpc::Status advance(grpc::ServerContext* ctx, std::chrono::system_clock::time_point deadline);

  // Waits for the turn of `key`, created at revision `created`: until no key
  // under the prefix was created before it (etcd's waitDeletes). OK with
  // `lost` set when `key` went first (its lease ended, or it was deleted).
  grpc::Status wait_turn(grpc::ServerContext* ctx, std::chrono::system_clock::time_point deadline,
                         const std::string& key, registry::revision created, bool& lost);

 private:
  // What the subscription delivered and advance has not applied yet (shared
  // with its handler, which may outlive the queue by one call).
  struct inbox {
    std::mutex m;
    std::condition_variable changed;
    std::deque<registry::change> changes;  // in revision order
    std::optional<std::pair<registry::revision, keys_map>> listing;  // the history no longer reached back
    registry::revision at = 0;  // delivered up to here: where a resumed subscription starts
  };
  static void on_push(inbox& in, const registry::push& p);

  api& a_;
  registry::revision rev_ = 0;
  keys_map keys_;
  std::shared_ptr<inbox> inbox_;
  std::uint64_t subscription_ = 0;
};

}  // namespace conclave::etcd::detail
