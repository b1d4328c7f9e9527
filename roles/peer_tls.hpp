// TLS on every BASP connection of an actor system (README "TLS"): CAF's
// OpenSSL module, for masters, workers, conclavectl and test clients alike.
#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include "roles/tls.hpp"

namespace conclave {

// Loads CAF's OpenSSL manager (after the middleman) with `files`, which must
// have passed check_tls_files (CAF throws on a bad file deep inside, at the
// first connection). Each side of a connection then shows its certificate and
// requires the other's to chain to `files.ca` (CAF 0.17 checks no host names).
// Defined with the process's OpenSSL error-queue fix (peer_tls.cpp), which
// linking this function brings into the program.
void use_peer_tls(caf::actor_system_config& cfg, const tls_files& files);

}  // namespace conclave
