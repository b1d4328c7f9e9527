#include "schema/registry_types.hpp"

namespace conclave::registry {

const char* to_string(member_role r) {
  switch (r) {
    case member_role::master: return "master";
    case member_role::worker: return "worker";
    case member_role::master_and_worker: return "master_and_worker";
  }
  return "?";
}

const char* to_string(member_status s) {
  switch (s) {
    case member_status::alive: return "alive";
    case member_status::suspect: return "suspect";
    case member_status::dead: return "dead";
    case member_status::left: return "left";
  }
  return "?";
}

const char* to_string(code c) {
  switch (c) {
    case code::ok: return "ok";
    case code::queued: return "queued";
    case code::not_found: return "not_found";
    case code::version_mismatch: return "version_mismatch";
    case code::no_session: return "no_session";
    case code::held: return "held";
    case code::not_holder: return "not_holder";
    case code::invalid: return "invalid";
    case code::full: return "full";
    case code::exists: return "exists";
    case code::compacted: return "compacted";
    case code::future_revision: return "future_revision";
  }
  return "?";
}

bool key_range::contains(const std::string& k) const {
  if (end.empty()) return k == key;
  if (k < key) return false;  // std::string orders bytes as unsigned, as etcd does
  return end == std::string(1, '\0') || k < end;
}

std::string key_range::listing_prefix() const {
  if (end.empty()) return key;
  if (end == std::string(1, '\0')) return {};
  std::size_t n = 0;
  while (n < key.size() && n < end.size() && key[n] == end[n]) ++n;
  // [c x..., c x+1): every key starts with c x (a prefix range).
  bool next_byte = end.size() == n + 1 && key.size() > n &&
                   static_cast<unsigned char>(end[n]) == static_cast<unsigned char>(key[n]) + 1;
  return key.substr(0, next_byte ? n + 1 : n);
}

}  // namespace conclave::registry
