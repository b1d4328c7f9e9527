// Fuzz target: snapshot files as read back from disk:
// storage::snapshot_store::read_file in storage/snapshot_store.cpp (magic,
// format version, header length, CRC-32, then the SnapshotHeader through
// wire::decode_snapshot_header and the data size check).
//
// The input is the whole file. Random bytes almost never carry a matching
// CRC, so each input is read twice: as it is, and with its last four bytes
// replaced by the right CRC, which takes the fuzzer past the checksum to the
// header and size checks.
//
// A file that reads must save (snapshot_store::save) to a file that reads
// back to the same metadata and data, and that load_latest finds.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>

#include "storage/snapshot_store.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {

using namespace conclave;

constexpr const char* target = "snapshot_file";

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fuzz::fail(target, "cannot write " + path);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

storage::snapshot_store& save_store() {
  static std::optional<storage::snapshot_store> store;
  if (!store) {
    auto opened = storage::snapshot_store::open(fuzz::scratch_dir("snapshot_file_save"), 1);
    if (!opened) fuzz::fail(target, "cannot open the snapshot store: " + opened.error().message());
    store.emplace(std::move(*opened));
  }
  return *store;
}

void check_round_trip(const storage::snapshot& first) {
  auto& store = save_store();
  // The store keeps the snapshots with the highest index, not the latest
  // saved: start empty so that this one is kept.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(store.dir(), ec)) std::filesystem::remove(entry.path(), ec);
  auto saved = store.save(first.meta, first.data);
  FUZZ_CHECK(target, saved.has_value(), "save failed: " + saved.error().message());
  auto files = store.files();
  FUZZ_CHECK(target, files.has_value() && files->size() == 1, "save did not leave exactly one file");
  const auto path = files->front();
  auto second = storage::snapshot_store::read_file(path);
  FUZZ_CHECK(target, second.has_value(), "a saved snapshot does not read back: " + second.error().message());
  FUZZ_CHECK(target, second->meta == first.meta, "metadata changed in a round trip");
  FUZZ_CHECK(target, second->data == first.data, "data changed in a round trip");
  auto loaded = store.load_latest();
  FUZZ_CHECK(target, loaded.has_value() && loaded->latest && loaded->skipped.empty(),
             "load_latest does not find the saved snapshot");
  FUZZ_CHECK(target, loaded->latest->meta == first.meta && loaded->latest->data == first.data,
             "load_latest found another snapshot");
  // Saving what was read must write the very same file again.
  auto bytes = read_all(path);
  saved = store.save(second->meta, second->data);
  FUZZ_CHECK(target, saved.has_value(), "second save failed: " + saved.error().message());
  FUZZ_CHECK(target, read_all(path) == bytes, "saving is not stable");
}

void read_one(std::string_view bytes) {
  const auto path = fuzz::scratch_dir("snapshot_file") + "/input.snap";
  write_file(path, bytes);
  auto snap = storage::snapshot_store::read_file(path);
  if (snap) check_round_trip(*snap);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto input = fuzz::as_view(data, size);
  read_one(input);
  if (size >= 4) {
    std::string fixed(input);
    auto crc = static_cast<std::uint32_t>(crc32_z(0, data, size - 4));
    for (int i = 0; i < 4; ++i) fixed[size - 4 + i] = static_cast<char>(crc >> (8 * i));
    if (fixed != input) read_one(fixed);
  }
  return 0;
}
