#include "bench/swarm.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/atoms.hpp"
#include "bench/system.hpp"
#include "actors/registry/registry_service.hpp"
#include "schema/client_codec.hpp"
#include "schema/registry_codec.hpp"

namespace conclave::bench {

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

caf::actor_system_config& swarm_config() {
  static caf::actor_system_config cfg = [] {
    caf::actor_system_config c;
    c.load<caf::io::middleman>();
    c.set("logger.verbosity", caf::atom("quiet"));
    return c;
  }();
  return cfg;
}

caf::actor connect(caf::actor_system& sys, const std::string& host_port) {
  auto colon = host_port.rfind(':');
  auto handle = sys.middleman().remote_actor(host_port.substr(0, colon),
                                             static_cast<std::uint16_t>(std::stoi(host_port.substr(colon + 1))));
  return handle ? *handle : caf::actor{};
}

// One request, answered or not within `timeout`.
std::optional<client::response> call(caf::scoped_actor& self, const caf::actor& to, const std::string& bytes,
                                     std::chrono::milliseconds timeout) {
  std::optional<client::response> out;
  self->request(to, timeout, client_atom::value, bytes)
      .receive(
          [&](const std::string& reply) {
            if (auto r = wire::decode_response(reply)) out = *r;
          },
          [&](caf::error&) {});
  return out;
}

std::uint64_t committed_value(const std::optional<client::response>& r) {
  if (!r || !std::holds_alternative<client::committed>(*r)) return 0;
  auto res = wire::decode_result(std::get<client::committed>(*r).result);
  return res && res->outcome.code == registry::code::ok ? res->outcome.value : 0;
}

struct heartbeat_stats {
  std::vector<double> latency_ms;
  std::size_t errors = 0;
  std::map<std::string, std::size_t> errors_by_kind;  // for the log: why heartbeats failed
  void fail(const std::string& kind) {
    ++errors;
    ++errors_by_kind[kind];
  }
};

// Sends each session's heartbeat once per interval, in slices of the
// interval so that the sessions are spread as independent workers would be.
caf::behavior heartbeater(caf::event_based_actor* self, caf::actor leader, std::vector<std::string> requests,
                          int interval_ms, clock_type::time_point until, std::shared_ptr<heartbeat_stats> out,
                          caf::actor done) {
  constexpr int slices = 20;
  auto slice = std::make_shared<int>(0);
  self->send(self, tick_atom::value);
  return {[=](tick_atom) {
    if (clock_type::now() >= until) {
      self->send(done, caf::ok_atom::value);
      self->quit();
      return;
    }
    auto n = requests.size();
    auto from = n * static_cast<std::size_t>(*slice) / slices, to = n * static_cast<std::size_t>(*slice + 1) / slices;
    for (auto i = from; i < to; ++i) {
      auto start = clock_type::now();
      self->request(leader, std::chrono::milliseconds(interval_ms * 10), client_atom::value, requests[i])
          .then(
              [=](const std::string& reply) {
                auto r = wire::decode_response(reply);
                if (r && std::holds_alternative<client::ok>(*r)) {
                  out->latency_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
                } else if (r && std::holds_alternative<client::failure>(*r)) {
                  out->fail(std::get<client::failure>(*r).code);
                } else {
                  out->fail("malformed reply");
                }
              },
              [=](caf::error& e) { out->fail(caf::to_string(e)); });
    }
    *slice = (*slice + 1) % slices;
    self->delayed_send(self, std::chrono::milliseconds(std::max(1, interval_ms / slices)), tick_atom::value);
  }};
}

// Registers sessions->size() members named PREFIX0, PREFIX1, ..., at most
// `window` proposals in flight, and records each one's session.
caf::behavior registrar(caf::event_based_actor* self, caf::actor leader, std::string cluster_id, std::string prefix,
                        std::uint64_t ttl_ms, std::shared_ptr<std::vector<std::uint64_t>> sessions, caf::actor done) {
  constexpr std::size_t window = 128;
  auto next = std::make_shared<std::size_t>(0);
  auto answered = std::make_shared<std::size_t>(0);
  auto send_one = std::make_shared<std::function<void()>>();
  *send_one = [=] {
    auto i = (*next)++;
    registry::member m;
    m.id = prefix + std::to_string(i);
    m.role = registry::member_role::worker;
    m.host = "127.0.0.1";
    auto bytes = wire::encode_request(client::propose{wire::encode_command(registry::register_member{m, ttl_ms})},
                                      cluster_id);
    auto finish = [=](std::uint64_t session) {
      (*sessions)[i] = session;
      if (++*answered == sessions->size()) {
        self->send(done, caf::ok_atom::value);
        self->quit();
      } else if (*next < sessions->size()) {
        (*send_one)();
      }
    };
    self->request(leader, std::chrono::seconds(30), client_atom::value, bytes)
        .then(
            [=](const std::string& reply) {
              auto r = wire::decode_response(reply);
              finish(r ? committed_value(std::optional<client::response>(*r)) : 0);
            },
            [=](caf::error&) { finish(0); });
  };
  while (*next < sessions->size() && *next < window) (*send_one)();
  return {[](caf::ok_atom) {}};
}

}  // namespace

int swarm_main(int argc, char** argv) {
  if (argc < 9) {
    fmt::print(stderr, "usage: conclave-bench --swarm LEADER CLUSTER_ID PREFIX COUNT INTERVAL_MS TTL_MS SECONDS OUT\n");
    return 2;
  }
  std::string leader_at = argv[1], cluster_id = argv[2], prefix = argv[3], out_path = argv[8];
  int count = std::atoi(argv[4]), interval_ms = std::atoi(argv[5]);
  auto ttl_ms = std::strtoull(argv[6], nullptr, 10);
  double seconds = std::atof(argv[7]);
  caf::actor_system sys{swarm_config()};
  auto leader = connect(sys, leader_at);
  if (!leader) {
    fmt::print(stderr, "swarm: cannot connect to {}\n", leader_at);
    return 1;
  }
  // Register every simulated worker, a window of requests in flight.
  auto sessions = std::make_shared<std::vector<std::uint64_t>>(static_cast<std::size_t>(count), 0);
  {
    caf::scoped_actor self{sys};
    sys.spawn(registrar, leader, cluster_id, prefix, ttl_ms, sessions, caf::actor(self));
    self->receive([](caf::ok_atom) {});
  }
  auto registered = std::count_if(sessions->begin(), sessions->end(), [](auto s) { return s != 0; });
  std::ofstream(out_path) << "registered " << registered << "\n";
  if (registered != count) {
    fmt::print(stderr, "swarm: only {} of {} registrations committed\n", registered, count);
    return 1;
  }
  std::vector<std::string> requests;
  for (int i = 0; i < count; ++i) {
    registry::resources u;
    u.cpu_percent = 10;
    u.memory_available_bytes = 1 << 30;
    requests.push_back(wire::encode_request(
        client::keepalive{(*sessions)[static_cast<std::size_t>(i)],
                          registry::registry_service::encode_usage(prefix + std::to_string(i), u)},
        cluster_id));
  }
  auto stats = std::make_shared<heartbeat_stats>();
  {
    caf::scoped_actor self{sys};
    auto until = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    sys.spawn(heartbeater, leader, std::move(requests), interval_ms, until, stats, caf::actor(self));
    self->receive([](caf::ok_atom) {});
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms * 2));  // the last answers
  }
  for (const auto& [kind, n] : stats->errors_by_kind) fmt::print(stderr, "swarm: {} heartbeats failed: {}\n", n, kind);
  std::ofstream(out_path, std::ios::app) << heartbeat_report(stats->latency_ms, stats->errors);
  return 0;
}

int lock_holder_main(int argc, char** argv) {
  if (argc < 6) {
    fmt::print(stderr, "usage: conclave-bench --lock-holder LEADER CLUSTER_ID LOCK TTL_MS INTERVAL_MS\n");
    return 2;
  }
  std::string leader_at = argv[1], cluster_id = argv[2], lock = argv[3];
  auto ttl_ms = std::strtoull(argv[4], nullptr, 10);
  int interval_ms = std::atoi(argv[5]);
  caf::actor_system sys{swarm_config()};
  auto leader = connect(sys, leader_at);
  if (!leader) return 1;
  caf::scoped_actor self{sys};
  auto propose = [&](const registry::command& c) {
    return call(self, leader, wire::encode_request(client::propose{wire::encode_command(c)}, cluster_id), 5s);
  };
  auto session = committed_value(propose(registry::open_session{"engine", ttl_ms}));
  auto token = session ? committed_value(propose(registry::acquire_lock{lock, session, false})) : 0;
  if (!token) return 1;
  fmt::print("holding {}\n", token);
  std::fflush(stdout);
  auto heartbeat = wire::encode_request(client::keepalive{session, {}}, cluster_id);
  for (;;) {
    (void)call(self, leader, heartbeat, std::chrono::milliseconds(interval_ms * 3));
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

}  // namespace conclave::bench
