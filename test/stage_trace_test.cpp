// The write path's stage trace (actors/stage_trace.hpp), which the
// benchmarks' breakdown (bench/stage_breakdown.py) reads: off unless asked
// for; marks survive a kill -9 (the harness stops servers that way); and the
// script knows the stages by the same names, in the same order.
#define DOCTEST_CONFIG_IMPLEMENT  // own main(): --child marks, then kills itself
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "actors/stage_trace.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
namespace st = conclave::stage_trace;

namespace {

// In the child (started with CONCLAVE_STAGE_TRACE set): three marks, then kill -9.
[[noreturn]] void child() {
  st::set_node(7);
  st::mark(st::stage::proposed, 5);
  st::mark_range(st::stage::storage_done, 5, 9);
  st::mark_upto(st::stage::ack_sent, 9);
  ::raise(SIGKILL);
  std::abort();
}

struct record {
  std::uint64_t first, last;
  std::int64_t t_ns;
  std::uint64_t what;
};

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("stage trace: off unless CONCLAVE_STAGE_TRACE names a directory") {
  REQUIRE(std::getenv("CONCLAVE_STAGE_TRACE") == nullptr);
  CHECK_FALSE(st::enabled());
  st::mark(st::stage::proposed, 1);  // does nothing, and nothing breaks
}

TEST_CASE("stage trace: a process's marks survive its kill -9, with its node, the indexes and the stages") {
  test::temp_dir dir;
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("CONCLAVE_STAGE_TRACE", dir.path().c_str(), 1);
    ::execl("/proc/self/exe", "stage_trace_test", "--child", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  auto bytes = file_text(dir.path() + "/stages-" + std::to_string(pid) + ".bin");
  REQUIRE(bytes.size() >= 32 + 3 * sizeof(record));
  CHECK(bytes.substr(0, 8) == "CNCLSTG1");
  std::uint64_t node = 0, used = 0;
  std::memcpy(&node, bytes.data() + 8, 8);
  std::memcpy(&used, bytes.data() + 16, 8);
  CHECK(node == 7);
  REQUIRE(used == 3);
  std::vector<record> r(3);
  std::memcpy(r.data(), bytes.data() + 32, 3 * sizeof(record));
  CHECK(r[0].what == static_cast<std::uint64_t>(st::stage::proposed));
  CHECK((r[0].first == 5 && r[0].last == 5));
  CHECK(r[1].what == static_cast<std::uint64_t>(st::stage::storage_done));
  CHECK((r[1].first == 5 && r[1].last == 9));
  CHECK(r[2].what == static_cast<std::uint64_t>(st::stage::ack_sent));
  CHECK((r[2].first == 0 && r[2].last == 9));  // cumulative: everything up to 9
  CHECK(r[0].t_ns > 0);
  CHECK(r[0].t_ns <= r[1].t_ns);
  CHECK(r[1].t_ns <= r[2].t_ns);
}

TEST_CASE("stage trace: bench/stage_breakdown.py names the stages as the recorder numbers them") {
  const char* root = std::getenv("CONCLAVE_SOURCE_ROOT");
  REQUIRE(root != nullptr);
  auto script = file_text(std::string(root) + "/bench/stage_breakdown.py");
  std::smatch list;
  REQUIRE(std::regex_search(script, list, std::regex(R"(STAGES = \[([^\]]*)\])")));
  std::vector<std::string> names;
  auto text = list[1].str();
  std::regex quoted(R"re("([a-z_]+)")re");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), quoted); it != std::sregex_iterator(); ++it) {
    names.push_back((*it)[1].str());
  }
  REQUIRE(names.size() == static_cast<std::size_t>(st::stage::count));
  for (std::size_t i = 0; i < names.size(); ++i) {
    CHECK_MESSAGE(names[i] == st::name(static_cast<st::stage>(i)), "stage " << i);
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--child") == 0) child();
  doctest::Context context(argc, argv);
  return context.run();
}
