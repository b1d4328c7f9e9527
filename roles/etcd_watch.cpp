// etcd's Watch service: each watch is a push subscription at this master
// (roles/push_client.hpp) to the keys under its range's common prefix,
// filtered to the range; events come as the master applies them, in
// revision order with no gaps, and a subscription that moves to another
// master resumes after the last revision delivered.
//
// A stream is a gRPC callback reactor: it holds no thread. Pushes are
// written from the push client's delivery thread (StartWrite, one write in
// flight, the rest queued), requests are read as they come, and the end of
// the stream (the client leaving, a failed write, the server stopping) is
// told by gRPC (OnCancel, OnWriteDone), not polled.
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

namespace {

using reactor_t = grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>;

// How often an idle watch that asked for progress_notify is told the revision it reached.
constexpr auto progress_interval = std::chrono::seconds(5);

// A stream's answers wait in its queue while a write to it is in flight,
// so a client that reads slowly holds up only itself, not the master's
// delivery to other watches. Past `queue_high` bytes the stream's watches stop their
// subscriptions (etcd's "victim" watchers); once the queue is down to
// `queue_low` they resume after the last revision queued: nothing is lost,
// and the history catches them up (or ends them as compacted, as etcd does).
constexpr std::size_t queue_high = 8u << 20, queue_low = 1u << 20;

struct watch {
  registry::key_range range;
  bool prev_kv = false, no_put = false, no_delete = false, progress_notify = false;
  // Every change up to here was delivered (read by the subscription's
  // resume without the stream's lock: push_client calls it under its own).
  std::shared_ptr<std::atomic<registry::revision>> at;
  std::uint64_t subscription = 0;
  steady::time_point last_sent;
};

// One Watch stream: its watches, and the answers queued for writing. Every
// member is guarded by `m`; the reactor calls in, and so do the
// subscriptions' handlers and the master's answers, on their threads.
struct stream_state : std::enable_shared_from_this<stream_state> {
  api& a;
  std::mutex m;
  reactor_t* reactor;  // null once gRPC is done with the stream (OnDone)
  std::map<std::int64_t, watch> watches;
  std::int64_t next_id = 0;
  std::deque<etcdserverpb::WatchResponse> queue;  // the front is being written while `writing`
  std::size_t queued_bytes = 0;
  bool writing = false;
  bool paused = false;     // the watches' subscriptions are stopped: the queue is full
  bool reads_done = false; // the client sent its last request (etcd's JSON gateway half-closes)
  bool ending = false;     // no new answers; Finish once the queue is written
  bool finished = false;   // Finish was called
  grpc::Status status;     // the one Finish sends

  stream_state(api& x, reactor_t* r) : a(x), reactor(r) {}

  // Under m: queues `r` and writes it when the write before it is done.
  void write(etcdserverpb::WatchResponse r) {
    if (ending) return;
    queued_bytes += r.ByteSizeLong();
    queue.push_back(std::move(r));  // (a deque keeps the front where it is)
    if (!writing) {
      writing = true;
      reactor->StartWrite(&queue.front());
    }
    if (queued_bytes > queue_high && !paused) {
      paused = true;
      for (auto& [id, w] : watches) a.b.unsubscribe(w.subscription);
    }
  }

  // The front of the queue was written (or the client is gone: `ok` false).
  void written(bool ok) {
    std::lock_guard<std::mutex> guard(m);
    writing = false;
    if (!queue.empty()) {
      queued_bytes -= queue.front().ByteSizeLong();
      queue.pop_front();
    }
    if (!ok) {  // no write will succeed: a client that left
      queue.clear();
      queued_bytes = 0;
      return end(grpc::Status::OK);
    }
    if (paused && !ending && queued_bytes <= queue_low) {
      paused = false;
      for (auto& [id, w] : watches) subscribe(id, w);
    }
    if (!queue.empty()) {
      writing = true;
      reactor->StartWrite(&queue.front());
      return;
    }
    if (ending) finish();
  }

  // Under m: the stream ends with `s` (the first reason given) once what is
  // queued is written (at once if a write failed: the queue is empty then);
  // called again, it finishes a stream whose last write is done.
  void end(const grpc::Status& s) {
    if (!ending) {
      ending = true;
      status = s;
      if (!paused) {
        for (const auto& [id, w] : watches) a.b.unsubscribe(w.subscription);
      }
      watches.clear();
    }
    if (!writing) finish();
  }

  void finish() {
    if (finished || !reactor) return;
    finished = true;
    reactor->Finish(status);
  }

  // Under m: a stream whose client sent its last request lasts while it has watches.
  void end_if_idle() {
    if (reads_done && watches.empty()) end(grpc::Status::OK);
  }

  // Under m: a subscription for watch `id`, resuming after the revision the watch reached.
  void subscribe(std::int64_t id, watch& w) {
    auto prefix = w.range.listing_prefix();
    auto at = w.at;
    std::weak_ptr<stream_state> weak = shared_from_this();
    w.subscription = a.b.subscribe([prefix, at] { return registry::watch_subscription{prefix, at->load()}; },
                                   [weak, id](const registry::push& p) {
                                     if (auto st = weak.lock()) st->on_push(id, p);
                                   });
  }

  etcdserverpb::WatchResponse response(std::int64_t id, registry::revision rev) const {
    etcdserverpb::WatchResponse r;
    a.header(r.mutable_header(), rev, a.b.term());
    r.set_watch_id(id);
    return r;
  }

  void on_push(std::int64_t id, const registry::push& p) {
    std::lock_guard<std::mutex> guard(m);
    auto it = watches.find(id);
    if (ending || it == watches.end()) return;
    auto& w = it->second;
    auto at = w.at->load();
    switch (p.kind) {
      case registry::push_kind::changes: {
        auto r = response(id, p.state.rev);
        for (const auto& c : p.state.history) {
          if (c.rev <= at || !w.range.contains(c.key) || (c.deleted ? w.no_delete : w.no_put)) continue;
          auto* e = r.add_events();
          e->set_type(c.deleted ? mvccpb::Event::DELETE : mvccpb::Event::PUT);
          auto* kv = e->mutable_kv();
          kv->set_key(c.key);
          kv->set_mod_revision(static_cast<std::int64_t>(c.rev));
          if (!c.deleted) {
            kv->set_create_revision(static_cast<std::int64_t>(c.created));
            kv->set_version(static_cast<std::int64_t>(c.version));
            kv->set_value(c.value);
            kv->set_lease(static_cast<std::int64_t>(c.session));
          }
          if (w.prev_kv && c.prev) fill(e->mutable_prev_kv(), c.key, *c.prev);
        }
        w.at->store(std::max(at, p.state.rev));
        if (r.events_size() == 0) return;
        w.last_sent = steady::now();
        write(r);
        return;
      }
      case registry::push_kind::compacted: {
        // The history no longer reaches the watch's start: as etcd, the watch
        // ends, naming the oldest revision one may start from.
        auto r = response(id, p.state.rev);
        r.set_compact_revision(
            static_cast<std::int64_t>(std::max(p.state.history_floor + 1, p.state.compacted)));
        r.set_canceled(true);
        if (!paused) a.b.unsubscribe(w.subscription);
        watches.erase(it);
        write(r);
        end_if_idle();
        return;
      }
      case registry::push_kind::progress: {
        w.at->store(std::max(at, p.state.rev));
        if (!w.progress_notify || steady::now() - w.last_sent < progress_interval) return;
        w.last_sent = steady::now();
        write(response(id, p.state.rev));
        return;
      }
      default: return;
    }
  }

  // Creates a watch from this master's revision on (or `start_revision`);
  // `then` runs once it is made (or refused: the stream then ends with the
  // refusal), on a thread of the backend's.
  void create(const etcdserverpb::WatchCreateRequest& c, std::function<void()> then) {
    if (c.key().empty()) {
      std::lock_guard<std::mutex> guard(m);
      return end(empty_key);
    }
    a.ask_async(registry::revision_query{}, true, steady::now() + std::chrono::seconds(5),
                [self = shared_from_this(), c, then = std::move(then)](expected<registry::revision_query::result> now) {
                  if (self->created(c, now)) then();
                });
  }

  bool created(const etcdserverpb::WatchCreateRequest& c, const expected<registry::revision_query::result>& now) {
    std::lock_guard<std::mutex> guard(m);
    if (ending) return false;
    if (!now) {
      end(status_of(now.error()));
      return false;
    }
    std::int64_t id = c.watch_id();
    if (id != 0 && watches.count(id)) {
      auto r = response(id, now->rev);
      r.set_created(true);
      r.set_canceled(true);
      r.set_cancel_reason("mvcc: duplicate watch ID provided on the WatchStream");
      write(r);
      return true;
    }
    if (id == 0) {
      while (watches.count(next_id)) ++next_id;
      id = next_id++;
    }
    watch w;
    w.range = registry::key_range{c.key(), c.range_end()};
    w.prev_kv = c.prev_kv();
    w.progress_notify = c.progress_notify();
    for (auto f : c.filters()) {
      if (f == etcdserverpb::WatchCreateRequest::NOPUT) w.no_put = true;
      if (f == etcdserverpb::WatchCreateRequest::NODELETE) w.no_delete = true;
    }
    // From start_revision on, or after this master's revision.
    auto after = c.start_revision() > 0 ? static_cast<registry::revision>(c.start_revision() - 1) : now->rev;
    w.at = std::make_shared<std::atomic<registry::revision>>(after);
    w.last_sent = steady::now();
    auto r = response(id, now->rev);
    r.set_created(true);
    write(r);  // before any event: no handler runs until this lock is released
    auto& added = watches.emplace(id, std::move(w)).first->second;
    if (!paused) subscribe(id, added);
    return true;
  }

  void cancel(std::int64_t id) {
    std::lock_guard<std::mutex> guard(m);
    auto it = watches.find(id);
    if (it == watches.end()) return;  // as etcd: an unknown id is ignored
    if (!paused) a.b.unsubscribe(it->second.subscription);
    auto r = response(id, it->second.at->load());
    watches.erase(it);
    r.set_canceled(true);
    write(r);
  }

  // The revision every watch of the stream has reached (etcd answers a
  // progress request with watch id -1); `then` as create's.
  void progress(std::function<void()> then) {
    bool reached_now = false;
    {
      std::lock_guard<std::mutex> guard(m);
      std::optional<registry::revision> reached;
      for (const auto& [id, w] : watches) reached = std::min(reached.value_or(~0ull), w.at->load());
      if (reached) {
        write(response(-1, *reached));
        reached_now = true;
      }
    }
    if (reached_now) return then();
    a.ask_async(registry::revision_query{}, true, steady::now() + std::chrono::seconds(5),
                [self = shared_from_this(), then = std::move(then)](expected<registry::revision_query::result> now) {
                  {
                    std::lock_guard<std::mutex> guard(self->m);
                    if (self->ending) return;
                    self->write(self->response(-1, now ? now->rev : 0));
                  }
                  then();
                });
  }
};

// One Watch call: reads the client's requests one at a time (the next once
// the one before is done), and lives until gRPC is done with it (OnDone).
class watch_stream final : public reactor_t {
 public:
  watch_stream(api& a, grpc::CallbackServerContext* ctx) : st_(std::make_shared<stream_state>(a, this)) {
    if (auto denied = a.authorize(ctx); !denied.ok()) {
      std::lock_guard<std::mutex> guard(st_->m);
      st_->end(denied);
      return;
    }
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // A client that half-closed (etcd's JSON gateway does, after the one
      // request of its body) still gets its events, as from etcd: the stream
      // lasts until the client goes, a write fails or its watches end.
      std::lock_guard<std::mutex> guard(st_->m);
      st_->reads_done = true;
      return st_->end_if_idle();
    }
    // The next read, unless the stream is ending: then gRPC may be done
    // with this reactor (OnDone) by the time the request was handled.
    auto next = [st = st_, this] {
      std::lock_guard<std::mutex> guard(st->m);
      if (!st->ending && st->reactor) StartRead(&req_);
    };
    switch (req_.request_union_case()) {
      case etcdserverpb::WatchRequest::kCreateRequest: return st_->create(req_.create_request(), next);
      case etcdserverpb::WatchRequest::kCancelRequest: st_->cancel(req_.cancel_request().watch_id()); break;
      case etcdserverpb::WatchRequest::kProgressRequest: return st_->progress(next);
      default: break;
    }
    next();
  }

  void OnWriteDone(bool ok) override { st_->written(ok); }

  // The client left, its deadline passed, or the server stops.
  void OnCancel() override {
    std::lock_guard<std::mutex> guard(st_->m);
    st_->end(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> guard(st_->m);
      st_->end(grpc::Status::OK);  // (nothing left to end, normally)
      st_->reactor = nullptr;      // a handler or an answer still on its way finds the stream gone
    }
    delete this;
  }

 private:
  std::shared_ptr<stream_state> st_;
  etcdserverpb::WatchRequest req_;
};

struct watch_service final : etcdserverpb::Watch::CallbackService {
  api& a;
  explicit watch_service(api& x) : a(x) {}
  grpc::ServerBidiReactor<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>* Watch(
      grpc::CallbackServerContext* ctx) override {
    return new watch_stream(a, ctx);
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_watch_service(api& a) { return std::make_unique<watch_service>(a); }

}  // namespace conclave::etcd::detail
