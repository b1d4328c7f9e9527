// ZooKeeper driver for conclave-bench (see zookeeper_system.hpp): a 3-server
// ensemble of java processes on loopback, each with its own config, data
// directory and log, driven through ZooKeeper's C client (libzookeeper_mt)
// with one session per simulated client.
#include "bench/zookeeper_system.hpp"

#include <fmt/core.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/prctl.h>

// The synchronous API of the C client exists in its multi-threaded flavour
// only (libzookeeper_mt), which the header offers under this macro.
#ifndef THREADED
#define THREADED
#endif
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "test/processes.hpp"
#include "test/temp_dir.hpp"

namespace conclave::bench {

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr const char* zookeeper_jar = "/usr/share/java/zookeeper.jar";
// ZooKeeper logs through slf4j; this binding writes to stderr, our log file.
constexpr const char* slf4j_simple_jar = "/usr/share/java/slf4j-simple.jar";

double ms_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double ms_since(clock_type::time_point t) { return ms_between(t, clock_type::now()); }

std::string file_tail(const std::string& path, std::size_t chars) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  auto text = s.str();
  return text.size() > chars ? text.substr(text.size() - chars) : text;
}

struct timing {
  int tick_ms;
  int init_limit;  // ticks a follower may take to connect and sync to a new leader
  int sync_limit;  // ticks without a word from the leader before a follower gives up on it
  // The bench clients' session timeout: long enough to outlive a failover,
  // within the servers' maximum (20 ticks).
  int client_session_ms;
};

timing timing_for(const std::string& name) {
  if (name == "defaults") return {2000, 10, 5, 10000};
  if (name == "matched") return {200, 10, 2, 4000};
  throw std::invalid_argument("zookeeper: timing must be \"defaults\" or \"matched\", not \"" + name + "\"");
}

// ---------------------------------------------------------------------------
// The C client.

// Errors only, and out of sight: lost connections during failovers are the
// point of the exercise, not news. The setting is process-wide.
void quiet_client_log() {
  static std::once_flag once;
  std::call_once(once, [] {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zoo_set_log_stream(std::fopen("/dev/null", "w"));
  });
}

struct handle_closer {
  void operator()(zhandle_t* zh) const { zookeeper_close(zh); }
};
using handle = std::unique_ptr<zhandle_t, handle_closer>;

void ignore_session_events(zhandle_t*, int, int, const char*, void*) {}

// A session on `hosts` (comma-separated; the client picks one at random and
// moves on to the next when it loses it), still connecting.
handle start_session(const std::string& hosts, int timeout_ms) {
  quiet_client_log();
  return handle(zookeeper_init(hosts.c_str(), ignore_session_events, timeout_ms, nullptr, nullptr, 0));
}

bool wait_connected(zhandle_t* zh, clock_type::time_point until) {
  while (zoo_state(zh) != ZOO_CONNECTED_STATE) {
    if (clock_type::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A connected session, or null when it did not connect within `wait`.
handle open_session(const std::string& hosts, int timeout_ms, clock_type::duration wait) {
  auto zh = start_session(hosts, timeout_ms);
  if (zh && !wait_connected(zh.get(), clock_type::now() + wait)) zh.reset();
  return zh;
}

// Reconnects `zh` if its session is gone (expired); false if it is not
// connected within 10 s.
bool ensure_connected(handle& zh, const std::string& hosts, int timeout_ms) {
  if (!zh || is_unrecoverable(zh.get()) != ZOK) zh = start_session(hosts, timeout_ms);
  return zh && wait_connected(zh.get(), clock_type::now() + 10s);
}

bool create_node(zhandle_t* zh, const std::string& path) {
  int rc = zoo_create(zh, path.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, nullptr, 0);
  return rc == ZOK || rc == ZNODEEXISTS;
}

// One durable write: a 100-byte value, acknowledged once a quorum logged it.
// The leader's epoch that committed it (the high half of its zxid), nothing
// when it failed.
std::optional<std::int64_t> write_epoch(zhandle_t* zh, const std::string& path) {
  static const std::string value(100, 'v');
  Stat stat{};
  if (zoo_set2(zh, path.c_str(), value.data(), static_cast<int>(value.size()), -1, &stat) != ZOK) return std::nullopt;
  return stat.mzxid >> 32;
}

bool write_value(zhandle_t* zh, const std::string& path) { return write_epoch(zh, path).has_value(); }

bool exists(zhandle_t* zh, const std::string& path) { return zoo_exists(zh, path.c_str(), 0, nullptr) == ZOK; }

// The children of a lock directory in queue order (by sequence number), or
// nothing on error.
std::optional<std::vector<std::string>> lock_queue(zhandle_t* zh, const std::string& dir) {
  String_vector children{};
  if (zoo_get_children(zh, dir.c_str(), 0, &children) != ZOK) return std::nullopt;
  std::vector<std::string> out(children.data, children.data + children.count);
  deallocate_String_vector(&children);
  // Every child is "lock-" and a 10-digit sequence number.
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.compare(a.size() - 10, 10, b, b.size() - 10, 10) < 0;
  });
  return out;
}

// ---------------------------------------------------------------------------
// Servers, asked over plain TCP with a four-letter word.

// The reply to `word` ("srvr"), or "" when the server does not answer in
// full within `timeout` (dead, frozen, still starting).
std::string four_letter(std::uint16_t port, const char* word, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  auto until = clock_type::now() + timeout;
  auto ready = [&](short events) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now()).count();
    pollfd p{fd, events, 0};
    return left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1 && (p.revents & events);
  };
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  std::string reply;
  bool complete = false;
  int err = 0;
  socklen_t len = sizeof err;
  if ((::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 || errno == EINPROGRESS) &&
      ready(POLLOUT) && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 &&
      ::send(fd, word, 4, MSG_NOSIGNAL) == 4) {
    char buf[2048];
    while (!complete && ready(POLLIN)) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) reply.append(buf, static_cast<std::size_t>(n));
      else complete = n == 0;
    }
  }
  ::close(fd);
  return complete ? reply : std::string();
}

// The text after "`key`: " up to the end of its line in a srvr reply.
std::string srvr_field(const std::string& reply, const std::string& key) {
  auto p = reply.find(key + ": ");
  if (p == std::string::npos) return "";
  p += key.size() + 2;
  return reply.substr(p, reply.find('\n', p) - p);
}

// "leader" or "follower", or "" when the server does not serve right now
// (dead, frozen, electing).
std::string mode_of(std::uint16_t port, std::chrono::milliseconds timeout = 100ms) {
  return srvr_field(four_letter(port, "srvr", timeout), "Mode");
}

// java from $JAVA_HOME or $PATH, "" when there is none.
std::string find_java() {
  std::vector<std::string> candidates;
  if (const char* home = std::getenv("JAVA_HOME"); home && *home) candidates.push_back(std::string(home) + "/bin/java");
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) candidates.push_back(dir + "/java");
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c;
  }
  return "";
}

// `n` distinct ports that were free a moment ago.
std::vector<std::uint16_t> free_ports(std::size_t n) {
  std::vector<std::uint16_t> ports;
  while (ports.size() < n) {
    auto p = test::free_port();
    if (std::find(ports.begin(), ports.end(), p) == ports.end()) ports.push_back(p);
  }
  return ports;
}

struct server {
  int id = 0;
  std::uint16_t client_port = 0, quorum_port = 0, election_port = 0;
  std::string config, log;
  pid_t pid = -1;
  std::string address() const { return "127.0.0.1:" + std::to_string(client_port); }
};

// ---------------------------------------------------------------------------
// Watchers and lock contenders.

// When each server's own watcher was told that a znode was deleted.
class deletion_watch {
 public:
  // Arms the watch on `zhs[i]`, one session per server: false unless the
  // node exists on every one of them.
  bool arm(const std::array<handle, 3>& zhs, const std::string& path) {
    {
      std::lock_guard lock(m_);
      seen_ = {};
    }
    for (std::size_t i = 0; i < zhs.size(); ++i) {
      if (zoo_wexists(zhs[i].get(), path.c_str(), on_event, &slots_[i], nullptr) != ZOK) return false;
    }
    return true;
  }

  // When the last of the three learned of the deletion, nothing at `until`.
  std::optional<clock_type::time_point> wait_all(clock_type::time_point until) {
    std::unique_lock lock(m_);
    auto all = [&] { return std::all_of(seen_.begin(), seen_.end(), [](const auto& t) { return t.has_value(); }); };
    if (!cv_.wait_until(lock, until, all)) return std::nullopt;
    return std::max({*seen_[0], *seen_[1], *seen_[2]});
  }

 private:
  struct slot {
    deletion_watch* watch;
    std::size_t server;
  };

  static void on_event(zhandle_t*, int type, int, const char*, void* ctx) {
    if (type != ZOO_DELETED_EVENT) return;  // session events reach every watcher
    auto* s = static_cast<slot*>(ctx);
    std::lock_guard lock(s->watch->m_);
    s->watch->seen_[s->server] = clock_type::now();
    s->watch->cv_.notify_all();
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::array<std::optional<clock_type::time_point>, 3> seen_;
  std::array<slot, 3> slots_{{{this, 0}, {this, 1}, {this, 2}}};
};

// One lock-handoff contender with its own session and thread, following the
// standard recipe: queue as an EPHEMERAL|SEQUENCE child of the lock's node;
// hold the lock when lowest, else watch the child just below and re-check
// when it is deleted. It holds until released, then queues again.
class contender {
 public:
  contender(handle zh, std::string dir) : dir_(std::move(dir)), zh_(std::move(zh)), thread_([this] { run(); }) {}

  ~contender() {
    {
      std::lock_guard lock(m_);
      stop_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }

  // Whether its node is in the queue.
  bool wait_queued(clock_type::duration timeout) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] { return queued_; });
  }

  // When it learned that it holds the lock.
  std::optional<clock_type::time_point> wait_holding(clock_type::duration timeout) {
    std::unique_lock lock(m_);
    if (!cv_.wait_for(lock, timeout, [&] { return holding_; })) return std::nullopt;
    return acquired_at_;
  }

  // Releases the lock it holds: when its delete started, once it completed.
  std::optional<clock_type::time_point> release(clock_type::duration timeout) {
    std::unique_lock lock(m_);
    if (!holding_) return std::nullopt;
    auto round = rounds_;
    release_ = true;
    cv_.notify_all();
    if (!cv_.wait_for(lock, timeout, [&] { return rounds_ > round; })) return std::nullopt;
    return released_at_;
  }

 private:
  void run() {
    while (!stopping()) {
      if (!queue()) {
        std::this_thread::sleep_for(10ms);
        continue;
      }
      auto lowest = wait_lowest();
      std::unique_lock lock(m_);
      if (lowest) {
        holding_ = true;
        acquired_at_ = *lowest;
        cv_.notify_all();
        cv_.wait(lock, [&] { return release_ || stop_; });
        if (stop_) return;
        released_at_ = clock_type::now();
      }
      lock.unlock();
      zoo_delete(zh_.get(), node_.c_str(), -1);
      lock.lock();
      holding_ = release_ = queued_ = false;
      ++rounds_;
      cv_.notify_all();
    }
  }

  bool stopping() {
    std::lock_guard lock(m_);
    return stop_;
  }

  bool queue() {
    char created[256];
    auto prefix = dir_ + "/lock-";
    if (zoo_create(zh_.get(), prefix.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, created,
                   sizeof created) != ZOK) {
      return false;
    }
    std::lock_guard lock(m_);
    node_ = created;
    queued_ = true;
    cv_.notify_all();
    return true;
  }

  // When the check of the children found its node lowest; nothing on an
  // error or when stopped.
  std::optional<clock_type::time_point> wait_lowest() {
    auto mine = node_.substr(dir_.size() + 1);
    while (!stopping()) {
      auto children = lock_queue(zh_.get(), dir_);
      if (!children) return std::nullopt;
      auto me = std::find(children->begin(), children->end(), mine);
      if (me == children->end()) return std::nullopt;
      if (me == children->begin()) return clock_type::now();
      auto predecessor = dir_ + "/" + *(me - 1);
      {
        std::lock_guard lock(m_);
        woken_ = false;
      }
      int rc = zoo_wexists(zh_.get(), predecessor.c_str(), on_event, this, nullptr);
      if (rc == ZNONODE) continue;
      if (rc != ZOK) return std::nullopt;
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return woken_ || stop_; });
    }
    return std::nullopt;
  }

  static void on_event(zhandle_t*, int type, int, const char*, void* ctx) {
    if (type == ZOO_SESSION_EVENT) return;
    auto* self = static_cast<contender*>(ctx);
    std::lock_guard lock(self->m_);
    self->woken_ = true;
    self->cv_.notify_all();
  }

  const std::string dir_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false, queued_ = false, holding_ = false, release_ = false, woken_ = false;
  std::uint64_t rounds_ = 0;
  std::string node_;
  clock_type::time_point acquired_at_, released_at_;
  handle zh_;  // closed before the state above goes away: watchers use it
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// The heartbeat swarm: many sessions from one process that speak ZooKeeper's
// wire protocol themselves, in one epoll loop. The C client cannot be used
// at this scale: each of its handles owns two threads, so 10,000 sessions
// would be 20,000 threads on this 2-core machine (and near its 32,768 pids),
// measuring the client rather than the servers. A swarm session behaves as
// the C client's does: it pings when it has sent nothing for a third of its
// timeout and no request is outstanding.

volatile std::sig_atomic_t swarm_finish = 0;

void put32(std::string& b, std::int32_t v) {
  auto u = htonl(static_cast<std::uint32_t>(v));
  b.append(reinterpret_cast<const char*>(&u), 4);
}

void put64(std::string& b, std::int64_t v) {
  put32(b, static_cast<std::int32_t>(v >> 32));
  put32(b, static_cast<std::int32_t>(v & 0xffffffff));
}

std::int32_t get32(const char* p) {
  std::uint32_t u;
  std::memcpy(&u, p, 4);
  return static_cast<std::int32_t>(ntohl(u));
}

// A length-prefixed packet.
std::string packet(const std::string& body) {
  std::string out;
  put32(out, static_cast<std::int32_t>(body.size()));
  return out + body;
}

// ConnectRequest for a new session: protocol 0, last zxid 0, timeout,
// session 0, a 16-byte password, not read-only.
std::string connect_request(int timeout_ms) {
  std::string b;
  put32(b, 0);
  put64(b, 0);
  put32(b, timeout_ms);
  put64(b, 0);
  put32(b, 16);
  b.append(16, '\0');
  b.push_back('\0');
  return packet(b);
}

// A request header alone: ping (xid -2, type 11) or closeSession (type -11).
std::string header_request(std::int32_t xid, std::int32_t type) {
  std::string b;
  put32(b, xid);
  put32(b, type);
  return packet(b);
}

class swarm {
 public:
  // Sessions asked for at once: each is a write the ensemble must commit
  // before the session's first ping can arrive.
  static constexpr std::size_t max_handshakes = 25;

  swarm(std::vector<std::uint16_t> ports, int count, int timeout_ms)
      : ports_(std::move(ports)), sessions_(static_cast<std::size_t>(count)), timeout_ms_(timeout_ms),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)) {}
  ~swarm() { ::close(epoll_); }

  // Opens every session (a bounded number of handshakes at a time), writes
  // "registered N" to `out` once each has an answer, and keeps them alive
  // until SIGUSR1; then appends the heartbeat figures since registration
  // (errors: sessions refused or lost at any time) and closes them.
  void run(const std::string& out) {
    bool registered = false;
    while (!swarm_finish) {
      while (next_ < sessions_.size() && handshakes_ < max_handshakes) open(next_++);
      if (!registered && established_ + failed_ == sessions_.size()) {
        std::ofstream(out) << "registered " << established_ << "\n";
        registered = true;
        latencies_.clear();  // heartbeats count once all sessions are up
      }
      poll_once(5);
      ping_due();
    }
    std::ofstream(out, std::ios::app) << heartbeat_report(latencies_, failed_);
    close_all();
  }

 private:
  enum class state { connecting, handshake, established, closed };
  struct session {
    int fd = -1;
    state st = state::closed;
    std::string in;  // received bytes not yet parsed
    bool ping_outstanding = false;
    clock_type::time_point last_send, ping_sent;
  };

  // Round-robin over the servers, as a pool of clients would spread.
  void open(std::size_t i) {
    auto& s = sessions_[i];
    s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(ports_[i % ports_.size()]);
    if (s.fd < 0 || (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS)) {
      fail(s);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = i;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &ev);
    s.st = state::connecting;
    ++handshakes_;
  }

  void poll_once(int timeout_ms) {
    epoll_event events[256];
    int n = ::epoll_wait(epoll_, events, 256, timeout_ms);
    for (int k = 0; k < n; ++k) {
      auto& s = sessions_[events[k].data.u64];
      if (events[k].events & EPOLLOUT) connected(s, events[k].data.u64);
      else if (events[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive(s);
    }
  }

  // The TCP connection is up: ask for a session.
  void connected(session& s, std::size_t i) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0 || !send(s, connect_request(timeout_ms_))) {
      fail(s);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, s.fd, &ev);
    s.st = state::handshake;
  }

  void receive(session& s) {
    char buf[4096];
    for (;;) {
      auto n = ::recv(s.fd, buf, sizeof buf, 0);
      if (n > 0) {
        s.in.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        fail(s);
        return;
      }
      break;
    }
    while (s.st != state::closed && s.in.size() >= 4 && s.in.size() >= 4 + static_cast<std::size_t>(get32(s.in.data()))) {
      auto len = static_cast<std::size_t>(get32(s.in.data()));
      handle(s, s.in.data() + 4, len);
      s.in.erase(0, 4 + len);
    }
  }

  // One packet from the server: the ConnectResponse (protocol version, then
  // the negotiated timeout: 0 means refused), or a reply header (xid first).
  void handle(session& s, const char* body, std::size_t len) {
    if (len < 8) return;
    if (s.st == state::handshake) {
      if (get32(body + 4) <= 0) {
        fail(s);
        return;
      }
      --handshakes_;
      s.st = state::established;
      ++established_;
    } else if (get32(body) == -2 && s.ping_outstanding) {
      s.ping_outstanding = false;
      latencies_.push_back(ms_since(s.ping_sent));
    }
  }

  void ping_due() {
    auto now = clock_type::now();
    auto interval = std::chrono::milliseconds(timeout_ms_ / 3);
    for (auto& s : sessions_) {
      if (s.st != state::established || s.ping_outstanding || now - s.last_send < interval) continue;
      s.ping_sent = now;
      s.ping_outstanding = send(s, header_request(-2, 11));
    }
  }

  bool send(session& s, const std::string& bytes) {
    s.last_send = clock_type::now();
    return ::send(s.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }

  // A refused session or a broken connection: an error, not retried.
  void fail(session& s) {
    if (s.st == state::connecting || s.st == state::handshake) --handshakes_;
    if (s.st == state::established) --established_;
    if (s.fd >= 0) ::close(s.fd);
    s.fd = -1;
    s.st = state::closed;
    ++failed_;
  }

  // closeSession for every live session; the servers hang up once done.
  void close_all() {
    for (auto& s : sessions_) {
      if (s.st == state::established) send(s, header_request(1, -11));
    }
    auto until = clock_type::now() + 5s;
    while (established_ > 0 && clock_type::now() < until) poll_once(50);
  }

  std::vector<std::uint16_t> ports_;
  std::vector<session> sessions_;
  int timeout_ms_;
  int epoll_;
  std::size_t next_ = 0, handshakes_ = 0, established_ = 0, failed_ = 0;
  std::vector<double> latencies_;
};

// The client ports of "127.0.0.1:P1,127.0.0.1:P2,...".
std::vector<std::uint16_t> ports_of(const std::string& hosts) {
  std::vector<std::uint16_t> ports;
  std::stringstream list(hosts);
  for (std::string host; std::getline(list, host, ',');) {
    ports.push_back(static_cast<std::uint16_t>(std::atoi(host.substr(host.rfind(':') + 1).c_str())));
  }
  return ports;
}

int swarm_main(const std::string& hosts, int count, int timeout_ms, const std::string& out) {
  struct sigaction sa {};
  sa.sa_handler = [](int) { swarm_finish = 1; };
  ::sigaction(SIGUSR1, &sa, nullptr);
  swarm(ports_of(hosts), count, timeout_ms).run(out);
  return 0;
}

// ---------------------------------------------------------------------------
// The system.

class zookeeper_system final : public compared_system {
 public:
  zookeeper_system(const std::string& timing_name, std::string self_exe)
      : timing_name_(timing_name), timing_(timing_for(timing_name)), self_exe_(std::move(self_exe)) {
    java_ = find_java();
    if (java_.empty()) throw std::runtime_error("zookeeper: no java in $JAVA_HOME or $PATH (install default-jre-headless)");
    if (::access(zookeeper_jar, R_OK) != 0) {
      throw std::runtime_error(fmt::format("zookeeper: {} not found (install the zookeeper package)", zookeeper_jar));
    }
    configure();
    try {
      for (auto& s : servers_) start(s);
      // 30 s, and one more round of initLimit ticks: a first sync that
      // misses it makes the ensemble elect again.
      wait_serving(clock_type::now() + 30s + std::chrono::milliseconds(timing_.init_limit * timing_.tick_ms));
      client_ = open_session(hosts_, timing_.client_session_ms, 10s);
      if (!client_) throw std::runtime_error("zookeeper: the C client could not connect to " + hosts_);
      for (const char* dir : {"/bench-failover", "/bench-write", "/bench-lock", "/bench-handoff", "/bench-load"}) {
        if (!create_node(client_.get(), dir)) throw std::runtime_error(fmt::format("zookeeper: cannot create {}", dir));
      }
    } catch (...) {
      shutdown();
      throw;
    }
  }

  ~zookeeper_system() override { shutdown(); }

  std::string name() const override {
    return timing_name_ == "matched" ? "zookeeper (matched timing)" : "zookeeper (defaults)";
  }

  std::string description() const override {
    auto rule = timing_name_ == "matched"
                    ? fmt::format(", so a silent leader is abandoned after {} ms, within conclave's 250-500 ms election timeout",
                                  timing_.tick_ms * timing_.sync_limit)
                    : std::string(" (Debian's zoo.cfg)");
    return fmt::format(
        "ZooKeeper {}, 3 servers: tickTime {} ms, syncLimit {}, initLimit {}{}; client sessions {} ms, worker session "
        "{} ms (2 x tickTime, the servers' minimum{}); driven through the C client (libzookeeper_mt), one session per "
        "client",
        version_, timing_.tick_ms, timing_.sync_limit, timing_.init_limit, rule, timing_.client_session_ms,
        2 * timing_.tick_ms, worker_session_ms_ ? fmt::format(", {} ms negotiated", *worker_session_ms_) : "");
  }


  std::optional<double> last_new_leader_ms() const override { return new_leader_ms_; }

  throughput writes(int clients, double seconds) override;
  std::optional<scale_result> scale(int sessions, double seconds) override;

  std::vector<pid_t> server_pids() const override {
    std::vector<pid_t> pids;
    for (const auto& s : servers_) {
      if (s.pid > 0) pids.push_back(s.pid);
    }
    return pids;
  }

 private:
  // ---- the ensemble

  void configure() {
    auto ports = free_ports(3 * 3);
    for (int i = 0; i < 3; ++i) {
      server s;
      s.id = i + 1;
      s.client_port = ports[3 * i];
      s.quorum_port = ports[3 * i + 1];
      s.election_port = ports[3 * i + 2];
      s.config = dir_ / fmt::format("zoo{}.cfg", s.id);
      s.log = dir_ / fmt::format("server{}.log", s.id);
      servers_.push_back(s);
    }
    for (const auto& s : servers_) {
      hosts_ += (hosts_.empty() ? "" : ",") + s.address();
      auto data = dir_ / fmt::format("data{}", s.id);
      std::filesystem::create_directories(data);
      std::ofstream(data + "/myid") << s.id << "\n";
      std::ofstream cfg(s.config);
      // forceSync stays at its default (yes): a write is fsynced before it
      // is acknowledged.
      cfg << "tickTime=" << timing_.tick_ms << "\n"
          << "initLimit=" << timing_.init_limit << "\n"
          << "syncLimit=" << timing_.sync_limit << "\n"
          << "dataDir=" << data << "\n"
          << "clientPort=" << s.client_port << "\n"
          << "clientPortAddress=127.0.0.1\n"
          // Every bench client connects from 127.0.0.1: no per-address cap
          // (60 by default), which guards against abuse, not load.
          << "maxClientCnxns=0\n"
          << "admin.enableServer=false\n"
          << "4lw.commands.whitelist=srvr,mntr,ruok\n";
      for (const auto& peer : servers_) {
        cfg << "server." << peer.id << "=127.0.0.1:" << peer.quorum_port << ":" << peer.election_port << "\n";
      }
    }
  }

  void start(server& s) {
    std::string classpath = zookeeper_jar;  // its manifest lists its dependencies
    if (::access(slf4j_simple_jar, R_OK) == 0) classpath += std::string(":") + slf4j_simple_jar;
    s.pid = test::fork_exec({java_, "-cp", classpath, "-Dorg.slf4j.simpleLogger.showDateTime=true",
                             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                             "org.apache.zookeeper.server.quorum.QuorumPeerMain", s.config},
                            s.log);
  }

  // Until every server serves, one of them as the leader.
  void wait_serving(clock_type::time_point until) {
    while (clock_type::now() < until) {
      int leaders = 0, followers = 0;
      for (auto& s : servers_) {
        if (::waitpid(s.pid, nullptr, WNOHANG) == s.pid) {
          s.pid = -1;
          throw std::runtime_error(fmt::format("zookeeper: server {} exited while starting; its log ends:\n{}", s.id,
                                               file_tail(s.log, 1500)));
        }
        auto reply = four_letter(s.client_port, "srvr", 200ms);
        auto mode = srvr_field(reply, "Mode");
        leaders += mode == "leader";
        followers += mode == "follower";
        if (version_.empty() && !mode.empty()) {
          auto v = srvr_field(reply, "Zookeeper version");
          version_ = v.substr(0, v.find_first_of("-,"));
        }
      }
      if (leaders == 1 && followers == 2) return;
      std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error(fmt::format("zookeeper: the ensemble did not come up (a leader and two followers); "
                                         "server 1's log ends:\n{}",
                                         file_tail(servers_[0].log, 1500)));
  }

  std::optional<std::size_t> find_leader(clock_type::duration timeout) const {
    auto until = clock_type::now() + timeout;
    do {
      for (std::size_t i = 0; i < servers_.size(); ++i) {
        if (mode_of(servers_[i].client_port) == "leader") return i;
      }
      std::this_thread::sleep_for(10ms);
    } while (clock_type::now() < until);
    return std::nullopt;
  }

  // Until server `i` follows again and the ensemble has a leader.
  bool wait_rejoined(std::size_t i, clock_type::duration timeout) const {
    auto until = clock_type::now() + timeout;
    while (clock_type::now() < until) {
      if (mode_of(servers_[i].client_port) == "follower" && find_leader(0s)) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  void shutdown() {
    contenders_.clear();
    for (auto& w : watchers_) w.reset();
    client_.reset();
    for (auto pid : children_) test::kill_pid(pid);
    children_.clear();
    for (auto& s : servers_) {
      test::kill_pid(s.pid);
      s.pid = -1;
    }
  }

  // ---- scenarios

  bool ensure_client() { return ensure_connected(client_, hosts_, timing_.client_session_ms); }

  // From the fault until the long-lived client's retried write is
  // acknowledged by a new leader: a lost connection makes the client library
  // try the next server, and the write goes through once a new leader has a
  // quorum. (A SIGTERMed leader may still commit a write or two while its JVM
  // exits; those do not count.)
  std::optional<double> leader_fault(int signal) override {
    new_leader_ms_.reset();
    auto old = find_leader(10s);
    if (!old || !ensure_client()) return std::nullopt;
    std::optional<std::int64_t> epoch;
    for (int i = 0; i < 3; ++i) epoch = write_epoch(client_.get(), "/bench-failover");
    if (!epoch) return std::nullopt;
    std::this_thread::sleep_for(300ms);
    auto start = clock_type::now();
    auto until = start + 30s;
    ::kill(servers_[*old].pid, signal);
    std::optional<double> leader_ms;
    std::thread poll([&] { leader_ms = poll_new_leader(*old, start, until); });
    std::optional<double> acked;
    if (write_until_acknowledged(*epoch, until)) acked = ms_since(start);
    poll.join();
    new_leader_ms_ = leader_ms;
    restore(*old, signal);
    return acked;
  }

  // Asks the other servers (srvr, 100 ms timeouts) until one says it leads.
  std::optional<double> poll_new_leader(std::size_t old, clock_type::time_point start, clock_type::time_point until) const {
    while (clock_type::now() < until) {
      for (std::size_t i = 0; i < servers_.size(); ++i) {
        if (i != old && mode_of(servers_[i].client_port) == "leader") return ms_since(start);
      }
      std::this_thread::sleep_for(2ms);
    }
    return std::nullopt;
  }

  // Retries the write until a leader of a later epoch than `old_epoch`
  // acknowledges it, as an application would retry on a connection loss or
  // timeout; a session that expired meanwhile is replaced (that time counts).
  bool write_until_acknowledged(std::int64_t old_epoch, clock_type::time_point until) {
    while (clock_type::now() < until) {
      if (!client_ || is_unrecoverable(client_.get()) != ZOK) client_ = start_session(hosts_, timing_.client_session_ms);
      auto epoch = client_ ? write_epoch(client_.get(), "/bench-failover") : std::nullopt;
      if (epoch && *epoch > old_epoch) return true;
      if (!epoch) std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  // The old leader back (same config and data), following the new one.
  void restore(std::size_t old, int signal) {
    auto& s = servers_[old];
    if (signal == SIGSTOP) {
      ::kill(s.pid, SIGCONT);
    } else {
      if (!test::wait_pid(s.pid, 10s)) test::kill_pid(s.pid);
      start(s);
    }
    wait_rejoined(old, 30s);
    std::this_thread::sleep_for(700ms);
  }

  // kill -9 of a session's owner until every server has told its own
  // watcher that the owner's ephemeral znode is gone: the session must time
  // out first (2 x tickTime, the servers' minimum), then the leader expires
  // it and every server applies the deletion.
  std::optional<double> worker_crash() override {
    const std::string node = "/bench-worker";
    if (!ensure_client()) return std::nullopt;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
      if (!ensure_connected(watchers_[i], servers_[i].address(), timing_.client_session_ms)) return std::nullopt;
    }
    // A failed trial's holder may still be expiring.
    if (!wait_until([&] { return !exists(client_.get(), node); }, 30s)) return std::nullopt;
    auto holder = spawn_holder(node);
    auto everywhere = [&] {
      return std::all_of(watchers_.begin(), watchers_.end(), [&](const handle& w) { return exists(w.get(), node); });
    };
    if (!wait_until(everywhere, 10s) || !deletion_.arm(watchers_, node)) {
      reap(holder);
      return std::nullopt;
    }
    worker_session_ms_ = negotiated_timeout(node);
    std::this_thread::sleep_for(300ms);
    auto start = clock_type::now();
    ::kill(holder, SIGKILL);
    auto gone = deletion_.wait_all(start + 30s);
    reap(holder);
    if (!gone) return std::nullopt;
    return ms_between(start, *gone);
  }

  // The session timeout the holder was granted (it stores it in its node).
  std::optional<int> negotiated_timeout(const std::string& node) {
    char data[32];
    int len = sizeof data - 1;
    if (zoo_get(client_.get(), node.c_str(), 0, data, &len, nullptr) != ZOK || len <= 0) return std::nullopt;
    return std::atoi(std::string(data, static_cast<std::size_t>(len)).c_str());
  }

  pid_t spawn_holder(const std::string& node) {
    auto pid = test::fork_exec(
        {self_exe_, "--zk-holder", hosts_, std::to_string(2 * timing_.tick_ms), node}, dir_ / "holder.log");
    children_.push_back(pid);
    return pid;
  }

  void reap(pid_t pid) {
    test::kill_pid(pid);
    children_.erase(std::remove(children_.begin(), children_.end(), pid), children_.end());
  }

  template <class Predicate>
  static bool wait_until(Predicate done, clock_type::duration timeout) {
    auto until = clock_type::now() + timeout;
    while (!done()) {
      if (clock_type::now() > until) return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }

  // Uncontended lock with the standard recipe: create an EPHEMERAL|SEQUENCE
  // child, list the children (it is the lowest: the lock is held), delete it.
  std::optional<double> lock_cycle() override {
    if (!ensure_client()) return std::nullopt;
    auto zh = client_.get();
    auto start = clock_type::now();
    char created[256];
    if (zoo_create(zh, "/bench-lock/lock-", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, created,
                   sizeof created) != ZOK) {
      return std::nullopt;
    }
    auto children = lock_queue(zh, "/bench-lock");
    bool held = children && !children->empty() && "/bench-lock/" + children->front() == created;
    if (zoo_delete(zh, created, -1) != ZOK || !held) return std::nullopt;
    return ms_since(start);
  }

  // Four contenders queued on one lock: from the start of the holder's
  // delete until the next contender's check of the children finds its node
  // lowest. The released one queues again at the back.
  std::optional<double> lock_handoff() override {
    if (contenders_.empty() && !queue_contenders()) {
      contenders_.clear();
      return std::nullopt;
    }
    auto released = contenders_[0]->release(5s);
    auto acquired = contenders_[1]->wait_holding(5s);
    if (!released || !acquired || !contenders_[0]->wait_queued(5s)) {
      contenders_.clear();
      return std::nullopt;
    }
    std::rotate(contenders_.begin(), contenders_.begin() + 1, contenders_.end());
    return ms_between(*released, *acquired);
  }

  // Four contenders, queued in order; the first holds the lock.
  bool queue_contenders() {
    for (int i = 0; i < 4; ++i) {
      auto zh = open_session(hosts_, timing_.client_session_ms, 10s);
      if (!zh) return false;
      contenders_.push_back(std::make_unique<contender>(std::move(zh), "/bench-handoff"));
      if (!contenders_.back()->wait_queued(10s)) return false;
    }
    return contenders_[0]->wait_holding(5s).has_value();
  }

  std::optional<double> one_write() override {
    if (!ensure_client()) return std::nullopt;
    auto start = clock_type::now();
    if (!write_value(client_.get(), "/bench-write")) return std::nullopt;
    return ms_since(start);
  }

  const std::string timing_name_;
  const timing timing_;
  const std::string self_exe_;
  std::string java_, version_, hosts_;
  test::temp_dir dir_;  // configs, data and logs; outlives the processes
  std::vector<server> servers_;
  std::vector<pid_t> children_;  // session holders and swarms
  handle client_;                // long-lived, on any server
  std::array<handle, 3> watchers_;  // one per server, on that server alone
  deletion_watch deletion_;
  std::vector<std::unique_ptr<contender>> contenders_;
  std::optional<double> new_leader_ms_;
  std::optional<int> worker_session_ms_;  // as negotiated by the last holder
};

// `clients` closed-loop writers, each its own session on any server, each
// sending its next write when the previous one was acknowledged.
throughput zookeeper_system::writes(int clients, double seconds) {
  throughput out;
  out.clients = clients;
  std::vector<handle> sessions;
  for (int i = 0; i < clients; ++i) sessions.push_back(start_session(hosts_, timing_.client_session_ms));
  auto until = clock_type::now() + 10s;
  for (auto& s : sessions) {
    if (!s || !wait_connected(s.get(), until)) {
      out.errors = static_cast<std::size_t>(clients);
      return out;
    }
  }
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::vector<std::size_t> acked(latencies.size()), errors(latencies.size());
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  clock_type::time_point start, end;
  std::vector<std::thread> threads;
  for (std::size_t who = 0; who < latencies.size(); ++who) {
    threads.emplace_back([&, who] {
      auto zh = sessions[who].get();
      // Each writer's 64 znodes exist before the clock starts.
      auto dir = "/bench-load/" + std::to_string(who);
      create_node(zh, dir);
      for (int k = 0; k < 64; ++k) create_node(zh, dir + "/" + std::to_string(k));
      ++ready;
      while (!go.load(std::memory_order_acquire)) std::this_thread::sleep_for(100us);
      for (std::uint64_t n = 0; clock_type::now() < end; ++n) {
        auto t = clock_type::now();
        bool ok = write_value(zh, dir + "/" + std::to_string(n % 64));
        latencies[who].push_back(ms_since(t));
        ++(ok ? acked[who] : errors[who]);
      }
    });
  }
  while (ready < clients) std::this_thread::sleep_for(1ms);
  start = clock_type::now();
  end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  double elapsed_s = ms_since(start) / 1000.0;
  std::size_t total = 0;
  for (std::size_t who = 0; who < latencies.size(); ++who) {
    out.latency_ms.insert(out.latency_ms.end(), latencies[who].begin(), latencies[who].end());
    total += acked[who];
    out.errors += errors[who];
  }
  out.writes_per_s = static_cast<double>(total) / elapsed_s;
  return out;
}

// `sessions` sessions from swarm processes of up to 2,500 sessions each,
// spread round-robin over the servers; over `seconds`, the leader's CPU; then
// the worker-crash detection time under that load (its holder keeps the
// shortest session, 2 x tickTime).
//
// The swarm's sessions time out after 2 s, the session TTL of conclave's
// workers (or ZooKeeper's minimum, when longer), so each pings every 667 ms.
// With the 400 ms minimum at tickTime 200 they would ping every 133 ms, and
// on this 2-core machine the servers then cannot keep 10,000 alive: about
// 70% expired within a 5 s window (2,000 held; 5,000 lost a few dozen, and
// far more while other jobs loaded the machine).
std::optional<scale_result> zookeeper_system::scale(int sessions, double seconds) {
  auto leader = find_leader(10s);
  if (!leader) return std::nullopt;
  const int timeout_ms = std::max(2000, 2 * timing_.tick_ms);
  constexpr int per_process = 2500;
  int processes = std::max(1, (sessions + per_process - 1) / per_process);
  std::vector<std::pair<pid_t, std::string>> swarms;
  for (int p = 0; p < processes; ++p) {
    int count = sessions / processes + (p < sessions % processes ? 1 : 0);
    auto out = dir_ / fmt::format("swarm-{}.out", p);
    std::remove(out.c_str());
    auto pid = test::fork_exec({self_exe_, "--zk-holder", "swarm", hosts_, std::to_string(count),
                                std::to_string(timeout_ms), out},
                               dir_ / fmt::format("swarm-{}.log", p));
    children_.push_back(pid);
    swarms.emplace_back(pid, out);
  }
  auto registered = [&] {
    return std::all_of(swarms.begin(), swarms.end(),
                       [](const auto& s) { return file_tail(s.second, 4096).find("registered") != std::string::npos; });
  };
  bool up = wait_until(registered, 120s);
  scale_result r;
  r.sessions = sessions;
  r.interval_ms = timeout_ms / 3.0;
  if (up) {
    std::this_thread::sleep_for(1s);
    auto leader_pid = servers_[*leader].pid;
    auto cpu0 = test::cpu_seconds(leader_pid);
    auto t0 = clock_type::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    r.leader_cpu_pct = 100.0 * (test::cpu_seconds(leader_pid) - cpu0) / (ms_since(t0) / 1000.0);
    if (auto d = worker_crash()) r.detect_ms = *d;
  }
  std::vector<std::string> reports;
  for (auto& [pid, out] : swarms) {
    ::kill(pid, SIGUSR1);
    if (!test::wait_pid(pid, 30s)) test::kill_pid(pid);
    children_.erase(std::remove(children_.begin(), children_.end(), pid), children_.end());
    reports.push_back(file_tail(out, 4096));
  }
  if (!up) return std::nullopt;
  add_heartbeat_reports(reports, r);
  return r;
}

}  // namespace

std::unique_ptr<system_under_test> make_zookeeper(const std::string& timing, const std::string& self_exe) {
  return std::make_unique<zookeeper_system>(timing, self_exe);
}

// `--zk-holder HOSTS SESSION_MS ZNODE`: opens a session asking for
// SESSION_MS, creates ZNODE as an ephemeral node holding the negotiated
// timeout, and waits to be killed (or for its parent to die).
// `--zk-holder swarm HOSTS COUNT SESSION_MS OUT`: COUNT sessions kept alive
// until SIGUSR1 (see swarm).
int zookeeper_holder_main(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 1;
  if (argc == 6 && std::string(argv[1]) == "swarm") return swarm_main(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), argv[5]);
  if (argc != 4) {
    std::fprintf(stderr, "usage: --zk-holder HOSTS SESSION_MS ZNODE | --zk-holder swarm HOSTS COUNT SESSION_MS OUT\n");
    return 2;
  }
  auto zh = open_session(argv[1], std::atoi(argv[2]), 10s);
  if (!zh) {
    std::fprintf(stderr, "zk-holder: no session on %s\n", argv[1]);
    return 1;
  }
  auto negotiated = std::to_string(zoo_recv_timeout(zh.get()));
  int rc = zoo_create(zh.get(), argv[3], negotiated.data(), static_cast<int>(negotiated.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, nullptr, 0);
  if (rc != ZOK) {
    std::fprintf(stderr, "zk-holder: create %s: %s\n", argv[3], zerror(rc));
    return 1;
  }
  std::fprintf(stderr, "zk-holder: holding %s, session timeout %s ms\n", argv[3], negotiated.c_str());
  for (;;) ::pause();
}

}  // namespace conclave::bench
