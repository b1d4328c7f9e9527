// etcd driver of conclave-bench: see etcd_system.hpp. Every request goes
// through etcd's v3 JSON gateway (grpc-gateway over HTTP/1.1); keys, values
// and lock names travel as base64, 64-bit integers as JSON strings.
#include "bench/etcd_system.hpp"

#include <curl/curl.h>
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>

#include "bench/closed_loop.hpp"
#include "bench/watch.hpp"
#include "test/processes.hpp"
#include "test/temp_dir.hpp"

namespace conclave::bench {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

double ms_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double ms_since(clock_type::time_point t) { return ms_between(t, clock_type::now()); }

// ---------------------------------------------------------------------------
// JSON and base64, as far as the gateway's answers need them.

std::string base64(std::string_view in) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < in.size(); i += 3) {
    std::size_t n = std::min<std::size_t>(3, in.size() - i);
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 3; ++k) v = (v << 8) | (k < n ? static_cast<unsigned char>(in[i + k]) : 0u);
    // n bytes give n + 1 digits, padded with '=' to four.
    for (std::size_t k = 0; k < 4; ++k) out += k <= n ? digits[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

// The bytes of base64 text (what is not a base64 digit ends it).
std::string unbase64(std::string_view in) {
  auto digit = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  std::uint32_t v = 0;
  int bits = 0;
  for (char c : in) {
    int d = digit(c);
    if (d < 0) break;
    v = (v << 6) | static_cast<std::uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 0xff);
    }
  }
  return out;
}

// The value of the first `"field":` in `json`: a string's contents, or a
// number or literal as written. The gateway writes compact JSON, and the
// fields read here (base64, digits, versions) hold no escapes.
std::optional<std::string> json_field(std::string_view json, std::string_view field) {
  std::string pattern = fmt::format("\"{}\":", field);
  auto p = json.find(pattern);
  if (p == std::string_view::npos) return std::nullopt;
  p += pattern.size();
  if (p < json.size() && json[p] == '"') {
    auto end = json.find('"', p + 1);
    if (end == std::string_view::npos) return std::nullopt;
    return std::string(json.substr(p + 1, end - p - 1));
  }
  auto end = json.find_first_of(",}]", p);
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(json.substr(p, end - p));
}

// An integer field; proto3 leaves zeros out, so a missing field is 0.
std::uint64_t json_u64(std::string_view json, std::string_view field) {
  auto v = json_field(json, field);
  return v ? std::strtoull(v->c_str(), nullptr, 10) : 0;
}

// ---------------------------------------------------------------------------
// HTTP: one long-lived libcurl easy handle keeps one keep-alive connection
// per member it talks to. A handle is used by one thread at a time.

class http {
 public:
  http() {
    // Thread-safe since libcurl 7.84; once per process.
    static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    curl_ = initialized ? curl_easy_init() : nullptr;
    if (!curl_) throw std::runtime_error("libcurl could not be initialized");
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &http::on_write);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &http::on_progress);
  }
  ~http() {
    curl_easy_cleanup(curl_);
    curl_slist_free_all(headers_);
  }
  http(const http&) = delete;
  http& operator=(const http&) = delete;

  using sink = std::function<bool(std::string_view)>;

  // POSTs `body` to `url` and hands each piece of the answer to `take`
  // until it returns false. True when the server answered 200 and the
  // transfer ended normally or by `take`. `timeout` 0 means none; a set
  // `cancel` ends the transfer within about a second.
  bool stream(const std::string& url, const std::string& body, milliseconds timeout, const sink& take,
              const std::atomic<bool>* cancel = nullptr) {
    transfer t{&take, cancel};
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, cancel ? 0L : 1L);
    CURLcode rc = curl_easy_perform(curl_);
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    return status == 200 && (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && t.stopped));
  }

  // POSTs `body` to `url`: the answer, when the server answered 200 in time.
  std::optional<std::string> post(const std::string& url, const std::string& body, milliseconds timeout,
                                  const std::atomic<bool>* cancel = nullptr) {
    std::string answer;
    sink take = [&](std::string_view piece) {
      answer += piece;
      return true;
    };
    if (!stream(url, body, timeout, take, cancel)) return std::nullopt;
    return answer;
  }

 private:
  struct transfer {
    const sink* take;
    const std::atomic<bool>* cancel;
    bool stopped = false;
  };

  static std::size_t on_write(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<transfer*>(user);
    if ((*t->take)(std::string_view(data, size * n))) return size * n;
    t->stopped = true;
    return 0;  // ends the transfer
  }

  static int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<transfer*>(user);
    return t->cancel && t->cancel->load() ? 1 : 0;
  }

  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
};

// ---------------------------------------------------------------------------
// The v3 calls used here. `url` is a member's client URL.

struct member_status {
  std::uint64_t member_id = 0;
  std::uint64_t leader = 0;  // 0: this member knows no leader
  std::string version;
  std::uint64_t raft_term = 0;
};

std::optional<member_status> status_call(http& h, const std::string& url, milliseconds timeout) {
  auto r = h.post(url + "/v3/maintenance/status", "{}", timeout);
  if (!r) return std::nullopt;
  // header.member_id is the first member_id of the answer.
  member_status s{json_u64(*r, "member_id"), json_u64(*r, "leader"), json_field(*r, "version").value_or("?"),
                  json_u64(*r, "raft_term")};
  if (s.member_id == 0) return std::nullopt;
  return s;
}

// A put is acknowledged once committed by a majority (each fsyncs its WAL).
bool put_call(http& h, const std::string& url, const std::string& key, const std::string& value,
              milliseconds timeout, const std::string& lease = "") {
  auto on_lease = lease.empty() ? std::string() : fmt::format(R"(,"lease":"{}")", lease);
  auto body = fmt::format(R"({{"key":"{}","value":"{}"{}}})", base64(key), base64(value), on_lease);
  return h.post(url + "/v3/kv/put", body, timeout).has_value();
}

// A put that answers with the store's revision after it.
std::optional<std::uint64_t> put_revision_call(http& h, const std::string& url, const std::string& key,
                                               const std::string& value, milliseconds timeout) {
  auto body = fmt::format(R"({{"key":"{}","value":"{}"}})", base64(key), base64(value));
  auto r = h.post(url + "/v3/kv/put", body, timeout);
  if (!r) return std::nullopt;
  return json_u64(*r, "revision");
}

// The value under `key`, still in base64, or "" when there is none.
std::optional<std::string> value_b64_call(http& h, const std::string& url, const std::string& key,
                                          milliseconds timeout) {
  auto r = h.post(url + "/v3/kv/range", fmt::format(R"({{"key":"{}"}})", base64(key)), timeout);
  if (!r) return std::nullopt;
  return json_field(*r, "value").value_or("");
}

// How many keys start with `prefix` (whose last byte is below 0xff).
std::optional<std::uint64_t> count_call(http& h, const std::string& url, const std::string& prefix,
                                        milliseconds timeout) {
  auto end = prefix;
  ++end.back();
  auto body = fmt::format(R"({{"key":"{}","range_end":"{}","count_only":true}})", base64(prefix), base64(end));
  auto r = h.post(url + "/v3/kv/range", body, timeout);
  if (!r) return std::nullopt;
  return json_u64(*r, "count");
}

struct lease {
  std::string id;
  long ttl_s = 0;  // as granted: etcd raises a TTL below its minimum
};

std::optional<lease> grant_call(http& h, const std::string& url, long ttl_s, milliseconds timeout) {
  auto r = h.post(url + "/v3/lease/grant", fmt::format(R"({{"TTL":"{}"}})", ttl_s), timeout);
  if (!r) return std::nullopt;
  lease l{json_field(*r, "ID").value_or(""), static_cast<long>(json_u64(*r, "TTL"))};
  if (l.id.empty()) return std::nullopt;
  return l;
}

// One keepalive (the gateway runs one request of the LeaseKeepAlive stream
// per HTTP request): the lease's TTL, 0 when it is gone, nothing on error.
std::optional<long> keepalive_call(http& h, const std::string& url, const std::string& lease_id,
                                   milliseconds timeout) {
  auto r = h.post(url + "/v3/lease/keepalive", fmt::format(R"({{"ID":"{}"}})", lease_id), timeout);
  if (!r || r->find("\"result\"") == std::string::npos) return std::nullopt;
  return static_cast<long>(json_u64(*r, "TTL"));
}

bool revoke_call(http& h, const std::string& url, const std::string& lease_id, milliseconds timeout) {
  return h.post(url + "/v3/lease/revoke", fmt::format(R"({{"ID":"{}"}})", lease_id), timeout).has_value();
}

// Blocks until the lock `name` is held on `lease_id`: the lock's key (base64).
std::optional<std::string> lock_call(http& h, const std::string& url, const std::string& name,
                                     const std::string& lease_id, milliseconds timeout,
                                     const std::atomic<bool>* cancel = nullptr) {
  auto body = fmt::format(R"({{"name":"{}","lease":"{}"}})", base64(name), lease_id);
  auto r = h.post(url + "/v3/lock/lock", body, timeout, cancel);
  if (!r) return std::nullopt;
  return json_field(*r, "key");
}

bool unlock_call(http& h, const std::string& url, const std::string& key_b64, milliseconds timeout) {
  return h.post(url + "/v3/lock/unlock", fmt::format(R"({{"key":"{}"}})", key_b64), timeout).has_value();
}

// ---------------------------------------------------------------------------
// Lease holder children.

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (auto p = s.find(sep); p != std::string::npos; from = p + 1, p = s.find(sep, from))
    out.push_back(s.substr(from, p - from));
  out.push_back(s.substr(from));
  return out;
}

// Sends each request to one member, moving on to the next member when a
// request fails (a client with several endpoints).
class endpoints {
 public:
  explicit endpoints(std::vector<std::string> urls) : urls_(std::move(urls)) {}

  // Tries `call(url)` on each member once, from the last that answered.
  bool any(const std::function<bool(const std::string&)>& call) {
    for (std::size_t k = 0; k < urls_.size(); ++k) {
      auto i = (current_ + k) % urls_.size();
      if (call(urls_[i])) {
        current_ = i;
        return true;
      }
    }
    return false;
  }

 private:
  std::vector<std::string> urls_;
  std::size_t current_ = 0;
};

// `--etcd-holder one URLS KEY VALUE TTL`: grants a lease of TTL seconds,
// puts KEY = VALUE on it, and keeps the lease alive every TTL/3 (as
// clientv3 does) until it is killed, or its parent is gone. URLS: client
// URLs, comma-separated.
int hold_one(const std::string& urls, const std::string& key, const std::string& value, long ttl_s) {
  const pid_t parent = ::getppid();
  http h;
  endpoints members(split(urls, ','));
  std::optional<lease> l;
  auto until = clock_type::now() + 10s;
  while (!members.any([&](const std::string& url) { return (l = grant_call(h, url, ttl_s, 2s)).has_value(); })) {
    if (clock_type::now() > until) return 1;
    std::this_thread::sleep_for(100ms);
  }
  if (!members.any([&](const std::string& url) { return put_call(h, url, key, value, 2s, l->id); })) return 1;
  auto period = milliseconds(l->ttl_s * 1000 / 3);
  for (auto next = clock_type::now() + period; ::getppid() == parent; next += period) {
    std::this_thread::sleep_until(next);
    std::optional<long> left;
    members.any([&](const std::string& url) { return (left = keepalive_call(h, url, l->id, period)).has_value(); });
    if (left && *left == 0) {
      fmt::print(stderr, "etcd holder: lease {} is gone\n", l->id);
      return 1;
    }
  }
  return 1;
}

// One connection of `--etcd-holder many`: grants its `count` leases and
// keeps each alive every `period`, oldest due first; a keepalive that is
// due goes before the next grant, so no lease waits for the others.
struct lease_keeper {
  std::vector<double> latency_ms;  // keepalives while measuring
  std::size_t errors = 0;          // failed keepalives and lost leases
  std::atomic<bool> granted{false};
  std::atomic<bool> lost{false};   // a lease expired: it was kept alive too late

  void run(const std::vector<std::string>& urls, int count, long ttl_s, const std::atomic<bool>& measuring,
           const std::atomic<bool>& done) {
    http h;
    endpoints members(urls);
    const auto period = milliseconds(ttl_s * 1000 / 3);
    struct due_lease {
      std::string id;
      clock_type::time_point due;
    };
    std::deque<due_lease> leases;  // ordered by `due`
    int to_grant = count;
    while (!done) {
      auto now = clock_type::now();
      if (!leases.empty() && leases.front().due <= now) {
        auto l = leases.front();
        leases.pop_front();
        std::optional<long> left;
        members.any([&](const std::string& url) { return (left = keepalive_call(h, url, l.id, period)).has_value(); });
        auto took = ms_since(now);
        if (!left || *left == 0) ++errors;
        else if (measuring) latency_ms.push_back(took);
        if (left == 0) lost = true;
        else leases.push_back({l.id, l.due + period});
      } else if (to_grant > 0) {
        std::optional<lease> l;
        if (members.any([&](const std::string& url) { return (l = grant_call(h, url, ttl_s, 2s)).has_value(); })) {
          leases.push_back({l->id, clock_type::now() + period});
          granted = --to_grant == 0;
        }
      } else {
        std::this_thread::sleep_until(std::min(leases.empty() ? now + period : leases.front().due, now + 50ms));
      }
    }
  }
};

// `--etcd-holder many URLS COUNT TTL SECONDS OUT`: COUNT leases of TTL
// seconds kept alive every TTL/3 over up to 25 connections (one thread
// each). Writes "registered" to OUT once all are granted, keeps them alive
// SECONDS longer, then appends the heartbeat report (bench/system.hpp).
// Writes "overloaded" instead when a lease expired before all were granted
// (or granting took over 120 s): etcd cannot be driven at that scale here.
int hold_many(const std::string& urls, int count, long ttl_s, double seconds, const std::string& out) {
  const int connections = std::clamp(count, 1, 25);
  std::vector<lease_keeper> keepers(connections);
  std::atomic<bool> measuring{false}, done{false};
  std::vector<std::thread> threads;
  for (int k = 0; k < connections; ++k) {
    int share = count / connections + (k < count % connections ? 1 : 0);
    threads.emplace_back([&, k, share] { keepers[k].run(split(urls, ','), share, ttl_s, measuring, done); });
  }
  auto all = [&](auto flag) {
    return std::all_of(keepers.begin(), keepers.end(), [&](auto& k) { return (k.*flag).load(); });
  };
  auto any = [&](auto flag) {
    return std::any_of(keepers.begin(), keepers.end(), [&](auto& k) { return (k.*flag).load(); });
  };
  auto until = clock_type::now() + 120s;
  while (!all(&lease_keeper::granted) && !any(&lease_keeper::lost) && clock_type::now() < until)
    std::this_thread::sleep_for(10ms);
  bool registered = all(&lease_keeper::granted) && !any(&lease_keeper::lost);
  std::ofstream(out) << (registered ? "registered\n" : "overloaded\n");
  measuring = true;
  if (registered) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  done = true;
  for (auto& t : threads) t.join();
  if (!registered) return 1;
  std::vector<double> latencies;
  std::size_t errors = 0;
  for (auto& k : keepers) {
    latencies.insert(latencies.end(), k.latency_ms.begin(), k.latency_ms.end());
    errors += k.errors;
  }
  std::ofstream(out, std::ios::app) << heartbeat_report(latencies, errors);
  return 0;
}

// ---------------------------------------------------------------------------
// Watcher children of the watch scenario.

// One watch: a streaming POST /v3/watch on its own connection. The gateway
// answers with one JSON object per line.
struct watch_stream {
  int watcher = 0;
  watch_recorder* recorder = nullptr;
  int* created = nullptr;  // watches the server confirmed
  std::string pending;     // an unfinished line

  static std::size_t on_data(char* data, std::size_t size, std::size_t n, void* user) {
    auto* s = static_cast<watch_stream*>(user);
    s->pending.append(data, size * n);
    std::size_t from = 0;
    for (auto nl = s->pending.find('\n'); nl != std::string::npos; from = nl + 1, nl = s->pending.find('\n', from))
      s->take(std::string_view(s->pending).substr(from, nl - from));
    s->pending.erase(0, from);
    return size * n;
  }

  void take(std::string_view line) {
    if (line.find("\"created\":true") != std::string_view::npos) ++*created;
    auto events = line.find("\"events\":");
    if (events == std::string_view::npos) return;
    const std::string_view field = "\"value\":\"";
    for (auto p = line.find(field, events); p != std::string_view::npos; p = line.find(field, p + 1)) {
      auto start = p + field.size();
      recorder->delivered(watcher, unbase64(line.substr(start, line.find('"', start) - start)));
    }
  }
};

// `--etcd-watchers URL PREFIX AFTER COUNT WRITES OUT`: COUNT watches of
// PREFIX from revision AFTER + 1 on the member at URL, each its own HTTP
// connection, all driven by one thread through libcurl's multi interface;
// records deliveries with a watch_recorder (bench/watch.hpp) until every
// watch delivered WRITES writes, or a stream ends, or the parent is gone.
int watch_many(const std::string& url, const std::string& prefix, const std::string& after, int count, int writes,
               const std::string& out) {
  const pid_t parent = ::getppid();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  watch_recorder recorder(count, writes, out);
  auto end = prefix;
  ++end.back();
  auto body = fmt::format(R"({{"create_request":{{"key":"{}","range_end":"{}","start_revision":"{}"}}}})",
                          base64(prefix), base64(end), std::strtoull(after.c_str(), nullptr, 10) + 1);
  auto target = url + "/v3/watch";
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  CURLM* multi = curl_multi_init();
  int created = 0;
  std::vector<watch_stream> streams(static_cast<std::size_t>(count));
  std::vector<CURL*> handles;
  for (int w = 0; w < count; ++w) {
    auto& s = streams[static_cast<std::size_t>(w)];
    s.watcher = w;
    s.recorder = &recorder;
    s.created = &created;
    CURL* e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, target.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &watch_stream::on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_multi_add_handle(multi, e);
    handles.push_back(e);
  }
  bool announced = false;
  int rc = 0;
  for (int running = 1; !recorder.complete() && ::getppid() == parent;) {
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      fmt::print(stderr, "etcd watchers: a watch stream ended: {}\n", curl_easy_strerror(m->data.result));
      rc = 1;
    }
    if (rc) break;
    if (!announced && created == count) {
      recorder.watching();
      announced = true;
    }
    curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  for (auto* e : handles) {
    curl_multi_remove_handle(multi, e);
    curl_easy_cleanup(e);
  }
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  return rc;
}

// ---------------------------------------------------------------------------
// The cluster and the scenarios.

enum class timing { defaults, matched };

struct member {
  std::string name, data_dir, log;
  std::uint16_t client_port = 0, peer_port = 0;
  pid_t pid = -1;
  std::uint64_t id = 0;       // etcd's member id, stable across restarts
  std::unique_ptr<http> ctl;  // for the thread that runs trials
  std::string url() const { return fmt::format("http://127.0.0.1:{}", client_port); }
  std::string peer_url() const { return fmt::format("http://127.0.0.1:{}", peer_port); }
};

// One contender of lock-handoff: its own lease, connection and thread.
struct contender {
  http h;
  std::string lease_id;
  std::thread waiter;  // the blocking lock call while queued
  std::atomic<bool> cancel{false};
  std::mutex m;
  std::condition_variable cv;
  std::optional<std::string> key;  // its lock key (base64) while it holds the lock
  clock_type::time_point queued, acquired;
  bool failed = false;
};

std::string find_etcd() {
  const char* path = std::getenv("PATH");
  for (auto& dir : split(path ? path : "/usr/bin", ':')) {
    auto candidate = (dir.empty() ? std::string(".") : dir) + "/etcd";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error("etcd not found in PATH (Debian: apt-get install etcd-server)");
}

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return last.empty() ? "(empty log)" : last;
}

constexpr int cluster_size = 3;
constexpr long long_ttl_s = 86400;  // outlives any run: no keepalives needed
const std::string worker_key = "/bench/worker";
const std::string handoff_lock = "bench-handoff";
const std::string cycle_lock = "bench-cycle";

class etcd_system final : public compared_system {
 public:
  etcd_system(timing t, std::string self_exe) : timing_(t), self_exe_(std::move(self_exe)), etcd_(find_etcd()) {
    try {
      start_cluster();
    } catch (...) {
      stop_all();
      throw;
    }
  }

  ~etcd_system() override { stop_all(); }

  std::string name() const override { return timing_ == timing::matched ? "etcd (matched timing)" : "etcd (defaults)"; }

  std::string description() const override {
    return fmt::format(
        "etcd {}, 3 members on 127.0.0.1, heartbeat {} ms, election timeout {} ms, lease TTL {} s (etcd's "
        "minimum), driven through the v3 JSON gateway (HTTP/1.1 keep-alive, libcurl), one connection per client",
        version_, heartbeat_ms(), election_ms(), lease_ttl_s_);
  }


  std::optional<double> last_new_leader_ms() const override { return last_new_leader_ms_; }

  std::optional<std::uint64_t> raft_term() override {
    std::optional<std::uint64_t> term;
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (auto st = status_of(i, 1s)) term = std::max(term.value_or(0), st->raft_term);
    }
    return term;
  }

  throughput writes(int clients, double seconds) override;
  std::optional<scale_result> scale(int sessions, double seconds) override;
  std::optional<watch_result> watch(const watch_plan& plan) override;

  std::vector<pid_t> server_pids() const override {
    std::vector<pid_t> pids;
    for (auto& m : members_)
      if (m.pid > 0) pids.push_back(m.pid);
    return pids;
  }

  // etcd serves gRPC and the JSON gateway on the same client port.
  std::vector<etcd_api_server> etcd_api_servers() override {
    std::vector<etcd_api_server> out;
    for (auto& m : members_)
      if (m.pid > 0) out.push_back({fmt::format("127.0.0.1:{}", m.client_port), m.pid});
    return out;
  }

 private:
  int heartbeat_ms() const { return timing_ == timing::matched ? 50 : 100; }
  int election_ms() const { return timing_ == timing::matched ? 250 : 1000; }

  // --- cluster ---

  void start_cluster() {
    auto ports = distinct_ports(2 * cluster_size);
    for (int i = 0; i < cluster_size; ++i) {
      member m;
      m.name = fmt::format("m{}", i + 1);
      m.data_dir = dir_ / m.name;
      m.log = dir_ / (m.name + ".log");
      m.client_port = ports[2 * i];
      m.peer_port = ports[2 * i + 1];
      m.ctl = std::make_unique<http>();
      members_.push_back(std::move(m));
    }
    for (std::size_t i = 0; i < members_.size(); ++i) start_member(i, false);
    if (!wait_healthy(20s)) {
      for (auto& m : members_)
        if (m.pid < 0) throw std::runtime_error(fmt::format("etcd member {} exited: {}", m.name, last_line(m.log)));
      throw std::runtime_error(fmt::format("etcd cluster did not elect a leader within 20 s ({} log: {})",
                                           members_[0].name, last_line(members_[0].log)));
    }
    auto leader = leader_index();
    if (!leader) throw std::runtime_error("etcd cluster lost its leader right after starting");
    auto& m = members_[*leader];
    version_ = status_call(*m.ctl, m.url(), 1s).value_or(member_status{}).version;
    // etcd raises a TTL below ceil(1.5 x election timeout) to that minimum:
    // grant 1 s and read back what etcd made of it.
    auto probe = grant_call(*m.ctl, m.url(), 1, 2s);
    auto lock_lease = grant_call(*m.ctl, m.url(), long_ttl_s, 2s);
    if (!probe || !lock_lease) throw std::runtime_error("etcd does not grant leases");
    revoke_call(*m.ctl, m.url(), probe->id, 2s);
    lease_ttl_s_ = probe->ttl_s;
    lock_lease_ = lock_lease->id;
  }

  static std::vector<std::uint16_t> distinct_ports(std::size_t n) {
    std::vector<std::uint16_t> ports;
    while (ports.size() < n) {
      auto p = test::free_port();
      if (std::find(ports.begin(), ports.end(), p) == ports.end()) ports.push_back(p);
    }
    return ports;
  }

  std::vector<std::string> member_args(const member& m, bool existing) const {
    std::string cluster;
    for (auto& other : members_)
      cluster += fmt::format("{}{}={}", cluster.empty() ? "" : ",", other.name, other.peer_url());
    // Durable: etcd fsyncs its WAL before acknowledging (no --unsafe-no-fsync);
    // backend quota and snapshot count stay at their defaults.
    return {etcd_, "--name", m.name, "--data-dir", m.data_dir,
            "--listen-client-urls", m.url(), "--advertise-client-urls", m.url(),
            "--listen-peer-urls", m.peer_url(), "--initial-advertise-peer-urls", m.peer_url(),
            "--initial-cluster", cluster, "--initial-cluster-token", "conclave-bench",
            "--initial-cluster-state", existing ? "existing" : "new",
            "--heartbeat-interval", std::to_string(heartbeat_ms()),
            "--election-timeout", std::to_string(election_ms()),
            "--logger", "zap", "--log-level", "error"};
  }

  void start_member(std::size_t i, bool existing) {
    members_[i].pid = test::fork_exec(member_args(members_[i], existing), members_[i].log);
  }

  std::optional<member_status> status_of(std::size_t i, milliseconds timeout) {
    return status_call(*members_[i].ctl, members_[i].url(), timeout);
  }

  std::optional<std::size_t> index_of(std::uint64_t id) const {
    for (std::size_t i = 0; i < members_.size(); ++i)
      if (members_[i].id == id) return i;
    return std::nullopt;
  }

  // Healthy: every member runs, answers, and names the same leader.
  bool wait_healthy(milliseconds timeout) {
    auto until = clock_type::now() + timeout;
    while (clock_type::now() < until) {
      if (member_exited()) return false;
      std::vector<std::uint64_t> leaders;
      for (std::size_t i = 0; i < members_.size(); ++i) {
        auto s = status_of(i, 300ms);
        if (!s) break;
        members_[i].id = s->member_id;
        leaders.push_back(s->leader);
      }
      if (leaders.size() == members_.size() && leaders.front() != 0 && index_of(leaders.front()) &&
          std::count(leaders.begin(), leaders.end(), leaders.front()) == static_cast<long>(leaders.size()))
        return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // Whether a member process ended (it is reaped and forgotten then).
  bool member_exited() {
    bool exited = false;
    for (auto& m : members_) {
      if (m.pid > 0 && ::waitpid(m.pid, nullptr, WNOHANG) == m.pid) {
        m.pid = -1;
        exited = true;
      }
    }
    return exited;
  }

  // The member that reports itself as leader.
  std::optional<std::size_t> leader_index() {
    auto until = clock_type::now() + 5s;
    while (clock_type::now() < until) {
      for (std::size_t i = 0; i < members_.size(); ++i) {
        auto s = status_of(i, 500ms);
        if (s && s->leader != 0 && s->leader == s->member_id) return i;
      }
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

  void stop_all() {
    test::kill_pid(holder_pid_);
    holder_pid_ = -1;
    for (auto pid : swarm_pids_) test::kill_pid(pid);
    swarm_pids_.clear();
    for (auto pid : watcher_pids_) test::kill_pid(pid);
    watcher_pids_.clear();
    for (auto& m : members_) {
      test::kill_pid(m.pid);
      m.pid = -1;
    }
    drop_contenders(nullptr);
  }

  // --- leader-crash, leader-freeze, leader-stop ---

  // From the signal to the leader until a write through the new leader is
  // acknowledged. The new leader is the one the other members name.
  std::optional<double> leader_fault(int sig) override {
    last_new_leader_ms_.reset();
    auto old = leader_index();
    if (!old) return std::nullopt;
    auto& leader = members_[*old];
    for (int i = 0; i < 3; ++i)
      if (!put_call(*leader.ctl, leader.url(), "/bench/warmup", "w", 2s)) return std::nullopt;
    std::this_thread::sleep_for(300ms);
    auto start = clock_type::now();
    ::kill(leader.pid, sig);
    auto result = write_through_new_leader(*old, start);
    restore(*old, sig);
    return result;
  }

  std::optional<double> write_through_new_leader(std::size_t old, clock_type::time_point start) {
    auto until = start + 30s;
    while (clock_type::now() < until) {
      auto next = new_leader(old);
      if (!next) {
        std::this_thread::sleep_for(5ms);
        continue;
      }
      if (!last_new_leader_ms_) last_new_leader_ms_ = ms_since(start);
      auto& m = members_[*next];
      if (put_call(*m.ctl, m.url(), "/bench/failover", "f", 2s)) return ms_since(start);
    }
    return std::nullopt;
  }

  // A leader other than `old`, as named by one of the other members.
  std::optional<std::size_t> new_leader(std::size_t old) {
    for (std::size_t i = 0; i < members_.size(); ++i) {
      if (i == old) continue;
      auto s = status_of(i, 100ms);
      if (!s || s->leader == 0 || s->leader == members_[old].id) continue;
      auto next = index_of(s->leader);
      if (next && *next != old) return next;
    }
    return std::nullopt;
  }

  // Makes the cluster whole again after leader_fault.
  void restore(std::size_t i, int sig) {
    auto& m = members_[i];
    if (sig == SIGSTOP) {
      ::kill(m.pid, SIGCONT);
    } else {
      if (!test::wait_pid(m.pid, 15s)) test::kill_pid(m.pid);
      start_member(i, true);
    }
    if (!wait_healthy(20s)) fmt::print(stderr, "etcd: cluster not healthy again after {}\n", m.name);
    std::this_thread::sleep_for(700ms);
  }

  // --- worker-crash ---

  // Client URLs for a child, comma-separated: the leader's first.
  std::string urls_leader_first(const member& lead) const {
    std::string urls = lead.url();
    for (auto& m : members_)
      if (&m != &lead) urls += "," + m.url();
    return urls;
  }

  // One watcher of `worker_key` per member, each on its own connection.
  struct watch_board {
    std::mutex m;
    std::condition_variable cv;
    int created = 0;
    std::vector<std::optional<clock_type::time_point>> deleted;
    std::atomic<bool> cancel{false};
  };

  static void watch_until_delete(const std::string& url, watch_board& board, std::size_t slot) {
    http h;
    std::string seen;
    bool created = false;
    http::sink take = [&](std::string_view piece) {
      seen += piece;
      std::lock_guard lock(board.m);
      if (!created && seen.find("\"created\":true") != std::string::npos) {
        created = true;
        ++board.created;
        board.cv.notify_all();
      }
      // Events of type PUT (0) leave "type" out; deletes say so.
      if (seen.find("\"type\":\"DELETE\"") == std::string::npos) return true;
      board.deleted[slot] = clock_type::now();
      board.cv.notify_all();
      return false;
    };
    auto body = fmt::format(R"({{"create_request":{{"key":"{}"}}}})", base64(worker_key));
    h.stream(url + "/v3/watch", body, 120s, take, &board.cancel);
  }

  // From kill -9 of a lease holder until every member's watcher saw its
  // key deleted: etcd's leader expires the lease after its TTL and the
  // revoke is committed through Raft.
  std::optional<double> worker_crash() override {
    auto leader = leader_index();
    if (!leader) return std::nullopt;
    // The holder talks to the leader, and to the others should it fail.
    auto& lead = members_[*leader];
    auto urls = urls_leader_first(lead);
    auto token = fmt::format("holder-{}", ++holders_started_);
    holder_pid_ = test::fork_exec(
        {self_exe_, "--etcd-holder", "one", urls, worker_key, token, std::to_string(lease_ttl_s_)},
        dir_ / "holder.log");
    auto result = watch_holder_death(lead, base64(token));
    test::kill_pid(holder_pid_);
    holder_pid_ = -1;
    return result;
  }

  std::optional<double> watch_holder_death(member& lead, const std::string& token_b64) {
    if (!wait_for_value(lead, worker_key, token_b64, 10s)) return std::nullopt;
    watch_board board;
    board.deleted.resize(members_.size());
    std::vector<std::thread> watchers;
    for (std::size_t i = 0; i < members_.size(); ++i)
      watchers.emplace_back(watch_until_delete, members_[i].url(), std::ref(board), i);
    std::optional<double> result;
    std::unique_lock lock(board.m);
    int n = static_cast<int>(members_.size());
    if (board.cv.wait_for(lock, 5s, [&] { return board.created == n; })) {
      lock.unlock();
      std::this_thread::sleep_for(300ms);
      auto start = clock_type::now();
      ::kill(holder_pid_, SIGKILL);
      lock.lock();
      auto all_seen = [&] {
        return std::all_of(board.deleted.begin(), board.deleted.end(), [](auto& t) { return t.has_value(); });
      };
      if (board.cv.wait_for(lock, 10s + std::chrono::seconds(lease_ttl_s_), all_seen))
        result = ms_between(start, **std::max_element(board.deleted.begin(), board.deleted.end()));
    }
    board.cancel = true;
    lock.unlock();
    for (auto& w : watchers) w.join();
    return result;
  }

  bool wait_for_value(member& m, const std::string& key, const std::string& value_b64, milliseconds timeout) {
    auto until = clock_type::now() + timeout;
    while (clock_type::now() < until) {
      if (value_b64_call(*m.ctl, m.url(), key, 1s) == value_b64) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  // --- lock-cycle, lock-handoff ---

  // Uncontended: lock and unlock of one lock on a lease granted beforehand.
  std::optional<double> lock_cycle() override {
    auto leader = leader_index();
    if (!leader) return std::nullopt;
    auto& m = members_[*leader];
    auto start = clock_type::now();
    auto key = lock_call(*m.ctl, m.url(), cycle_lock, lock_lease_, 5s);
    if (!key || !unlock_call(*m.ctl, m.url(), *key, 5s)) return std::nullopt;
    return ms_since(start);
  }

  // Four contenders queue on one lock (FIFO by the revision of their lock
  // keys). From the start of the holder's unlock until the next contender's
  // blocked lock call returns; the released holder then queues again.
  std::optional<double> lock_handoff() override {
    auto leader = leader_index();
    if (!leader) return std::nullopt;
    auto& m = members_[*leader];
    if (!ensure_contenders(m)) return std::nullopt;
    auto& holder = *contenders_[0];
    auto& next = *contenders_[1];
    // etcd's lock waits on a watch of the key ahead, and a new watch joins
    // etcd's synced watchers only in a loop every 100 ms: measure the
    // handoff to a contender that is settled in the queue.
    std::this_thread::sleep_until(next.queued + 300ms);
    auto key = held_key(holder);
    auto start = clock_type::now();
    if (!unlock_call(*m.ctl, m.url(), key, 5s) || !await_lock(next, 10s)) {
      contenders_broken_ = true;
      return std::nullopt;
    }
    auto result = ms_between(start, next.acquired);
    if (!queue(holder, m, contenders_.size())) contenders_broken_ = true;
    std::rotate(contenders_.begin(), contenders_.begin() + 1, contenders_.end());
    return result;
  }

  // The four contenders, the first holding the lock and the others queued
  // behind it in order; rebuilt when anything went wrong.
  bool ensure_contenders(member& m) {
    if (!contenders_.empty() && !contenders_broken_) return true;
    drop_contenders(&m);
    contenders_broken_ = true;
    for (int i = 0; i < 4; ++i) {
      auto c = std::make_unique<contender>();
      auto l = grant_call(*m.ctl, m.url(), long_ttl_s, 2s);
      if (!l) return false;
      c->lease_id = l->id;
      contenders_.push_back(std::move(c));
    }
    if (!queue(*contenders_[0], m, 1) || !await_lock(*contenders_[0], 5s)) return false;
    for (std::size_t i = 1; i < contenders_.size(); ++i)
      if (!queue(*contenders_[i], m, i + 1)) return false;
    contenders_broken_ = false;
    return true;
  }

  // Starts `c`'s blocking lock call and waits until its key is the
  // `position`-th under the lock, so that the queue order is known.
  bool queue(contender& c, member& m, std::size_t position) {
    if (c.waiter.joinable()) c.waiter.join();
    {
      std::lock_guard lock(c.m);
      c.key.reset();
      c.failed = false;
    }
    c.waiter = std::thread([&c, url = m.url()] {
      auto key = lock_call(c.h, url, handoff_lock, c.lease_id, 0ms, &c.cancel);
      auto now = clock_type::now();
      std::lock_guard lock(c.m);
      c.key = key;
      c.acquired = now;
      c.failed = !key;
      c.cv.notify_all();
    });
    auto until = clock_type::now() + 5s;
    while (clock_type::now() < until) {
      if (count_call(*m.ctl, m.url(), handoff_lock + "/", 1s) == position) {
        c.queued = clock_type::now();
        return true;
      }
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  static std::string held_key(contender& c) {
    std::lock_guard lock(c.m);
    return c.key.value_or("");
  }

  static bool await_lock(contender& c, milliseconds timeout) {
    std::unique_lock lock(c.m);
    return c.cv.wait_for(lock, timeout, [&] { return c.key || c.failed; }) && c.key;
  }

  // Ends the contenders: revoking their leases (through `via`, if given)
  // deletes their lock keys, and `cancel` ends their lock calls.
  void drop_contenders(member* via) {
    for (auto& c : contenders_) {
      c->cancel = true;
      if (via) revoke_call(*via->ctl, via->url(), c->lease_id, 1s);
    }
    for (auto& c : contenders_)
      if (c->waiter.joinable()) c->waiter.join();
    contenders_.clear();
  }

  // --- scale (defined below) ---

  std::vector<std::string> start_swarms(int sessions, double child_seconds, const std::string& urls);
  bool await_swarms(const std::string& word, std::chrono::duration<double> timeout,
                    const std::vector<std::string>& outs);

  // --- write ---

  std::optional<double> one_write() override {
    auto leader = leader_index();
    if (!leader) return std::nullopt;
    auto& m = members_[*leader];
    auto start = clock_type::now();
    if (!put_call(*m.ctl, m.url(), "/bench/write", std::string(100, 'w'), 5s)) return std::nullopt;
    return ms_since(start);
  }

  timing timing_;
  std::string self_exe_;
  std::string etcd_;
  test::temp_dir dir_;
  std::vector<member> members_;
  std::string version_;
  long lease_ttl_s_ = 0;    // the smallest TTL etcd grants with this timing
  std::string lock_lease_;  // lock-cycle's lease
  pid_t holder_pid_ = -1;
  std::vector<pid_t> swarm_pids_;  // `--etcd-holder many` children of scale()
  std::vector<pid_t> watcher_pids_;  // `--etcd-watchers` children of watch()
  int holders_started_ = 0;
  std::vector<std::unique_ptr<contender>> contenders_;
  bool contenders_broken_ = false;
  std::optional<double> last_new_leader_ms_;
};

// Closed loop: each client sends its next put when the previous one was
// acknowledged; only puts acknowledged within the window count.
throughput etcd_system::writes(int clients, double seconds) {
  auto leader = leader_index();
  if (!leader) return throughput{clients, 0, {}, 0};
  auto url = members_[*leader].url();
  const std::string value(100, 'v');
  return closed_loop(
      clients, seconds,
      [&](int who) {
        auto h = std::make_unique<http>();
        put_call(*h, url, fmt::format("/bench/load/{}/warmup", who), value, 2s);  // opens the connection
        return h;
      },
      [&](std::unique_ptr<http>& h, int who, std::size_t n) {
        return put_call(*h, url, fmt::format("/bench/load/{}/{}", who, n % 64), value, 2s);
      });
}

// Heartbeat scale: `sessions` leases of the smallest TTL, kept alive every
// TTL/3 (as clientv3 does) by children with up to 2,500 leases each.
// Through the gateway every keepalive is an HTTP request of its own (it
// runs one LeaseKeepAlive stream per request; HTTP/1.1 offers no
// multiplexed stream), which costs the leader far more than keepalives on
// a gRPC stream would: on the 2-core VM the leader spends ~150 us of CPU
// per keepalive (2,000 leases at TTL 1 s: 6,000 keepalives/s, 80-95% of a
// core), and around there keepalives start to stall past the TTL now and
// then. 10,000 leases need 30,000 keepalives/s matched (15,000 with etcd's
// defaults), 2.2 to 4.5 cores for the leader alone: leases expire while
// the rest are still being granted, and scale() returns nothing.
std::optional<scale_result> etcd_system::scale(int sessions, double seconds) {
  if (sessions <= 0) return std::nullopt;
  auto leader = leader_index();
  if (!leader) return std::nullopt;
  auto& lead = members_[*leader];
  // The children outlive the window by the detection trial after it.
  double child_seconds = seconds + 10 + 2 * static_cast<double>(lease_ttl_s_);
  auto outs = start_swarms(sessions, child_seconds, urls_leader_first(lead));
  std::optional<scale_result> r;
  if (await_swarms("registered", 120s, outs)) {
    r.emplace();
    r->sessions = sessions;
    r->interval_ms = static_cast<double>(lease_ttl_s_) * 1000 / 3;
    std::this_thread::sleep_for(1s);
    auto cpu0 = test::cpu_seconds(lead.pid);
    auto t0 = clock_type::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    r->leader_cpu_pct = 100.0 * (test::cpu_seconds(lead.pid) - cpu0) / (ms_since(t0) / 1000.0);
    r->detect_ms = worker_crash().value_or(0);
    await_swarms("heartbeats", std::chrono::duration<double>(child_seconds + 30), outs);
    std::vector<std::string> reports;
    for (const auto& o : outs) reports.push_back(test::file_text(o));
    add_heartbeat_reports(reports, *r);
  } else {
    fmt::print(stderr, "etcd: {} leases cannot be kept alive through the gateway here (they expire)\n", sessions);
  }
  for (auto pid : swarm_pids_) test::kill_pid(pid);
  swarm_pids_.clear();
  return r;
}

// Starts the `--etcd-holder many` children: their output files.
std::vector<std::string> etcd_system::start_swarms(int sessions, double child_seconds, const std::string& urls) {
  constexpr int per_process = 2500;
  int processes = std::max(1, (sessions + per_process - 1) / per_process);
  std::vector<std::string> outs;
  for (int p = 0; p < processes; ++p) {
    int count = sessions / processes + (p < sessions % processes ? 1 : 0);
    outs.push_back(dir_ / fmt::format("swarm-{}.out", p));
    std::remove(outs.back().c_str());
    swarm_pids_.push_back(test::fork_exec({self_exe_, "--etcd-holder", "many", urls, std::to_string(count),
                                           std::to_string(lease_ttl_s_), std::to_string(child_seconds), outs.back()},
                                          dir_ / fmt::format("swarm-{}.log", p)));
  }
  return outs;
}

// Whether every child wrote `word` within `timeout` (none "overloaded").
bool etcd_system::await_swarms(const std::string& word, std::chrono::duration<double> timeout,
                               const std::vector<std::string>& outs) {
  auto until = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(timeout);
  while (clock_type::now() < until) {
    std::size_t have = 0;
    for (auto& o : outs) {
      auto text = test::file_text(o);
      if (text.find("overloaded") != std::string::npos) return false;
      if (text.find(word) != std::string::npos) ++have;
    }
    if (have == outs.size()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// The watch scenario: watcher children (two per member), each watch a
// stream of its own through the member's JSON gateway; the writes go to
// the leader.
std::optional<watch_result> etcd_system::watch(const watch_plan& plan) {
  const std::string prefix = "/bench/watch/", key = prefix + "k";
  auto leader = leader_index();
  if (!leader) return std::nullopt;
  auto& lead = members_[*leader];
  auto base = put_revision_call(*lead.ctl, lead.url(), key, "base", 5s);
  if (!base) return std::nullopt;
  const int processes = 2 * static_cast<int>(members_.size());
  auto start = [&] {
    watcher_children children;
    for (int p = 0; p < processes; ++p) {
      children.outs.push_back(dir_ / fmt::format("watchers-{}.out", p));
      std::remove(children.outs.back().c_str());
      watcher_pids_.push_back(test::fork_exec(
          {self_exe_, "--etcd-watchers", members_[static_cast<std::size_t>(p) % members_.size()].url(), prefix,
           std::to_string(*base), std::to_string(watchers_in(p, processes, plan.watchers)),
           std::to_string(plan.writes + 1), children.outs.back()},
          dir_ / fmt::format("watchers-{}.log", p)));
    }
    children.pids = watcher_pids_;
    return children;
  };
  auto r = run_watch(plan, lead.pid, server_pids(), start, [&](int k) {
    return put_call(*lead.ctl, lead.url(), key, std::to_string(k), 5s);
  });
  r.hosting = fmt::format(
      "{} watcher processes (process p on member p mod {}), each one thread driving its ~{} watches with libcurl's "
      "multi interface, every watch a streaming POST /v3/watch of its own (HTTP/1.1, one connection each) through "
      "the member's JSON gateway; writes to the leader",
      processes, members_.size(), plan.watchers / processes);
  // They end by themselves once every write arrived; 10 s for all of them.
  auto until = clock_type::now() + 10s;
  for (auto pid : watcher_pids_) {
    auto left = std::chrono::duration_cast<milliseconds>(until - clock_type::now());
    if (!test::wait_pid(pid, std::max(left, milliseconds(1)))) test::kill_pid(pid);
  }
  watcher_pids_.clear();
  return r;
}

}  // namespace

std::unique_ptr<system_under_test> make_etcd(const std::string& timing_name, const std::string& self_exe) {
  if (timing_name != "defaults" && timing_name != "matched")
    throw std::runtime_error("etcd timing must be \"defaults\" or \"matched\", not \"" + timing_name + "\"");
  return std::make_unique<etcd_system>(timing_name == "matched" ? timing::matched : timing::defaults, self_exe);
}

int etcd_watchers_main(int argc, char** argv) {
  if (argc != 7) {
    fmt::print(stderr, "usage: --etcd-watchers URL PREFIX AFTER COUNT WRITES OUT\n");
    return 2;
  }
  return watch_many(argv[1], argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]), argv[6]);
}

int etcd_holder_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 5 && args[0] == "one") return hold_one(args[1], args[2], args[3], std::stol(args[4]));
  if (args.size() == 6 && args[0] == "many")
    return hold_many(args[1], std::stoi(args[2]), std::stol(args[3]), std::stod(args[4]), args[5]);
  fmt::print(stderr, "usage: --etcd-holder one URLS KEY VALUE TTL | many URLS COUNT TTL SECONDS OUT\n");
  return 2;
}

}  // namespace conclave::bench
