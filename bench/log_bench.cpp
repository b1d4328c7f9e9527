// Durable-append benchmark of the LMDB log.
//
// For batches of 1, 16 and 256 entries of 100 B and 4 KiB it measures
// lmdb_log::append (encode + one LMDB write transaction + its fsync) next to
// two references run in the same process, interleaved round by round:
//   raw LMDB   the same puts and one mdb_txn_commit per batch, no encoding
//   file       write() of the batch's bytes + fdatasync() on a plain file:
//              what this disk can do at all
// and prints entries/s and per-batch p50/p99 latency, and conclave's ratios.
//
//   log_bench [--json] [--dir DIR] [--seconds S] [--rounds R]
#include <fcntl.h>
#include <fmt/core.h>
#include <lmdb.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "storage/lmdb_log.hpp"

using namespace conclave;
using clock_type = std::chrono::steady_clock;

namespace {

struct shape {
  std::size_t batch;
  std::size_t payload;
};

struct result {
  std::size_t entries = 0;
  double seconds = 0;
  std::vector<double> batch_us;  // latency of each batch

  double per_second() const { return seconds > 0 ? entries / seconds : 0; }
  double percentile(double p) {
    if (batch_us.empty()) return 0;
    std::sort(batch_us.begin(), batch_us.end());
    auto i = static_cast<std::size_t>(p * (batch_us.size() - 1));
    return batch_us[i];
  }
};

[[noreturn]] void fail(const std::string& what) {
  fmt::print(stderr, "log_bench: {}\n", what);
  std::exit(1);
}

// Runs `one_batch` repeatedly for `seconds`, adding to `into`.
void measure(result& into, const shape& s, double seconds, const std::function<void()>& one_batch) {
  auto start = clock_type::now();
  auto end = start + std::chrono::duration<double>(seconds);
  auto now = start;
  while (now < end) {
    auto t0 = clock_type::now();
    one_batch();
    now = clock_type::now();
    into.batch_us.push_back(std::chrono::duration<double, std::micro>(now - t0).count());
    into.entries += s.batch;
  }
  into.seconds += std::chrono::duration<double>(now - start).count();
}

// conclave's log: a fresh directory per shape.
struct conclave_runner {
  std::unique_ptr<storage::lmdb_log> log;
  std::string payload;
  std::uint64_t next = 1;
  conclave_runner(const std::string& dir, std::size_t payload_bytes) : payload(payload_bytes, 'c') {
    auto opened = storage::lmdb_log::open(dir);
    if (!opened) fail(opened.error().message());
    log = std::move(*opened);
  }
  void batch(std::size_t n) {
    std::vector<raft::log_entry> entries;
    entries.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      entries.push_back({raft::term_t{1}, raft::index_t{next++}, raft::entry_kind::command, payload});
    }
    if (auto ok = log->append(std::move(entries)); !ok) fail(ok.error().message());
  }
};

// Raw LMDB with the same environment settings and keys, values as bare bytes.
struct lmdb_runner {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  std::string payload;
  std::uint64_t next = 1;
  lmdb_runner(const std::string& dir, std::size_t payload_bytes) : payload(payload_bytes, 'r') {
    std::filesystem::create_directories(dir);
    check(mdb_env_create(&env), "env create");
    mdb_env_set_maxdbs(env, 2);
    mdb_env_set_mapsize(env, 1ull << 30);
    check(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644), "env open");
    MDB_txn* txn;
    check(mdb_txn_begin(env, nullptr, 0, &txn), "begin");
    check(mdb_dbi_open(txn, "log", MDB_CREATE | MDB_INTEGERKEY, &dbi), "dbi open");
    check(mdb_txn_commit(txn), "commit");
  }
  ~lmdb_runner() { mdb_env_close(env); }
  static void check(int rc, const char* what) {
    if (rc != 0) fail(std::string("raw lmdb ") + what + ": " + mdb_strerror(rc));
  }
  void batch(std::size_t n) {
    MDB_txn* txn;
    check(mdb_txn_begin(env, nullptr, 0, &txn), "begin");
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t key = next++;
      MDB_val k{sizeof key, &key}, v{payload.size(), payload.data()};
      check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "put");
    }
    check(mdb_txn_commit(txn), "commit");
  }
};

// write() + fdatasync() of the batch's bytes on a plain file.
struct file_runner {
  int fd = -1;
  std::string bytes;
  std::size_t payload_bytes;
  file_runner(const std::string& dir, std::size_t payload) : payload_bytes(payload) {
    std::filesystem::create_directories(dir);
    fd = ::open((dir + "/data").c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) fail("file open: " + std::string(std::strerror(errno)));
  }
  ~file_runner() { ::close(fd); }
  void batch(std::size_t n) {
    bytes.assign(n * (payload_bytes + 16), 'f');  // payload plus a small per-entry header
    if (::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) fail("file write");
    if (::fdatasync(fd) != 0) fail("fdatasync");
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  std::string base = "/var/tmp";
  double seconds = 0.4;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") json = true;
    else if (a == "--dir" && i + 1 < argc) base = argv[++i];
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else {
      fmt::print(stderr, "usage: log_bench [--json] [--dir DIR] [--seconds S per measurement] [--rounds R]\n");
      return 2;
    }
  }
  auto root = base + "/conclave-log-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(root);

  const std::vector<shape> shapes = {{1, 100}, {16, 100}, {256, 100}, {1, 4096}, {16, 4096}, {256, 4096}};
  struct row {
    shape s;
    result conclave, lmdb, file;
  };
  std::vector<row> rows;
  for (const auto& s : shapes) {
    row r{s, {}, {}, {}};
    auto tag = fmt::format("{}x{}", s.batch, s.payload);
    conclave_runner c(root + "/conclave-" + tag, s.payload);
    lmdb_runner l(root + "/lmdb-" + tag, s.payload);
    file_runner f(root + "/file-" + tag, s.payload);
    // Interleaved rounds, so drift in the disk's speed hits all three alike.
    for (int round = 0; round < rounds; ++round) {
      measure(r.conclave, s, seconds, [&] { c.batch(s.batch); });
      measure(r.lmdb, s, seconds, [&] { l.batch(s.batch); });
      measure(r.file, s, seconds, [&] { f.batch(s.batch); });
    }
    rows.push_back(std::move(r));
  }
  std::filesystem::remove_all(root);

  if (json) {
    fmt::print("{{\"benchmark\":\"log_append\",\"seconds_per_measurement\":{},\"rounds\":{},\"results\":[", seconds, rounds);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      auto& r = rows[i];
      auto one = [](result& x) {
        return fmt::format("{{\"entries_per_s\":{:.0f},\"batch_latency_us_p50\":{:.1f},\"batch_latency_us_p99\":{:.1f},\"batches\":{}}}",
                           x.per_second(), x.percentile(0.5), x.percentile(0.99), x.batch_us.size());
      };
      fmt::print("{}{{\"batch\":{},\"payload_bytes\":{},\"conclave\":{},\"raw_lmdb\":{},\"file_fdatasync\":{},"
                 "\"raw_lmdb_over_conclave\":{:.3f}}}",
                 i ? "," : "", r.s.batch, r.s.payload, one(r.conclave), one(r.lmdb), one(r.file),
                 r.lmdb.per_second() / r.conclave.per_second());
    }
    fmt::print("]}}\n");
    return 0;
  }
  fmt::print("{:>6} {:>7} | {:>22} | {:>22} | {:>22} | {:>9}\n", "batch", "payload", "conclave log",
             "raw LMDB put+commit", "write+fdatasync", "raw/ours");
  fmt::print("{:>6} {:>7} | {:>9} {:>5} {:>6} | {:>9} {:>5} {:>6} | {:>9} {:>5} {:>6} | {:>9}\n", "", "",
             "entries/s", "p50us", "p99us", "entries/s", "p50us", "p99us", "entries/s", "p50us", "p99us", "");
  for (auto& r : rows) {
    auto cols = [](result& x) {
      return fmt::format("{:>9.0f} {:>5.0f} {:>6.0f}", x.per_second(), x.percentile(0.5), x.percentile(0.99));
    };
    fmt::print("{:>6} {:>7} | {} | {} | {} | {:>8.2f}x\n", r.s.batch, r.s.payload, cols(r.conclave), cols(r.lmdb),
               cols(r.file), r.lmdb.per_second() / r.conclave.per_second());
  }
  fmt::print("raw/ours: raw LMDB throughput over conclave's (1.00x = no overhead; target for batch 1: <= 1.2x)\n");
  return 0;
}
