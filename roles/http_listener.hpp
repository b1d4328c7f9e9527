// A master's HTTP listener (setting `http-listen HOST:PORT`): the one port
// for every HTTP endpoint of the process. etcd's JSON gateway
// (roles/etcd_gateway.hpp) adds its routes; later endpoints add theirs the
// same way. No httplib header is included here: only the files that add
// routes see it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "actors/raft/node_options.hpp"
#include "roles/tls.hpp"
#include "schema/error.hpp"

namespace httplib {
class Server;
}

namespace conclave {

class http_listener {
 public:
  // Adds handlers to the server before it listens.
  using routes = std::function<void(httplib::Server&)>;

  // Listens on `at` (port 0: any free port) at once, with the handlers that
  // each of `add` sets; with `tls` (checked: check_tls_files) HTTPS only, a
  // client certificate checked against `tls.ca` when one is shown and
  // required with client_cert_auth. Each connection gets a thread of its own
  // (a stream holds its connection while it runs). Errors: io_error when the
  // address cannot be bound (an address in use is refused, not shared) or the
  // TLS files cannot be loaded.
  static expected<std::unique_ptr<http_listener>> start(const raft::endpoint& at, const std::vector<routes>& add,
                                                        const tls_files& tls = {});
  // Stops listening and waits for the requests in flight (whoever serves
  // long streams ends them first) and for idle keep-alive connections to
  // close (at most httplib's 5 s keep-alive timeout).
  ~http_listener();
  std::uint16_t port() const;

  struct impl;

 private:
  explicit http_listener(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave
