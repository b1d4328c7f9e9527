// TLS on every link (README "TLS") on real processes: a throwaway CA made
// with the openssl command, a master with TLS on the native links (workers,
// conclavectl), the etcd API (client-listen) and the HTTP listener
// (http-listen), on one master and on three (TLS between masters too).
// Clients with a certificate from the CA get in; clients
// without one, or with one from another CA, are refused; and a recording
// proxy shows that what was written does not cross the wire in the clear
// (while, as the control, it does on a cluster without TLS).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <set>

#include "roles/registry_reads.hpp"
#include "test/etcd_masters.hpp"
#include "test/certificates.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

std::string etcdctl_binary() { return program("CONCLAVE_ETCDCTL", "/usr/bin/etcdctl"); }
std::string curl_binary() { return program("CONCLAVE_CURL", "/usr/bin/curl"); }
bool runnable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Runs `args`; its exit code (-1: killed or timed out) and its output.
std::pair<int, std::string> run(std::vector<std::string> args, const std::string& log) {
  auto pid = fork_exec(std::move(args), log);
  auto status = wait_pid(pid, 60s);
  if (!status) kill_pid(pid);
  return {status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, file_text(log)};
}

// A TCP proxy on loopback to `to` that records every byte it forwards, both ways.
class recording_proxy {
 public:
  explicit recording_proxy(std::uint16_t to) : to_(to) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    threads_.emplace_back([this] { accept_loop(); });
  }

  ~recording_proxy() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    ::close(listener_);
  }

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string recorded() {
    std::lock_guard<std::mutex> guard(mutex_);
    return bytes_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int in = ::accept(listener_, nullptr, nullptr);
      if (in < 0) continue;
      int out = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(to_);
      if (::connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(in);
        ::close(out);
        continue;
      }
      std::lock_guard<std::mutex> guard(mutex_);
      threads_.emplace_back([this, in, out] { forward(in, out); });
    }
  }

  // Copies both ways until either side closes (or the proxy stops).
  void forward(int a, int b) {
    char buf[16384];
    while (!stop_) {
      pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        auto n = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (n <= 0) {
          closed = true;
          break;
        }
        {
          std::lock_guard<std::mutex> guard(mutex_);
          bytes_.append(buf, static_cast<std::size_t>(n));
        }
        for (ssize_t sent = 0; sent < n;) {
          auto w = ::send(p[1 - i].fd, buf + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
          if (w <= 0) {
            closed = true;
            break;
          }
          sent += w;
        }
      }
      if (closed) break;
    }
    ::close(a);
    ::close(b);
  }

  std::uint16_t to_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;  // guards bytes_ and threads_ (added to by the accept loop)
  std::string bytes_;
  std::vector<std::thread> threads_;
};

struct tls_cluster : etcd_masters {
  const certificates* certs;  // null: no TLS
  explicit tls_cluster(const certificates* with, std::uint64_t masters = 1)
      : etcd_masters(with ? with->master_flags() : std::vector<std::string>{}, true,
                     with ? with->client_files() : tls_files{}, masters),
        certs(with) {}

  std::string scheme() const { return certs ? "https://" : "http://"; }
  std::string masters() const {
    std::string all;
    for (const auto& m : c->members()) all += (all.empty() ? "" : ",") + m.address.text();
    return all;
  }

  // conclavectl at `endpoints` with a certificate and key (empty: none), trusting the CA.
  std::pair<int, std::string> conclavectl(const std::string& endpoints, const std::string& cert,
                                          const std::string& key, std::vector<std::string> args) {
    std::vector<std::string> all = {conclavectl_binary(), "--endpoints", endpoints, "--cluster-id", c->cluster_id};
    if (!cert.empty()) all.insert(all.end(), {"--cert-file", cert, "--key-file", key, "--trusted-ca-file", certs->ca});
    all.insert(all.end(), args.begin(), args.end());
    return run(all, c->path("ctl-" + std::to_string(++runs) + ".log"));
  }

  // A `-r worker` named `name` with the client certificate, its output in worker.log.
  void start_worker(const std::string& name) {
    c->spawn({c->binary(), "-r", "worker", "--name", name, "--peers", c->peers(), "--cluster-id", c->cluster_id,
              "--peer-cert-file", certs->client, "--peer-key-file", certs->client_key, "--peer-trusted-ca-file",
              certs->ca},
             "worker.log");
  }

  // etcdctl at `endpoints` (URLs), with `tls` flags (--cacert, --cert, --key).
  std::pair<int, std::string> etcdctl(const std::string& endpoints, std::vector<std::string> tls,
                                      std::vector<std::string> args) {
    std::vector<std::string> all = {"/usr/bin/env", "ETCDCTL_API=3", etcdctl_binary(), "--endpoints", endpoints,
                                    "--dial-timeout", "3s", "--command-timeout", "10s"};
    all.insert(all.end(), tls.begin(), tls.end());
    all.insert(all.end(), args.begin(), args.end());
    return run(all, c->path("etcdctl-" + std::to_string(++runs) + ".log"));
  }

  // curl POSTs `body` to `url`, with `tls` flags; the exit code and the body answered.
  std::pair<int, std::string> curl(const std::string& url, const std::string& body, std::vector<std::string> tls) {
    std::vector<std::string> all = {curl_binary(), "-s", "-S", "-m", "20", "-X", "POST", "--data-binary", body};
    all.insert(all.end(), tls.begin(), tls.end());
    all.push_back(url);
    return run(all, c->path("curl-" + std::to_string(++runs) + ".log"));
  }

  std::vector<std::string> etcdctl_tls(const std::string& cert, const std::string& key) const {
    if (!certs) return {};
    std::vector<std::string> f{"--cacert", certs->ca};
    if (!cert.empty()) f.insert(f.end(), {"--cert", cert, "--key", key});
    return f;
  }
  std::vector<std::string> curl_tls(const std::string& cert, const std::string& key) const {
    if (!certs) return {};
    std::vector<std::string> f{"--cacert", certs->ca};
    if (!cert.empty()) f.insert(f.end(), {"--cert", cert, "--key", key});
    return f;
  }
  std::string client_cert() const { return certs ? certs->client : std::string(); }
  std::string client_key() const { return certs ? certs->client_key : std::string(); }

  int runs = 0;
};

// What a recording proxy in front of master 1 saw while a native client
// (conclavectl), etcdctl (gRPC) and curl (HTTP) each wrote a value through
// it, by path; each write must have succeeded.
struct captured {
  std::string native, grpc, http;
};
std::map<std::string, std::string> written = {
    {"native", "native-value-7f3a9c"}, {"grpc", "grpc-value-5e1b2d"}, {"http", "http-value-0c8e4f"}};

captured write_through_proxies(tls_cluster& e) {
  captured got;
  auto port_of = [](const std::string& address) {
    return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  };
  {
    recording_proxy p(e.c->at(1).address.port);
    auto [code, out] = e.conclavectl(p.address(), e.client_cert(), e.client_key(), {"put", "wire/native", written["native"]});
    REQUIRE_MESSAGE(code == 0, out << e.logs());
    got.native = p.recorded();
  }
  {
    recording_proxy p(port_of(e.client[1]));
    auto [code, out] = e.etcdctl(e.scheme() + p.address(), e.etcdctl_tls(e.client_cert(), e.client_key()),
                                 {"put", "wire/grpc", written["grpc"]});
    REQUIRE_MESSAGE(code == 0, out);
    got.grpc = p.recorded();
  }
  {
    recording_proxy p(port_of(e.http[1]));
    auto body = "{\"key\":\"" + base64("wire/http") + "\",\"value\":\"" + base64(written["http"]) + "\"}";
    auto [code, out] = e.curl(e.scheme() + p.address() + "/v3/kv/put", body, e.curl_tls(e.client_cert(), e.client_key()));
    REQUIRE_MESSAGE(code == 0, out);
    CHECK_MESSAGE(out.find("\"revision\"") != std::string::npos, out);
    got.http = p.recorded();
  }
  // Each write went through (the proxies carried real traffic).
  auto k = ask(e.c->client(), registry::list_prefix{"wire/"}, 10s);
  REQUIRE(k);
  CHECK(k->keys.size() == 3);
  return got;
}

bool contains(const std::string& bytes, const std::string& what) { return bytes.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("with TLS on every link of a master, clients with the CA's certificates get in and the others are refused") {
  for (const auto& tool : {openssl_binary(), etcdctl_binary(), curl_binary()}) {
    if (!runnable(tool)) CONCLAVE_SKIP("no " + tool + " (setup.sh installs it)");
  }
  certificates certs;
  REQUIRE_MESSAGE(certs.failure.empty(), certs.failure);
  tls_cluster e(&certs);
  auto leader = e.c->wait_for_leader(30s);
  REQUIRE_MESSAGE(leader, e.logs());
  CHECK(e.logs().find("(TLS)") != std::string::npos);

  // The native protocol: conclavectl with the client certificate writes and reads.
  auto [code, out] = e.conclavectl(e.masters(), certs.client, certs.client_key, {"put", "k", "over-tls"});
  REQUIRE_MESSAGE(code == 0, out << e.logs());
  std::tie(code, out) = e.conclavectl(e.masters(), certs.client, certs.client_key, {"get", "k"});
  CHECK(code == 0);
  CHECK_MESSAGE(contains(out, "over-tls"), out);

  // A worker with a certificate from the CA registers.
  e.start_worker("tls-worker");
  std::set<std::string> members;
  for (auto until = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < until;) {
    if (auto r = ask(e.c->client(), registry::members_query{registry::member_status::alive}, 2s)) {
      members.clear();
      for (const auto& m : r->members) members.insert(m.id);
    }
    if (members.count("tls-worker")) break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK_MESSAGE(members.count("tls-worker") == 1, file_text(e.c->path("worker.log")));

  // etcd's API: etcdctl over TLS with the client certificate.
  auto urls = "https://" + e.client[1];
  std::tie(code, out) = e.etcdctl(urls, e.etcdctl_tls(certs.client, certs.client_key), {"put", "e", "via-grpc"});
  CHECK_MESSAGE(code == 0, out);
  std::tie(code, out) = e.etcdctl(urls, e.etcdctl_tls(certs.client, certs.client_key), {"get", "e", "--print-value-only"});
  CHECK(code == 0);
  CHECK(out == "via-grpc\n");
  // The HTTP listener: curl over https reads it back (etcd's JSON gateway).
  std::tie(code, out) = e.curl("https://" + e.http[1] + "/v3/kv/range", "{\"key\":\"" + base64("e") + "\"}",
                               e.curl_tls(certs.client, certs.client_key));
  CHECK(code == 0);
  CHECK_MESSAGE(contains(out, base64("via-grpc")), out);

  // Refused: no certificate, or one from another CA, on every kind of link.
  std::tie(code, out) = e.conclavectl(e.masters(), "", "", {"get", "k"});
  CHECK(code == 3);
  CHECK_MESSAGE(contains(out, "TLS"), out);
  std::tie(code, out) = e.conclavectl(e.masters(), certs.rogue, certs.rogue_key, {"put", "k", "rogue"});
  CHECK(code == 3);
  CHECK_MESSAGE(contains(out, "TLS"), out);
  std::tie(code, out) = e.etcdctl(urls, e.etcdctl_tls("", ""), {"put", "k2", "no-cert"});
  CHECK_MESSAGE(code != 0, out);
  std::tie(code, out) = e.etcdctl(urls, e.etcdctl_tls(certs.rogue, certs.rogue_key), {"put", "k2", "rogue"});
  CHECK_MESSAGE(code != 0, out);
  std::tie(code, out) = e.curl("https://" + e.http[1] + "/v3/kv/range", "{\"key\":\"" + base64("e") + "\"}",
                               e.curl_tls("", ""));
  CHECK_MESSAGE(code != 0, out);
  std::tie(code, out) = e.curl("https://" + e.http[1] + "/v3/kv/range", "{\"key\":\"" + base64("e") + "\"}",
                               e.curl_tls(certs.rogue, certs.rogue_key));
  CHECK_MESSAGE(code != 0, out);
  // A client without TLS does not get through to a master's native port either.
  {
    caf::actor_system plain{client_config()};
    raft_client stranger(plain, e.c->cluster_id, {e.c->at(1).address});
    CHECK_FALSE(stranger.status(e.c->at(1).address));
  }
  // Nothing refused was written.
  auto k = ask(e.c->client(), registry::get_key{"k"}, 10s);
  REQUIRE(k);
  REQUIRE(k->value);
  CHECK(k->value->value == "over-tls");
  auto k2 = ask(e.c->client(), registry::get_key{"k2"}, 10s);
  REQUIRE(k2);
  CHECK_FALSE(k2->value);

  // Connections made anew over TLS after the master restarts: the worker's
  // heartbeats get through again (it stays alive) and conclavectl reads.
  e.c->signal(1, SIGKILL);
  e.c->start(1);
  REQUIRE_MESSAGE(e.c->wait_for_leader(30s), e.logs());
  // Past the session TTL (2 s): a worker whose heartbeats did not get through would be dead by then.
  std::this_thread::sleep_for(5s);
  auto after = ask(e.c->client(), registry::members_query{registry::member_status::alive}, 10s);
  REQUIRE(after);
  CHECK_MESSAGE(std::any_of(after->members.begin(), after->members.end(),
                            [](const registry::member& m) { return m.id == "tls-worker"; }),
                file_text(e.c->path("worker.log")));
  std::tie(code, out) = e.conclavectl(e.masters(), certs.client, certs.client_key, {"get", "k"});
  CHECK(code == 0);
  CHECK_MESSAGE(contains(out, "over-tls"), out);
}

// OpenSSL's rule that a thread's error queue is empty before an SSL call
// (roles/peer_tls.cpp): without it, every connection that ended or was
// refused made the master drop the other connections it served.
TEST_CASE("with TLS, clients that come and go or are refused break no other connection of the master") {
  if (!runnable(openssl_binary())) CONCLAVE_SKIP("no openssl (setup.sh installs it)");
  certificates certs;
  REQUIRE_MESSAGE(certs.failure.empty(), certs.failure);
  tls_cluster e(&certs);
  REQUIRE_MESSAGE(e.c->wait_for_leader(30s), e.logs());
  e.start_worker("steady-worker");
  bool joined = false;
  for (auto until = std::chrono::steady_clock::now() + 20s; !joined && std::chrono::steady_clock::now() < until;) {
    joined = contains(file_text(e.c->path("worker.log")), "steady-worker: registered");
    if (!joined) std::this_thread::sleep_for(50ms);
  }
  REQUIRE_MESSAGE(joined, file_text(e.c->path("worker.log")) << e.logs());
  for (int i = 0; i < 4; ++i) {
    auto [code, out] = e.conclavectl(e.masters(), certs.client, certs.client_key, {"put", "k", std::to_string(i)});
    CHECK_MESSAGE(code == 0, out);
  }
  auto [code, out] = e.conclavectl(e.masters(), certs.rogue, certs.rogue_key, {"get", "k"});
  CHECK(code == 3);
  // The worker's connection, which carries its session, never broke.
  CHECK_MESSAGE(!contains(e.c->log_of(1), "a client connection carrying"), e.logs());
}

TEST_CASE("three masters with TLS between them elect a leader that holds, commit writes and elect anew when it dies") {
  if (!runnable(openssl_binary())) CONCLAVE_SKIP("no openssl (setup.sh installs it)");
  certificates certs;
  REQUIRE_MESSAGE(certs.failure.empty(), certs.failure);
  tls_cluster e(&certs, 3);
  auto leader = e.c->wait_for_leader(30s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto first = e.c->status(*leader);
  REQUIRE(first);
  auto losses = [&] {
    auto all = e.logs();
    std::size_t n = 0;
    for (auto at = all.find("lost the connection"); at != std::string::npos; at = all.find("lost the connection", at + 1)) ++n;
    return n;
  };
  // Nothing fails: the leader keeps its term and no master loses a link to
  // another (a connection crossing another at start may have been lost before).
  auto lost_before = losses();
  std::this_thread::sleep_for(10s);
  auto held = e.c->status(*leader);
  REQUIRE_MESSAGE(held, e.logs());
  CHECK_MESSAGE(held->role == "leader", e.logs());
  CHECK_MESSAGE(held->term == first->term, e.logs());
  CHECK_MESSAGE(losses() == lost_before, e.logs());

  auto [code, out] = e.conclavectl(e.masters(), certs.client, certs.client_key, {"put", "k", "between-masters"});
  REQUIRE_MESSAGE(code == 0, out << e.logs());
  // A worker with a certificate from the CA registers.
  e.start_worker("tls-worker");
  bool joined = false;
  for (auto until = std::chrono::steady_clock::now() + 20s; !joined && std::chrono::steady_clock::now() < until;) {
    if (auto r = ask(e.c->client(), registry::members_query{registry::member_status::alive}, 2s)) {
      joined = std::any_of(r->members.begin(), r->members.end(),
                           [](const registry::member& m) { return m.id == "tls-worker"; });
    }
    if (!joined) std::this_thread::sleep_for(50ms);
  }
  CHECK_MESSAGE(joined, file_text(e.c->path("worker.log")) << e.logs());

  // The leader dies: the other two elect one of them over TLS and commit.
  e.c->signal(*leader, SIGKILL);
  auto next = e.c->wait_for_leader(30s, *leader);
  REQUIRE_MESSAGE(next, e.logs());
  CHECK(*next != *leader);
  std::tie(code, out) = e.conclavectl(e.masters(), certs.client, certs.client_key, {"put", "k2", "after-failover"});
  CHECK_MESSAGE(code == 0, out << e.logs());
  std::tie(code, out) = e.conclavectl(e.masters(), certs.client, certs.client_key, {"get", "k"});
  CHECK(code == 0);
  CHECK_MESSAGE(contains(out, "between-masters"), out);
}

TEST_CASE("with TLS the values written cross the wire encrypted; without TLS they are in the clear (the control)") {
  for (const auto& tool : {openssl_binary(), etcdctl_binary(), curl_binary()}) {
    if (!runnable(tool)) CONCLAVE_SKIP("no " + tool + " (setup.sh installs it)");
  }
  certificates certs;
  REQUIRE_MESSAGE(certs.failure.empty(), certs.failure);
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    tls_cluster e(tls ? &certs : nullptr);
    REQUIRE_MESSAGE(e.c->wait_for_leader(30s), e.logs());
    auto got = write_through_proxies(e);
    CHECK(!got.native.empty());
    CHECK(!got.grpc.empty());
    CHECK(!got.http.empty());
    // The HTTP API carries values in base64.
    CHECK(contains(got.native, written["native"]) == !tls);
    CHECK(contains(got.native, "wire/native") == !tls);
    CHECK(contains(got.grpc, written["grpc"]) == !tls);
    CHECK(contains(got.http, base64(written["http"])) == !tls);
  }
}

TEST_CASE("a bad TLS setting is refused at start with exit code 2, naming the setting") {
  if (!runnable(openssl_binary())) CONCLAVE_SKIP("no openssl (setup.sh installs it)");
  certificates certs;
  REQUIRE_MESSAGE(certs.failure.empty(), certs.failure);
  temp_dir dir;
  std::string garbage = dir / "garbage.pem";
  std::ofstream(garbage) << "not a certificate\n";
  auto start = [&](std::vector<std::string> flags) {
    std::vector<std::string> all = {conclave_binary(), "-r", "master", "--id", "1", "--cluster-id", "tls",
                                    "--data-dir", dir / "data", "--client-listen", "127.0.0.1:0"};
    if (std::find(flags.begin(), flags.end(), "--peers") == flags.end()) all.insert(all.end(), {"--peers", "1=127.0.0.1:1"});
    all.insert(all.end(), flags.begin(), flags.end());
    return run(all, dir / "conclave.log");
  };
  struct bad_case {
    std::vector<std::string> flags;
    std::string names;
  };
  std::vector<bad_case> cases = {
      {{"--peer-cert-file", certs.node, "--peer-trusted-ca-file", certs.ca}, "peer-cert-file: set without peer-key-file"},
      {{"--peer-cert-file", certs.node, "--peer-key-file", dir / "missing.key", "--peer-trusted-ca-file", certs.ca},
       "peer-key-file: cannot read"},
      {{"--peer-cert-file", certs.node, "--peer-key-file", certs.client_key, "--peer-trusted-ca-file", certs.ca},
       "peer-key-file: " + certs.client_key + " is not the private key"},
      {{"--peer-cert-file", certs.node, "--peer-key-file", certs.node_key}, "peer-trusted-ca-file: must be set"},
      {{"--peer-cert-file", garbage, "--peer-key-file", certs.node_key, "--peer-trusted-ca-file", certs.ca},
       "peer-cert-file: " + garbage + " holds no usable PEM certificate"},
      {{"--cert-file", certs.node, "--key-file", certs.node_key, "--trusted-ca-file", dir / "missing-ca.crt"},
       "trusted-ca-file: cannot read"},
      {{"--cert-file", certs.node, "--key-file", certs.node_key, "--trusted-ca-file", garbage},
       "trusted-ca-file: " + garbage + " holds no usable PEM CA certificate"},
      {{"--cert-file", certs.node, "--key-file", certs.client_key}, "key-file: " + certs.client_key + " is not"},
      {{"--key-file", certs.node_key}, "key-file: set without cert-file"},
      {{"--cert-file", certs.node, "--key-file", certs.node_key, "--client-cert-auth", "true"},
       "client-cert-auth: needs trusted-ca-file"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.names);
    std::remove((dir / "conclave.log").c_str());
    auto [code, out] = start(c.flags);
    CHECK(code == 2);
    CHECK_MESSAGE(contains(out, c.names), out);
  }
  // conclavectl too: its TLS flags are checked before it connects.
  auto [code, out] = run({conclavectl_binary(), "--endpoints", "127.0.0.1:1", "--cluster-id", "tls", "--cert-file",
                          certs.client, "--key-file", certs.node_key, "--trusted-ca-file", certs.ca, "get", "k"},
                         dir / "ctl.log");
  CHECK(code == 2);
  CHECK_MESSAGE(contains(out, "--key-file: " + certs.node_key + " is not the private key"), out);
}
