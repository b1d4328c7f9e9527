#include "roles/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace conclave {

namespace {

error bad(const std::string& what) { return make_error(errc::invalid_argument, what); }

// OpenSSL's queued errors as one line (and the queue emptied).
std::string ssl_errors() {
  std::string text;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "no detail from OpenSSL" : text;
}

// A file that cannot be opened gets the system's reason, not OpenSSL's.
expected<void> readable(const std::string& key, const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return bad(key + ": cannot read " + path + ": " + std::strerror(errno));
  std::fclose(f);
  return {};
}

// Encrypted keys are refused (no passphrase setting), not asked for on a terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

}  // namespace

expected<void> check_tls_files(const tls_files& f, const std::string& keys) {
  auto cert_key = keys + "cert-file", key_key = keys + "key-file", ca_key = keys + "trusted-ca-file";
  if (f.cert.empty() && !f.key.empty()) return bad(key_key + ": set without " + cert_key);
  if (f.cert.empty() && !f.ca.empty()) return bad(ca_key + ": set without " + cert_key);
  if (f.cert.empty()) return {};
  if (f.key.empty()) return bad(cert_key + ": set without " + key_key + " (the certificate's private key)");
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  if (!ctx) return make_error(errc::io_error, "cannot create an OpenSSL context: " + ssl_errors());
  ERR_clear_error();
  if (auto ok = readable(cert_key, f.cert); !ok) return ok;
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), f.cert.c_str()) != 1) {
    return bad(cert_key + ": " + f.cert + " holds no usable PEM certificate: " + ssl_errors());
  }
  if (auto ok = readable(key_key, f.key); !ok) return ok;
  // Read first, then matched: "not a key" and "not this certificate's key" are different errors.
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_file(f.key.c_str(), "r"), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      in ? PEM_read_bio_PrivateKey(in.get(), nullptr, no_passphrase, nullptr) : nullptr, EVP_PKEY_free);
  if (!key) return bad(key_key + ": " + f.key + " holds no usable unencrypted PEM private key: " + ssl_errors());
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return bad(key_key + ": " + f.key + " is not the private key of the certificate in " + cert_key + " (" +
               f.cert + ")");
  }
  if (!f.ca.empty()) {
    if (auto ok = readable(ca_key, f.ca); !ok) return ok;
    if (SSL_CTX_load_verify_locations(ctx.get(), f.ca.c_str(), nullptr) != 1) {
      return bad(ca_key + ": " + f.ca + " holds no usable PEM CA certificate: " + ssl_errors());
    }
  }
  return {};
}

}  // namespace conclave
