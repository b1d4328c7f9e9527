// Real etcd clients that no one here wrote, against 3 masters with
// client-listen: Go clientv3 (etcd 3.4's, built from Debian's
// golang-etcd-server-dev; the client kvrocks-controller and most Go engines
// use) with its concurrency package, and python3-etcd3's lock contended by
// two clients. Each client program prints "ok   ..." / "FAIL ..." per check.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>

#include "test/etcd_masters.hpp"
#include "test/skip.hpp"

using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

// Runs `argv` (a client program given a follower's address) to its end: its
// exit status and output. The cluster's logs are added to a failure's message.
void run_client(etcd_masters& e, std::vector<std::string> argv, const std::string& log, const std::string& last_check) {
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  argv.push_back(e.client[*leader % 3 + 1]);
  auto pid = e.c->spawn(argv, log);
  auto status = e.c->wait_exit(pid, 180s);
  auto out = file_text(e.c->path(log));
  REQUIRE_MESSAGE(status.has_value(), out);
  CHECK_MESSAGE((WIFEXITED(*status) && WEXITSTATUS(*status) == 0), out << e.logs());
  CHECK_MESSAGE(out.find("FAIL") == std::string::npos, out);
  CHECK_MESSAGE(out.find("ok   " + last_check) != std::string::npos, out);
}

}  // namespace

TEST_CASE("Go clientv3 through a follower: KV by prefix, a txn, a lease kept alive then revoked, a watch in order, "
          "a contended mutex and election") {
  // meson builds the program (test/etcd_clients/go_clientv3) when go and Debian's clientv3 sources are there.
  const char* go_client = std::getenv("CONCLAVE_GO_CLIENTV3");
  if (go_client == nullptr || ::access(go_client, X_OK) != 0) {
    CONCLAVE_SKIP("no Go clientv3 program (needs golang-go and golang-etcd-server-dev when meson configures)");
  }
  etcd_masters e;
  run_client(e, {go_client}, "go-clientv3.log", "an election with no candidate has no leader");
}

TEST_CASE("python3-etcd3's lock contended by two clients through a follower: the second acquires once the first releases") {
  // Debian's Python packages load only under /usr/bin/python3.
  if (std::system("/usr/bin/python3 -c 'import etcd3' >/dev/null 2>&1") != 0) {
    CONCLAVE_SKIP("no python3-etcd3 under /usr/bin/python3");
  }
  etcd_masters e;
  auto script = program("CONCLAVE_ETCD_CLIENTS", "test/etcd_clients") + std::string("/python_etcd3_lock.py");
  run_client(e, {"/usr/bin/python3", script}, "python-etcd3-lock.log", "the released lock is free again");
}
