#include "roles/push_client.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "actors/atoms.hpp"
#include "actors/connector.hpp"
#include "actors/log.hpp"
#include "schema/push_codec.hpp"

namespace conclave {

using namespace std::chrono_literals;

// What the owner's threads and the subscriber actor share.
struct push_client::shared {
  std::mutex mutex;
  struct entry {
    std::function<registry::subscription()> resume;
    std::shared_ptr<handler> on_push;
  };
  std::map<std::uint64_t, entry> subs;
  std::uint64_t next_id = 1;
  bool closed = false;  // the destructor ran: no handler runs any more
  // Pushes wait here for the delivery thread, which runs the handlers in
  // arrival order (not the actor: a handler may block, even call the
  // cluster, without holding up a CAF worker).
  std::condition_variable arrived;
  std::deque<std::pair<std::shared_ptr<handler>, std::shared_ptr<const registry::push>>> queue;
};

namespace {

constexpr auto silence_limit = 3s;     // no push or progress for this long: the master counts as gone
constexpr auto check_interval = 250ms;

using check_atom = caf::atom_constant<caf::atom("pcheck")>;
using sync_atom = caf::atom_constant<caf::atom("psync")>;

struct subscriber_state {
  caf::event_based_actor* self;
  std::shared_ptr<push_client::shared> sh;
  std::string cluster_id;
  std::vector<raft::endpoint> endpoints;
  auth::keys keys;
  local_master local;  // cleared once it stops: it does not come back
  std::size_t next = 0;
  caf::actor master;             // connected, authenticated
  std::string master_name;
  bool connecting = false;
  std::uint64_t generation = 0;  // bumps on every (re)connection: late replies of an old one are ignored
  std::chrono::steady_clock::time_point last_heard;
  // Subscriptions sent on this connection, and whether the master confirmed
  // them (its first push for them came). A connection-wide progress push
  // (id 0) speaks for confirmed ones only: one sent before the master took a
  // subscription must not move that subscription's position.
  std::map<std::uint64_t, bool> sent;
  std::string last_refusal;

  void drop(const std::string& why) {
    if (master) {
      self->demonitor(master);
      log_line("push: leaving master {} ({}); subscribing at the next one", master_name, why);
    }
    master = nullptr;
    sent.clear();
    ++generation;
  }

  void connect() {
    if (connecting || master || endpoints.empty()) return;
    connecting = true;
    auto gen = ++generation;
    auto ep = endpoints[next % endpoints.size()];
    next = (next + 1) % endpoints.size();
    if (local.peer && ep.text() == local.at.text()) {
      connecting = false;
      return reached(gen, ep, local.peer);
    }
    auto mm = connector(self->system());
    self->request(mm, 2s, caf::connect_atom::value, ep.host, ep.port)
        .then(
            [this, gen, ep](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              if (gen != generation) return;
              connecting = false;
              if (ptr) reached(gen, ep, caf::actor_cast<caf::actor>(ptr));
            },
            [this, gen](caf::error&) {
              if (gen == generation) connecting = false;
            });
  }

  // A master answered the connection (or is this process's own).
  void reached(std::uint64_t gen, const raft::endpoint& ep, const caf::actor& to) {
    master_name = ep.text();
    if (!keys.enabled()) return connected(to);
    // Prove the key on this connection first (actors/auth.hpp).
    self->request(to, 5s, auth_atom::value)
        .then(
            [this, gen, to](const std::string& nonce) {
              self->request(to, 5s, auth_atom::value, auth::prove(keys, cluster_id, nonce))
                  .then(
                      [this, gen, to](const std::string& granted) {
                        if (gen != generation) return;
                        if (granted == "none") {
                          refused("the server refused these credentials");
                          return;
                        }
                        connected(to);
                      },
                      [](caf::error&) {});
            },
            [](caf::error&) {});
  }

  void refused(const std::string& why) {
    if (why != last_refusal) log_warning("push: a master refused a subscription: {}", why);
    last_refusal = why;
  }

  void connected(const caf::actor& to) {
    master = to;
    self->monitor(master);
    last_heard = std::chrono::steady_clock::now();
    last_refusal.clear();
    sync();
  }

  // Sends what is not yet subscribed on this connection, and unsubscribes
  // what the owner dropped.
  void sync() {
    if (!master) return;
    std::vector<std::pair<std::uint64_t, registry::subscription>> todo;
    {
      std::lock_guard<std::mutex> guard(sh->mutex);
      for (auto it = sent.begin(); it != sent.end();) {
        if (!sh->subs.count(it->first)) {
          self->send(master, unsub_atom::value, it->first);
          it = sent.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& [id, e] : sh->subs) {
        if (!sent.count(id)) todo.emplace_back(id, e.resume());
      }
    }
    auto gen = generation;
    if (!todo.empty() && sent.empty()) last_heard = std::chrono::steady_clock::now();  // silence counts from now
    for (auto& [id, sub] : todo) {
      sent[id] = false;
      self->request(master, 5s, pushsub_atom::value, id, wire::encode_subscription(sub, cluster_id))
          .then(
              [this, gen](const std::string& error) {
                if (gen != generation || error.empty()) return;
                refused(error);
                drop("refused");
              },
              [](caf::error&) {});  // silence is handled by the check
    }
  }

  // One push for the subscriptions `ids` (0: every confirmed one, progress).
  void on_push(const std::vector<std::uint64_t>& ids, std::uint8_t kind, const std::string& bytes) {
    if (self->current_sender() != caf::actor_cast<caf::strong_actor_ptr>(master)) return;
    last_heard = std::chrono::steady_clock::now();
    auto decoded = wire::decode_push(kind, bytes);
    if (!decoded) {
      log_warning("push: ignoring an undecodable push: {}", decoded.error().message());
      return;
    }
    auto p = std::make_shared<const registry::push>(std::move(*decoded));  // shared by every id
    {
      std::lock_guard<std::mutex> guard(sh->mutex);
      if (sh->closed) return;
      for (auto id : ids) {
        if (id == 0) {
          for (auto& [sid, e] : sh->subs) {
            if (auto c = sent.find(sid); c != sent.end() && c->second) sh->queue.emplace_back(e.on_push, p);
          }
        } else if (auto it = sh->subs.find(id); it != sh->subs.end()) {
          if (auto c = sent.find(id); c != sent.end()) c->second = true;
          sh->queue.emplace_back(it->second.on_push, p);
        }
      }
    }
    sh->arrived.notify_one();
  }

  bool wanted() {
    std::lock_guard<std::mutex> guard(sh->mutex);
    return !sh->subs.empty();
  }

  // A master is needed only while there are subscriptions; one that has
  // subscriptions from us sends progress every second, so silence means it
  // is gone (or cut off from the leader).
  void check() {
    if (master && !sent.empty() && std::chrono::steady_clock::now() - last_heard > silence_limit) drop("silent");
    if (!master && wanted()) connect();
    self->delayed_send(self, check_interval, check_atom::value);
  }
};

}  // namespace

push_client::push_client(caf::actor_system& sys, std::string cluster_id, std::vector<raft::endpoint> endpoints,
                         auth::keys keys, std::size_t first, local_master local)
    : shared_(std::make_shared<shared>()) {
  auto sh = shared_;
  delivery_ = std::thread([sh] {
    std::unique_lock<std::mutex> guard(sh->mutex);
    for (;;) {
      sh->arrived.wait(guard, [&] { return sh->closed || !sh->queue.empty(); });
      if (sh->closed) return;
      auto [h, p] = std::move(sh->queue.front());
      sh->queue.pop_front();
      guard.unlock();
      (*h)(*p);
      guard.lock();
    }
  });
  actor_ = sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
    auto st = std::make_shared<subscriber_state>();
    st->self = self;
    st->sh = sh;
    st->cluster_id = cluster_id;
    st->endpoints = endpoints;
    st->keys = keys;
    st->local = local;
    st->next = endpoints.empty() ? 0 : first % endpoints.size();
    // A master's own subscriptions start at it, in-process: a connection to
    // another master at start could cross that master's link to this one,
    // and CAF then drops both (README "TLS").
    for (std::size_t i = 0; local.peer && i < endpoints.size(); ++i) {
      if (endpoints[i].text() == local.at.text()) st->next = i;
    }
    self->set_down_handler([st](caf::down_msg& dm) {
      if (st->local.peer && dm.source == st->local.peer.address()) st->local = {};
      if (st->master && dm.source == st->master.address()) st->drop("connection lost");
      if (st->wanted()) st->connect();
    });
    self->delayed_send(self, check_interval, check_atom::value);
    return {
        [st](push_atom, std::uint64_t id, std::uint8_t kind, const std::string& bytes) { st->on_push({id}, kind, bytes); },
        [st](push_atom, const std::string& ids, std::uint8_t kind, const std::string& bytes) {
          auto decoded = wire::decode_push_ids(ids);
          if (!decoded) return log_warning("push: ignoring a push with undecodable ids: {}", decoded.error().message());
          st->on_push(*decoded, kind, bytes);
        },
        [st](check_atom) { st->check(); },
        [st](sync_atom) {
          if (!st->master && st->wanted()) st->connect();
          st->sync();
        },
    };
  });
}

push_client::~push_client() {
  {
    std::lock_guard<std::mutex> guard(shared_->mutex);
    shared_->closed = true;
    shared_->subs.clear();
    shared_->queue.clear();
  }
  shared_->arrived.notify_one();
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
  delivery_.join();  // a handler that was running has returned
}

std::uint64_t push_client::subscribe(std::function<registry::subscription()> resume, handler on_push) {
  std::uint64_t id;
  {
    std::lock_guard<std::mutex> guard(shared_->mutex);
    id = shared_->next_id++;
    shared_->subs[id] = shared::entry{std::move(resume), std::make_shared<handler>(std::move(on_push))};
  }
  caf::anon_send(actor_, sync_atom::value);
  return id;
}

void push_client::unsubscribe(std::uint64_t id) {
  {
    std::lock_guard<std::mutex> guard(shared_->mutex);
    shared_->subs.erase(id);
  }
  caf::anon_send(actor_, sync_atom::value);
}

}  // namespace conclave
