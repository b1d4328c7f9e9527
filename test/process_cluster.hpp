// Real Raft server processes on loopback for multi-process tests: free ports
// (bind to port 0), a temporary data directory each, every process started,
// signalled and reaped by pid, and all of them killed when the object goes.
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "roles/raft_client.hpp"
#include "roles/peer_tls.hpp"
#include "test/fault_channel.hpp"
#include "test/processes.hpp"
#include "test/temp_dir.hpp"

namespace conclave::test {

inline caf::actor_system_config& client_config() {
  static caf::actor_system_config cfg = [] {
    caf::actor_system_config c;
    c.load<caf::io::middleman>();
    c.set("logger.verbosity", caf::atom("quiet"));
    return c;
  }();
  return cfg;
}

// A client actor system whose native links use TLS with `files` (README "TLS").
inline std::unique_ptr<caf::actor_system_config> tls_client_config(const tls_files& files) {
  auto c = std::make_unique<caf::actor_system_config>();
  c->load<caf::io::middleman>();
  c->set("logger.verbosity", caf::atom("quiet"));
  use_peer_tls(*c, files);
  return c;
}

class process_cluster {
 public:
  struct member {
    std::uint64_t id;
    raft::endpoint address;
    std::string data_dir;
    std::string log_file;
    pid_t pid = -1;
  };

  // Where servers run, by id; a server not named gets 127.0.0.1, a data
  // directory under the cluster's temporary directory, and is started
  // directly.
  struct layout {
    std::map<std::uint64_t, std::string> data_dirs;
    std::map<std::uint64_t, std::string> hosts;
    std::map<std::uint64_t, std::vector<std::string>> launchers;  // argv prefix, e.g. ip netns exec NS
    std::map<std::uint64_t, std::vector<std::string>> flags;      // one server's own flags, as set_member_flags
    // Runs once the members have their addresses and data directories, before
    // any starts (e.g. to seed the directories with `conclave restore`).
    std::function<void(process_cluster&)> before_start;
    tls_files client_tls;  // the cluster's own client: TLS with these files (servers with peer-cert-file)
  };

  // `extra` flags go to every server (timing, snapshot settings).
  explicit process_cluster(int size, std::vector<std::string> extra = {}, std::string binary = {}, layout where = {})
      : binary_(binary.empty() ? default_binary() : std::move(binary)),
        extra_(std::move(extra)),
        member_extra_(std::move(where.flags)),
        launchers_(std::move(where.launchers)) {
    auto ports = free_ports(static_cast<std::size_t>(size));
    for (int i = 1; i <= size; ++i) {
      member m;
      m.id = static_cast<std::uint64_t>(i);
      auto host = where.hosts.find(m.id);
      m.address = raft::endpoint{host != where.hosts.end() ? host->second : "127.0.0.1", ports[m.id - 1]};
      auto placed = where.data_dirs.find(m.id);
      m.data_dir = placed != where.data_dirs.end() ? placed->second : dir_ / ("node" + std::to_string(i));
      m.log_file = dir_ / ("node" + std::to_string(i) + ".log");
      members_.push_back(m);
    }
    if (where.before_start) where.before_start(*this);
    for (auto& m : members_) start(m.id);
    std::vector<raft::endpoint> eps;
    for (const auto& m : members_) eps.push_back(m.address);
    if (where.client_tls.enabled()) {
      tls_config_ = tls_client_config(where.client_tls);
    }
    system_ = std::make_unique<caf::actor_system>(tls_config_ ? *tls_config_ : client_config());
    client_ = std::make_unique<raft_client>(*system_, cluster_id, eps);
    faults_ = std::make_unique<fault_channel>(*system_, cluster_id);
  }

  ~process_cluster() {
    for (auto& m : members_) {
      if (m.pid > 0) {
        ::kill(m.pid, SIGCONT);
        ::kill(m.pid, SIGKILL);
        ::waitpid(m.pid, nullptr, 0);
      }
    }
    for (auto pid : others_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  // Starts another process (a worker, a tool) with its output in `log_name`
  // under the cluster's directory; it is killed with the cluster.
  pid_t spawn(std::vector<std::string> args, const std::string& log_name) {
    auto pid = fork_exec(std::move(args), dir_ / log_name);
    others_.push_back(pid);
    return pid;
  }

  // Waits for a spawned process to end; its exit status, or nothing on timeout.
  std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        others_.erase(std::remove(others_.begin(), others_.end(), pid), others_.end());
        for (auto& m : members_) {
          if (m.pid == pid) m.pid = -1;
        }
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  std::string peers() const {
    std::string p;
    for (const auto& o : members_) p += (p.empty() ? "" : ",") + std::to_string(o.id) + "=" + o.address.text();
    return p;
  }
  const std::string& binary() const { return binary_; }
  std::string path(const std::string& name) const { return dir_ / name; }

  static std::string default_binary() {
    const char* env = std::getenv("CONCLAVE_RAFT_NODE");
    return env ? env : "build/roles/conclave-raft-node";
  }

  void start(std::uint64_t id) {
    auto& m = at(id);
    std::string peers;
    for (const auto& o : members_) peers += (peers.empty() ? "" : ",") + std::to_string(o.id) + "=" + o.address.text();
    std::vector<std::string> args;
    if (auto l = launchers_.find(id); l != launchers_.end()) args = l->second;
    for (auto a : {binary_, std::string("--id"), std::to_string(id), std::string("--peers"), peers,
                   std::string("--data-dir"), m.data_dir, std::string("--cluster-id"), cluster_id}) {
      args.push_back(a);
    }
    // Shared flags, except those this server has its own value for.
    auto own = member_extra_.find(id);
    for (std::size_t i = 0; i < extra_.size(); ++i) {
      bool overridden = own != member_extra_.end() && extra_[i].rfind("--", 0) == 0 &&
                        std::find(own->second.begin(), own->second.end(), extra_[i]) != own->second.end();
      if (overridden) {
        ++i;  // and its value
        continue;
      }
      args.push_back(extra_[i]);
    }
    if (own != member_extra_.end()) args.insert(args.end(), own->second.begin(), own->second.end());
    auto pid = fork_exec(std::move(args), m.log_file);
    m.pid = pid;
  }

  // Flags for one server only, from its next start on; they replace shared
  // flags of the same name (each a --NAME VALUE pair).
  void set_member_flags(std::uint64_t id, std::vector<std::string> flags) { member_extra_[id] = std::move(flags); }

  // Sends `sig`; for SIGKILL and SIGTERM also waits for the process to end.
  // Returns the exit status for those.
  int signal(std::uint64_t id, int sig) {
    auto& m = at(id);
    if (m.pid <= 0) return -1;
    ::kill(m.pid, sig);
    if (sig != SIGKILL && sig != SIGTERM) return 0;
    int status = 0;
    ::waitpid(m.pid, &status, 0);
    m.pid = -1;
    return status;
  }

  member& at(std::uint64_t id) { return members_.at(id - 1); }
  const std::vector<member>& members() const { return members_; }
  raft_client& client() { return *client_; }
  // Credentials for the cluster's own client (before its first request).
  void use_keys(const auth::keys& keys) {
    client_->set_keys(keys);
    faults_->set_keys(keys);
  }
  bool running(std::uint64_t id) { return at(id).pid > 0; }

  std::optional<client::status> status(std::uint64_t id) {
    auto s = client_->status(at(id).address);
    if (!s) return std::nullopt;
    return *s;
  }

  // The id of the server that says it leads with the highest term, among
  // running ones other than `except`; waits up to `timeout`.
  std::optional<std::uint64_t> wait_for_leader(std::chrono::milliseconds timeout, std::uint64_t except = 0) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      std::optional<std::uint64_t> best;
      std::uint64_t best_term = 0;
      for (const auto& m : members_) {
        if (m.pid <= 0 || m.id == except) continue;
        auto s = status(m.id);
        if (s && s->role == "leader" && s->term >= best_term) {
          best = m.id;
          best_term = s->term;
        }
      }
      if (best) return best;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  std::string log_of(std::uint64_t id) {
    std::ifstream in(at(id).log_file);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // Every server's log, each under a line naming it and its address (for
  // failure messages).
  std::string logs() {
    std::string out;
    for (const auto& m : members_) {
      out += "--- node " + std::to_string(m.id) + " (" + m.address.text() + ")\n" + log_of(m.id);
    }
    return out;
  }

  // --- the fault channel (servers started with --fault-injection true) ---------------

  // Server `id` drops what it sends to the servers in `drop_to` and what it
  // receives from those in `drop_from`, and passes the other members' traffic.
  expected<void> set_faults(std::uint64_t id, const std::vector<std::uint64_t>& drop_to,
                            const std::vector<std::uint64_t>& drop_from,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    std::set<std::uint64_t> peers(drop_to.begin(), drop_to.end());
    peers.insert(drop_from.begin(), drop_from.end());
    for (const auto& m : members_) peers.insert(m.id);
    peers.erase(id);
    for (auto p : peers) {
      bool out = std::find(drop_to.begin(), drop_to.end(), p) != drop_to.end();
      bool in = std::find(drop_from.begin(), drop_from.end(), p) != drop_from.end();
      if (auto ok = faults_->drop(at(id).address, p, out, in, timeout); !ok) return ok;
    }
    return {};
  }
  // Server `id` can neither reach nor hear the other members.
  expected<void> isolate(std::uint64_t id) {
    std::vector<std::uint64_t> others;
    for (const auto& m : members_) {
      if (m.id != id) others.push_back(m.id);
    }
    return set_faults(id, others, others);
  }
  expected<void> heal(std::uint64_t id) { return set_faults(id, {}, {}); }
  // Server `id` holds its disk's completions for `ms` (0: releases them).
  expected<void> stall_storage(std::uint64_t id, std::uint32_t ms) { return faults_->stall_storage(at(id).address, ms); }

  const std::string cluster_id = "process-test";

 private:
  temp_dir dir_;
  std::string binary_;
  std::vector<std::string> extra_;
  std::map<std::uint64_t, std::vector<std::string>> member_extra_;
  std::map<std::uint64_t, std::vector<std::string>> launchers_;
  std::vector<member> members_;
  std::vector<pid_t> others_;
  std::unique_ptr<caf::actor_system_config> tls_config_;  // the client's, with layout::client_tls
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<raft_client> client_;
  std::unique_ptr<fault_channel> faults_;
};

}  // namespace conclave::test
