// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object goes out of scope.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace conclave::test {

class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/conclave-test-XXXXXX";
    path_ = ::mkdtemp(pattern.data()) ? pattern : std::string();
    if (path_.empty()) std::abort();
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace conclave::test
