// The queue behind etcd's Lock and Election services, as etcd's concurrency
// package builds it from keys: the holder or candidate of NAME owns the key
// NAME/LEASEHEX, and they line up by create revision (the lowest holds the
// lock or leads). A key_line keeps the keys under NAME/ current at this
// master by a push subscription, so a request waits for its turn without
// polling the registry, and without a thread: the calls are gRPC callback
// reactors (a line_call for Lock and Campaign) that the backend's answers
// and the line's pushes move on, and gRPC tells them when the client leaves
// or its deadline passes (OnCancel).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

using keys_map = std::map<std::string, registry::key_value>;

// A request's key: NAME/LEASEHEX, the lease in lowercase hex as Go's %x prints it.
std::string queue_key(const std::string& name, std::int64_t lease);
// The range of the keys that start with `prefix` (etcd's prefix range end).
registry::key_range prefix_range(const std::string& prefix);

// A lease for a request that names none (0): as etcd's servers, a new one of
// 60 s that no one keeps alive. Otherwise `lease` itself. `done` as
// api::run_async's.
void lease_or_new(api& a, std::int64_t lease, steady::time_point until,
                  std::function<void(expected<std::int64_t>)> done);
// Ends a lease lease_or_new granted for a caller that left before using it
// (best effort: else its TTL ends it).
void end_lease(api& a, std::int64_t lease);

// etcd's Lock and Election servers are clients of its KV: a refusal they
// pass on reaches their client with code UNKNOWN and the KV's message.
grpc::Status as_passed_on(const grpc::Status& s);
// A refusal of the recipe's writes by the registry, passed on.
grpc::Status recipe_refusal(const registry::outcome& o);

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
void claim(api& a, const std::string& name, std::int64_t lease, const std::string& value, steady::time_point until,
           std::function<void(grpc::Status, place)> done);

// The key created first (none: no key), and the one created last before
// revision `created` (none: `created` is first in line).
const keys_map::value_type* first_created(const keys_map& keys);
const keys_map::value_type* last_before(const keys_map& keys, registry::revision created);

// What a call gRPC cancelled (OnCancel) ends with, in etcd's words: its
// deadline passed, or its client left.
grpc::Status cancel_status(std::chrono::system_clock::time_point deadline);

// A comparison that holds while `key` is the one created at revision `created`.
registry::compare created_at(const std::string& key, registry::revision created);

// Follows the keys under `prefix` from `keys`, as read at revision `rev`
// through the leader: after each later revision that changed one, in order,
// `changed(keys, rev)` runs on the backend's push thread (also after a
// compaction, with the keys as they are then). Unsubscribes when destroyed;
// a `changed` already running may still finish.
class key_line {
 public:
  using on_change = std::function<void(const keys_map& keys, registry::revision rev)>;
  key_line(api& a, const std::string& prefix, registry::revision rev, keys_map keys, on_change changed);
  ~key_line();
  key_line(const key_line&) = delete;
  key_line& operator=(const key_line&) = delete;

 private:
  // Shared with the subscription's handler, which may outlive the line by one call.
  struct follower {
    std::atomic<registry::revision> at{0};  // applied up to here: where a resumed subscription starts
    keys_map keys;                          // touched on the push thread only, after construction
    on_change changed;
  };
  static void on_push(follower& f, const registry::push& p);

  api& a_;
  std::uint64_t subscription_ = 0;
};

// A unary call that waits in a line for its turn (Lock, Campaign). Its
// steps run on the backend's threads; `m` orders them with the client's
// leaving. The first of answer() and a cancel wins; after it nothing touches
// the request or response (gRPC frees them once the call is done).
class line_call : public std::enable_shared_from_this<line_call> {
 public:
  // The reactor a method returns, and its state; `deadline` is the call's
  // (ServerContext::deadline()).
  static std::pair<grpc::ServerUnaryReactor*, std::shared_ptr<line_call>> start(
      api& a, std::chrono::system_clock::time_point deadline);

  // Answers the call with what `fill` writes into the response and returns,
  // unless it is answered or cancelled already.
  void answer(const std::function<grpc::Status()>& fill);
  void answer(const grpc::Status& s) {
    answer([&] { return s; });
  }
  bool over();

  // Takes the call's place in line `name` (etcd's tryAcquire, Campaign's
  // first write): its lease (`lease`, or a new one when 0), then the claim
  // of NAME/LEASEHEX with `value`. `then(lease, place)` runs unless a
  // refusal answered the call here, or the client left first (a lease
  // granted for it then ends).
  void join(const std::string& name, std::int64_t lease, const std::string& value, steady::time_point until,
            std::function<void(std::int64_t, place)> then);

  // The call's key is in line: `leave` (may be empty: nothing to undo) takes
  // it out if the client gives up; run at once when it gave up already
  // (then false).
  bool entered(std::function<void()> leave);

  // Waits in `line` (keys under `prefix` from revision `rev`) until no key
  // created before `created` is left, then answers `turn(rev)`; answers
  // `lost` when `key` is gone first (its lease ended, or it was deleted).
  void wait(const std::string& prefix, const std::string& key, registry::revision created, registry::revision rev,
            keys_map keys, std::function<grpc::Status(registry::revision)> turn, grpc::Status lost);

  api& a;

 private:
  struct reactor;
  line_call(api& x, std::chrono::system_clock::time_point deadline) : a(x), deadline_(deadline) {}
  void cancelled();  // OnCancel: the client left, or its deadline passed
  // Under m: the call's end (the line is dropped); the leave step, if any, to run after.
  std::function<void()> close();

  std::mutex m;
  std::chrono::system_clock::time_point deadline_;
  grpc::ServerUnaryReactor* reactor_ = nullptr;
  bool over_ = false;
  std::function<void()> leave_;
  std::unique_ptr<key_line> line_;
};

}  // namespace conclave::etcd::detail
