// What the etcd API's services share (roles/etcd_api.hpp is the public
// side): the backend, response headers, deadlines, and etcd's errors. Only
// the roles/etcd_*.cpp files include it: it brings in gRPC and the
// generated code.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "roles/etcd_api.hpp"
#include "schema/etcd/rpc.grpc.pb.h"
#include "schema/registry_codec.hpp"

namespace conclave::etcd::detail {

using steady = std::chrono::steady_clock;

// etcd's messages and codes (its clients match on them).
grpc::Status status_of(const error& e);
extern const grpc::Status empty_key, key_not_found, lease_not_found, lease_exists, compacted, future_revision,
    duplicate_key;

// How long a request may take: the client's deadline, at most 10 s.
steady::time_point until_of(const grpc::ServerContextBase* ctx);
std::chrono::milliseconds left(steady::time_point until);

void fill(mvccpb::KeyValue* out, const std::string& key, const registry::key_value& kv, bool with_value = true);

// The minimum lease TTL, in seconds, as etcd's with its default timing: a
// shorter one is raised to it.
inline constexpr std::int64_t min_lease_ttl_s = 2;
// The owner of a session an etcd client granted as a lease.
extern const char* const lease_owner;

// The backend calls whose answers have not come yet: the server waits for
// them before it is destroyed, since their callbacks use the api and the
// streams' state (each ends by its deadline, at most 10 s).
struct in_flight {
  std::mutex m;
  std::condition_variable none;
  std::size_t n = 0;
  void begin() {
    std::lock_guard<std::mutex> guard(m);
    ++n;
  }
  void end() {
    std::lock_guard<std::mutex> guard(m);
    if (--n == 0) none.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    none.wait(lock, [&] { return n == 0; });
  }
  // `done`, counted from now until it has run (a call it makes in turn is
  // counted before this one ends).
  template <class R>
  std::function<void(R)> track(std::function<void(R)> done) {
    begin();
    return [this, done = std::move(done)](R r) {
      struct ender {
        in_flight* f;
        ~ender() { f->end(); }
      } counted{this};
      done(std::move(r));
    };
  }
};

struct api {
  std::uint64_t cluster_id = 0, member_id = 0;
  backend b;
  std::shared_ptr<in_flight> calls = std::make_shared<in_flight>();

  void header(etcdserverpb::ResponseHeader* h, registry::revision rev, std::uint64_t term) const;
  // The header of an answer that reads no keys: this master's revision and term.
  grpc::Status local_header(etcdserverpb::ResponseHeader* h, steady::time_point until);

  // With auth on (a cluster secret), whether the request carries a valid
  // token (Authenticate's), of the secret when `admin` (leadership,
  // membership, backups); etcd's errors otherwise.
  grpc::Status authorize(const grpc::ServerContextBase* ctx, bool admin = false) const;

  // A registry command through the leader: its outcome and the term it
  // committed in. `done` runs once, on a thread of the backend (or before
  // run_async returns), and must not block: the callback handlers
  // (grpc::ServerUnaryReactor) answer from it. `run` waits for it, for the
  // handlers that may block (gRPC's synchronous ones).
  using ran = expected<std::pair<registry::outcome, std::uint64_t>>;
  void run_async(const registry::command& c, steady::time_point until, std::function<void(ran)> done);
  ran run(const registry::command& c, steady::time_point until) {
    return wait_for<ran>([&](auto done) { run_async(c, until, std::move(done)); });
  }

  // A registry query: linearizable through the leader, or serializable
  // here; `done` as run_async's.
  template <class Q>
  void ask_async(const Q& q, bool serializable, steady::time_point until,
                 std::function<void(expected<typename Q::result>)> done) {
    b.read(q, serializable, left(until),
           calls->track<expected<client::read_result>>([done = std::move(done)](expected<client::read_result> got) {
             if (!got) return done(got.error());
             done(wire::decode_answer<Q>(got->result));
           }));
  }
  // A heartbeat for lease `id` at the leader; `done` as run_async's.
  void keepalive_async(std::uint64_t id, steady::time_point until, std::function<void(expected<bool>)> done) {
    b.keepalive(id, left(until), calls->track<expected<bool>>(std::move(done)));
  }
  template <class Q>
  expected<typename Q::result> ask(const Q& q, bool serializable, steady::time_point until) {
    using R = expected<typename Q::result>;
    return wait_for<R>([&](auto done) { ask_async(q, serializable, until, std::move(done)); });
  }

  // What `start(done)` passes to `done`, waited for.
  template <class R, class F>
  static R wait_for(F start) {
    auto p = std::make_shared<std::promise<R>>();
    auto f = p->get_future();
    start(std::function<void(R)>([p](R r) { p->set_value(std::move(r)); }));
    return f.get();
  }
};

// What `fill` (which writes a callback handler's answer) returns, or
// INTERNAL if it throws: every call is finished, whatever its filling throws
// (a throw in a backend callback would leave the RPC, and server shutdown,
// hanging).
template <class F>
grpc::Status filled(F&& fill) {
  try {
    return fill();
  } catch (const std::exception& e) {
    return {grpc::StatusCode::INTERNAL, std::string("conclave: ") + e.what()};
  }
}

// A callback handler's answer that is known at once (a refusal, a check).
inline grpc::ServerUnaryReactor* answer_now(grpc::CallbackServerContext* ctx, const grpc::Status& s) {
  auto* r = ctx->DefaultReactor();
  r->Finish(s);
  return r;
}

std::string make_token(const api& a, const std::string& user, const std::string& level);
std::unique_ptr<grpc::Service> make_auth_service(api& a);
std::unique_ptr<grpc::Service> make_kv_service(api& a);
std::unique_ptr<grpc::Service> make_lease_service(api& a);
std::unique_ptr<grpc::Service> make_watch_service(api& a);
std::unique_ptr<grpc::Service> make_lock_service(api& a);
std::unique_ptr<grpc::Service> make_election_service(api& a);
// Counts each call to the named services ("etcdserverpb.KV", ...) by method
// and status in `stats`, and times the unary ones.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> make_request_metrics(
    metrics::sink& stats, const std::vector<std::string>& services);

}  // namespace conclave::etcd::detail
