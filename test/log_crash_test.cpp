// Crash durability of the LMDB log. A child process appends batches (and
// raises its term, and compacts now and then) and reports each acknowledged
// write through a pipe; the parent kills it with SIGKILL at random moments,
// reopens the log and checks that every acknowledged entry is present and
// intact, that the log has no gap, that term and commit index never went
// back, and that mdb_stat still reads the environment.
//
//   log_crash_test [--kills N] [--seed S] [doctest options]
#define DOCTEST_CONFIG_IMPLEMENT  // own main(), for --kills and --seed
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <map>
#include <random>
#include <sstream>

#include "storage/lmdb_log.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace conclave::raft;
using namespace conclave::storage;

namespace {

int kills = 200;
std::uint64_t seed = 0;

// Payload of entry (index, term): its size and bytes follow from both, so a
// reader can tell an intact entry from a torn or misplaced one.
std::string payload_for(std::uint64_t index, std::uint64_t term) {
  std::uint64_t h = index * 0x9E3779B97F4A7C15ull ^ term * 0xC2B2AE3D27D4EB4Full;
  std::string p(h % 3000, '\0');
  for (auto& c : p) {
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    c = static_cast<char>(h >> 56);
  }
  return p;
}

lmdb_options crash_options() {
  lmdb_options o;
  o.initial_map_bytes = 1 << 20;  // small, so the map grows during the run
  o.max_map_bytes = 1ull << 30;
  return o;
}

// The child: appends until killed. Reports "A <last index> <term> <commit>"
// after each durable batch and "C <start index> <term>" after each compaction.
[[noreturn]] void writer(const std::string& dir, int out_fd, std::uint64_t child_seed) {
  auto opened = lmdb_log::open(dir, crash_options());
  if (!opened) {
    std::fprintf(stderr, "child: %s\n", opened.error().message().c_str());
    _exit(3);
  }
  auto& log = **opened;
  std::mt19937_64 rng(child_seed);
  auto state = log.state();
  if (state.term == term_t{0}) state.term = term_t{1};
  for (std::uint64_t batch_no = 0;; ++batch_no) {
    if (rng() % 8 == 0) {  // a new term, with a vote
      state.term = term_t{state.term.value + 1};
      state.voted_for = node_id{1 + rng() % 3};
    }
    write_batch batch;
    auto first = log.last_index().value + 1;
    auto count = 1 + rng() % 32;
    for (auto i = first; i < first + count; ++i) {
      batch.entries.push_back(log_entry{state.term, index_t{i}, entry_kind::command,
                                        payload_for(i, state.term.value)});
    }
    state.commit_index = index_t{first - 1};
    batch.state = state;
    if (auto ok = log.write(batch); !ok) {
      std::fprintf(stderr, "child: %s\n", ok.error().message().c_str());
      _exit(4);
    }
    char line[96];
    int n = std::snprintf(line, sizeof line, "A %llu %llu %llu\n",
                          static_cast<unsigned long long>(first + count - 1),
                          static_cast<unsigned long long>(state.term.value),
                          static_cast<unsigned long long>(state.commit_index.value));
    if (::write(out_fd, line, static_cast<std::size_t>(n)) != n) _exit(5);
    if (batch_no % 20 == 19 && log.last_index().value > 300) {
      auto upto = index_t{log.last_index().value - 200};
      auto t = log.term(upto);
      if (!t || !log.compact(upto, *t)) _exit(6);
      n = std::snprintf(line, sizeof line, "C %llu %llu\n", static_cast<unsigned long long>(upto.value),
                        static_cast<unsigned long long>(t->value));
      if (::write(out_fd, line, static_cast<std::size_t>(n)) != n) _exit(5);
    }
  }
}

struct acknowledged {
  std::map<std::uint64_t, std::uint64_t> term_of;  // index -> term of each acknowledged entry
  std::uint64_t max_term = 0;
  std::uint64_t max_commit = 0;
  std::uint64_t compacted_to = 0;
  std::uint64_t last_index = 0;
};

void record(acknowledged& acks, const std::string& line) {
  std::istringstream in(line);
  char kind;
  std::uint64_t a, b, c;
  in >> kind >> a >> b;
  if (kind == 'A') {
    in >> c;
    for (auto i = acks.last_index + 1; i <= a; ++i) acks.term_of[i] = b;
    acks.last_index = a;
    acks.max_term = std::max(acks.max_term, b);
    acks.max_commit = std::max(acks.max_commit, c);
  } else if (kind == 'C') {
    acks.compacted_to = std::max(acks.compacted_to, a);
  }
}

// Reads the child's reports until the deadline; returns the lines seen.
int read_reports(int fd, acknowledged& acks, std::string& pending, std::chrono::steady_clock::time_point deadline) {
  int lines = 0;
  char buf[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      record(acks, pending.substr(0, nl));
      pending.erase(0, nl + 1);
      ++lines;
    }
  }
  return lines;
}

}  // namespace

TEST_CASE("acknowledged log writes survive SIGKILL at random moments") {
  test::temp_dir dir;
  auto run_seed = seed ? seed : static_cast<std::uint64_t>(std::random_device{}());
  INFO("seed " << run_seed << " (replay with --seed " << run_seed << ")");
  std::mt19937_64 rng(run_seed);
  acknowledged acks;
  std::uint64_t last_term_seen = 0, last_commit_seen = 0;
  int total_reports = 0;
  bool have_mdb_stat = std::system("command -v mdb_stat >/dev/null 2>&1") == 0;

  for (int k = 0; k < kills; ++k) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      writer(dir.path(), fds[1], rng());
    }
    ::close(fds[1]);
    // Kill at a random moment: sometimes while it opens, mostly mid-stream.
    auto delay = std::chrono::microseconds(rng() % 40000);
    std::string pending;
    total_reports += read_reports(fds[0], acks, pending, std::chrono::steady_clock::now() + delay);
    ::kill(pid, SIGKILL);
    // Reports written before the kill are acknowledged too.
    total_reports += read_reports(fds[0], acks, pending, std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                    "child exited on its own with status " << status);

    // A kill while LMDB creates the environment (before its two meta pages
    // are written) leaves no data file, or an empty one: LMDB treats that as
    // a new environment, and mdb_stat (read-only) cannot open it. That is
    // only valid while nothing was ever acknowledged.
    std::error_code size_error;
    auto data_bytes = std::filesystem::file_size(dir.path() + "/data.mdb", size_error);
    if (size_error || data_bytes == 0) {
      REQUIRE_MESSAGE(acks.last_index == 0, "kill " << k << ": no environment, yet writes up to " << acks.last_index
                                                    << " were acknowledged");
    } else if (have_mdb_stat) {
      auto cmd = "mdb_stat -a " + dir.path() + " >/dev/null 2>&1";
      REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "mdb_stat failed after kill " << k);
    }
    auto opened = lmdb_log::open(dir.path(), crash_options());
    REQUIRE_MESSAGE(opened.has_value(), "reopen after kill " << k << ": " << opened.error().message());
    auto& log = **opened;
    auto state = log.state();
    INFO("kill " << k << ": log " << log.first_index() << ".." << log.last_index());
    // Term and commit index never go back, and cover what was acknowledged.
    CHECK(state.term.value >= acks.max_term);
    CHECK(state.term.value >= last_term_seen);
    CHECK(state.commit_index.value >= acks.max_commit);
    CHECK(state.commit_index.value >= last_commit_seen);
    last_term_seen = state.term.value;
    last_commit_seen = state.commit_index.value;
    // Compaction is never lost once acknowledged, and the log holds every
    // acknowledged entry after it.
    CHECK(log.start_index().value >= acks.compacted_to);
    CHECK(log.last_index().value >= acks.last_index);
    acks.term_of.erase(acks.term_of.begin(), acks.term_of.upper_bound(log.start_index().value));
    // Every entry, acknowledged or not, is intact and in sequence (no gap).
    auto next = log.first_index();
    while (next <= log.last_index()) {
      auto batch = log.entries(next, 512, 1 << 24);
      REQUIRE_MESSAGE(batch.has_value(), batch.error().message());
      for (const auto& e : *batch) {
        REQUIRE(e.index == next);
        REQUIRE(e.payload == payload_for(e.index.value, e.term.value));
        auto acked = acks.term_of.find(e.index.value);
        if (acked != acks.term_of.end()) REQUIRE(e.term.value == acked->second);
        next = index_t{next.value + 1};
      }
    }
    // Durable but unacknowledged entries become acknowledged: the next child
    // continues after them.
    for (auto i = acks.last_index + 1; i <= log.last_index().value; ++i) {
      acks.term_of[i] = log.term(index_t{i})->value;
    }
    acks.last_index = log.last_index().value;
  }
  MESSAGE(kills << " kills, " << total_reports << " acknowledged writes, log ends at " << acks.last_index);
  CHECK(total_reports > 0);
}

// The state a kill leaves when it lands while LMDB creates the environment
// (the case that made the crash run fail once at kill 0): an empty data file.
TEST_CASE("a data file left empty by a kill during creation opens as an empty log") {
  test::temp_dir dir;
  { std::FILE* f = std::fopen((dir / "data.mdb").c_str(), "w"); REQUIRE(f != nullptr); std::fclose(f); }
  auto opened = lmdb_log::open(dir.path(), crash_options());
  REQUIRE_MESSAGE(opened.has_value(), opened.error().message());
  CHECK((*opened)->last_index().value == 0);
  write_batch batch;
  batch.entries.push_back(log_entry{term_t{1}, index_t{1}, entry_kind::command, payload_for(1, 1)});
  REQUIRE((*opened)->write(batch).has_value());
  CHECK((*opened)->last_index().value == 1);
}

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--kills") == 0 && i + 1 < argc) {
      kills = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  doctest::Context context(static_cast<int>(rest.size()), rest.data());
  return context.run();
}
