// Closed-loop load for the benchmarks: N proposer actors, each sending the
// next command to a server as soon as the previous one is committed, for a
// fixed time; returns every command's latency.
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/atoms.hpp"
#include "actors/stage_trace.hpp"
#include "bench/system.hpp"
#include "schema/client_codec.hpp"

namespace conclave::bench {

using clock_type = std::chrono::steady_clock;

// The command proposer `who` sends as its `n`-th.
using command_factory = std::function<std::string(int who, std::uint64_t n)>;

namespace detail {

struct proposer_state {
  std::vector<double> latencies_ms;
  std::size_t errors = 0;
};

inline caf::behavior proposer(caf::event_based_actor* self, caf::actor target, std::string cluster_id,
                              clock_type::time_point until, std::shared_ptr<proposer_state> out, caf::actor done,
                              int who, command_factory make) {
  auto counter = std::make_shared<std::uint64_t>(0);
  auto next = std::make_shared<std::function<void()>>();
  *next = [=] {
    if (clock_type::now() >= until) {
      self->send(done, caf::ok_atom::value);
      self->quit();
      return;
    }
    auto start = clock_type::now();
    auto start_ns = stage_trace::enabled() ? stage_trace::now_ns() : 0;
    auto bytes = wire::encode_request(client::propose{make(who, (*counter)++)}, cluster_id);
    // Never an infinite wait: CAF 0.17 does not answer a request that was on
    // the wire when its connection broke, and a deposed leader answers a
    // proposal only once its index is applied. Such a write counts as an error.
    self->request(target, std::chrono::seconds(10), client_atom::value, bytes)
        .then(
            [=](const std::string& reply) {
              auto r = wire::decode_response(reply);
              if (r && std::holds_alternative<client::committed>(*r)) {
                if (start_ns) {
                  auto index = std::get<client::committed>(*r).index;
                  stage_trace::mark(stage_trace::stage::client_sent, index, index, start_ns);
                  stage_trace::mark(stage_trace::stage::client_received, index);
                }
                out->latencies_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
              } else {
                ++out->errors;
              }
              (*next)();
            },
            [=](caf::error&) {
              ++out->errors;
              (*next)();
            });
  };
  (*next)();
  return {[](caf::ok_atom) {}};
}

}  // namespace detail

inline throughput run_load(caf::actor_system& sys, const caf::actor& target, const std::string& cluster_id,
                            int proposers, double seconds, const command_factory& make) {
  caf::scoped_actor self{sys};
  auto until = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::shared_ptr<detail::proposer_state>> outs;
  auto start = clock_type::now();
  for (int i = 0; i < proposers; ++i) {
    outs.push_back(std::make_shared<detail::proposer_state>());
    sys.spawn(detail::proposer, target, cluster_id, until, outs.back(), caf::actor(self), i, make);
  }
  for (int i = 0; i < proposers; ++i) self->receive([](caf::ok_atom) {});
  auto elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  throughput r;
  r.clients = proposers;
  for (auto& o : outs) {
    r.latency_ms.insert(r.latency_ms.end(), o->latencies_ms.begin(), o->latencies_ms.end());
    r.errors += o->errors;
  }
  r.writes_per_s = static_cast<double>(r.latency_ms.size()) / elapsed;
  return r;
}

}  // namespace conclave::bench
