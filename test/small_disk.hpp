// A small file system for disk-full tests: a tmpfs of a given size mounted
// under a fresh temporary directory (needs root: CAP_SYS_ADMIN), with a
// filler file that takes all its free space and gives it back on demand.
// Unmounted (lazily, so open files do not block it) when it goes out of
// scope.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "test/temp_dir.hpp"

namespace conclave::test {

class small_disk {
 public:
  explicit small_disk(std::size_t bytes) {
    auto options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      why_not_ = std::string("cannot mount a tmpfs (disk-full tests need root): ") + std::strerror(errno);
    }
  }
  ~small_disk() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_not_; }
  const std::string& path() const { return dir_.path(); }
  std::string operator/(const std::string& name) const { return dir_ / name; }

  std::size_t free_bytes() const {
    struct statvfs s {};
    if (::statvfs(dir_.path().c_str(), &s) != 0) return 0;
    return static_cast<std::size_t>(s.f_bavail) * s.f_frsize;
  }

  // Writes a filler file until the file system refuses (ENOSPC), leaving
  // `leave` bytes free (rounded to 4 KiB); returns the bytes written.
  std::size_t fill(std::size_t leave = 0) {
    int fd = ::open(filler().c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return 0;
    std::string block(4096, 'x');
    std::size_t written = 0;
    while (free_bytes() > leave) {
      auto n = ::write(fd, block.data(), block.size());
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return written;
  }

  // Gives the filler's space back.
  void free_filler() { ::unlink(filler().c_str()); }

 private:
  std::string filler() const { return dir_ / "filler"; }

  temp_dir dir_;
  bool mounted_ = false;
  std::string why_not_;
};

}  // namespace conclave::test
