// The log store contract, checked against both implementations (memory_log
// and lmdb_log), plus what only the LMDB one has: reopening, the LOCK, map
// growth up to a cap.
#include <doctest/doctest.h>

#include <memory>

#include "storage/lmdb_log.hpp"
#include "storage/memory_log.hpp"
#include "test/skip.hpp"
#include "test/small_disk.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace conclave::raft;
using namespace conclave::storage;

namespace {

log_entry entry_at(std::uint64_t index, std::uint64_t term, std::size_t size = 10) {
  std::string payload(size, '\0');
  for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(index * 31 + term * 7 + i);
  return log_entry{term_t{term}, index_t{index}, entry_kind::command, std::move(payload)};
}

std::vector<log_entry> run(std::uint64_t from, std::uint64_t to, std::uint64_t term, std::size_t size = 10) {
  std::vector<log_entry> out;
  for (auto i = from; i <= to; ++i) out.push_back(entry_at(i, term, size));
  return out;
}

struct memory_fixture {
  memory_log log_;
  log_store& log() { return log_; }
};

struct lmdb_fixture {
  test::temp_dir dir;
  std::unique_ptr<lmdb_log> log_;
  lmdb_fixture() {
    auto opened = lmdb_log::open(dir.path());
    REQUIRE_MESSAGE(opened.has_value(), opened.error().message());
    log_ = std::move(*opened);
  }
  log_store& log() { return *log_; }
};

}  // namespace

TEST_CASE_TEMPLATE("an empty log starts at index 1 with term 0", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  CHECK(log.first_index() == index_t{1});
  CHECK(log.last_index() == index_t{0});
  CHECK(log.start_index() == index_t{0});
  CHECK(*log.term(index_t{0}) == term_t{0});
  CHECK(log.term(index_t{1}).error().code == errc::unavailable);
  CHECK(log.entry(index_t{1}).error().code == errc::unavailable);
  CHECK(log.entries(index_t{1}, 10, 1000).error().code == errc::unavailable);
  CHECK(log.state() == hard_state{});
}

TEST_CASE_TEMPLATE("appended entries read back one at a time and as ranges", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 5, 1)).has_value());
  REQUIRE(log.append(run(6, 10, 2)).has_value());
  CHECK(log.last_index() == index_t{10});
  for (std::uint64_t i = 1; i <= 10; ++i) {
    CHECK(*log.entry(index_t{i}) == entry_at(i, i <= 5 ? 1 : 2));
    CHECK(*log.term(index_t{i}) == term_t{i <= 5 ? 1u : 2u});
  }
  auto all = log.entries(index_t{3}, 100, 1 << 20);
  REQUIRE(all.has_value());
  REQUIRE(all->size() == 8);
  CHECK(all->front() == entry_at(3, 1));
  CHECK(all->back() == entry_at(10, 2));
}

TEST_CASE_TEMPLATE("a range is bounded by count and by bytes but returns at least one entry", F,
                   memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 10, 1, 100)).has_value());
  CHECK(log.entries(index_t{1}, 4, 1 << 20)->size() == 4);
  CHECK(log.entries(index_t{1}, 100, 350)->size() == 3);  // 3 x 100 B fit in 350 B, 4 do not
  CHECK(log.entries(index_t{1}, 100, 10)->size() == 1);   // one oversized entry still goes
  CHECK(log.entries(index_t{9}, 100, 1 << 20)->size() == 2);
}

TEST_CASE_TEMPLATE("an append that does not continue the log is refused and changes nothing", F,
                   memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 3, 1)).has_value());
  CHECK(log.append(run(5, 6, 1)).error().code == errc::out_of_order);  // gap
  CHECK(log.append(run(3, 4, 1)).error().code == errc::out_of_order);  // overlap
  auto holes = run(4, 4, 1);
  holes.push_back(entry_at(6, 1));
  CHECK(log.append(holes).error().code == errc::out_of_order);  // gap inside the batch
  CHECK(log.append({entry_at(4, 0)}).error().code == errc::invalid_argument);  // term 0
  CHECK(log.last_index() == index_t{3});
  CHECK(log.entry(index_t{4}).error().code == errc::unavailable);
}

TEST_CASE_TEMPLATE("truncating a suffix drops the conflicting entries; new ones follow", F,
                   memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 10, 1)).has_value());
  REQUIRE(log.truncate_suffix(index_t{6}).has_value());
  CHECK(log.last_index() == index_t{5});
  CHECK(log.entry(index_t{6}).error().code == errc::unavailable);
  // Truncation and append in one batch: a follower resolving a conflict.
  write_batch batch;
  batch.truncate_from = index_t{4};
  batch.entries = run(4, 8, 2);
  REQUIRE(log.write(batch).has_value());
  CHECK(log.last_index() == index_t{8});
  CHECK(*log.term(index_t{3}) == term_t{1});
  CHECK(*log.entry(index_t{4}) == entry_at(4, 2));
  // Truncating past the end is a no-op.
  REQUIRE(log.truncate_suffix(index_t{100}).has_value());
  CHECK(log.last_index() == index_t{8});
}

TEST_CASE_TEMPLATE("truncating to 0 empties the log, and it can grow again", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 5, 1)).has_value());
  REQUIRE(log.truncate_suffix(index_t{1}).has_value());
  CHECK(log.last_index() == index_t{0});
  CHECK(log.entry(index_t{1}).error().code == errc::unavailable);
  REQUIRE(log.append(run(1, 2, 3)).has_value());
  CHECK(*log.entry(index_t{1}) == entry_at(1, 3));
}

TEST_CASE_TEMPLATE("committed entries are never truncated", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 5, 1)).has_value());
  REQUIRE(log.save_state({term_t{1}, node_id{1}, index_t{3}}).has_value());
  auto refused = log.truncate_suffix(index_t{3});
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::invalid_argument);
  CHECK(log.last_index() == index_t{5});
  CHECK(log.truncate_suffix(index_t{4}).has_value());
}

TEST_CASE_TEMPLATE("compaction keeps the start term and the entries after it", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 5, 1)).has_value());
  REQUIRE(log.append(run(6, 10, 2)).has_value());
  REQUIRE(log.compact(index_t{7}, term_t{2}).has_value());
  CHECK(log.start_index() == index_t{7});
  CHECK(log.start_term() == term_t{2});
  CHECK(log.first_index() == index_t{8});
  CHECK(log.last_index() == index_t{10});
  CHECK(*log.term(index_t{7}) == term_t{2});  // the compacted entry's term is kept
  CHECK(log.term(index_t{6}).error().code == errc::compacted);
  CHECK(log.entry(index_t{7}).error().code == errc::compacted);
  CHECK(*log.entry(index_t{8}) == entry_at(8, 2));
  CHECK(log.state().commit_index >= index_t{7});  // a snapshot covers only committed entries
  // Compacting at or below the start changes nothing.
  REQUIRE(log.compact(index_t{3}, term_t{1}).has_value());
  CHECK(log.start_index() == index_t{7});
  // Entries still append after the compacted prefix.
  REQUIRE(log.append(run(11, 12, 2)).has_value());
  CHECK(log.entries(index_t{8}, 100, 1 << 20)->size() == 5);
}

TEST_CASE_TEMPLATE("compacting past the last index discards the whole log", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 5, 1)).has_value());
  REQUIRE(log.compact(index_t{20}, term_t{3}).has_value());
  CHECK(log.start_index() == index_t{20});
  CHECK(log.last_index() == index_t{20});
  CHECK(*log.term(index_t{20}) == term_t{3});
  CHECK(log.entry(index_t{5}).error().code == errc::compacted);
  REQUIRE(log.append(run(21, 22, 3)).has_value());
  CHECK(log.append(run(20, 20, 3)).error().code == errc::out_of_order);
}

TEST_CASE_TEMPLATE("a snapshot that conflicts with the log replaces all of it", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.append(run(1, 10, 1)).has_value());
  // The snapshot's last entry (5, term 2) is not what this log has at 5.
  REQUIRE(log.compact(index_t{5}, term_t{2}).has_value());
  CHECK(log.start_index() == index_t{5});
  CHECK(log.last_index() == index_t{5});
  CHECK(log.entry(index_t{6}).error().code == errc::unavailable);
}

TEST_CASE_TEMPLATE("hard state never goes backwards", F, memory_fixture, lmdb_fixture) {
  F f;
  auto& log = f.log();
  REQUIRE(log.save_state({term_t{5}, node_id{2}, index_t{10}}).has_value());
  CHECK(log.save_state({term_t{4}, node_id{2}, index_t{10}}).error().code == errc::hard_state_regression);
  CHECK(log.save_state({term_t{5}, node_id{3}, index_t{10}}).error().code == errc::hard_state_regression);
  CHECK(log.save_state({term_t{5}, node_id{2}, index_t{9}}).error().code == errc::hard_state_regression);
  CHECK(log.state() == hard_state{term_t{5}, node_id{2}, index_t{10}});
  // A new term may vote for anybody (or nobody yet).
  CHECK(log.save_state({term_t{6}, no_node, index_t{10}}).has_value());
  CHECK(log.save_state({term_t{6}, node_id{3}, index_t{11}}).has_value());
  // A batch with a bad hard state stores none of its entries either.
  write_batch batch;
  batch.entries = run(1, 3, 6);
  batch.state = hard_state{term_t{5}, no_node, index_t{11}};
  CHECK(log.write(batch).error().code == errc::hard_state_regression);
  CHECK(log.last_index() == index_t{0});
}

TEST_CASE("an LMDB log reopens with its entries, start and hard state") {
  test::temp_dir dir;
  {
    auto log = lmdb_log::open(dir.path());
    REQUIRE(log.has_value());
    REQUIRE((*log)->append(run(1, 20, 1)).has_value());
    REQUIRE((*log)->append(run(21, 30, 4)).has_value());
    REQUIRE((*log)->compact(index_t{10}, term_t{1}).has_value());
    REQUIRE((*log)->save_state({term_t{4}, node_id{3}, index_t{25}}).has_value());
  }
  auto log = lmdb_log::open(dir.path());
  REQUIRE_MESSAGE(log.has_value(), log.error().message());
  auto& l = **log;
  CHECK(l.start_index() == index_t{10});
  CHECK(l.start_term() == term_t{1});
  CHECK(l.last_index() == index_t{30});
  CHECK(l.state() == hard_state{term_t{4}, node_id{3}, index_t{25}});
  CHECK(*l.entry(index_t{11}) == entry_at(11, 1));
  CHECK(*l.entry(index_t{30}) == entry_at(30, 4));
}

TEST_CASE("an LMDB log that was fully compacted reopens at its start") {
  test::temp_dir dir;
  {
    auto log = lmdb_log::open(dir.path());
    REQUIRE(log.has_value());
    REQUIRE((*log)->append(run(1, 5, 1)).has_value());
    REQUIRE((*log)->compact(index_t{50}, term_t{2}).has_value());
  }
  auto log = lmdb_log::open(dir.path());
  REQUIRE(log.has_value());
  CHECK((*log)->last_index() == index_t{50});
  CHECK((*log)->first_index() == index_t{51});
  CHECK(*(*log)->term(index_t{50}) == term_t{2});
}

TEST_CASE("a data directory can be opened by one owner at a time") {
  test::temp_dir dir;
  auto first = lmdb_log::open(dir.path());
  REQUIRE(first.has_value());
  auto second = lmdb_log::open(dir.path());
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().code == errc::io_error);
  CHECK(second.error().message().find("in use") != std::string::npos);
  first->reset();
  CHECK(lmdb_log::open(dir.path()).has_value());
}

TEST_CASE("the LMDB map grows when full, and at its cap appends fail cleanly") {
  test::temp_dir dir;
  lmdb_options options;
  options.initial_map_bytes = 256 << 10;
  options.max_map_bytes = 4 << 20;
  auto opened = lmdb_log::open(dir.path(), options);
  REQUIRE(opened.has_value());
  auto& log = **opened;
  std::uint64_t next = 1;
  expected<void> result;
  // 16 entries of 4 KiB a batch until the cap stops us.
  while ((result = log.append(run(next, next + 15, 1, 4096))).has_value()) {
    next += 16;
    REQUIRE(next < 100000);
  }
  CHECK(result.error().code == errc::map_full);
  CHECK(result.error().message().find("disk/map full") != std::string::npos);
  CHECK(log.map_bytes() == options.max_map_bytes);
  CHECK(next > 16 * 16);  // it did grow past the initial 256 KiB
  auto last = log.last_index();
  CHECK(last == index_t{next - 1});
  // Nothing already written is harmed, and the log stays usable for reads,
  // for small writes that still fit, and for compaction that frees space.
  for (std::uint64_t i = 1; i <= last.value; i += 97) CHECK(*log.entry(index_t{i}) == entry_at(i, 1, 4096));
  REQUIRE(log.save_state({term_t{1}, node_id{1}, last}).has_value());
  REQUIRE(log.compact(index_t{last.value - 16}, term_t{1}).has_value());
  // LMDB reuses the pages a transaction freed only from the second
  // transaction after it (the previous meta page may still point at them).
  REQUIRE(log.save_state({term_t{2}, node_id{1}, last}).has_value());
  auto resumed = log.append(run(last.value + 1, last.value + 16, 1, 4096));
  CHECK_MESSAGE(resumed.has_value(), resumed.error().message());
  opened->reset();
  auto reopened = lmdb_log::open(dir.path(), options);
  REQUIRE(reopened.has_value());
  CHECK((*reopened)->last_index() == index_t{last.value + 16});
}

TEST_CASE("a full disk fails appends cleanly, and the same handle writes again once space returns") {
  test::small_disk disk(8 << 20);
  if (!disk.mounted()) {
    CONCLAVE_SKIP(disk.why_not());
  }
  auto opened = lmdb_log::open(disk / "log");
  REQUIRE_MESSAGE(opened.has_value(), opened.error().message());
  auto& log = **opened;
  REQUIRE(log.append(run(1, 16, 1, 4096)).has_value());
  disk.fill(1 << 20);
  std::uint64_t next = 17;
  expected<void> result;
  // Batches of 16 entries of 4 KiB (64 KiB) until the file system is full.
  while ((result = log.append(run(next, next + 15, 1, 4096))).has_value()) {
    next += 16;
    REQUIRE(next < 100000);
  }
  INFO(result.error().message());
  // A short write (the kernel wrote what fit) is disk full too, not an I/O error.
  CHECK(result.error().code == errc::disk_full);
  CHECK(result.error().message().find("disk/map full") != std::string::npos);
  auto last = log.last_index();
  CHECK(last == index_t{next - 1});
  for (std::uint64_t i = 1; i <= last.value; i += 7) CHECK(*log.entry(index_t{i}) == entry_at(i, 1, 4096));
  // Still full: the same batch fails again, and nothing of it is stored.
  CHECK(log.append(run(next, next + 15, 1, 4096)).error().code == errc::disk_full);
  CHECK(log.last_index() == last);

  disk.free_filler();
  auto resumed = log.append(run(next, next + 15, 1, 4096));
  CHECK_MESSAGE(resumed.has_value(), resumed.error().message());
  REQUIRE(log.save_state({term_t{1}, node_id{1}, index_t{next + 15}}).has_value());
  opened->reset();
  auto reopened = lmdb_log::open(disk / "log");
  REQUIRE(reopened.has_value());
  CHECK((*reopened)->last_index() == index_t{next + 15});
  CHECK((*reopened)->state().commit_index == index_t{next + 15});
  for (std::uint64_t i = 1; i <= next + 15; i += 5) CHECK(*(*reopened)->entry(index_t{i}) == entry_at(i, 1, 4096));
}
