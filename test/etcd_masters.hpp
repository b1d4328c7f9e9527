// 3 masters serving etcd's v3 API (client-listen), each on a port it picked
// and logged, for tests that point real etcd clients at them.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test/process_cluster.hpp"

namespace conclave::test {

struct etcd_masters {
  std::map<std::uint64_t, std::string> client;  // server id -> its client-listen address
  std::unique_ptr<process_cluster> c;

  // A port picked here could be taken before the master binds it, so each
  // master takes any free port and logs it. `extra`: more flags for every master.
  explicit etcd_masters(std::vector<std::string> extra = {}) {
    using namespace std::chrono_literals;
    process_cluster::layout where;
    for (std::uint64_t id = 1; id <= 3; ++id) where.flags[id] = {"--client-listen", "127.0.0.1:0"};
    std::vector<std::string> flags{"-r", "master"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    c = std::make_unique<process_cluster>(3, flags, conclave_binary(), where);
    const std::string said = "etcd API listening on ";
    for (auto until = std::chrono::steady_clock::now() + 20s; client.size() < 3 && std::chrono::steady_clock::now() < until;) {
      for (std::uint64_t id = 1; id <= 3; ++id) {
        auto log = c->log_of(id);
        auto at = log.find(said);
        if (at != std::string::npos) client[id] = log.substr(at + said.size(), log.find('\n', at) - at - said.size());
      }
      if (client.size() < 3) std::this_thread::sleep_for(50ms);
    }
    REQUIRE_MESSAGE(client.size() == 3, logs());
  }

  std::string logs() { return c->log_of(1) + c->log_of(2) + c->log_of(3); }
};

}  // namespace conclave::test
