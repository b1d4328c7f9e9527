// A tiny run of every conclave-bench scenario, so the harness keeps working.
// It checks that each scenario completes; it never judges the figures.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

TEST_CASE("conclave-bench runs every scenario once and reports it") {
  const char* env = std::getenv("CONCLAVE_BENCH");
  const char* bin = std::getenv("CONCLAVE_BIN");
  // The harness's own log (which trial failed and why) is shown on failure.
  char pattern[] = "/tmp/conclave-bench-smoke-XXXXXX";
  int fd = ::mkstemp(pattern);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::string errors = pattern;
  // Its own deadline, inside meson's (300 s): a run that hangs still ends
  // with its log shown below (SIGTERM lets the harness stop its processes).
  std::string cmd = std::string("timeout -k 10 200 ") + (env ? env : "build/bench/conclave-bench") + " --trials 1 --seconds 0.3 --scale 200 --scale-seconds 1 --recovery-entries 3000 --json --binary " +
                    (bin ? bin : "build/roles/conclave") + " 2>" + errors;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int status = ::pclose(p);
  std::string log;
  if (std::FILE* e = std::fopen(errors.c_str(), "r")) {
    while (std::fgets(buf, sizeof buf, e)) log += buf;
    std::fclose(e);
  }
  std::remove(errors.c_str());
  INFO("conclave-bench's log:\n" << (log.size() > 8000 ? "..." + log.substr(log.size() - 8000) : log));
  CHECK(status == 0);
  for (auto scenario : {"leader-crash", "leader-freeze", "leader-stop", "leader-cutoff", "worker-crash",
                        "failover-workers", "failover-lock", "lock-cycle", "lock-handoff", "write"}) {
    auto pos = out.find(std::string("\"scenario\":\"") + scenario + "\"");
    REQUIRE_MESSAGE(pos != std::string::npos, scenario << " missing in: " << out);
    auto end = out.find('}', pos);
    auto row = out.substr(pos, end - pos);
    CHECK_MESSAGE(row.find("\"trials\":1") != std::string::npos, row);
    CHECK_MESSAGE(row.find("\"failed\":0") != std::string::npos, row);
  }
  for (auto clients : {"\"clients\":1,", "\"clients\":8,", "\"clients\":64,"}) {
    CHECK_MESSAGE(out.find(clients) != std::string::npos, out);
  }
  // Heartbeat scale: every simulated worker registered and heartbeats were
  // answered. How many failed is a figure (a leader change on a loaded
  // machine refuses a window of them), reported, not judged.
  auto scale = out.find("\"scale\":[{");
  REQUIRE_MESSAGE(scale != std::string::npos, out);
  CHECK_MESSAGE(out.find("\"sessions\":200,", scale) != std::string::npos, out);
  auto beats = out.find("\"heartbeats\":", scale);
  REQUIRE_MESSAGE(beats != std::string::npos, out);
  CHECK_MESSAGE(std::strtoull(out.c_str() + beats + 13, nullptr, 10) > 0, out);
  // Recovery: the restarted master caught up both times.
  CHECK_MESSAGE(out.find("\"ok\":true", out.find("\"recovery\":")) != std::string::npos, out);
}
