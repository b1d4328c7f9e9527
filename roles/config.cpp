#include "roles/config.hpp"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "roles/tls.hpp"

namespace conclave {

using namespace conclave::raft;

const settings& default_settings() {
  static const settings keys = {
      {"role", "master_and_worker"},
      {"id", ""},
      {"name", ""},
      {"peers", ""},
      {"cluster-id", ""},
      {"data-dir", ""},
      {"listen", ""},
      {"client-listen", ""},
      {"http-listen", ""},
      {"advertise-host", ""},
      {"labels", ""},
      {"tick-ms", "10"},
      {"heartbeat-ticks", "5"},
      {"election-ticks", "25:50"},
      {"snapshot-every", "10000"},
      {"snapshot-trailing", "1024"},
      {"log-max-mib", "65536"},
      {"preferred-leader", "0"},
      {"member-heartbeat-ms", "500"},
      {"session-ttl-ms", "2000"},
      {"no-master-timeout-ms", "5000"},
      {"on-quorum-loss", "fence"},
      {"quorum-loss-timeout-ms", "1000"},
      {"threads", "1"},
      {"parallel-calls", "16"},
      {"join", "false"},
      {"force-new-cluster", "false"},
      {"usage-window-ms", "5000"},
      {"watch-history", "10000"},
      {"secret-file", ""},
      {"cert-file", ""},
      {"key-file", ""},
      {"trusted-ca-file", ""},
      {"client-cert-auth", "false"},
      {"peer-cert-file", ""},
      {"peer-key-file", ""},
      {"peer-trusted-ca-file", ""},
      {"fault-injection", "false"},
      {"log-format", "text"},
  };
  return keys;
}

namespace {

error bad(const std::string& what) { return make_error(errc::invalid_argument, what); }

// Keys that existed once get a reason with the "unknown key" error.
std::string unknown(const std::string& what, const std::string& key) {
  auto text = "unknown " + what;
  if (key == "lease-reads") text += " (removed: reads are always linearizable by ReadIndex, with no leases)";
  if (key == "peer-client-cert-auth") text += " (native links with TLS always check both sides' certificates)";
  return text;
}

// HOST:PORT to listen on; port 0: any free port, which the master logs
// (tests use it: a port picked beforehand may be taken before the master binds it).
expected<raft::endpoint> parse_listen(const std::string& text, const std::string& key) {
  bool any_port = text.size() > 2 && text.compare(text.size() - 2, 2, ":0") == 0;
  auto ep = raft::parse_endpoint(any_port ? text.substr(0, text.size() - 1) + "1" : text, key);
  if (!ep) return ep.error();
  if (any_port) ep->port = 0;
  return ep;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

std::string env_name(const std::string& key, const std::string& prefix) {
  auto name = prefix;
  for (char c : key) name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

env_settings read_env(const char* const* env) {
  std::map<std::string, std::string> keys;  // variable name -> key
  for (const auto& [k, v] : default_settings()) keys[env_name(k)] = k;
  // Set for the commands `conclavectl lock` runs: not a setting, no warning.
  const std::set<std::string> not_settings = {"CONCLAVE_FENCING_TOKEN", "CONCLAVE_STAGE_TRACE"};
  env_settings out;
  for (; env && *env; ++env) {
    std::string entry = *env;
    auto eq = entry.find('=');
    if (eq == std::string::npos || entry.rfind("CONCLAVE_", 0) != 0) continue;
    auto name = entry.substr(0, eq);
    auto value = entry.substr(eq + 1);
    if (name == "CONCLAVE_CONFIG") out.config_file = value;
    else if (auto it = keys.find(name); it != keys.end()) out.values[it->second] = value;
    else if (!not_settings.count(name)) out.unrecognized.push_back(name);
  }
  return out;
}

expected<settings> read_settings(int argc, char** argv, const env_settings& env) {
  settings flags, file;
  std::string config_path = env.config_file;
  const auto& known = default_settings();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return bad("'" + a + "' needs a value");
    std::string value = argv[++i];
    if (a == "-r") a = "--role";
    if (a == "--config") {
      config_path = value;
      continue;
    }
    if (a.rfind("--", 0) != 0) return bad("unexpected argument '" + a + "'");
    auto key = a.substr(2);
    if (!known.count(key)) return bad(unknown("flag '" + a + "'", key));
    if (flags.count(key)) return bad("'" + a + "' given twice");
    flags[key] = value;
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    if (!in) return bad(config_path + ": cannot read");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      auto where = config_path + ":" + std::to_string(n) + ": ";
      if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
      if (trim(line).empty()) continue;
      auto eq = line.find('=');
      if (eq == std::string::npos) return bad(where + "expected KEY = VALUE");
      auto key = trim(line.substr(0, eq));
      if (!known.count(key)) return bad(where + unknown("key '" + key + "'", key));
      if (file.count(key)) return bad(where + "key '" + key + "' given twice");
      file[key] = trim(line.substr(eq + 1));
    }
  }
  for (auto& [k, v] : env.values) file[k] = v;
  for (auto& [k, v] : flags) file[k] = v;
  return file;
}

expected<node_config> parse_settings(const settings& given) {
  auto c = default_settings();
  for (const auto& [k, v] : given) {
    if (!c.count(k)) return bad(unknown("key '" + k + "'", k));
    c[k] = v;
  }
  error failure = bad("");
  bool failed = false;
  auto number = [&](const std::string& key) -> std::uint64_t {
    const auto& text = c.at(key);
    char* end = nullptr;
    auto v = std::strtoull(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0') {
      if (!failed) failure = bad(key + ": '" + text + "' is not a number");
      failed = true;
    }
    return v;
  };

  node_config cfg;
  const auto& role = c["role"];
  if (role == "master") cfg.role = registry::member_role::master;
  else if (role == "worker") cfg.role = registry::member_role::worker;
  else if (role == "master_and_worker") cfg.role = registry::member_role::master_and_worker;
  else return bad("role: '" + role + "' is not master, worker or master_and_worker");
  if (c["cluster-id"].empty()) return bad("cluster-id: must be set");
  if (c["peers"].empty()) return bad("peers: must list the masters (ID=HOST:PORT,...)");
  if (c["log-format"] != "text" && c["log-format"] != "json") {
    return bad("log-format: '" + c["log-format"] + "' is not text or json");
  }
  cfg.log = c["log-format"] == "json" ? log_format::json : log_format::text;
  if (c["on-quorum-loss"] != "fence" && c["on-quorum-loss"] != "exit") {
    return bad("on-quorum-loss: '" + c["on-quorum-loss"] + "' is not fence or exit");
  }
  auto& opts = cfg.raft;
  opts.cluster_id = c["cluster-id"];
  std::set<std::string> addresses;
  std::stringstream peers(c["peers"]);
  std::string item;
  while (std::getline(peers, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) return bad("peers: '" + item + "' is not ID=HOST:PORT");
    // (`end` points into the text parsed, so that text must outlive the check.)
    auto id_text = item.substr(0, eq);
    char* end = nullptr;
    auto id = std::strtoull(id_text.c_str(), &end, 10);
    if (id == 0 || *end != '\0') return bad("peers: '" + id_text + "' is not a server id (1, 2, ...)");
    auto ep = parse_endpoint(item.substr(eq + 1), "peers");
    if (!ep) return ep.error();
    if (opts.members.count(node_id{id})) return bad("peers: server " + std::to_string(id) + " listed twice");
    if (!addresses.insert(ep->text()).second) return bad("peers: address " + ep->text() + " listed twice");
    opts.members[node_id{id}] = *ep;
  }

  auto& agent = cfg.agent;
  agent.cluster_id = opts.cluster_id;
  for (const auto& [id, ep] : opts.members) agent.masters.push_back(ep);
  agent.me.role = cfg.role;
  agent.heartbeat_ms = static_cast<int>(number("member-heartbeat-ms"));
  agent.session_ttl_ms = number("session-ttl-ms");
  agent.usage_window_ms = number("usage-window-ms");
  if (!c["secret-file"].empty()) {
    auto text = auth::read_key_file(c["secret-file"]);
    if (!text) return bad("secret-file: " + text.error().detail);
    agent.keys = auth::from_file_text(*text);
    if (cfg.is_master() && agent.keys.master.empty()) {
      return bad("secret-file: a master needs the cluster secret, not a member key");
    }
    opts.keys = agent.keys;
  }
  // TLS on the native links (CAF's OpenSSL module): always mutual, so the CA is needed.
  cfg.peer_tls = tls_files{c["peer-cert-file"], c["peer-key-file"], c["peer-trusted-ca-file"], true};
  if (auto ok = check_tls_files(cfg.peer_tls, "peer-"); !ok) return ok.error();
  if (cfg.peer_tls.enabled() && cfg.peer_tls.ca.empty()) {
    return bad("peer-trusted-ca-file: must be set with peer-cert-file (both sides of a link check the other's certificate)");
  }
  // TLS on client-listen and http-listen.
  if (c["client-cert-auth"] != "true" && c["client-cert-auth"] != "false") {
    return bad("client-cert-auth: '" + c["client-cert-auth"] + "' is not true or false");
  }
  cfg.client_tls = tls_files{c["cert-file"], c["key-file"], c["trusted-ca-file"], c["client-cert-auth"] == "true"};
  for (const char* key : {"cert-file", "key-file", "trusted-ca-file"}) {
    if (!c[key].empty() && c["client-listen"].empty() && c["http-listen"].empty()) {
      return bad(std::string(key) + ": needs client-listen or http-listen (it secures the etcd API and the HTTP listener)");
    }
  }
  if (auto ok = check_tls_files(cfg.client_tls, ""); !ok) return ok.error();
  if (cfg.client_tls.client_cert_auth && cfg.client_tls.ca.empty()) {
    return bad("client-cert-auth: needs trusted-ca-file (the CA that signs the clients' certificates)");
  }
  if (failed) return failure;
  if (agent.heartbeat_ms < 1 || agent.session_ttl_ms <= static_cast<std::uint64_t>(agent.heartbeat_ms)) {
    return bad("session-ttl-ms: must be larger than member-heartbeat-ms");
  }
  std::stringstream labels(c["labels"]);
  while (std::getline(labels, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) return bad("labels: '" + item + "' is not KEY=VALUE");
    agent.me.labels[item.substr(0, eq)] = item.substr(eq + 1);
  }
  cfg.threads = static_cast<int>(number("threads"));
  cfg.parallel_calls = number("parallel-calls");
  if (!failed && (cfg.parallel_calls < 1 || cfg.parallel_calls > 1024)) {
    return bad("parallel-calls: '" + c["parallel-calls"] + "' is not between 1 and 1024");
  }
  if (!cfg.is_master()) {
    if (!c["client-listen"].empty()) return bad("client-listen: only masters serve etcd's API");
    if (!c["http-listen"].empty()) return bad("http-listen: only masters serve HTTP (status page, metrics, health, etcd's JSON gateway)");
    agent.me.id = c["name"].empty() ? "worker-" + std::to_string(::getpid()) : c["name"];
    agent.me.host = c["advertise-host"].empty() ? "127.0.0.1" : c["advertise-host"];
    agent.no_master_timeout_ms = static_cast<int>(number("no-master-timeout-ms"));
    if (!c["data-dir"].empty()) agent.disk_path = c["data-dir"];
    if (failed) return failure;
    return cfg;
  }

  opts.raft.id = node_id{number("id")};
  if (failed) return failure;
  if (opts.raft.id == no_node) return bad("id: a master needs its server id from peers (--id N)");
  opts.data_dir = c["data-dir"];
  opts.tick_ms = static_cast<int>(number("tick-ms"));
  opts.raft.heartbeat_interval_ticks = static_cast<int>(number("heartbeat-ticks"));
  auto election = c["election-ticks"];
  auto colon = election.find(':');
  if (colon == std::string::npos) return bad("election-ticks: expected MIN:MAX");
  opts.raft.election_timeout_min_ticks = std::atoi(election.substr(0, colon).c_str());
  opts.raft.election_timeout_max_ticks = std::atoi(election.substr(colon + 1).c_str());
  opts.snapshot_every_entries = number("snapshot-every");
  opts.raft.snapshot_trailing_entries = number("snapshot-trailing");
  opts.log_max_bytes = number("log-max-mib") << 20;
  if (!failed && (opts.log_max_bytes == 0 || opts.log_max_bytes >> 20 > (1u << 24))) {
    return bad("log-max-mib: '" + c["log-max-mib"] + "' is not between 1 and 16777216");
  }
  if (auto p = number("preferred-leader")) opts.raft.preferred_leader = node_id{p};
  if (failed) return failure;
  opts.raft.seed = opts.raft.id.value * 7919 + static_cast<std::uint64_t>(::getpid());
  if (c["join"] != "true" && c["join"] != "false") return bad("join: '" + c["join"] + "' is not true or false");
  opts.join = c["join"] == "true";
  if (c["force-new-cluster"] != "true" && c["force-new-cluster"] != "false") {
    return bad("force-new-cluster: '" + c["force-new-cluster"] + "' is not true or false");
  }
  cfg.force_new_cluster = c["force-new-cluster"] == "true";
  if (cfg.force_new_cluster && opts.join) return bad("force-new-cluster: a joining master has nothing to recover");
  if (c["fault-injection"] != "true" && c["fault-injection"] != "false") {
    return bad("fault-injection: '" + c["fault-injection"] + "' is not true or false");
  }
  opts.fault_injection = c["fault-injection"] == "true";
  cfg.watch_history = number("watch-history");
  if (!failed && (cfg.watch_history < 1 || cfg.watch_history > 10000000)) {
    return bad("watch-history: '" + c["watch-history"] + "' is not between 1 and 10000000");
  }
  if (auto ok = opts.validate(); !ok) return ok.error();
  if (c["listen"].empty()) {
    cfg.listen = opts.self();
  } else {
    auto ep = parse_endpoint(c["listen"], "listen");
    if (!ep) return ep.error();
    cfg.listen = *ep;
  }
  if (!c["client-listen"].empty()) {
    auto ep = parse_listen(c["client-listen"], "client-listen");
    if (!ep) return ep.error();
    cfg.client_listen = *ep;
  }
  if (!c["http-listen"].empty()) {
    auto ep = parse_listen(c["http-listen"], "http-listen");
    if (!ep) return ep.error();
    cfg.http_listen = *ep;
  }
  agent.me.id = c["name"].empty() ? "master-" + std::to_string(opts.raft.id.value) : c["name"];
  agent.me.host = c["advertise-host"].empty() ? opts.self().host : c["advertise-host"];
  agent.me.port = opts.self().port;
  agent.disk_path = opts.data_dir;
  agent.quorum_loss_timeout_ms = static_cast<int>(number("quorum-loss-timeout-ms"));
  agent.exit_on_quorum_loss = c["on-quorum-loss"] == "exit";
  if (failed) return failure;
  return cfg;
}

expected<void> check_identity(const std::string& dir, const std::string& cluster, std::uint64_t id) {
  auto path = dir + "/IDENTITY";
  std::string expected_text = "cluster-id=" + cluster + "\nnode-id=" + std::to_string(id) + "\n";
  std::ifstream in(path);
  if (in) {
    std::stringstream got;
    got << in.rdbuf();
    if (got.str() != expected_text) {
      return bad("data dir " + dir + " belongs to another cluster or server (" + path + " says: " +
                 got.str().substr(0, 200) + "); expected cluster '" + cluster + "', node " + std::to_string(id));
    }
    return {};
  }
  if (std::filesystem::exists(dir + "/log")) {
    return bad("data dir " + dir + " holds a log but no IDENTITY file; refusing to guess whose it is");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::ofstream out(path);
  out << expected_text;
  if (!out) return make_error(errc::io_error, path + ": cannot write");
  return {};
}

}  // namespace conclave
