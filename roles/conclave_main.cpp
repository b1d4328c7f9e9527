// conclave: one member of a conclave cluster.
//
//   conclave [-r master|worker|master_and_worker] [--config FILE] [--KEY VALUE ...]
//
// Every setting is a KEY that can be given as a flag (--KEY VALUE) or in the
// config file (KEY = VALUE, # comments); flags win. README.md lists the keys,
// their defaults and the exit codes (0 stopped, 1 runtime failure, 2 bad
// configuration, 3 worker without a master, 4 master without quorum under
// on-quorum-loss = exit).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "actors/log.hpp"
#include "actors/registry/registry_machine.hpp"
#include "actors/registry/registry_service.hpp"
#include "roles/member_agent.hpp"
#include "roles/server.hpp"

using namespace conclave;
using namespace conclave::raft;

namespace {

// Every key with its default ("" = none).
const std::map<std::string, std::string> known_keys = {
    {"role", "master_and_worker"},
    {"id", ""},
    {"name", ""},
    {"peers", ""},
    {"cluster-id", ""},
    {"data-dir", ""},
    {"listen", ""},
    {"advertise-host", ""},
    {"labels", ""},
    {"tick-ms", "10"},
    {"heartbeat-ticks", "5"},
    {"election-ticks", "25:50"},
    {"snapshot-every", "10000"},
    {"snapshot-trailing", "1024"},
    {"preferred-leader", "0"},
    {"member-heartbeat-ms", "100"},
    {"session-ttl-ms", "2000"},
    {"no-master-timeout-ms", "5000"},
    {"on-quorum-loss", "fence"},
    {"quorum-loss-timeout-ms", "1000"},
    {"threads", "1"},
};

[[noreturn]] void config_error(const std::string& what) {
  std::fprintf(stderr, "conclave: %s\n", what.c_str());
  std::exit(exit_bad_config);
}

std::uint64_t number(const std::map<std::string, std::string>& c, const std::string& key) {
  const auto& text = c.at(key);
  char* end = nullptr;
  auto v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') config_error(key + ": '" + text + "' is not a number");
  return v;
}

std::map<std::string, std::string> read_config(int argc, char** argv) {
  std::map<std::string, std::string> flags, file;
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("usage: conclave [-r master|worker|master_and_worker] [--config FILE] [--KEY VALUE ...]\nkeys:");
      for (const auto& [k, v] : known_keys) std::printf(" %s%s", k.c_str(), v.empty() ? "" : ("=" + v).c_str());
      std::printf("\n");
      std::exit(0);
    }
    if (i + 1 >= argc) config_error("'" + a + "' needs a value");
    std::string value = argv[++i];
    if (a == "-r") a = "--role";
    if (a == "--config") {
      config_path = value;
      continue;
    }
    if (a.rfind("--", 0) != 0) config_error("unexpected argument '" + a + "'");
    auto key = a.substr(2);
    if (!known_keys.count(key)) config_error("unknown flag '" + a + "'");
    if (flags.count(key)) config_error("'" + a + "' given twice");
    flags[key] = value;
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) config_error(config_path + ": cannot read");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      auto hash = line.find('#');
      if (hash != std::string::npos) line.erase(hash);
      auto eq = line.find('=');
      auto trim = [](std::string s) {
        auto b = s.find_first_not_of(" \t\r");
        auto e = s.find_last_not_of(" \t\r");
        return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
      };
      if (trim(line).empty()) continue;
      if (eq == std::string::npos) config_error(config_path + ":" + std::to_string(n) + ": expected KEY = VALUE");
      auto key = trim(line.substr(0, eq));
      if (!known_keys.count(key)) config_error(config_path + ":" + std::to_string(n) + ": unknown key '" + key + "'");
      if (file.count(key)) config_error(config_path + ":" + std::to_string(n) + ": key '" + key + "' given twice");
      file[key] = trim(line.substr(eq + 1));
    }
  }
  auto c = known_keys;
  for (auto& [k, v] : file) c[k] = v;
  for (auto& [k, v] : flags) c[k] = v;
  return c;
}

// The data directory remembers which cluster and server it belongs to; a
// mismatch is refused before anything on disk is touched.
void check_identity(const std::string& dir, const std::string& cluster, std::uint64_t id) {
  auto path = dir + "/IDENTITY";
  std::string expected = "cluster-id=" + cluster + "\nnode-id=" + std::to_string(id) + "\n";
  std::ifstream in(path);
  if (in) {
    std::stringstream got;
    got << in.rdbuf();
    if (got.str() != expected) {
      config_error("data dir " + dir + " belongs to another cluster or server (" + path + " says: " +
                   got.str().substr(0, 200) + "); expected cluster '" + cluster + "', node " + std::to_string(id));
    }
    return;
  }
  if (std::filesystem::exists(dir + "/log")) {
    config_error("data dir " + dir + " holds a log but no IDENTITY file; refusing to guess whose it is");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::ofstream out(path);
  out << expected;
  if (!out) config_error(path + ": cannot write");
}

}  // namespace

int main(int argc, char** argv) {
  auto c = read_config(argc, argv);
  const auto& role_text = c["role"];
  registry::member_role role;
  if (role_text == "master") role = registry::member_role::master;
  else if (role_text == "worker") role = registry::member_role::worker;
  else if (role_text == "master_and_worker") role = registry::member_role::master_and_worker;
  else config_error("role: '" + role_text + "' is not master, worker or master_and_worker");
  bool is_master = role != registry::member_role::worker;

  if (c["cluster-id"].empty()) config_error("cluster-id: must be set");
  if (c["peers"].empty()) config_error("peers: must list the masters (ID=HOST:PORT,...)");
  if (c["on-quorum-loss"] != "fence" && c["on-quorum-loss"] != "exit") {
    config_error("on-quorum-loss: '" + c["on-quorum-loss"] + "' is not fence or exit");
  }
  node_options opts;
  opts.cluster_id = c["cluster-id"];
  std::set<std::string> addresses;
  std::stringstream peers(c["peers"]);
  std::string item;
  while (std::getline(peers, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) config_error("peers: '" + item + "' is not ID=HOST:PORT");
    char* end = nullptr;
    auto id = std::strtoull(item.substr(0, eq).c_str(), &end, 10);
    if (id == 0 || *end != '\0') config_error("peers: '" + item.substr(0, eq) + "' is not a server id (1, 2, ...)");
    auto ep = parse_endpoint(item.substr(eq + 1), "peers");
    if (!ep) config_error(ep.error().detail);
    if (opts.members.count(node_id{id})) config_error("peers: server " + std::to_string(id) + " listed twice");
    if (!addresses.insert(ep->text()).second) config_error("peers: address " + ep->text() + " listed twice");
    opts.members[node_id{id}] = *ep;
  }
  std::vector<endpoint> masters;
  for (const auto& [id, ep] : opts.members) masters.push_back(ep);

  agent_options agent;
  agent.cluster_id = opts.cluster_id;
  agent.masters = masters;
  agent.me.role = role;
  agent.heartbeat_ms = static_cast<int>(number(c, "member-heartbeat-ms"));
  agent.session_ttl_ms = number(c, "session-ttl-ms");
  if (agent.heartbeat_ms < 1 || agent.session_ttl_ms <= static_cast<std::uint64_t>(agent.heartbeat_ms)) {
    config_error("session-ttl-ms: must be larger than member-heartbeat-ms");
  }
  std::stringstream labels(c["labels"]);
  while (std::getline(labels, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) config_error("labels: '" + item + "' is not KEY=VALUE");
    agent.me.labels[item.substr(0, eq)] = item.substr(eq + 1);
  }

  if (!is_master) {
    agent.me.id = c["name"].empty() ? "worker-" + std::to_string(::getpid()) : c["name"];
    agent.me.host = c["advertise-host"].empty() ? "127.0.0.1" : c["advertise-host"];
    agent.no_master_timeout_ms = static_cast<int>(number(c, "no-master-timeout-ms"));
    if (!c["data-dir"].empty()) agent.disk_path = c["data-dir"];
    log_line("member {}: worker of cluster '{}', {} master(s)", agent.me.id, opts.cluster_id, masters.size());
    return run_agent_only([agent](caf::actor_system& sys, std::atomic<bool>& stop, std::atomic<int>& code) {
      run_member_agent(sys, agent, stop, code);
    });
  }

  opts.raft.id = node_id{number(c, "id")};
  if (opts.raft.id == no_node) config_error("id: a master needs its server id from peers (--id N)");
  opts.data_dir = c["data-dir"];
  opts.tick_ms = static_cast<int>(number(c, "tick-ms"));
  opts.raft.heartbeat_interval_ticks = static_cast<int>(number(c, "heartbeat-ticks"));
  auto election = c["election-ticks"];
  auto colon = election.find(':');
  if (colon == std::string::npos) config_error("election-ticks: expected MIN:MAX");
  opts.raft.election_timeout_min_ticks = std::atoi(election.substr(0, colon).c_str());
  opts.raft.election_timeout_max_ticks = std::atoi(election.substr(colon + 1).c_str());
  opts.snapshot_every_entries = number(c, "snapshot-every");
  opts.raft.snapshot_trailing_entries = number(c, "snapshot-trailing");
  if (auto p = number(c, "preferred-leader")) opts.raft.preferred_leader = node_id{p};
  opts.raft.seed = opts.raft.id.value * 7919 + static_cast<std::uint64_t>(::getpid());
  if (auto ok = opts.validate(); !ok) config_error(ok.error().detail);

  server_setup setup;
  setup.options = opts;
  if (c["listen"].empty()) {
    setup.listen = opts.self();
  } else {
    auto ep = parse_endpoint(c["listen"], "listen");
    if (!ep) config_error(ep.error().detail);
    setup.listen = *ep;
  }
  setup.threads = static_cast<int>(number(c, "threads"));
  check_identity(opts.data_dir, opts.cluster_id, opts.raft.id.value);

  auto machine = std::make_shared<registry::registry_machine>();
  registry::liveness_config live;
  live.suspect_after_ms = 3 * static_cast<std::uint64_t>(agent.heartbeat_ms);
  setup.machine = machine;
  setup.service = std::make_shared<registry::registry_service>(machine, live);

  agent.me.id = c["name"].empty() ? "master-" + std::to_string(opts.raft.id.value) : c["name"];
  agent.me.host = c["advertise-host"].empty() ? opts.self().host : c["advertise-host"];
  agent.me.port = opts.self().port;
  agent.disk_path = opts.data_dir;
  agent.quorum_loss_timeout_ms = static_cast<int>(number(c, "quorum-loss-timeout-ms"));
  agent.exit_on_quorum_loss = c["on-quorum-loss"] == "exit";
  agent.self = opts.self();
  setup.agent = [agent](caf::actor_system& sys, std::atomic<bool>& stop, std::atomic<int>& code) {
    run_member_agent(sys, agent, stop, code);
  };
  return run_server(std::move(setup));
}
