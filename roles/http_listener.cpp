#include "roles/http_listener.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace conclave {

namespace {

// A thread per connection: a streaming answer (a watch) holds its connection
// for as long as it runs, so a fixed pool would let a few streams stall
// every other request. shutdown() waits for every connection to end.
class thread_per_connection final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      ++running_;
    }
    std::thread([this, fn = std::move(fn)]() mutable {
      {
        auto task = std::move(fn);
        task();
      }
      std::lock_guard<std::mutex> guard(mutex_);
      if (--running_ == 0) idle_.notify_all();
    }).detach();
  }

  void shutdown() override {
    std::unique_lock<std::mutex> guard(mutex_);
    idle_.wait(guard, [&] { return running_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t running_ = 0;
};

// HTTPS with `tls`'s files: the client's certificate, if asked for, must chain to
// tls.ca; without client_cert_auth a client may show none (etcd's rule).
bool setup_tls(SSL_CTX& ctx, const tls_files& tls) {
  if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(&ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(&ctx) != 1) {
    return false;
  }
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  if (tls.ca.empty()) {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
    return true;
  }
  if (SSL_CTX_load_verify_locations(&ctx, tls.ca.c_str(), nullptr) != 1) return false;
  SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | (tls.client_cert_auth ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nullptr);
  return true;
}

}  // namespace

struct http_listener::impl {
  std::unique_ptr<httplib::Server> server;  // an httplib::SSLServer with TLS
  std::thread thread;
  int port = 0;
};

http_listener::http_listener(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

expected<std::unique_ptr<http_listener>> http_listener::start(const raft::endpoint& at,
                                                               const std::vector<routes>& add,
                                                               const tls_files& tls) {
  auto p = std::make_unique<impl>();
  if (tls.enabled()) {
    p->server = std::make_unique<httplib::SSLServer>([&tls](SSL_CTX& ctx) { return setup_tls(ctx, tls); });
    if (!p->server->is_valid()) {
      return make_error(errc::io_error, "http-listen: cannot load the TLS files (cert-file, key-file, trusted-ca-file)");
    }
  } else {
    p->server = std::make_unique<httplib::Server>();
  }
  auto& s = *p->server;
  s.new_task_queue = [] { return new thread_per_connection; };
  // An address taken by another process is an error, not shared (httplib's
  // default sets SO_REUSEPORT, which would split clients between the two).
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Answers are never compressed, as etcd's gateway's are not: httplib would
  // gzip JSON for a client that accepts it (python-requests does), and a gzip
  // stream holds back each watch event until its buffer fills.
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    const_cast<httplib::Request&>(req).headers.erase("Accept-Encoding");
    return httplib::Server::HandlerResponse::Unhandled;
  });
  for (const auto& r : add) r(s);
  if (at.port == 0) {
    p->port = s.bind_to_any_port(at.host);
  } else {
    p->port = s.bind_to_port(at.host, at.port) ? at.port : -1;
  }
  if (p->port <= 0) return make_error(errc::io_error, "http-listen: cannot listen on " + at.text());
  p->thread = std::thread([raw = p.get()] { raw->server->listen_after_bind(); });
  // stop() before the loop runs would be lost (httplib checks is_running()).
  while (!s.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return std::unique_ptr<http_listener>(new http_listener(std::move(p)));
}

http_listener::~http_listener() {
  impl_->server->stop();
  impl_->thread.join();
}

std::uint16_t http_listener::port() const { return static_cast<std::uint16_t>(impl_->port); }

}  // namespace conclave
