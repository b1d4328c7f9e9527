// conclavectl: talk to a conclave cluster.
//
//   conclavectl --endpoints HOST:PORT,... --cluster-id ID [--secret-file F] [--json] [--stale]
//               [--cert-file F --key-file F --trusted-ca-file F] COMMAND [ARGS]
//   (or from the environment: CONCLAVECTL_ENDPOINTS, CONCLAVECTL_CLUSTER_ID, CONCLAVECTL_SECRET_FILE)
//   conclavectl member-key --secret-file F   print the member key derived from the cluster secret
//
// With --cert-file (a master with peer-cert-file, README "TLS"), every
// connection is TLS: conclavectl shows that certificate (signed by a CA in
// the master's peer-trusted-ca-file) and checks the master's against
// --trusted-ca-file.
//
// Commands:
//   status                      every endpoint's role, term, leader and log position
//   leader                      the current leader
//   members [STATUS]            members with their resource usage (alive|suspect|dead|left)
//   get KEY | list PREFIX       linearizable reads (--stale: from any server, possibly behind)
//   watch PREFIX [--from REV]   print every change under PREFIX after REV (default: from now) as it
//                               happens, in order, each once, one JSON object a line:
//                                 {"revision":N,"type":"put"|"delete","key":K,"value":V}
//                               If the registry's history (watch-history) no longer reaches the last
//                               revision printed, it prints
//                                 {"compacted":true,"after":A,"revision":R,"keys":N}
//                               then N lines, the keys under PREFIX at revision R as `list` prints
//                               them; changes continue after R. With --stale, an answer from a
//                               server behind what was printed is skipped (never repeats or rewinds).
//   put KEY VALUE | del KEY | cas KEY VERSION VALUE   (VERSION 0: create only)
//   lock NAME -- CMD ARGS...    run CMD while holding the lock; CONCLAVE_FENCING_TOKEN is set for it.
//                               CMD runs in its own process group. If the lock is lost (its session
//                               ends, or no leader confirmed it lately: it could expire within half
//                               a second), the group gets SIGTERM, then SIGKILL 5 s later, and
//                               conclavectl exits 4; otherwise it exits with CMD's status (128 + N
//                               if signal N ended CMD). SIGTERM, SIGINT and SIGHUP sent to
//                               conclavectl go to CMD's group (while waiting for the lock they end
//                               the wait: exit 128 + N); the lock is released once CMD has ended.
//                               If conclavectl is killed (SIGKILL), CMD gets SIGKILL at once
//                               (processes CMD started do not).
//   publish [--to MEMBER] PAYLOAD  an event for every live member or one; refused with "full: N
//                               undelivered events; members must acknowledge" (exit 1) at the cap
//   transfer-leader [ID]
//   add-master ID HOST:PORT     add a master started with --join true (as a learner, then a voter once caught up)
//   remove-master ID
//   snapshot save FILE          a backup of the registry at a revision (linearizable, through the
//                               leader), written to FILE.part and renamed to FILE once complete;
//                               the format is schema/backup_file.hpp's; `conclave restore` reads it
//
// Exit codes: 0 done; 1 the operation was refused (not found, version
// mismatch, lock held...); 2 usage error; 3 no server of the cluster answered;
// 4 lock: the lock was lost while waiting for it or while CMD ran.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "actors/registry/queries.hpp"
#include "actors/registry/watch_cursor.hpp"
#include "roles/config.hpp"
#include "roles/peer_tls.hpp"
#include "roles/push_client.hpp"
#include "roles/raft_client.hpp"
#include "roles/registry_reads.hpp"
#include "schema/backup_file.hpp"
#include "schema/registry_codec.hpp"

using namespace conclave;
using namespace std::chrono_literals;

namespace {

constexpr int exit_refused = 1;
constexpr int exit_usage = 2;
constexpr int exit_unreachable = 3;
constexpr int exit_lock_lost = 4;

[[noreturn]] void usage(const std::string& what) {
  std::fprintf(stderr, "conclavectl: %s\n(run conclavectl --help for the commands)\n", what.c_str());
  std::exit(exit_usage);
}

bool tls_on = false;  // --cert-file given

int unreachable(const error& e) {
  std::fprintf(stderr, "conclavectl: %s\n", e.message().c_str());
  // A port that accepts but whose handshake fails or never ends: CAF's words
  // for a TLS handshake refused by either side, or TLS on one side only (README "TLS").
  const auto& m = e.message();
  if (m.find("cannot connect") != std::string::npos &&
      (m.find("disconnect_during_handshake") != std::string::npos || m.find("request_timeout") != std::string::npos)) {
    std::fprintf(stderr, tls_on ? "conclavectl: the handshake with the master failed: TLS refused? (the master must "
                                  "trust the CA of --cert-file in peer-trusted-ca-file, --trusted-ca-file must hold "
                                  "the CA of its certificate, and it must use TLS)\n"
                                : "conclavectl: the handshake with the master failed: if it uses TLS "
                                  "(peer-cert-file), pass --cert-file, --key-file and --trusted-ca-file\n");
  }
  return e.code == errc::unauthenticated ? exit_refused : exit_unreachable;
}

// Runs a registry command through the leader; prints and returns its outcome.
int command(raft_client& c, const registry::command& cmd, bool json, wire::registry_result* out = nullptr,
            std::chrono::milliseconds deadline = 10s) {
  auto r = c.propose(wire::encode_command(cmd), deadline);
  if (!r) return unreachable(r.error());
  auto res = wire::decode_result(r->result);
  if (!res) return unreachable(res.error());
  if (out) *out = *res;
  auto ok = res->outcome.code == registry::code::ok || res->outcome.code == registry::code::queued;
  if (json) {
    std::printf("{\"code\":\"%s\",\"value\":%llu,\"detail\":%s}\n", registry::to_string(res->outcome.code),
                static_cast<unsigned long long>(res->outcome.value), json_string(res->outcome.detail).c_str());
  } else if (!out) {
    if (ok) std::printf("ok (%llu)\n", static_cast<unsigned long long>(res->outcome.value));
    else std::fprintf(stderr, "%s: %s\n", registry::to_string(res->outcome.code), res->outcome.detail.c_str());
  }
  return ok ? 0 : exit_refused;
}

// --stale: reads from the first server that answers, from what it has
// applied; otherwise linearizable reads through the leader.
bool stale = false;

// How long a read may take: through the leader, or 2 s for each endpoint in turn.
std::chrono::milliseconds read_deadline(const raft_client& c) {
  return stale ? std::chrono::milliseconds(2000 * c.endpoints().size()) : std::chrono::milliseconds(10s);
}

// members [STATUS]: prints them as a JSON array.
int members(raft_client& c, const std::vector<std::string>& args) {
  registry::members_query q;
  if (!args.empty()) {
    for (auto s : {registry::member_status::alive, registry::member_status::suspect, registry::member_status::dead,
                   registry::member_status::left}) {
      if (args[0] == registry::to_string(s)) q.only = s;
    }
    if (!q.only) usage("'" + args[0] + "' is not a member status (alive, suspect, dead or left)");
  }
  auto r = ask(c, q, read_deadline(c), stale);
  if (!r) return unreachable(r.error());
  std::printf("%s\n", registry::to_json(*r).c_str());
  return 0;
}

// get KEY: prints it as a JSON object, or null (exit 1) when there is none.
int get(raft_client& c, const std::string& key) {
  auto r = ask(c, registry::get_key{key}, read_deadline(c), stale);
  if (!r) return unreachable(r.error());
  std::printf("%s\n", r->value ? registry::to_json(key, *r->value).c_str() : "null");
  return r->value ? 0 : exit_refused;
}

// list [PREFIX]: prints the keys under it as a JSON array.
int list(raft_client& c, const std::string& prefix) {
  auto r = ask(c, registry::list_prefix{prefix}, read_deadline(c), stale);
  if (!r) return unreachable(r.error());
  std::printf("%s\n", registry::to_json(*r).c_str());
  return 0;
}

// Prints every change under `prefix` after revision `from` (or from now) as
// it happens, one JSON object a line; after a compaction, the compacted line
// and a listing (top of this file). Answers from a server behind what was
// printed (--stale) are skipped, so the output never repeats or goes back.
int watch(caf::actor_system& sys, const std::string& cluster_id, const std::vector<raft::endpoint>& endpoints,
          const auth::keys& keys, const std::string& prefix, std::optional<registry::revision> from) {
  // The master pushes each change as it applies it; across a move to
  // another master (this one died or fell silent) the watch resumes from the
  // last revision printed, so the output never repeats or goes back.
  auto heard = std::make_shared<std::promise<void>>();
  auto first = std::make_shared<std::atomic<bool>>(true);
  auto cursor = std::make_shared<registry::watch_cursor>(prefix, from);
  auto print_change = [](const registry::change& ch) { std::printf("%s\n", registry::to_json(ch).c_str()); };
  auto print_listing = [](const registry::watch_listing& l) {
    std::printf("{\"compacted\":true,\"after\":%llu,\"revision\":%llu,\"keys\":%zu}\n",
                static_cast<unsigned long long>(l.after), static_cast<unsigned long long>(l.rev), l.keys.size());
    for (const auto& [key, kv] : l.keys) std::printf("%s\n", registry::to_json(key, kv).c_str());
  };
  push_client pc(sys, cluster_id, endpoints, keys);
  pc.subscribe([cursor] { return registry::subscription{cursor->subscription()}; },
               [cursor, heard, first, print_change, print_listing](const registry::push& p) {
                 if (first->exchange(false)) heard->set_value();
                 if (cursor->take(p, print_change, print_listing)) std::fflush(stdout);
               });
  // A cluster nobody answers for 10 s at the start is unreachable (exit 3);
  // once watching, the watch waits out any outage.
  if (heard->get_future().wait_for(10s) != std::future_status::ready) return unreachable(make_error(errc::unavailable, "no server of the cluster answered the watch"));
  for (;;) ::pause();  // until a signal ends the process
}

// Keeps a lock's session alive from its own thread and says when the lock
// is lost: the session ended (expired or closed), or it may expire soon
// because no leader confirmed it lately.
class session_keeper {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::uint64_t ttl_ms = 3000;
  // A keepalive round every tenth of the TTL, and at once when a connection
  // breaks: a leader expires a session crash_grace_ms (100 ms) after the
  // break of its connection unless it is heard from again.
  static constexpr std::chrono::milliseconds interval{ttl_ms / 10};
  // The leader cannot expire the session before the send time of the last
  // keepalive a leader confirmed + TTL (it heard it later). lost() says so
  // stop_margin earlier, polled every 20 ms where CMD is watched (not after a
  // keepalive round, which may take a third of the TTL): CMD gets its signal
  // while the session surely lives, on a busy machine too.
  static constexpr std::chrono::milliseconds stop_margin{ttl_ms / 6};

  session_keeper(caf::actor_system& sys, const std::string& cluster_id, const std::vector<raft::endpoint>& endpoints,
                 const auth::keys& keys, registry::session_id session, clock::time_point confirmed)
      : client_(sys, cluster_id, endpoints), session_(session), confirmed_(confirmed) {
    client_.set_keys(keys);
    auto wake = wake_;  // the callback may run on a CAF thread after we are gone
    client_.on_connection_lost([wake] {
      std::lock_guard<std::mutex> guard(wake->m);
      wake->woken = true;
      wake->cv.notify_all();
    });
    thread_ = std::thread([this] { run(); });
  }
  ~session_keeper() {
    {
      std::lock_guard<std::mutex> guard(wake_->m);
      wake_->done = true;
      wake_->cv.notify_all();
    }
    thread_.join();
  }

  // Empty while the session surely lives; else why the lock is lost (for good).
  std::string lost() {
    std::lock_guard<std::mutex> guard(mutex_);
    auto since = clock::now() - confirmed_;
    if (lost_.empty() && since >= std::chrono::milliseconds(ttl_ms) - stop_margin) {
      lost_ = "no leader confirmed session " + std::to_string(session_) + " for " +
              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(since).count()) +
              " ms, too close to its TTL of " + std::to_string(ttl_ms) + " ms (last: " + last_ + ")";
    }
    return lost_;
  }

 private:
  struct wakeup {
    std::mutex m;
    std::condition_variable cv;
    bool woken = false, done = false;
  };

  void run() {
    for (;;) {
      auto sent = clock::now();
      // A round tries every master for up to a third of the TTL: a frozen
      // leader must not hold the keepalives back while another leads.
      auto r = client_.to_leader(client::keepalive{session_, {}}, std::chrono::milliseconds(ttl_ms / 3));
      {
        std::lock_guard<std::mutex> guard(mutex_);
        if (!lost_.empty()) return;
        auto* f = r ? std::get_if<client::failure>(&*r) : nullptr;
        if (r && std::holds_alternative<client::ok>(*r)) {
          confirmed_ = sent;
        } else if (f && f->code == "not_found") {
          lost_ = "session " + std::to_string(session_) + " ended (expired or closed)";
          return;
        } else {
          last_ = !r ? r.error().message() : f ? f->code + ": " + f->message : std::string("unexpected reply");
        }
      }
      std::unique_lock<std::mutex> lock(wake_->m);
      wake_->cv.wait_for(lock, interval, [&] { return wake_->woken || wake_->done; });
      if (wake_->done) return;
      wake_->woken = false;
    }
  }

  raft_client client_;
  registry::session_id session_;
  std::shared_ptr<wakeup> wake_ = std::make_shared<wakeup>();
  std::mutex mutex_;
  clock::time_point confirmed_;  // send time of the last keepalive a leader confirmed
  std::string lost_, last_ = "no answer yet";
  std::thread thread_;
};

// SIGTERM, SIGINT or SIGHUP received by conclavectl (0: none since last
// looked at): passed on to CMD's process group, or ends a wait for the lock.
std::atomic<int> stop_signal{0};
constexpr int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};

extern "C" void on_stop_signal(int sig) { stop_signal.store(sig); }

void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : stop_signals) {
    // One ignored when we started (nohup, a background job) stays ignored, for CMD too.
    struct sigaction was {};
    if (::sigaction(sig, nullptr, &was) == 0 && was.sa_handler != SIG_IGN) ::sigaction(sig, &sa, nullptr);
  }
}

// CMD's exit status as a shell reports it (128 + N if signal N ended it).
int status_of(int ws) {
  if (WIFEXITED(ws)) return WEXITSTATUS(ws);
  return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : 1;
}

// Starts CMD in its own process group (stopping CMD stops what it started)
// that dies with conclavectl even on SIGKILL (CMD must not run without the
// lock); -1 with errno if fork failed.
pid_t start_command(std::vector<char*>& argv, std::vector<char*>& envp) {
  // Stop signals are held back over fork: the child takes them with their
  // default action, once it no longer shares our handlers.
  sigset_t held, before;
  sigemptyset(&held);
  for (int sig : stop_signals) sigaddset(&held, sig);
  ::pthread_sigmask(SIG_BLOCK, &held, &before);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls here: other threads may hold locks.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // follows the forking (main) thread
    if (::getppid() != parent) _exit(127);  // conclavectl died before prctl
    for (int sig : stop_signals) {
      struct sigaction was {};
      if (::sigaction(sig, nullptr, &was) == 0 && was.sa_handler == on_stop_signal) ::signal(sig, SIG_DFL);
    }
    ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
    ::execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (pid > 0) ::setpgid(pid, pid);  // also here, so that no signal finds the group missing
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  return pid;
}

// conclavectl lock NAME -- CMD ARGS: CMD runs while this client holds the
// lock, and no longer than that.
int run_locked(raft_client& c, caf::actor_system& sys, const std::string& cluster_id,
                const std::vector<raft::endpoint>& endpoints, const auth::keys& keys, std::vector<std::string>& args) {
  const auto& name = args[0];
  catch_stop_signals();
  wire::registry_result opened, acquired;
  auto opening = std::chrono::steady_clock::now();
  if (int rc = command(c, registry::open_session{"conclavectl", session_keeper::ttl_ms}, false, &opened); rc) return rc;
  auto session = opened.outcome.value;
  int status = 0;
  {
    session_keeper keeper(sys, cluster_id, endpoints, keys, session, opening);
    auto lost = [&](const char* when) {
      std::fprintf(stderr, "conclavectl: lock '%s' lost %s: %s\n", name.c_str(), when, keeper.lost().c_str());
      return exit_lock_lost;
    };
    auto interrupted = [&] {
      int sig = stop_signal.exchange(0);
      if (sig == 0) return false;
      std::fprintf(stderr, "conclavectl: signal %d while waiting for lock '%s'; giving up\n", sig, name.c_str());
      status = 128 + sig;
      return true;
    };
    status = command(c, registry::acquire_lock{name, session, true}, false, &acquired);
    auto token = acquired.outcome.value;
    if (status == 0 && acquired.outcome.code == registry::code::queued) {
      // The master pushes the grant when it applies it.
      struct wait_state {
        std::mutex mutex;
        std::condition_variable cv;
        std::optional<registry::push> outcome;
      };
      auto w = std::make_shared<wait_state>();
      push_client pc(sys, cluster_id, endpoints, keys);
      auto queued_at = acquired.outcome.value;
      pc.subscribe([name, session, queued_at] {
                     return registry::subscription{registry::lock_subscription{name, session, queued_at}};
                   },
                   [w](const registry::push& p) {
                     if (p.kind != registry::push_kind::granted && p.kind != registry::push_kind::gone) return;
                     std::lock_guard<std::mutex> guard(w->mutex);
                     if (!w->outcome) w->outcome = p;
                     w->cv.notify_all();
                   });
      std::unique_lock<std::mutex> guard(w->mutex);
      for (;;) {
        if (w->outcome) {
          if (w->outcome->kind == registry::push_kind::granted) {
            token = w->outcome->state.locks.at(name).token;
          } else {
            std::fprintf(stderr, "conclavectl: lock '%s' lost while waiting for it: the registry no longer has "
                                 "this client waiting (its session ended)\n", name.c_str());
            status = exit_lock_lost;
          }
          break;
        }
        // The session keeper and signals speak from elsewhere: look every 20 ms.
        if (!keeper.lost().empty()) {
          status = lost("while waiting for it");
          break;
        }
        if (interrupted()) break;
        w->cv.wait_for(guard, 20ms);
      }
    }
    // The grant may have come after the session's last confirmation.
    if (status == 0 && !keeper.lost().empty()) status = lost("before the command started");
    if (status == 0 && !interrupted()) {
      // Prepared before fork(): other threads run, so the child allocates nothing.
      std::string token_env = "CONCLAVE_FENCING_TOKEN=" + std::to_string(token);
      std::vector<char*> argv2, envp;
      for (std::size_t k = 2; k < args.size(); ++k) argv2.push_back(args[k].data());
      argv2.push_back(nullptr);
      for (char** e = environ; *e; ++e) {
        if (std::strncmp(*e, "CONCLAVE_FENCING_TOKEN=", 23) != 0) envp.push_back(*e);
      }
      envp.push_back(token_env.data());
      envp.push_back(nullptr);
      pid_t pid = start_command(argv2, envp);
      if (pid < 0) {
        std::fprintf(stderr, "conclavectl: cannot start the command: %s\n", std::strerror(errno));
        status = exit_refused;
      }
      int ws = 0;
      bool stopped = false;
      auto killed_at = std::chrono::steady_clock::time_point::max();
      while (pid > 0) {
        pid_t w = ::waitpid(pid, &ws, WNOHANG);
        if (w == pid) {
          if (!stopped) status = status_of(ws);
          break;
        }
        if (w < 0 && errno != EINTR) {
          std::fprintf(stderr, "conclavectl: waiting for the command: %s\n", std::strerror(errno));
          status = exit_refused;
          break;
        }
        // Signals to conclavectl are for CMD; we wait for its answer.
        if (int sig = stop_signal.exchange(0)) ::kill(-pid, sig);
        // The lock is gone: so must CMD be, as soon as it can clean up.
        if (!stopped && !keeper.lost().empty()) {
          status = lost("while the command ran");
          std::fprintf(stderr, "conclavectl: stopping the command (SIGTERM, SIGKILL after 5 s)\n");
          ::kill(-pid, SIGTERM);
          stopped = true;
          killed_at = std::chrono::steady_clock::now() + 5s;
        }
        if (std::chrono::steady_clock::now() >= killed_at) {
          ::kill(-pid, SIGKILL);
          killed_at = std::chrono::steady_clock::time_point::max();
        }
        std::this_thread::sleep_for(20ms);
      }
    }
  }
  // Whatever happened, this client holds nothing afterwards (closing the
  // session releases the lock and any wait for it).
  (void)command(c, registry::close_session{session, false}, false, &opened, 3s);
  return status;
}

// snapshot save FILE: the registry as of a linearizable read, as a backup file.
int snapshot_save(raft_client& c, const std::string& cluster_id, const std::string& file, bool json) {
  auto r = ask(c, registry::state_query{}, 30s, false);
  if (!r) return unreachable(r.error());
  if (!r->state) return unreachable(make_error(errc::malformed, "the leader answered no state"));
  auto bytes = backup::encode(cluster_id, *r->state);
  if (auto ok = backup::write_file(file, bytes); !ok) {
    std::fprintf(stderr, "conclavectl: %s\n", ok.error().message().c_str());
    return exit_refused;
  }
  const auto& st = *r->state;
  if (json) {
    std::printf("{\"file\":%s,\"revision\":%llu,\"raft_index\":%llu,\"keys\":%zu,\"bytes\":%zu}\n",
                json_string(file).c_str(), static_cast<unsigned long long>(st.rev),
                static_cast<unsigned long long>(st.applied), st.keys.size(), bytes.size());
  } else {
    std::printf("saved %s: revision %llu, raft index %llu, %zu keys, %zu bytes\n", file.c_str(),
                static_cast<unsigned long long>(st.rev), static_cast<unsigned long long>(st.applied), st.keys.size(),
                bytes.size());
  }
  return 0;
}

// snapshot status FILE: what a backup file holds, once its checksum is verified.
int snapshot_status(const std::string& file, bool json) {
  auto got = backup::read_file(file);
  if (!got) {
    std::fprintf(stderr, "conclavectl: %s\n", got.error().message().c_str());
    return exit_refused;
  }
  const auto& h = got->header;
  std::error_code ec;
  auto size = std::filesystem::file_size(file, ec);
  if (json) {
    std::printf("{\"cluster_id\":%s,\"revision\":%llu,\"raft_index\":%llu,\"keys\":%llu,\"sessions\":%zu,"
                "\"bytes\":%llu,\"checksum\":\"ok\"}\n",
                json_string(h.cluster_id).c_str(), static_cast<unsigned long long>(h.rev),
                static_cast<unsigned long long>(h.raft_index), static_cast<unsigned long long>(h.keys),
                got->state.sessions.size(), static_cast<unsigned long long>(size));
  } else {
    std::printf("%s: cluster %s, revision %llu, raft index %llu, %llu keys, %zu sessions, %llu bytes, checksum ok\n",
                file.c_str(), h.cluster_id.c_str(), static_cast<unsigned long long>(h.rev),
                static_cast<unsigned long long>(h.raft_index), static_cast<unsigned long long>(h.keys),
                got->state.sessions.size(), static_cast<unsigned long long>(size));
  }
  return 0;
}

// A setting from the environment: CONCLAVECTL_ + the flag's name in upper
// case with '-' as '_' (as etcdctl reads ETCDCTL_*); the flag wins.
std::string from_env(const char* flag) {
  const char* v = std::getenv(env_name(flag, "CONCLAVECTL_").c_str());
  return v ? v : "";
}

// `from` names the source in errors (the flag or the variable).
std::vector<raft::endpoint> parse_endpoints(const std::string& text, const std::string& from) {
  std::vector<raft::endpoint> out;
  std::stringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) {
    auto ep = raft::parse_endpoint(item, from);
    if (!ep) usage(ep.error().detail);
    out.push_back(*ep);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  auto endpoints = parse_endpoints(from_env("endpoints"), env_name("endpoints", "CONCLAVECTL_"));
  std::string cluster_id = from_env("cluster-id"), secret_file = from_env("secret-file");
  tls_files tls;
  bool json = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("see the comment at the top of roles/conclavectl_main.cpp, or README.md\n");
      return 0;
    }
    if (a == "--json") {
      json = true;
    } else if (a == "--stale") {
      stale = true;
    } else if (a == "--endpoints" && i + 1 < argc) {
      endpoints = parse_endpoints(argv[++i], "--endpoints");
    } else if (a == "--cluster-id" && i + 1 < argc) {
      cluster_id = argv[++i];
    } else if (a == "--secret-file" && i + 1 < argc) {
      secret_file = argv[++i];
    } else if (a == "--cert-file" && i + 1 < argc) {
      tls.cert = argv[++i];
    } else if (a == "--key-file" && i + 1 < argc) {
      tls.key = argv[++i];
    } else if (a == "--trusted-ca-file" && i + 1 < argc) {
      tls.ca = argv[++i];
    } else {
      break;
    }
  }
  auth::keys keys;
  if (!secret_file.empty()) {
    auto text = auth::read_key_file(secret_file);
    if (!text) usage(text.error().detail);
    keys = auth::from_file_text(*text);
  }
  if (i + 2 < argc && std::string(argv[i]) == "snapshot" && std::string(argv[i + 1]) == "status") {
    return snapshot_status(argv[i + 2], json);
  }
  if (i < argc && std::string(argv[i]) == "member-key") {
    // Workers and clients get this instead of the secret: it opens the
    // registry but not Raft membership or leadership.
    if (keys.master.empty()) usage("member-key needs --secret-file with the cluster secret");
    std::printf("%s\n", keys.member.c_str());
    return 0;
  }
  if (auto ok = check_tls_files(tls, "--"); !ok) usage(ok.error().detail);
  if (tls.enabled() && tls.ca.empty()) usage("--trusted-ca-file: must be set with --cert-file (the CA of the masters' certificates)");
  if (endpoints.empty()) usage("--endpoints is required");
  if (cluster_id.empty()) usage("--cluster-id is required");
  if (i >= argc) usage("no command");
  std::string cmd = argv[i++];
  std::vector<std::string> args(argv + i, argv + argc);

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("logger.verbosity", caf::atom("quiet"));
  tls_on = tls.enabled();
  if (tls_on) use_peer_tls(cfg, tls);
  caf::actor_system sys{cfg};
  raft_client c(sys, cluster_id, endpoints);
  c.set_keys(keys);

  if (cmd == "status" || cmd == "leader") {
    bool any = false;
    for (const auto& ep : endpoints) {
      auto s = c.status(ep);
      if (!s) {
        if (cmd == "status") std::printf("%s: unreachable\n", ep.text().c_str());
        continue;
      }
      any = true;
      if (cmd == "leader") {
        if (s->leader_id == 0) continue;
        std::printf(json ? "{\"leader\":%llu,\"address\":\"%s\",\"term\":%llu}\n" : "%llu %s term %llu\n",
                    static_cast<unsigned long long>(s->leader_id), s->leader_address.c_str(),
                    static_cast<unsigned long long>(s->term));
        return 0;
      }
      std::printf("%s: node %llu %s term %llu leader %llu commit %llu applied %llu %s\n", ep.text().c_str(),
                  static_cast<unsigned long long>(s->id), s->role.c_str(), static_cast<unsigned long long>(s->term),
                  static_cast<unsigned long long>(s->leader_id), static_cast<unsigned long long>(s->commit_index),
                  static_cast<unsigned long long>(s->applied_index), s->digest.c_str());
      if (!s->storage_error.empty()) std::printf("%s: cannot write: %s\n", ep.text().c_str(), s->storage_error.c_str());
    }
    if (!any) return unreachable(make_error(errc::unavailable, "no endpoint answered"));
    return cmd == "leader" ? exit_refused : 0;
  }
  if (cmd == "members" && args.size() <= 1) return members(c, args);
  if (cmd == "get" && args.size() == 1) return get(c, args[0]);
  if (cmd == "list" && args.size() <= 1) return list(c, args.empty() ? std::string() : args[0]);
  if (cmd == "watch" && !args.empty()) {
    std::optional<registry::revision> from;
    if (args.size() >= 3 && args[1] == "--from") from = std::strtoull(args[2].c_str(), nullptr, 10);
    return watch(sys, cluster_id, endpoints, keys, args[0], from);
  }
  if (cmd == "put" && args.size() == 2) return command(c, registry::put{args[0], args[1], 0, std::nullopt}, json);
  if (cmd == "del" && args.size() == 1) return command(c, registry::remove_key{args[0], std::nullopt}, json);
  if (cmd == "cas" && args.size() == 3) {
    return command(c, registry::put{args[0], args[2], 0, std::strtoull(args[1].c_str(), nullptr, 10)}, json);
  }
  if (cmd == "publish" && !args.empty()) {
    std::string to;
    if (args.size() == 3 && args[0] == "--to") to = args[1];
    return command(c, registry::publish_event{"conclavectl", to, args.back()}, json);
  }
  if (cmd == "transfer-leader") {
    auto target = args.empty() ? 0 : std::strtoull(args[0].c_str(), nullptr, 10);
    auto r = c.to_leader(client::transfer_leadership{target}, 5s);
    if (!r) return unreachable(r.error());
    if (auto* f = std::get_if<client::failure>(&*r)) {
      std::fprintf(stderr, "%s: %s\n", f->code.c_str(), f->message.c_str());
      return exit_refused;
    }
    std::printf("ok\n");
    return 0;
  }
  if ((cmd == "add-master" && args.size() == 2) || (cmd == "remove-master" && args.size() == 1)) {
    auto id = std::strtoull(args[0].c_str(), nullptr, 10);
    if (id == 0) usage("'" + args[0] + "' is not a server id");
    // One request per change: the leader holds it until it can be made (the
    // learner caught up, the earlier change committed) or refuses it.
    auto change = [&](std::uint8_t kind) -> int {
      auto wait = std::chrono::milliseconds(client::membership_wait_ms) + 5s;
      auto r = c.to_leader(client::change_membership{kind, id, args.size() > 1 ? args[1] : std::string()}, wait);
      if (!r) return unreachable(r.error());
      if (std::holds_alternative<client::committed>(*r)) return 0;
      if (auto* f = std::get_if<client::failure>(&*r)) std::fprintf(stderr, "%s: %s\n", f->code.c_str(), f->message.c_str());
      return exit_refused;
    };
    if (cmd == "remove-master") {
      int rc = change(2);
      if (rc == 0) std::printf("removed master %llu\n", static_cast<unsigned long long>(id));
      return rc;
    }
    // Added as a learner, then promoted once it has caught up (thesis 4.2.1).
    if (int rc = change(0); rc != 0) return rc;
    if (int rc = change(1); rc != 0) return rc;
    std::printf("added master %llu at %s\n", static_cast<unsigned long long>(id), args[1].c_str());
    return 0;
  }
  if (cmd == "snapshot" && args.size() == 2 && args[0] == "save") return snapshot_save(c, cluster_id, args[1], json);
  if (cmd == "lock" && args.size() >= 3 && args[1] == "--") return run_locked(c, sys, cluster_id, endpoints, keys, args);
  usage("unknown command or wrong arguments: " + cmd);
}
