// Real links for fault tests (needs root and iproute2): a network namespace
// per server, each joined by a veth pair to a bridge in the test's own
// namespace, so the servers reach each other, and the test and its workers
// reach them all, over real (virtual) links. Cuts are tc filters that drop
// packets silently at a namespace's interface, as a dead link or a
// firewall would: TCP connections stay open and see nothing, unlike a
// killed process (reset) or the transport fault hook (messages dropped
// above TCP). Everything is deleted when the object goes; what a killed test
// process left (names carry its pid) is deleted by the next one.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace conclave::test {

class net_lab {
 public:
  explicit net_lab(int servers) : servers_(servers) {
    auto id = std::to_string(::getpid());
    bridge_ = "cnb" + id;
    subnet_ = "10.213." + std::to_string(20 + ::getpid() % 200) + ".";
    ip_ = found("ip");
    if (::geteuid() != 0 || ip_.empty() || found("tc").empty()) {
      why_not_ = "real link cuts need root and iproute2 (ip, tc)";
      return;
    }
    remove_stale();
    bool ok = run("ip link add " + bridge_ + " type bridge") && run("ip addr add " + subnet_ + "1/24 dev " + bridge_) &&
              run("ip link set " + bridge_ + " up");
    for (int i = 1; ok && i <= servers; ++i) {
      auto ns = netns(i);
      auto outside = veth(i);
      auto inside = "cnp" + id + "_" + std::to_string(i);
      ok = run("ip netns add " + ns) && run("ip link add " + outside + " type veth peer name " + inside) &&
           run("ip link set " + inside + " netns " + ns) && run(in(i, "ip link set " + inside + " name eth0")) &&
           run(in(i, "ip addr add " + host(i) + "/24 dev eth0")) && run(in(i, "ip link set eth0 up")) &&
           run(in(i, "ip link set lo up")) && run("ip link set " + outside + " master " + bridge_) &&
           run("ip link set " + outside + " up");
      created_ = i;
    }
    if (!ok) why_not_ = "cannot set up network namespaces: " + last_failed_;
  }

  ~net_lab() {
    for (int i = 1; i <= created_; ++i) run("ip netns del " + netns(i));  // takes its veth pair along
    run("ip link del " + bridge_);
  }
  net_lab(const net_lab&) = delete;
  net_lab& operator=(const net_lab&) = delete;

  bool ready() const { return why_not_.empty(); }
  const std::string& why_not() const { return why_not_; }

  // Server i's address (1-based) and the argv prefix that runs a program in
  // its namespace (`ip netns exec` execs it, so the pid stays the program's).
  std::string host(int i) const { return subnet_ + std::to_string(10 + i); }
  std::vector<std::string> launcher(int i) const { return {ip_, "netns", "exec", netns(i)}; }

  // Packets from server `from` to server `to` are dropped (one way).
  void cut(int from, int to) {
    filtered(from);
    run(in(from, "tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst " + host(to) + "/32 action drop"));
  }

  // Server i's link is dead both ways: to the other servers, the test and
  // the workers alike.
  void unplug(int i) {
    filtered(i);
    run(in(i, "tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match u32 0 0 action drop"));
    run("tc qdisc add dev " + veth(i) + " root handle 1: prio");
    run("tc filter add dev " + veth(i) + " parent 1: protocol ip prio 1 u32 match u32 0 0 action drop");
  }

  // Every link works again.
  void heal() {
    for (int i = 1; i <= created_; ++i) {
      run(in(i, "tc qdisc del dev eth0 root"), true);
      run("tc qdisc del dev " + veth(i) + " root", true);
    }
    filtered_.assign(static_cast<std::size_t>(servers_) + 1, false);
  }

 private:
  std::string netns(int i) const { return "cnc" + std::to_string(::getpid()) + "_" + std::to_string(i); }
  std::string veth(int i) const { return "cnv" + std::to_string(::getpid()) + "_" + std::to_string(i); }
  std::string in(int i, const std::string& cmd) const { return "ip netns exec " + netns(i) + " " + cmd; }

  // A classful root qdisc on server i's interface, for filters to hang on.
  void filtered(int i) {
    if (filtered_.size() <= static_cast<std::size_t>(i)) filtered_.resize(static_cast<std::size_t>(i) + 1, false);
    if (filtered_[static_cast<std::size_t>(i)]) return;
    run(in(i, "tc qdisc add dev eth0 root handle 1: prio"));
    filtered_[static_cast<std::size_t>(i)] = true;
  }

  // Namespaces cnc<pid>_<i> and bridges cnb<pid> of processes that are gone.
  void remove_stale() {
    auto dead = [](const std::string& name, const char* prefix) {
      if (name.rfind(prefix, 0) != 0) return false;
      auto owner = std::atoi(name.c_str() + std::strlen(prefix));
      return owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH;
    };
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
      auto name = e.path().filename().string();
      if (dead(name, "cnc")) run("ip netns del " + name, true);
    }
    for (const auto& e : std::filesystem::directory_iterator("/sys/class/net", ec)) {
      auto name = e.path().filename().string();
      if (dead(name, "cnb")) run("ip link del " + name, true);
    }
  }

  // The full path of a program on $PATH, or "" (fork_exec does not search).
  static std::string found(const std::string& program) {
    std::string path;
    if (FILE* p = ::popen(("command -v " + program + " 2>/dev/null").c_str(), "r")) {
      char buf[512];
      if (std::fgets(buf, sizeof buf, p)) path = buf;
      ::pclose(p);
    }
    while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
    return path;
  }

  bool run(const std::string& cmd, bool quiet_failure = false) {
    bool ok = std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
    if (!ok && !quiet_failure) last_failed_ = cmd;
    return ok;
  }

  int servers_;
  int created_ = 0;
  std::string ip_, bridge_, subnet_, why_not_, last_failed_;
  std::vector<bool> filtered_;
};

}  // namespace conclave::test
