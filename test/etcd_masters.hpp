// 3 masters (or `masters`) serving etcd's v3 API (client-listen) and, when asked, its JSON
// gateway (http-listen), each on a port it picked and logged, for tests that
// point real etcd clients at them.
#pragma once

#include <doctest/doctest.h>
#include <openssl/evp.h>

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
  std::map<std::uint64_t, std::string> http;    // server id -> its http-listen address (with_http)
  std::unique_ptr<process_cluster> c;

  // A port picked here could be taken before the master binds it, so each
  // master takes any free port and logs it. `extra`: more flags for every master;
  // `client_tls`: the cluster's own client's TLS files (masters with peer-cert-file).
  explicit etcd_masters(std::vector<std::string> extra = {}, bool with_http = false, tls_files client_tls = {},
                        std::uint64_t masters = 3) {
    using namespace std::chrono_literals;
    process_cluster::layout where;
    where.client_tls = std::move(client_tls);
    for (std::uint64_t id = 1; id <= masters; ++id) {
      where.flags[id] = {"--client-listen", "127.0.0.1:0"};
      if (with_http) where.flags[id].insert(where.flags[id].end(), {"--http-listen", "127.0.0.1:0"});
    }
    std::vector<std::string> flags{"-r", "master"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    c = std::make_unique<process_cluster>(static_cast<int>(masters), flags, conclave_binary(), where);
    auto logged = [&](const std::string& said, std::map<std::uint64_t, std::string>& into) {
      for (std::uint64_t id = 1; id <= masters; ++id) {
        auto log = c->log_of(id);
        auto at = log.find(said);
        if (at != std::string::npos) into[id] = log.substr(at + said.size(), log.find('\n', at) - at - said.size());
      }
    };
    auto ready = [&] { return client.size() == masters && (!with_http || http.size() == masters); };
    for (auto until = std::chrono::steady_clock::now() + 20s; !ready() && std::chrono::steady_clock::now() < until;) {
      logged("etcd API listening on ", client);
      if (with_http) logged("HTTP listening on ", http);
      if (!ready()) std::this_thread::sleep_for(50ms);
    }
    REQUIRE_MESSAGE(ready(), logs());
  }

  // The client addresses of every master but `except`, comma-separated.
  std::string endpoints(std::uint64_t except = 0) const {
    std::string e;
    for (const auto& [id, at] : client) {
      if (id != except) e += (e.empty() ? "" : ",") + at;
    }
    return e;
  }

  std::string logs() {
    std::string all;
    for (const auto& m : c->members()) all += c->log_of(m.id);
    return all;
  }
};

// Bytes as the JSON gateway carries them.
inline std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  auto n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace conclave::test
