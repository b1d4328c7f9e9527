// etcd's Election service (v3electionpb) as etcd 3.4 serves it, with its
// concurrency package's election: a candidate's key NAME/LEASEHEX holds its
// value, the key created first leads, and Campaign answers once every key
// created before the candidate's is gone. Candidates campaigning here and
// through etcdctl's `elect` (the same recipe over KV) share one line.
#include <deque>
#include <optional>

#include "roles/etcd_queue.hpp"
#include "schema/etcd/election.grpc.pb.h"

namespace conclave::etcd::detail {

namespace {

// etcd's election errors, as its server passes them on (code UNKNOWN).
const grpc::Status not_leader{grpc::StatusCode::UNKNOWN, "election: not leader"};
const grpc::Status no_leader{grpc::StatusCode::UNKNOWN, "election: no leader"};
const grpc::Status missing_leader_key{grpc::StatusCode::UNKNOWN, "\"leader\" field must be provided"};

using observe_reactor = grpc::ServerWriteReactor<v3electionpb::LeaderResponse>;

// One Observe stream: the leader as it changes, written one at a time (the
// rest queued) from the line's pushes. Guarded by `m`: gRPC's reactions and
// the backend's threads call in.
struct observer : std::enable_shared_from_this<observer> {
  api& a;
  std::mutex m;
  observe_reactor* reactor;  // not touched once `finished`
  std::unique_ptr<key_line> line;
  std::deque<v3electionpb::LeaderResponse> queue;  // the front is being written while `writing`
  std::optional<std::pair<std::string, registry::revision>> sent;  // the leader's key and mod revision
  bool writing = false, ending = false, finished = false;
  grpc::Status status;

  observer(api& x, observe_reactor* r) : a(x), reactor(r) {}

  // Under m: queues the leader of `keys` at `rev` if it is new, or newly put.
  void publish(const keys_map& keys, registry::revision rev) {
    if (ending) return;
    const auto* first = first_created(keys);
    if (!first) return;
    std::pair<std::string, registry::revision> now{first->first, first->second.modified};
    if (now == sent) return;
    v3electionpb::LeaderResponse r;
    a.header(r.mutable_header(), rev, a.b.term());
    fill(r.mutable_kv(), first->first, first->second);
    sent = std::move(now);
    queue.push_back(std::move(r));
    if (!writing) {
      writing = true;
      reactor->StartWrite(&queue.front());
    }
  }

  void written(bool ok) {
    std::lock_guard<std::mutex> guard(m);
    writing = false;
    if (!queue.empty()) queue.pop_front();
    if (!ok) return end(grpc::Status::OK);  // the client left
    if (!queue.empty() && !ending) {
      writing = true;
      reactor->StartWrite(&queue.front());
      return;
    }
    if (ending) end(status);
  }

  // Under m: ends the stream with `s` (the first reason given) once no write is in flight.
  void end(const grpc::Status& s) {
    if (!ending) {
      ending = true;
      status = s;
      line.reset();
      // What is queued is dropped, except the front while it is being written.
      queue.erase(writing ? queue.begin() + 1 : queue.begin(), queue.end());
    }
    if (!writing && !finished) {
      finished = true;
      reactor->Finish(status);
    }
  }
};

struct observe_stream final : observe_reactor {
  std::shared_ptr<observer> state;
  std::chrono::system_clock::time_point deadline;  // the call's
  observe_stream(api& a, std::chrono::system_clock::time_point d)
      : state(std::make_shared<observer>(a, this)), deadline(d) {}
  void OnWriteDone(bool ok) override { state->written(ok); }
  void OnCancel() override {
    std::lock_guard<std::mutex> guard(state->m);
    state->end(cancel_status(deadline));
  }
  void OnDone() override { delete this; }
};

struct election_service final : v3electionpb::Election::CallbackService {
  api& a;
  explicit election_service(api& x) : a(x) {}

  grpc::ServerUnaryReactor* Campaign(grpc::CallbackServerContext* ctx, const v3electionpb::CampaignRequest* req,
                                     v3electionpb::CampaignResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    auto [reactor, call] = line_call::start(a, ctx->deadline());
    auto until = until_of(ctx);
    call->join(req->name(), req->lease(), req->value(), until,
               [this, call = call, name = req->name(), value = req->value(), until, resp](std::int64_t lease,
                                                                                           place p) {
                 campaign(call, name, value, lease, until, std::move(p), resp);
               });
    return reactor;
  }

  // A candidate in line with its claim `p`.
  void campaign(const std::shared_ptr<line_call>& call, const std::string& name, const std::string& value,
                std::int64_t lease, steady::time_point until, place p, v3electionpb::CampaignResponse* resp) {
    auto rev = p.kv.created;
    bool first = !last_before(p.keys, rev);
    // As etcd's: a candidate that gives up while it waits resigns (if that
    // fails, its lease's end removes the key); so does one whose key this
    // campaign put. A leader that campaigned before stays leader.
    std::function<void()> leave;
    if (p.created || !first) {
      leave = [this, key = p.key, rev] { resign(key, rev, steady::now() + std::chrono::seconds(5), nullptr); };
    }
    if (!call->entered(std::move(leave))) return;
    // As etcd's: the header of the campaign's first write.
    auto elected = [this, name, lease, key = p.key, rev, claimed = p.rev, term = p.term, resp] {
      a.header(resp->mutable_header(), claimed, term);
      auto* leader = resp->mutable_leader();
      leader->set_name(name);
      leader->set_key(key);
      leader->set_rev(static_cast<std::int64_t>(rev));
      leader->set_lease(lease);
      return grpc::Status::OK;
    };
    // A candidate campaigning again with another value proclaims it first.
    bool proclaim_first = !p.created && p.kv.value != value;
    auto key = p.key;
    auto line_up = [this, call, name, p = std::move(p), rev, first, elected]() mutable {
      if (first) return call->answer(elected);
      // etcd 3.4 answered as elected when the key went; it is not.
      call->wait(name + "/", p.key, rev, p.rev, std::move(p.keys), [elected](registry::revision) { return elected(); },
                 not_leader);
    };
    if (proclaim_first) {
      proclaim(key, rev, lease, value, until,
               [this, call, key, rev, line_up = std::move(line_up)](grpc::Status s, written) mutable {
                 if (!s.ok()) {
                   resign(key, rev, steady::now() + std::chrono::seconds(5), nullptr);  // best effort, as etcd's
                   return call->answer(s);
                 }
                 line_up();
               });
      return;
    }
    line_up();
  }

  grpc::ServerUnaryReactor* Proclaim(grpc::CallbackServerContext* ctx, const v3electionpb::ProclaimRequest* req,
                                     v3electionpb::ProclaimResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    if (!req->has_leader()) return answer_now(ctx, missing_leader_key);
    auto* reactor = ctx->DefaultReactor();
    const auto& l = req->leader();
    auto until = until_of(ctx);
    lease_or_new(a, l.lease(), until, [this, reactor, req, resp, until](expected<std::int64_t> lease) {
      if (!lease) return reactor->Finish(status_of(lease.error()));
      const auto& l = req->leader();
      proclaim(l.key(), static_cast<registry::revision>(l.rev()), *lease, req->value(), until,
               [this, reactor, resp](grpc::Status s, written w) {
                 if (s.ok()) a.header(resp->mutable_header(), w.rev, w.term);
                 reactor->Finish(s);
               });
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Leader(grpc::CallbackServerContext* ctx, const v3electionpb::LeaderRequest* req,
                                   v3electionpb::LeaderResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    auto* reactor = ctx->DefaultReactor();
    a.ask_async(registry::range_query{prefix_range(req->name() + "/"), 0}, false, until_of(ctx),
                [this, reactor, resp](expected<registry::range_query::result> got) {
                  if (!got) return reactor->Finish(status_of(got.error()));
                  keys_map keys(got->keys.begin(), got->keys.end());
                  const auto* first = first_created(keys);
                  if (!first) return reactor->Finish(no_leader);
                  a.header(resp->mutable_header(), got->rev, a.b.term());
                  fill(resp->mutable_kv(), first->first, first->second);
                  reactor->Finish(grpc::Status::OK);
                });
    return reactor;
  }

  // The leader as it changes: the key created first and each new value it
  // puts, each once, in order, until the client goes.
  observe_reactor* Observe(grpc::CallbackServerContext* ctx, const v3electionpb::LeaderRequest* req) override {
    auto* stream = new observe_stream(a, ctx->deadline());
    auto state = stream->state;
    if (auto denied = a.authorize(ctx); !denied.ok()) {
      std::lock_guard<std::mutex> guard(state->m);
      state->end(denied);
      return stream;
    }
    auto prefix = req->name() + "/";
    a.ask_async(registry::range_query{prefix_range(prefix), 0}, false, until_of(ctx),
                [this, state, prefix](expected<registry::range_query::result> got) {
                  std::lock_guard<std::mutex> guard(state->m);
                  if (state->ending) return;
                  if (!got) return state->end(status_of(got.error()));
                  keys_map keys(got->keys.begin(), got->keys.end());
                  state->publish(keys, got->rev);
                  std::weak_ptr<observer> weak = state;
                  // (The line's first push may come before this returns: it waits for m.)
                  state->line = std::make_unique<key_line>(
                      a, prefix, got->rev, std::move(keys), [weak](const keys_map& now, registry::revision rev) {
                        if (auto s = weak.lock()) {
                          std::lock_guard<std::mutex> guard(s->m);
                          s->publish(now, rev);
                        }
                      });
                });
    return stream;
  }

  grpc::ServerUnaryReactor* Resign(grpc::CallbackServerContext* ctx, const v3electionpb::ResignRequest* req,
                                   v3electionpb::ResignResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    if (!req->has_leader()) return answer_now(ctx, missing_leader_key);
    auto* reactor = ctx->DefaultReactor();
    const auto& l = req->leader();
    // As etcd's: a key that is not the leader's any more is left alone, and
    // that is no error.
    resign(l.key(), static_cast<registry::revision>(l.rev()), until_of(ctx), [this, reactor, resp](api::ran done) {
      if (!done) return reactor->Finish(status_of(done.error()));
      a.header(resp->mutable_header(), done->first.value, done->second);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  // The revision of a write and the term it committed in.
  struct written {
    registry::revision rev = 0;
    std::uint64_t term = 0;
  };

  // Puts `value` on `key` if it is still the one created at `rev`; etcd's
  // "not leader" otherwise. `done` as api::run_async's.
  void proclaim(const std::string& key, registry::revision rev, std::int64_t lease, const std::string& value,
                steady::time_point until, std::function<void(grpc::Status, written)> done) {
    registry::txn t;
    t.compares = {created_at(key, rev)};
    registry::txn_op put;
    put.kind = registry::op_kind::put;
    put.range = registry::key_range{key, {}};
    put.value = value;
    put.session = static_cast<registry::session_id>(lease);
    t.success = {put};
    a.run_async(t, until, [done = std::move(done)](api::ran got) {
      if (!got) return done(status_of(got.error()), {});
      auto& [o, term] = *got;
      if (o.code != registry::code::ok) return done(recipe_refusal(o), {});
      if (!o.succeeded) return done(not_leader, {});
      done(grpc::Status::OK, written{o.value, term});
    });
  }

  // Deletes `key` if it is still the one created at `rev`; `done` (may be
  // null) as api::run_async's.
  void resign(const std::string& key, registry::revision rev, steady::time_point until,
              std::function<void(api::ran)> done) {
    registry::txn t;
    t.compares = {created_at(key, rev)};
    registry::txn_op del;
    del.kind = registry::op_kind::remove;
    del.range = registry::key_range{key, {}};
    t.success = {del};
    a.run_async(t, until, [done = std::move(done)](api::ran r) {
      if (done) done(std::move(r));
    });
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_election_service(api& a) { return std::make_unique<election_service>(a); }

}  // namespace conclave::etcd::detail
