// TLS files of one side of conclave (README "TLS"): the certificate a
// process shows, its key, and the CA it trusts for the other side. The
// native links (peers, workers, conclavectl: CAF's OpenSSL module) take the
// peer-* settings; the etcd API (client-listen) and the HTTP listener
// (http-listen) take cert-file, key-file, trusted-ca-file, client-cert-auth.
#pragma once

#include <string>

#include "schema/error.hpp"

namespace conclave {

struct tls_files {
  std::string cert;  // PEM certificate chain, this process's first; empty: no TLS
  std::string key;   // PEM private key of `cert`, unencrypted
  std::string ca;    // PEM CA certificates the other side's certificate must chain to (may be empty on listeners)
  bool client_cert_auth = false;  // listeners: refuse clients without a valid certificate (needs `ca`)
  bool enabled() const { return !cert.empty(); }
};

// Loads the files with OpenSSL as the listeners and CAF will, so a bad file
// is refused at start and not at the first connection: the certificate,
// the key (it must match the certificate) and the CAs.
// Errors: invalid_argument naming the setting (`keys` + "cert-file",
// "key-file", "trusted-ca-file") and the problem.
expected<void> check_tls_files(const tls_files& files, const std::string& keys);

}  // namespace conclave
