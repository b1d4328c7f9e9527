#include "schema/backup_file.hpp"

#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "schema/durable_file.hpp"
#include "schema/le_bytes.hpp"
#include "schema/registry_codec.hpp"

namespace conclave::backup {
namespace {

constexpr char magic[8] = {'C', 'N', 'C', 'L', 'B', 'K', 'U', 'P'};
constexpr std::uint32_t format_version = 1;
constexpr std::size_t prefix_bytes = sizeof magic + 4 + 4;
constexpr std::size_t page_bytes = 512;

std::string sha256(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

error corrupt(const std::string& what) { return make_error(errc::corrupt, "not a usable backup: " + what); }

}  // namespace

std::string encode(const std::string& cluster_id, const registry::registry_state& state) {
  auto data = wire::encode_registry_snapshot(state);
  std::string text = "cluster-id=" + cluster_id + "\nrevision=" + std::to_string(state.rev) +
                     "\nraft-index=" + std::to_string(state.applied) + "\nkeys=" + std::to_string(state.keys.size()) +
                     "\ndata-bytes=" + std::to_string(data.size()) + "\n";
  std::string out(magic, sizeof magic);
  put_u32(out, format_version);
  put_u32(out, static_cast<std::uint32_t>(text.size()));
  out += text;
  out += data;
  out.resize((out.size() + page_bytes - 1) / page_bytes * page_bytes, '\0');
  out += sha256(out);
  return out;
}

expected<contents> decode(std::string_view bytes) {
  if (bytes.size() < prefix_bytes || std::memcmp(bytes.data(), magic, sizeof magic) != 0) {
    return corrupt("it does not start with CNCLBKUP (conclave restores only files saved by conclavectl or etcdctl "
                   "from conclave, not etcd's own databases)");
  }
  if (bytes.size() < page_bytes + SHA256_DIGEST_LENGTH || (bytes.size() - SHA256_DIGEST_LENGTH) % page_bytes != 0) {
    return corrupt("truncated (" + std::to_string(bytes.size()) + " bytes is not whole 512-byte pages and a SHA-256)");
  }
  auto body = bytes.substr(0, bytes.size() - SHA256_DIGEST_LENGTH);
  if (sha256(body) != bytes.substr(body.size())) return corrupt("SHA-256 mismatch: the file is damaged");
  if (auto v = get_u32(bytes.data() + sizeof magic); v != format_version) {
    return make_error(errc::unsupported_version, "backup format version " + std::to_string(v) +
                                                      " (this build reads version " + std::to_string(format_version) + ")");
  }
  auto header_bytes = get_u32(bytes.data() + sizeof magic + 4);
  if (header_bytes > body.size() - prefix_bytes) return corrupt("the header runs past the end");
  contents c;
  std::stringstream lines{std::string(body.substr(prefix_bytes, header_bytes))};
  std::string line;
  while (std::getline(lines, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) return corrupt("header line '" + line + "' is not KEY=VALUE");
    auto key = line.substr(0, eq), value = line.substr(eq + 1);
    auto number = [&] { return std::strtoull(value.c_str(), nullptr, 10); };
    if (key == "cluster-id") c.header.cluster_id = value;
    else if (key == "revision") c.header.rev = number();
    else if (key == "raft-index") c.header.raft_index = number();
    else if (key == "keys") c.header.keys = number();
    else if (key == "data-bytes") c.header.data_bytes = number();
  }
  auto data_at = prefix_bytes + header_bytes;
  if (c.header.data_bytes > body.size() - data_at) return corrupt("the data runs past the end");
  auto st = wire::decode_registry_snapshot(body.substr(data_at, c.header.data_bytes));
  if (!st) return corrupt("the registry state does not decode: " + st.error().message());
  c.state = std::move(*st);
  if (c.state.rev != c.header.rev || c.state.keys.size() != c.header.keys) {
    return corrupt("the header does not match the registry state it carries");
  }
  return c;
}

expected<void> write_file(const std::string& path, std::string_view bytes) {
  return write_file_durably(path, path + ".part", {bytes});
}

expected<contents> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(errno == ENOENT ? errc::not_found : errc::io_error, path + ": " + std::strerror(errno));
  }
  std::stringstream all;
  all << in.rdbuf();
  if (in.bad()) return make_error(errc::io_error, path + ": read failed");
  auto c = decode(all.str());
  if (!c) return make_error(c.error().code, path + ": " + c.error().detail);
  return c;
}

}  // namespace conclave::backup
