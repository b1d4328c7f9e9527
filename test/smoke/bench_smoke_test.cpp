// A tiny run of every conclave-bench scenario, so the harness keeps working.
// It checks that each scenario completes; it never judges the figures.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace {

struct bench_run {
  int status = -1;
  std::string out;  // the report
  std::string log;  // the harness's own log (which trial failed and why)
};

// Runs conclave-bench with `args` under its own deadline, inside meson's
// (300 s): a run that hangs still ends with its log shown (SIGTERM lets the
// harness stop its processes).
bench_run run_bench(const std::string& args, int deadline_s) {
  const char* env = std::getenv("CONCLAVE_BENCH");
  const char* bin = std::getenv("CONCLAVE_BIN");
  char pattern[] = "/tmp/conclave-bench-smoke-XXXXXX";
  int fd = ::mkstemp(pattern);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::string errors = pattern;
  std::string cmd = "timeout -k 10 " + std::to_string(deadline_s) + " " + (env ? env : "build/bench/conclave-bench") +
                    " " + args + " --json --binary " + (bin ? bin : "build/roles/conclave") + " 2>" + errors;
  bench_run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.out += buf;
  r.status = ::pclose(p);
  if (std::FILE* e = std::fopen(errors.c_str(), "r")) {
    while (std::fgets(buf, sizeof buf, e)) r.log += buf;
    std::fclose(e);
  }
  std::remove(errors.c_str());
  if (r.log.size() > 8000) r.log = "..." + r.log.substr(r.log.size() - 8000);
  return r;
}

}  // namespace

TEST_CASE("conclave-bench runs every scenario once and reports it") {
  auto run = run_bench("--trials 1 --seconds 0.3 --scale 200 --scale-seconds 1 --recovery-entries 3000 --etcd-api", 200);
  const auto& out = run.out;
  INFO("conclave-bench's log:\n" << run.log);
  CHECK(run.status == 0);
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
  // The same masters through the etcd-API client (--etcd-api), after the
  // leader scenarios restarted them on new ports.
  for (auto scenario : {"worker-crash", "lock-cycle", "lock-handoff", "write"}) {
    auto pos = out.find(std::string("\"scenario\":\"") + scenario + "\",\"system\":\"conclave (etcd API)\"");
    REQUIRE_MESSAGE(pos != std::string::npos, scenario << " through the etcd API missing in: " << out);
    auto row = out.substr(pos, out.find('}', pos) - pos);
    CHECK_MESSAGE(row.find("\"trials\":1") != std::string::npos, row);
    CHECK_MESSAGE(row.find("\"failed\":0") != std::string::npos, row);
  }
  for (auto clients : {"1", "8", "64"}) {
    auto row = std::string("{\"system\":\"conclave (etcd API)\",\"clients\":") + clients + ",";
    CHECK_MESSAGE(out.find(row) != std::string::npos, row << " missing in: " << out);
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

// The watch scenario (not in the default run), tiny: every watcher got every
// write, through whatever node::watch does (polling or push), and through the
// etcd-API client's watch streams.
TEST_CASE("conclave-bench's watch scenario delivers every write to every watcher") {
  auto run = run_bench("--scenarios watch --watchers 30 --watch-writes 3 --watch-idle-seconds 1 --seconds 0 --scale 0 "
                       "--recovery-entries 0 --etcd-api",
                       90);
  INFO("conclave-bench's log:\n" << run.log);
  CHECK(run.status == 0);
  for (auto system : {"conclave", "conclave (etcd API)"}) {
    auto watch = run.out.find(std::string("{\"system\":\"") + system + "\",\"watchers\":");
    REQUIRE_MESSAGE(watch != std::string::npos, system << " missing in: " << run.out);
    auto row = run.out.substr(watch, run.out.find('}', watch) - watch);
    CHECK_MESSAGE(row.find("\"watchers\":30,") != std::string::npos, row);
    CHECK_MESSAGE(row.find("\"writes\":3,\"incomplete\":0,") != std::string::npos, row);
    CHECK_MESSAGE(row.find("\"failure\":\"\"") != std::string::npos, row);
  }
}

// The embedded scenario (not in the default run), tiny: the host embedding
// the leader ran its load both ways and the external clients ran theirs.
TEST_CASE("conclave-bench's embedded scenario runs the host's and the external clients' loads") {
  auto run = run_bench("--scenarios embedded --embedded-seconds 0.3 --embedded-rounds 1 --seconds 0 --scale 0 --recovery-entries 0", 120);
  INFO("conclave-bench's log:\n" << run.log);
  CHECK(run.status == 0);
  auto embedded = run.out.find("\"embedded\":{");
  REQUIRE_MESSAGE(embedded != std::string::npos, run.out);
  auto section = run.out.substr(embedded, run.out.find("]}", embedded) - embedded);
  CHECK_MESSAGE(section.find("\"threads\":8,") != std::string::npos, section);
  CHECK_MESSAGE(section.find("\"failure\":\"\"") != std::string::npos, section);
  std::size_t runs = 0;
  for (auto p = section.find("\"ops_per_s\":"); p != std::string::npos; p = section.find("\"ops_per_s\":", p + 1)) {
    ++runs;
    CHECK_MESSAGE(std::strtod(section.c_str() + p + 12, nullptr) > 0, section);
  }
  CHECK_MESSAGE(runs == 3, section);
}

TEST_CASE("hop_bench times a round trip by TCP, CAF actors and CAF brokers, and its serving process ends") {
  const char* env = std::getenv("CONCLAVE_HOP_BENCH");
  std::string cmd = std::string("timeout -k 10 120 ") + (env ? env : "build/bench/hop_bench") + " --trips 200 --rounds 1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  CHECK_MESSAGE(::pclose(p) == 0, out);  // (a serving process left behind would hang it into the timeout)
  for (auto carrier : {"  tcp ", "  actors ", "  brokers "}) CHECK_MESSAGE(out.find(carrier) != std::string::npos, out);
}
