// The actor that opens and accepts BASP connections of an actor system: with
// CAF's OpenSSL manager loaded (TLS on the native links, README "TLS") its
// actor, so every connection is TLS; otherwise the plain middleman's.
#pragma once

#include <caf/actor_system.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

namespace conclave {

inline caf::io::middleman_actor connector(caf::actor_system& sys) {
  return sys.has_openssl_manager() ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
}

}  // namespace conclave
