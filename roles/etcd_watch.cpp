// etcd's Watch service: each watch is a push subscription at this master
// (roles/push_client.hpp) to the keys under its range's common prefix,
// filtered to the range; events come as the master applies them, in
// revision order with no gaps, and a subscription that moves to another
// master resumes after the last revision delivered.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

namespace {

using stream_t = grpc::ServerReaderWriter<etcdserverpb::WatchResponse, etcdserverpb::WatchRequest>;

// How often an idle watch that asked for progress_notify is told the revision it reached.
constexpr auto progress_interval = std::chrono::seconds(5);

// A stream's answers wait in its queue for its writer thread, so a client
// that reads slowly holds up only itself, not the master's delivery to other
// watches. Past `queue_high` bytes the stream's watches stop their
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

// One Watch stream: its watches, and the answers queued for its writer thread.
struct stream_state : std::enable_shared_from_this<stream_state> {
  api& a;
  std::mutex m;
  std::condition_variable wake;
  stream_t* stream = nullptr;  // null once the stream ended or a write to it failed
  std::map<std::int64_t, watch> watches;
  std::int64_t next_id = 0;
  std::deque<etcdserverpb::WatchResponse> queue;
  std::size_t queued_bytes = 0;
  bool paused = false;  // the watches' subscriptions are stopped: the queue is full
  bool closing = false;
  std::thread writer;

  explicit stream_state(api& x, stream_t* s) : a(x), stream(s) {}

  void start() { writer = std::thread([this] { write_queue(); }); }

  // Under m: queues `r` for the writer thread.
  void write(etcdserverpb::WatchResponse r) {
    if (!stream) return;
    queued_bytes += r.ByteSizeLong();
    queue.push_back(std::move(r));
    wake.notify_one();
    if (queued_bytes > queue_high && !paused) {
      paused = true;
      for (auto& [id, w] : watches) a.b.unsubscribe(w.subscription);
    }
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

  // The writer thread: writes the queue in order until the stream ends; on
  // close, what was queued before is written first.
  void write_queue() {
    std::unique_lock<std::mutex> guard(m);
    for (;;) {
      wake.wait(guard, [&] { return !queue.empty() || closing; });
      if (queue.empty() || !stream) return;
      auto r = std::move(queue.front());
      queue.pop_front();
      auto* s = stream;
      guard.unlock();
      bool ok = s->Write(r);
      guard.lock();
      queued_bytes -= r.ByteSizeLong();
      if (!ok) {
        stream = nullptr;
        return;
      }
      if (paused && queued_bytes <= queue_low) {
        paused = false;
        for (auto& [id, w] : watches) subscribe(id, w);
      }
    }
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
    if (!stream || it == watches.end()) return;
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

  grpc::Status create(const etcdserverpb::WatchCreateRequest& c) {
    if (c.key().empty()) return empty_key;
    auto now = a.ask(registry::revision_query{}, true, steady::now() + std::chrono::seconds(5));
    if (!now) return status_of(now.error());
    std::lock_guard<std::mutex> guard(m);
    std::int64_t id = c.watch_id();
    if (id != 0 && watches.count(id)) {
      auto r = response(id, now->rev);
      r.set_created(true);
      r.set_canceled(true);
      r.set_cancel_reason("mvcc: duplicate watch ID provided on the WatchStream");
      write(r);
      return grpc::Status::OK;
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
    return grpc::Status::OK;
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
  // progress request with watch id -1).
  void progress() {
    std::lock_guard<std::mutex> guard(m);
    std::optional<registry::revision> reached;
    for (const auto& [id, w] : watches) reached = std::min(reached.value_or(~0ull), w.at->load());
    if (!reached) {
      auto now = a.ask(registry::revision_query{}, true, steady::now() + std::chrono::seconds(5));
      reached = now ? now->rev : 0;
    }
    write(response(-1, *reached));
  }

  bool open() {
    std::lock_guard<std::mutex> guard(m);
    return stream != nullptr && !watches.empty();
  }

  // Ends the watches, lets the writer write what was queued (a write to a
  // client that left fails at once) and waits for it: no write after this.
  void close() {
    {
      std::lock_guard<std::mutex> guard(m);
      if (!paused) {
        for (const auto& [id, w] : watches) a.b.unsubscribe(w.subscription);
      }
      watches.clear();
      closing = true;
      wake.notify_one();
    }
    writer.join();
    std::lock_guard<std::mutex> guard(m);
    stream = nullptr;
  }
};

struct watch_service final : etcdserverpb::Watch::Service {
  api& a;
  explicit watch_service(api& x) : a(x) {}

  grpc::Status Watch(grpc::ServerContext* ctx, stream_t* stream) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto st = std::make_shared<stream_state>(a, stream);
    st->start();
    etcdserverpb::WatchRequest req;
    grpc::Status result = grpc::Status::OK;
    while (result.ok() && stream->Read(&req)) {
      switch (req.request_union_case()) {
        case etcdserverpb::WatchRequest::kCreateRequest: result = st->create(req.create_request()); break;
        case etcdserverpb::WatchRequest::kCancelRequest: st->cancel(req.cancel_request().watch_id()); break;
        case etcdserverpb::WatchRequest::kProgressRequest: st->progress(); break;
        default: break;
      }
    }
    // A client that half-closed (etcd's JSON gateway does, after the one
    // request of its body) still gets its events, as from etcd: the stream
    // lasts until the client goes or a write to it fails. gRPC's synchronous
    // API tells of a cancel only when asked, so ask now and then.
    while (result.ok() && !ctx->IsCancelled() && st->open()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    // No write after this: a handler still running finds the stream gone.
    st->close();
    return result;
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_watch_service(api& a) { return std::make_unique<watch_service>(a); }

}  // namespace conclave::etcd::detail
