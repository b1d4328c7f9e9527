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
  }
  return "?";
}

}  // namespace conclave::registry
