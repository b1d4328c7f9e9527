// Closed-loop write load from threads (for systems driven through blocking
// client libraries, CAF-free): each client sends its next write when the
// previous one was acknowledged; only writes acknowledged within the window
// count.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "bench/system.hpp"

namespace conclave::bench {

// `open(who)` makes client `who` (and may write once to connect); `write(c,
// who, n)` makes its n-th write and says whether it was acknowledged.
template <class Open, class Write>
throughput closed_loop(int clients, double seconds, Open open, Write write) {
  using clock = std::chrono::steady_clock;
  throughput out;
  out.clients = clients;
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::vector<std::size_t> errors(static_cast<std::size_t>(clients));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  clock::time_point end;  // set before `go`
  std::vector<std::thread> threads;
  for (int who = 0; who < clients; ++who) {
    threads.emplace_back([&, who] {
      auto w = static_cast<std::size_t>(who);
      auto c = open(who);
      ++ready;
      while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      for (std::size_t n = 0;; ++n) {
        auto sent = clock::now();
        bool ok = write(c, who, n);
        auto done = clock::now();
        if (done > end) break;
        if (ok) latencies[w].push_back(std::chrono::duration<double, std::milli>(done - sent).count());
        else ++errors[w];
      }
    });
  }
  auto ready_until = clock::now() + std::chrono::seconds(10);
  while (ready < clients && clock::now() < ready_until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  end = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  go = true;
  for (auto& t : threads) t.join();
  for (std::size_t w = 0; w < latencies.size(); ++w) {
    out.latency_ms.insert(out.latency_ms.end(), latencies[w].begin(), latencies[w].end());
    out.errors += errors[w];
  }
  out.writes_per_s = static_cast<double>(out.latency_ms.size()) / seconds;
  return out;
}

}  // namespace conclave::bench
