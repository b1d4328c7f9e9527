#include "storage/snapshot_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "schema/codec.hpp"
#include "schema/durable_file.hpp"
#include "schema/le_bytes.hpp"

namespace conclave::storage {
namespace {

constexpr char magic[8] = {'C', 'N', 'C', 'L', 'S', 'N', 'A', 'P'};
constexpr std::uint32_t format_version = 1;
constexpr std::size_t prefix_bytes = sizeof magic + 4 + 4;
constexpr std::size_t trailer_bytes = 4;

std::uint32_t crc_of(std::string_view bytes, std::uint32_t crc = 0) {
  // zlib's crc32_z takes a size_t length, so any size is fine.
  return static_cast<std::uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

std::string file_name(const raft::snapshot_meta& meta) {
  char name[80];
  std::snprintf(name, sizeof name, "snapshot-%020llu-%020llu.snap",
                static_cast<unsigned long long>(meta.last_index.value),
                static_cast<unsigned long long>(meta.last_term.value));
  return name;
}

bool is_snapshot_name(const std::string& name) {
  return name.size() == 9 + 20 + 1 + 20 + 5 && name.rfind("snapshot-", 0) == 0 &&
         name.compare(name.size() - 5, 5, ".snap") == 0;
}


}  // namespace

expected<snapshot_store> snapshot_store::open(const std::string& dir, std::size_t keep) {
  if (keep == 0) return make_error(errc::invalid_argument, "snapshot_store: keep must be at least 1");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(errc::io_error, dir + ": create directory: " + ec.message());
  // A crash during save() can leave a temporary file; it was never renamed
  // into place, so it never counted as a snapshot.
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind("tmp-", 0) == 0) std::filesystem::remove(entry.path(), ec);
  }
  return snapshot_store(dir, keep);
}

expected<void> snapshot_store::save(const raft::snapshot_meta& meta, std::string_view data) {
  auto header = wire::encode_snapshot_header(meta, data.size());
  std::string prefix(magic, sizeof magic);
  put_u32(prefix, format_version);
  put_u32(prefix, static_cast<std::uint32_t>(header.size()));
  prefix += header;
  std::uint32_t crc = crc_of(data, crc_of(prefix));
  std::string trailer;
  put_u32(trailer, crc);

  auto name = file_name(meta);
  auto tmp = dir_ + "/tmp-" + name;
  auto final_path = dir_ + "/" + name;
  if (auto ok = write_file_durably(final_path, tmp, {prefix, data, trailer}); !ok) return ok;

  auto all = files();
  if (!all) return all.error();
  for (std::size_t i = keep_; i < all->size(); ++i) ::unlink((*all)[i].c_str());
  return {};
}

expected<std::vector<std::string>> snapshot_store::files() const {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    auto name = entry.path().filename().string();
    if (is_snapshot_name(name)) names.push_back(name);
  }
  if (ec) return make_error(errc::io_error, dir_ + ": list: " + ec.message());
  // Zero-padded names sort by (index, term); newest first.
  std::sort(names.rbegin(), names.rend());
  for (auto& n : names) n = dir_ + "/" + n;
  return names;
}

expected<std::vector<raft::index_t>> snapshot_store::indexes() const {
  auto all = files();
  if (!all) return all.error();
  std::vector<raft::index_t> out;
  for (const auto& path : *all) {
    auto name = path.substr(path.rfind('/') + 1);
    out.push_back(raft::index_t{std::strtoull(name.c_str() + 9, nullptr, 10)});
  }
  return out;
}

expected<snapshot> snapshot_store::read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(errc::not_found, path);
    return os_error(path + ": open");
  }
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      auto err = os_error(path + ": read");
      ::close(fd);
      return err;
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);

  auto corrupt = [&](const std::string& why) { return make_error(errc::corrupt, path + ": " + why); };
  if (bytes.size() < prefix_bytes + trailer_bytes) return corrupt("too short");
  if (std::memcmp(bytes.data(), magic, sizeof magic) != 0) return corrupt("not a snapshot file");
  if (auto v = get_u32(bytes.data() + 8); v != format_version) {
    return corrupt("format version " + std::to_string(v) + ", expected " + std::to_string(format_version));
  }
  std::string_view body(bytes.data(), bytes.size() - trailer_bytes);
  if (crc_of(body) != get_u32(bytes.data() + body.size())) return corrupt("checksum mismatch");
  auto header_size = get_u32(bytes.data() + 12);
  if (header_size > body.size() - prefix_bytes) return corrupt("header larger than file");
  auto header = wire::decode_snapshot_header(body.substr(prefix_bytes, header_size));
  if (!header) return corrupt("header: " + header.error().message());
  auto data = body.substr(prefix_bytes + header_size);
  if (data.size() != header->data_size) {
    return corrupt("holds " + std::to_string(data.size()) + " data bytes, header says " +
                   std::to_string(header->data_size));
  }
  return snapshot{header->meta, std::string(data)};
}

expected<snapshot_store::loaded> snapshot_store::load_latest() const {
  auto all = files();
  if (!all) return all.error();
  loaded result;
  for (const auto& path : *all) {
    auto snap = read_file(path);
    if (snap) {
      result.latest = std::move(*snap);
      break;
    }
    result.skipped.push_back(snap.error());
  }
  return result;
}

}  // namespace conclave::storage
