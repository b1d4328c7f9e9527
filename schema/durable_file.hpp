// Files conclave writes whole (snapshot files, backups): never half there.
#pragma once

#include <cerrno>
#include <initializer_list>
#include <string>
#include <string_view>

#include "schema/error.hpp"

namespace conclave {

// An OS error as an error value: disk_full for ENOSPC/EDQUOT, io_error otherwise.
error os_error(const std::string& what, int err = errno);

// Writes `parts` one after another to `tmp`, syncs it, renames it to `path`
// and syncs the directory: after success `path` holds all of it durably;
// after a failure `path` is untouched and `tmp` is gone.
expected<void> write_file_durably(const std::string& path, const std::string& tmp,
                                  std::initializer_list<std::string_view> parts);

}  // namespace conclave
