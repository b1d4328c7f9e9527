// Snapshot files: durable, checksummed, the newest valid one wins, the last K kept.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "storage/snapshot_store.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace conclave::raft;
using namespace conclave::storage;

namespace {

snapshot_meta meta_at(std::uint64_t index, std::uint64_t term) {
  return snapshot_meta{index_t{index}, term_t{term},
                       configuration{{{node_id{1}, "127.0.0.1:1", suffrage::voter},
                                      {node_id{2}, "127.0.0.1:2", suffrage::learner}}}};
}

std::string data_for(std::uint64_t index) { return "state up to " + std::to_string(index) + std::string(1000, 'x'); }

void flip_byte(const std::string& path, std::size_t from_end) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(0, std::ios::end);
  auto size = static_cast<std::size_t>(f.tellg());
  f.seekp(static_cast<std::streamoff>(size - from_end));
  char c;
  f.seekg(static_cast<std::streamoff>(size - from_end));
  f.get(c);
  f.seekp(static_cast<std::streamoff>(size - from_end));
  f.put(static_cast<char>(c ^ 0x5a));
}

}  // namespace

TEST_CASE("an empty snapshot directory has no snapshot") {
  test::temp_dir dir;
  auto store = snapshot_store::open(dir.path());
  REQUIRE(store.has_value());
  auto loaded = store->load_latest();
  REQUIRE(loaded.has_value());
  CHECK_FALSE(loaded->latest.has_value());
  CHECK(loaded->skipped.empty());
}

TEST_CASE("a saved snapshot loads back with its metadata and bytes") {
  test::temp_dir dir;
  auto store = snapshot_store::open(dir.path());
  REQUIRE(store.has_value());
  REQUIRE(store->save(meta_at(100, 3), data_for(100)).has_value());
  auto loaded = store->load_latest();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->latest.has_value());
  CHECK(loaded->latest->meta == meta_at(100, 3));
  CHECK(loaded->latest->data == data_for(100));
  // An empty state machine is a valid snapshot too.
  REQUIRE(store->save(meta_at(101, 3), "").has_value());
  CHECK(store->load_latest()->latest->data.empty());
}

TEST_CASE("only the newest K snapshots are kept") {
  test::temp_dir dir;
  auto store = snapshot_store::open(dir.path(), 3);
  REQUIRE(store.has_value());
  for (std::uint64_t i = 1; i <= 6; ++i) REQUIRE(store->save(meta_at(i * 1000, 1), data_for(i)).has_value());
  auto files = store->files();
  REQUIRE(files->size() == 3);
  CHECK(snapshot_store::read_file((*files)[0])->meta.last_index == index_t{6000});
  CHECK(snapshot_store::read_file((*files)[2])->meta.last_index == index_t{4000});
}

TEST_CASE("newest means highest index, not latest written, across 10^k boundaries") {
  test::temp_dir dir;
  auto store = snapshot_store::open(dir.path(), 5);
  REQUIRE(store.has_value());
  REQUIRE(store->save(meta_at(10000, 2), data_for(10000)).has_value());
  REQUIRE(store->save(meta_at(999, 1), data_for(999)).has_value());
  CHECK(store->load_latest()->latest->meta.last_index == index_t{10000});
}

TEST_CASE("a corrupt newest snapshot is reported and the previous one used") {
  test::temp_dir dir;
  auto store = snapshot_store::open(dir.path());
  REQUIRE(store.has_value());
  REQUIRE(store->save(meta_at(100, 1), data_for(100)).has_value());
  REQUIRE(store->save(meta_at(200, 2), data_for(200)).has_value());
  auto files = store->files();
  flip_byte((*files)[0], 10);  // a byte of the data
  auto loaded = store->load_latest();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->latest.has_value());
  CHECK(loaded->latest->meta.last_index == index_t{100});
  REQUIRE(loaded->skipped.size() == 1);
  CHECK(loaded->skipped[0].code == errc::corrupt);
  CHECK(loaded->skipped[0].message().find("checksum") != std::string::npos);
}

TEST_CASE("a truncated or foreign file is corrupt, not a crash") {
  test::temp_dir dir;
  auto store = snapshot_store::open(dir.path());
  REQUIRE(store.has_value());
  REQUIRE(store->save(meta_at(7, 1), data_for(7)).has_value());
  auto path = (*store->files())[0];
  auto size = std::filesystem::file_size(path);
  for (auto keep : {size - 1, size / 2, std::uintmax_t{10}, std::uintmax_t{0}}) {
    std::filesystem::resize_file(path, keep);
    auto got = snapshot_store::read_file(path);
    REQUIRE_FALSE(got.has_value());
    CHECK(got.error().code == errc::corrupt);
  }
  std::ofstream(path, std::ios::trunc) << "this is not a snapshot, just some text of enough length";
  CHECK(snapshot_store::read_file(path).error().code == errc::corrupt);
  CHECK(snapshot_store::read_file(dir / "missing.snap").error().code == errc::not_found);
}

TEST_CASE("temporary files left by a crash are removed on open and never loaded") {
  test::temp_dir dir;
  std::ofstream(dir / "tmp-snapshot-00000000000000000500-00000000000000000001.snap") << "half written";
  auto store = snapshot_store::open(dir.path());
  REQUIRE(store.has_value());
  CHECK_FALSE(std::filesystem::exists(dir / "tmp-snapshot-00000000000000000500-00000000000000000001.snap"));
  CHECK_FALSE(store->load_latest()->latest.has_value());
}
