// Throwaway TLS certificates for tests (README "TLS"), made with the openssl
// command: a CA, the masters' certificate, a client's, and a client's from
// another CA.
#pragma once

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "roles/tls.hpp"
#include "test/processes.hpp"
#include "test/temp_dir.hpp"

namespace conclave::test {

inline std::string openssl_binary() { return program("CONCLAVE_OPENSSL", "/usr/bin/openssl"); }

// A CA, a certificate for the masters (IP 127.0.0.1, server and client use:
// a master is both on its links), one for clients, and a client certificate
// from another CA. EC keys: quick to make.
struct certificates {
  temp_dir dir;
  std::string ca = dir / "ca.crt", node = dir / "node.crt", node_key = dir / "node.key", client = dir / "client.crt",
              client_key = dir / "client.key", other_ca = dir / "other-ca.crt", rogue = dir / "rogue.crt",
              rogue_key = dir / "rogue.key";
  std::string failure;  // what went wrong making them (empty: all made)

  certificates() {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             dir / "ca.key", "-out", ca, "-days", "2", "-subj", "/CN=conclave test CA"});
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             dir / "other-ca.key", "-out", other_ca, "-days", "2", "-subj", "/CN=another CA"});
    sign("node", node, node_key, ca, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
    sign("client", client, client_key, ca, "extendedKeyUsage=clientAuth\n");
    sign("rogue", rogue, rogue_key, other_ca, "extendedKeyUsage=clientAuth\n");
  }

  void openssl(std::vector<std::string> args) {
    if (!failure.empty()) return;
    args.insert(args.begin(), openssl_binary());
    auto log = dir / "openssl.log";
    auto pid = fork_exec(std::move(args), log);
    auto status = wait_pid(pid, std::chrono::seconds(60));
    if (!status) kill_pid(pid);
    if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) failure = "openssl failed: " + file_text(log);
  }

  // A key and a certificate for it signed by `by` (its key next to it), with `extensions`.
  void sign(const std::string& name, const std::string& cert, const std::string& key, const std::string& by,
            const std::string& extensions) {
    std::string ext = dir / (name + ".ext"), csr = dir / (name + ".csr");
    std::ofstream(ext) << extensions;
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
             "-subj", "/CN=conclave " + name});
    auto by_key = by.substr(0, by.size() - 4) + ".key";
    openssl({"x509", "-req", "-in", csr, "-CA", by, "-CAkey", by_key, "-set_serial", std::to_string(serial++),
             "-days", "2", "-out", cert, "-extfile", ext});
  }
  int serial = 1000;

  // Every master's flags: TLS on every link; client certificates required.
  std::vector<std::string> master_flags() const {
    return {"--peer-cert-file", node, "--peer-key-file", node_key, "--peer-trusted-ca-file", ca,
            "--cert-file", node, "--key-file", node_key, "--trusted-ca-file", ca, "--client-cert-auth", "true"};
  }
  tls_files client_files() const { return tls_files{client, client_key, ca, false}; }
  // TLS on the native links only: a master's flags, and a worker's.
  std::vector<std::string> peer_flags() const {
    return {"--peer-cert-file", node, "--peer-key-file", node_key, "--peer-trusted-ca-file", ca};
  }
  std::vector<std::string> worker_flags() const {
    return {"--peer-cert-file", client, "--peer-key-file", client_key, "--peer-trusted-ca-file", ca};
  }
};

}  // namespace conclave::test
