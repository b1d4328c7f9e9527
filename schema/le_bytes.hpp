// Little-endian 32-bit numbers in byte strings: the framing of conclave's
// own files (snapshot files, backup files).
#pragma once

#include <cstdint>
#include <string>

namespace conclave {

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// Reads 4 bytes at `in`.
inline std::uint32_t get_u32(const char* in) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

}  // namespace conclave
