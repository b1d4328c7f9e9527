// The watch scenario of conclave-bench, the part every system shares.
//
// Watcher processes (children of conclave-bench, each hosting a share of
// the watchers on one server) record when each watcher delivered each
// write; the parent writes one value at a time under the watched prefix,
// the write's number as its value, and waits until every watcher has it.
//
// A child's output file gets "watching N" once its N watches are set up,
// then one line per write every one of its watchers delivered:
// "all K T1 T2 ... TN", Ti the steady-clock (CLOCK_MONOTONIC, shared by all
// processes of the machine) nanoseconds at which watcher i delivered write K.
//
// CAF-free, like bench/system.hpp.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/system.hpp"

namespace conclave::bench {

// Nanoseconds on the steady clock (comparable between processes here).
std::int64_t steady_ns();

// A child's record of its watchers' deliveries. Thread-safe.
class watch_recorder {
 public:
  // `watchers` watches, writes 0 .. writes - 1, output to `out`.
  watch_recorder(int watchers, int writes, std::string out);

  // All watches are set up.
  void watching();
  // Watcher `w` delivered the change whose value is `value` (a write's
  // number; anything else is ignored, as is a second delivery).
  void delivered(int w, const std::string& value);
  // Every watcher delivered every write.
  bool complete() const;

 private:
  mutable std::mutex m_;
  int watchers_;
  std::string out_;
  std::vector<std::vector<std::int64_t>> at_;  // [write][watcher], 0 until delivered
  std::vector<int> count_;                     // per write
  int writes_done_ = 0;
};

// The watchers' shares: `watchers` spread over `processes` children.
int watchers_in(int process, int processes, int watchers);

// The watcher children a system started: their output files and pids.
struct watcher_children {
  std::vector<std::string> outs;
  std::vector<pid_t> pids;
};

// The parent's side: measures the CPU of `leader` over `plan.idle_seconds`
// before any watcher exists; calls `start` for the watcher children and
// waits until every one watches; writes write 0 (a warm-up, proving every
// watch delivers, not counted); measures the CPU of `leader`, of all
// `servers` and of the watcher processes over `plan.idle_seconds` while
// every watch is idle; then writes 1 .. plan.writes one at a time, each
// after every watcher delivered the one before (and a pause of 0-50 ms, so
// that writes do not fall in step with any periodic work). `write(k)` puts
// the value k under the prefix and returns whether it was acknowledged.
// Times count from just before write(k) is called. The caller stops the
// children afterwards (they end by themselves once every write arrived).
watch_result run_watch(const watch_plan& plan, pid_t leader, const std::vector<pid_t>& servers,
                       const std::function<watcher_children()>& start, const std::function<bool(int)>& write);

}  // namespace conclave::bench
