#include "bench/watch.hpp"

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "test/processes.hpp"

namespace conclave::bench {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

watch_recorder::watch_recorder(int watchers, int writes, std::string out)
    : watchers_(watchers),
      out_(std::move(out)),
      at_(static_cast<std::size_t>(writes), std::vector<std::int64_t>(static_cast<std::size_t>(watchers), 0)),
      count_(static_cast<std::size_t>(writes), 0) {}

void watch_recorder::watching() {
  std::lock_guard<std::mutex> guard(m_);
  std::ofstream(out_, std::ios::app) << "watching " << watchers_ << "\n";
}

void watch_recorder::delivered(int w, const std::string& value) {
  auto now = steady_ns();
  char* end = nullptr;
  long k = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || k < 0 || k >= static_cast<long>(at_.size()) || w < 0 || w >= watchers_) return;
  std::lock_guard<std::mutex> guard(m_);
  auto& row = at_[static_cast<std::size_t>(k)];
  if (row[static_cast<std::size_t>(w)] != 0) return;
  row[static_cast<std::size_t>(w)] = now;
  if (++count_[static_cast<std::size_t>(k)] < watchers_) return;
  std::string line = "all " + std::to_string(k);
  for (auto t : row) line += " " + std::to_string(t);
  std::ofstream(out_, std::ios::app) << line << "\n";
  ++writes_done_;
}

bool watch_recorder::complete() const {
  std::lock_guard<std::mutex> guard(m_);
  return writes_done_ == static_cast<int>(at_.size());
}

int watchers_in(int process, int processes, int watchers) {
  return watchers / processes + (process < watchers % processes ? 1 : 0);
}

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// What the parent has read of one child's output file so far.
struct child_output {
  std::string path;
  long offset = 0;
  std::string partial;  // an unfinished last line
  bool watching = false;
  std::map<int, std::vector<std::int64_t>> delivered;  // write -> each watcher's time

  // Reads what was appended since the last call.
  void poll() {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return;
    std::fseek(f, offset, SEEK_SET);
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      offset += static_cast<long>(n);
      partial.append(buf, n);
    }
    std::fclose(f);
    std::size_t from = 0;
    for (auto nl = partial.find('\n'); nl != std::string::npos; from = nl + 1, nl = partial.find('\n', from)) {
      take(partial.substr(from, nl - from));
    }
    partial.erase(0, from);
  }

  void take(const std::string& line) {
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word == "watching") watching = true;
    if (word != "all") return;
    int k = -1;
    in >> k;
    std::vector<std::int64_t> times;
    for (std::int64_t t; in >> t;) times.push_back(t);
    delivered[k] = std::move(times);
  }
};

// Polls the children until `done` holds for every one, for at most `timeout`.
template <class Pred>
bool wait_all(std::vector<child_output>& children, std::chrono::milliseconds timeout, Pred done) {
  auto until = clock_type::now() + timeout;
  for (;;) {
    bool all = true;
    for (auto& c : children) {
      c.poll();
      all = all && done(c);
    }
    if (all) return true;
    if (clock_type::now() >= until || stop_requested) return false;
    std::this_thread::sleep_for(1ms);
  }
}

double cpu_of(const std::vector<pid_t>& pids) {
  double s = 0;
  for (auto p : pids) s += test::cpu_seconds(p);
  return s;
}

}  // namespace

watch_result run_watch(const watch_plan& plan, pid_t leader, const std::vector<pid_t>& servers,
                       const std::function<watcher_children()>& start, const std::function<bool(int)>& write) {
  watch_result r;
  r.watchers = plan.watchers;
  r.idle_seconds = plan.idle_seconds;
  auto window = [&](auto&& sample) {
    auto t0 = clock_type::now();
    auto before = sample();
    std::this_thread::sleep_for(std::chrono::duration<double>(plan.idle_seconds));
    auto after = sample();
    double seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    for (std::size_t i = 0; i < before.size(); ++i) after[i] = 100.0 * (after[i] - before[i]) / seconds;
    return after;
  };
  r.leader_cpu_base_pct = window([&] { return std::vector<double>{test::cpu_seconds(leader)}; })[0];
  auto started = start();
  r.processes = static_cast<int>(started.outs.size());
  std::vector<child_output> children;
  for (const auto& o : started.outs) {
    children.emplace_back();
    children.back().path = o;
  }
  if (!wait_all(children, 120s, [](const child_output& c) { return c.watching; })) {
    r.failure = "the watchers were not set up within 120 s";
    return r;
  }
  // The warm-up write: every watch delivers.
  if (!write(0) || !wait_all(children, 60s, [](const child_output& c) { return c.delivered.count(0) > 0; })) {
    r.failure = "the first write did not reach every watcher within 60 s";
    return r;
  }
  std::this_thread::sleep_for(1s);
  auto cpu = window([&] {
    return std::vector<double>{test::cpu_seconds(leader), cpu_of(servers), cpu_of(started.pids)};
  });
  r.leader_cpu_pct = cpu[0];
  r.servers_cpu_pct = cpu[1];
  r.watchers_cpu_pct = cpu[2];

  std::mt19937 random(1);
  std::uniform_int_distribution<int> pause_ms(0, 49);
  for (int k = 1; k <= plan.writes && !stop_requested; ++k) {
    auto sent = steady_ns();
    if (!write(k)) {
      r.failure = fmt::format("write {} was not acknowledged", k);
      break;
    }
    r.ack_ms.push_back(static_cast<double>(steady_ns() - sent) / 1e6);
    bool all = wait_all(children, 10s, [k](const child_output& c) { return c.delivered.count(k) > 0; });
    if (!all) {
      ++r.incomplete;
      continue;
    }
    double last = 0;
    for (const auto& c : children) {
      for (auto t : c.delivered.at(k)) {
        double ms = static_cast<double>(t - sent) / 1e6;
        r.delivery_ms.push_back(ms);
        last = std::max(last, ms);
      }
    }
    r.all_delivered_ms.push_back(last);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(random)));
  }
  return r;
}

}  // namespace conclave::bench
