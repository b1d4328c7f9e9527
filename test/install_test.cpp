// `meson install` into a temporary DESTDIR, then what an operator and an
// engine's build do with it: build examples/engine.cpp out of the tree with
// `pkg-config --cflags --libs conclave` and run it; start a master the way
// the installed systemd unit does (its ExecStart, Environment and
// EnvironmentFile, with the installed example configuration copied where the
// unit reads it), see it lead
// (conclavectl status) and stop cleanly on SIGTERM.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "test/processes.hpp"
#include "test/skip.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// Runs `command` with /bin/sh, output to `log`: its exit code (-1: killed or timed out).
int run_shell(const std::string& command, const std::string& log, std::chrono::seconds timeout,
              std::vector<std::string> env = {}) {
  auto pid = test::fork_exec({"/bin/sh", "-c", command}, log, std::move(env));
  auto status = test::wait_pid(pid, timeout);
  if (!status) {
    test::kill_pid(pid);
    return -1;
  }
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

std::string sh_quoted(const std::string& s) { return "'" + s + "'"; }

// The build's `meson install`, once for this program, into a temporary DESTDIR.
struct installation {
  test::temp_dir dir;
  std::string destdir = dir / "root";
  int status = -1;
  std::string log;

  installation() {
    auto build = env_or("CONCLAVE_BUILD_ROOT", "build");
    status = run_shell("meson install --no-rebuild --quiet -C " + sh_quoted(build) + " --destdir " + sh_quoted(destdir),
                       dir / "install.log", 300s);
    log = test::file_text(dir / "install.log");
  }
  // The one installed file named `name` (any directory), or "".
  std::string find(const std::string& name) const {
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(destdir, ec)) {
      if (e.path().filename() == name) return e.path().string();
    }
    return "";
  }
  // An absolute path as installed (under DESTDIR) when it is there.
  std::string staged(const std::string& path) const {
    return !path.empty() && path[0] == '/' && fs::exists(destdir + path) ? destdir + path : path;
  }
};

installation& installed() {
  static installation i;
  REQUIRE_MESSAGE(i.status == 0, "meson install failed:\n" << i.log);
  return i;
}

// The [Service] lines of a unit: key -> values, in order.
std::multimap<std::string, std::string> service_section(const std::string& unit_path) {
  std::multimap<std::string, std::string> out;
  std::ifstream in(unit_path);
  bool service = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      service = line == "[Service]";
      continue;
    }
    auto eq = line.find('=');
    if (service && eq != std::string::npos) out.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

std::vector<std::string> words(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// conclavectl (installed) with `env`: its exit code and output.
int ctl(const std::string& ctl_path, std::vector<std::string> args, std::vector<std::string> env,
        const std::string& log, std::string* out) {
  args.insert(args.begin(), ctl_path);
  std::error_code ec;
  fs::remove(log, ec);
  auto pid = test::fork_exec(args, log, std::move(env));
  auto status = test::wait_pid(pid, 30s);
  if (!status) test::kill_pid(pid);
  *out = test::file_text(log);
  return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

}  // namespace

TEST_CASE("meson install puts the programs, libconclave, its headers, conclave.pc, the unit and the config in place") {
  auto& i = installed();
  for (auto name : {"conclave", "conclavectl", "libconclave.so", "conclave.pc", "node.hpp", "log.hpp",
                    "conclave.service", "conclave.conf"}) {
    CHECK_MESSAGE(!i.find(name).empty(), name << " is not installed:\n" << i.log);
  }
  CHECK(fs::path(i.find("node.hpp")).parent_path().filename() == "roles");
  CHECK(fs::path(i.find("node.hpp")).parent_path().parent_path().filename() == "conclave");
}

TEST_CASE("an engine builds out of the tree against the installed libconclave (pkg-config) and runs its tasks") {
  auto& i = installed();
  auto pc = i.find("conclave.pc");
  REQUIRE(!pc.empty());
  test::temp_dir work;
  // Out of the tree: the source alone, so only installed headers can be found.
  fs::copy_file(env_or("CONCLAVE_SOURCE_ROOT", ".") + "/examples/engine.cpp", work / "engine.cpp");
  // PKG_CONFIG_SYSROOT_DIR: the .pc names the final prefix; this puts DESTDIR before it.
  std::vector<std::string> pc_env = {"PKG_CONFIG_PATH=" + fs::path(pc).parent_path().string(),
                                     "PKG_CONFIG_SYSROOT_DIR=" + i.destdir};
  auto compile = "c++ -std=c++17 -o engine engine.cpp $(pkg-config --cflags --libs conclave)";
  int built = run_shell("cd " + sh_quoted(work.path()) + " && " + compile, work / "build.log", 600s, pc_env);
  REQUIRE_MESSAGE(built == 0, test::file_text(work / "build.log"));

  auto libdir = fs::path(i.find("libconclave.so")).parent_path().string();
  std::vector<std::string> env = {"LD_LIBRARY_PATH=" + libdir};
  auto port = std::to_string(test::free_port());
  std::vector<std::string> common = {"--peers", "1=127.0.0.1:" + port, "--cluster-id", "installed", "--tasks", "6",
                                     "--work-ms", "10"};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), common.begin(), common.end());
    return a;
  };
  pid_t master = test::fork_exec(with({work / "engine", "-r", "master", "--id", "1", "--data-dir", work / "m"}),
                                 work / "master.log", env);
  pid_t worker = test::fork_exec(with({work / "engine", "-r", "worker", "--name", "w1"}), work / "worker.log", env);
  auto ctl_path = i.find("conclavectl");
  std::vector<std::string> ctl_env = {"CONCLAVECTL_ENDPOINTS=127.0.0.1:" + port, "CONCLAVECTL_CLUSTER_ID=installed"};
  std::string listed;
  auto until = std::chrono::steady_clock::now() + 60s;
  std::size_t done = 0;
  while (done < 6 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(200ms);
    ctl(ctl_path, {"list", "/engine/done/"}, ctl_env, work / "ctl.log", &listed);
    done = 0;
    for (auto p = listed.find("\"key\""); p != std::string::npos; p = listed.find("\"key\"", p + 1)) ++done;
  }
  CHECK_MESSAGE(done == 6, listed << "\n--- master\n"
                                  << test::file_text(work / "master.log") << "\n--- worker\n"
                                  << test::file_text(work / "worker.log"));
  for (pid_t pid : {worker, master}) {
    ::kill(pid, SIGTERM);
    auto status = test::wait_pid(pid, 30s);
    CHECK_MESSAGE((status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0),
                  "an engine did not stop cleanly on SIGTERM");
    if (!status) test::kill_pid(pid);
  }
}

TEST_CASE("the installed systemd unit passes systemd-analyze verify") {
  auto& i = installed();
  if (!fs::exists("/usr/bin/systemd-analyze")) CONCLAVE_SKIP("no systemd-analyze (Debian's systemd package)");
  test::temp_dir work;
  // The unit as installed, its paths under DESTDIR (verify checks that ExecStart exists).
  std::ifstream in(i.find("conclave.service"));
  std::ofstream out(work / "conclave.service");
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (line.rfind("ExecStart=", 0) == 0) {
      std::string rewritten;
      for (const auto& w : words(line.substr(eq + 1))) rewritten += (rewritten.empty() ? "" : " ") + i.staged(w);
      line = "ExecStart=" + rewritten;
    }
    out << line << "\n";
  }
  out.close();
  int status = run_shell("systemd-analyze verify " + sh_quoted(work / "conclave.service"), work / "verify.log", 120s);
  auto said = test::file_text(work / "verify.log");
  CHECK_MESSAGE(status == 0, said);
  CHECK_MESSAGE(said.empty(), said);
}

TEST_CASE("a master started as the systemd unit starts it, with the example config, leads and stops on SIGTERM") {
  auto& i = installed();
  test::temp_dir work;
  auto service = service_section(i.find("conclave.service"));
  REQUIRE(service.count("ExecStart") == 1);
  std::vector<std::string> env;
  for (auto [it, end] = service.equal_range("Environment"); it != end; ++it) {
    for (const auto& w : words(it->second)) env.push_back(w);
  }
  // This host's settings, as an operator gives them: CONCLAVE_* variables in
  // the unit's EnvironmentFile, over the installed example configuration.
  auto port = std::to_string(test::free_port());
  std::string host_settings = "# this host\nCONCLAVE_PEERS=1=127.0.0.1:" + port + "\nCONCLAVE_DATA_DIR=" + work / "data" +
                              "\nCONCLAVE_CLUSTER_ID=unit\n";
  REQUIRE(service.count("EnvironmentFile") == 1);
  std::vector<std::string> argv;
  for (const auto& w : words(service.find("ExecStart")->second)) argv.push_back(w);
  // The operator's step: the installed example copied to where the unit reads it.
  auto config = std::find(argv.begin(), argv.end(), "--config");
  REQUIRE(config + 1 < argv.end());
  fs::create_directories(fs::path(i.destdir + config[1]).parent_path());
  fs::copy_file(i.find("conclave.conf"), i.destdir + config[1], fs::copy_options::overwrite_existing);
  for (auto& w : argv) w = i.staged(w);
  auto env_file = service.find("EnvironmentFile")->second;
  if (env_file[0] == '-') env_file.erase(0, 1);  // '-': the file may be absent
  env_file = i.destdir + env_file;
  std::ofstream(env_file) << host_settings;
  std::ifstream in(env_file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#' && line.find('=') != std::string::npos) env.push_back(line);
  }
  REQUIRE(argv[0].rfind(i.destdir, 0) == 0);  // the installed conclave
  pid_t pid = test::fork_exec(argv, work / "master.log", env);

  auto ctl_path = i.find("conclavectl");
  std::vector<std::string> ctl_env = {"CONCLAVECTL_ENDPOINTS=127.0.0.1:" + port, "CONCLAVECTL_CLUSTER_ID=unit"};
  std::string status_text;
  bool leads = false;
  auto until = std::chrono::steady_clock::now() + 30s;
  while (!leads && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(100ms);
    leads = ctl(ctl_path, {"status"}, ctl_env, work / "ctl.log", &status_text) == 0 &&
            status_text.find(": node 1 leader term ") != std::string::npos;
  }
  CHECK_MESSAGE(leads, status_text << "\n--- master\n" << test::file_text(work / "master.log"));
  // systemd stops it with KillSignal (SIGTERM) and waits TimeoutStopSec.
  CHECK(service.find("KillSignal")->second == "SIGTERM");
  ::kill(pid, SIGTERM);
  auto exited = test::wait_pid(pid, 30s);
  if (!exited) test::kill_pid(pid);
  auto log = test::file_text(work / "master.log");
  REQUIRE_MESSAGE(exited, "no exit within 30 s of SIGTERM\n" << log);
  CHECK_MESSAGE((WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0), log);
  CHECK_MESSAGE(log.find("SIGTERM received") != std::string::npos, log);
  CHECK_MESSAGE(fs::exists(work / "data/IDENTITY"), log);
}
