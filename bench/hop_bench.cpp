// What one message round trip between two processes on this machine costs,
// by how it is carried (bench/README.md, issue #16 "Where a write's time
// goes"): a write crosses four such hops (client, leader, follower, leader,
// client), so their floor bounds what a faster transport could save.
//
//   tcp     a loopback TCP ping-pong, each side blocked in read(): the
//           kernel's floor (two wake-ups of a sleeping thread per trip);
//   actors  a CAF request and reply between two event-based actors in two
//           processes, on conclave's scheduler (roles/scheduling.hpp): the
//           sender's worker wakes the middleman's multiplexer, the peer's
//           multiplexer reads the socket and wakes a worker for the actor,
//           and back: three threads a hop, as conclave's actors run now;
//   brokers the same between two CAF brokers, which run on the
//           multiplexer's own thread: one thread a hop.
//
// The three are measured round by round, interleaved, in one run. Usage:
//   hop_bench [--trips N] [--rounds R]
#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <string>
#include <vector>

#include "roles/scheduling.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using samples = std::vector<double>;  // microseconds

double micros_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

double percentile(samples v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "hop_bench: %s\n", what);
  std::exit(1);
}

// Whether `fd` has something to read within `ms`.
bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

// --- loopback TCP -----------------------------------------------------------------

// A child that echoes what it reads on a connection to `port`.
pid_t tcp_echo(std::uint16_t port) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  for (int i = 3; i < 1024; ++i) ::close(i);  // (the pipe to the serving process, the listener)
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  at.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) ::_exit(1);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char buf[256];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n <= 0 || ::write(fd, buf, static_cast<std::size_t>(n)) != n) ::_exit(0);
  }
}

struct tcp_pair {
  int fd = -1;
  pid_t child = -1;
  tcp_pair() {
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof at;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&at), len) != 0 || ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&at), &len) != 0) {
      std::perror("hop_bench: listen");
      std::exit(1);
    }
    child = tcp_echo(ntohs(at.sin_port));
    if (child < 0) fail("cannot fork the echo process");
    if (!readable(listener, 10000)) fail("the echo process did not connect");
    fd = ::accept(listener, nullptr, nullptr);
    ::close(listener);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~tcp_pair() {
    ::close(fd);
    ::waitpid(child, nullptr, 0);
  }
  samples trips(int n) {
    samples out;
    char buf[64] = {};
    for (int i = 0; i < n; ++i) {
      auto t0 = clock_type::now();
      if (::write(fd, buf, sizeof buf) != static_cast<ssize_t>(sizeof buf)) break;
      std::size_t got = 0;
      while (got < sizeof buf) {
        auto r = ::read(fd, buf + got, sizeof buf - got);
        if (r <= 0) return out;
        got += static_cast<std::size_t>(r);
      }
      out.push_back(micros_since(t0));
    }
    return out;
  }
};

// --- CAF --------------------------------------------------------------------------

struct config : caf::actor_system_config {
  config() {
    load<caf::io::middleman>();
    conclave::configure_scheduling(*this, 2);
  }
};

caf::behavior echo_actor(caf::event_based_actor*) {
  return {[](std::int64_t x) { return x; }};
}
caf::behavior echo_broker(caf::io::broker*) {
  return {[](std::int64_t x) { return x; }};
}

// The serving process: publishes an echo actor and an echo broker, writes
// their ports to `out`, and serves until its stdin closes.
int serve(int out) {
  config cfg;
  caf::actor_system sys{cfg};
  auto a = sys.spawn(echo_actor);
  auto b = sys.middleman().spawn_broker(echo_broker);
  auto pa = sys.middleman().publish(a, 0, "127.0.0.1");
  auto pb = sys.middleman().publish(b, 0, "127.0.0.1");
  if (!pa || !pb) {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
    return 1;  // (the pipe closes: the measuring process stops waiting)
  }
  std::uint16_t ports[2] = {*pa, *pb};
  if (::write(out, ports, sizeof ports) != static_cast<ssize_t>(sizeof ports)) return 1;
  ::close(out);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  return 0;
}

// Round trips from a client of type Self (an actor or a broker) to
// `server`, one at a time; fewer than asked if one fails (10 s each).
struct trips_done {
  std::promise<samples>* result;
};

template <class Self>
struct trip_loop {
  Self* self;
  caf::actor server;
  int n;
  trips_done done;
  samples got;
};

// Sends the next trip as soon as the answer to the last one came.
template <class Self>
void next_trip(const std::shared_ptr<trip_loop<Self>>& l) {
  auto finish = [l] {
    l->done.result->set_value(std::move(l->got));
    l->self->quit();
  };
  if (static_cast<int>(l->got.size()) == l->n) return finish();
  auto t0 = clock_type::now();
  l->self->request(l->server, std::chrono::seconds(10), std::int64_t{1})
      .then(
          [l, t0](std::int64_t) {
            l->got.push_back(micros_since(t0));
            next_trip(l);
          },
          [finish](caf::error&) { finish(); });
}

template <class Self>
caf::behavior client(Self* self, caf::actor server, int n, trips_done done) {
  next_trip(std::make_shared<trip_loop<Self>>(trip_loop<Self>{self, std::move(server), n, done, {}}));
  return {[](caf::ok_atom) {}};
}

}  // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(trips_done)

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--serve") == 0) return serve(std::atoi(argv[2]));
  int trips = 5000, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--trips") trips = std::atoi(argv[i + 1]);
    else if (flag == "--rounds") rounds = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: hop_bench [--trips N] [--rounds R]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || trips < 100 || rounds < 1) {
    std::fprintf(stderr, "usage: hop_bench [--trips N>=100] [--rounds R>=1]\n");
    return 2;
  }

  // The server process, started before this one's actor system (no fork under CAF's threads).
  int ports_pipe[2], stdin_pipe[2];
  if (::pipe(ports_pipe) != 0 || ::pipe(stdin_pipe) != 0) return 1;
  pid_t server = ::fork();
  if (server == 0) {
    ::dup2(stdin_pipe[0], 0);
    ::close(stdin_pipe[1]);
    ::close(ports_pipe[0]);
    auto fd = std::to_string(ports_pipe[1]);
    ::execl("/proc/self/exe", argv[0], "--serve", fd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(ports_pipe[1]);
  ::close(stdin_pipe[0]);
  std::uint16_t ports[2] = {0, 0};
  if (!readable(ports_pipe[0], 30000) ||
      ::read(ports_pipe[0], ports, sizeof ports) != static_cast<ssize_t>(sizeof ports)) {
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    fail("the serving process did not publish its actors");
  }
  ::close(ports_pipe[0]);
  tcp_pair tcp;

  std::map<std::string, std::vector<std::pair<double, double>>> results;  // kind -> (p50, p90) per round
  {
    config cfg;
    caf::actor_system sys{cfg};
    auto to_actor = sys.middleman().remote_actor("127.0.0.1", ports[0]);
    auto to_broker = sys.middleman().remote_actor("127.0.0.1", ports[1]);
    if (!to_actor || !to_broker) {
      ::kill(server, SIGKILL);
      ::waitpid(server, nullptr, 0);
      fail("cannot reach the serving process");
    }
    auto caf_trips = [&](bool broker) {
      std::promise<samples> p;
      auto f = p.get_future();
      if (broker) {
        sys.middleman().spawn_broker(client<caf::io::broker>, *to_broker, trips, trips_done{&p});
      } else {
        sys.spawn(client<caf::event_based_actor>, *to_actor, trips, trips_done{&p});
      }
      auto s = f.get();  // (each trip ends by its 10 s timeout at the latest)
      if (static_cast<int>(s.size()) != trips) {
        ::kill(server, SIGKILL);
        ::waitpid(server, nullptr, 0);
        fail("a round trip to the serving process failed");
      }
      return s;
    };
    auto record = [&](const std::string& kind, samples s) {
      s.erase(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(s.size() / 10));  // warm-up
      results[kind].emplace_back(percentile(s, 0.5), percentile(s, 0.9));
    };
    for (int r = 0; r < rounds; ++r) {
      record("tcp", tcp.trips(trips));
      record("actors", caf_trips(false));
      record("brokers", caf_trips(true));
    }
  }
  ::close(stdin_pipe[1]);
  int status = 0;
  ::waitpid(server, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("the serving process did not end cleanly");

  auto median_of = [](std::vector<std::pair<double, double>> v, bool p90) {
    samples x;
    for (auto& [a, b] : v) x.push_back(p90 ? b : a);
    return percentile(x, 0.5);
  };
  double tcp50 = median_of(results["tcp"], false);
  std::printf("round trip between two processes, %d trips x %d rounds (us; median over rounds)\n", trips, rounds);
  std::printf("  %-8s %8s %8s %10s\n", "carrier", "p50", "p90", "p50/tcp");
  for (const char* kind : {"tcp", "actors", "brokers"}) {
    double p50 = median_of(results[kind], false), p90 = median_of(results[kind], true);
    std::printf("  %-8s %8.1f %8.1f %9.2fx\n", kind, p50, p90, tcp50 > 0 ? p50 / tcp50 : 0.0);
  }
  return 0;
}
