#include "roles/peer_tls.hpp"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace conclave {

void use_peer_tls(caf::actor_system_config& cfg, const tls_files& files) {
  cfg.openssl_certificate = files.cert;
  cfg.openssl_key = files.key;
  cfg.openssl_cafile = files.ca;
  cfg.load<caf::openssl::manager>();
}

}  // namespace conclave

// OpenSSL's rule: the calling thread's error queue must be empty before an
// SSL I/O call, or SSL_get_error reports a stale error as this call's.
// CAF 0.17.6's OpenSSL module drains the queue only inside log statements
// that Debian's build compiles out, so one failed connection (a peer closing
// without close_notify, a refused certificate) made the next "would block"
// of every other connection in its multiplexer thread a fatal error: the
// links between masters broke in cascades (README "TLS"). These definitions
// take the place of libssl's for the whole process (the program's symbols
// come first), clear the queue and call libssl's.
namespace {

template <class F>
F next_definition(const char* name) {
  return reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

int SSL_read(SSL* ssl, void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  static const auto real = next_definition<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return real(ssl, buf, num);
}

int SSL_connect(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return real(ssl);
}

int SSL_accept(SSL* ssl) {
  static const auto real = next_definition<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return real(ssl);
}

}  // extern "C"
