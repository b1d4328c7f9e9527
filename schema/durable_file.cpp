#include "schema/durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace conclave {

error os_error(const std::string& what, int err) {
  auto code = (err == ENOSPC || err == EDQUOT) ? errc::disk_full : errc::io_error;
  return make_error(code, what + ": " + std::strerror(err));
}

namespace {

expected<void> write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    auto n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return os_error(path + ": write");
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

expected<void> fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return os_error(dir + ": open directory");
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return os_error(dir + ": fsync directory", err);
  return {};
}

}  // namespace

expected<void> write_file_durably(const std::string& path, const std::string& tmp,
                                  std::initializer_list<std::string_view> parts) {
  int fd = ::open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return os_error(tmp + ": create");
  expected<void> written;
  for (auto p : parts) {
    if (written) written = write_all(fd, p, tmp);
  }
  if (written && ::fsync(fd) != 0) written = os_error(tmp + ": fsync");
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    return written;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = os_error("rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return err;
  }
  // The rename is durable only once the directory entry is.
  auto dir = std::filesystem::path(path).parent_path().string();
  return fsync_dir(dir.empty() ? "." : dir);
}

}  // namespace conclave
