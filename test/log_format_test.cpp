// log-format (actors/log.hpp): text lines as before, or one JSON object per
// line with time, level, message and the node's server and member ids; a
// master run with log-format json writes nothing else to stderr.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <regex>

#include "actors/log.hpp"
#include "test/process_cluster.hpp"
#include "test/processes.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace std::chrono_literals;

namespace {

// What `write` logs to stderr, captured through a file.
template <class F>
std::string captured_stderr(F&& write) {
  test::temp_dir dir;
  std::fflush(stderr);
  int saved = ::dup(2);
  FILE* f = std::fopen((dir / "err").c_str(), "w");
  ::dup2(::fileno(f), 2);
  write();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(f);
  return test::file_text(dir / "err");
}

// Runs python3's strict JSON parser over every line of `path`: "" when each
// is one JSON object with string time, level and message, else what is wrong.
std::string json_lines_problem(const std::string& path, const std::string& out_path) {
  const char* check = R"(
import json, re, sys
n = 0
for line in open(sys.argv[1], encoding='ascii'):
    n += 1
    o = json.loads(line)
    assert isinstance(o, dict), line
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z', o['time']), line
    assert o['level'] in ('info', 'warning', 'error'), line
    assert isinstance(o['message'], str) and o['message'], line
assert n > 0, 'no lines'
)";
  auto pid = test::fork_exec({"/usr/bin/python3", "-c", check, path}, out_path);
  auto status = test::wait_pid(pid, 60s);
  if (!status) {
    test::kill_pid(pid);
    return "python3 did not finish";
  }
  return WIFEXITED(*status) && WEXITSTATUS(*status) == 0 ? "" : test::file_text(out_path);
}

}  // namespace

TEST_CASE("a text log line is a UTC timestamp to the millisecond and the message") {
  auto out = captured_stderr([] { log_warning("node {}: {}", 2, "hello"); });
  CHECK(std::regex_match(out, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z node 2: hello\n)")));
}

TEST_CASE("a JSON log line is one object: time, level, the message escaped, and the node it runs") {
  set_log_format(log_format::json);
  auto out = captured_stderr([] {
    log_line("plain");
    log_warning("quote \" backslash \\ newline \n tab \t bell \a byte \xff");
    set_log_source(2, "master-2");
    log_error("with source");
    set_log_source(2, "master-2");  // the same node again: still unambiguous
    log_line("same source");
    set_log_source(0, "worker-a");  // a second node in this process: which one is unknown
    log_line("ambiguous");
  });
  set_log_format(log_format::text);
  std::regex json_line(
      R"re(\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"(info|warning|error)","message":.*\}\n)re");
  std::vector<std::string> lines;
  std::stringstream in(out);
  for (std::string line; std::getline(in, line);) {
    CHECK_MESSAGE(std::regex_match(line + "\n", json_line), line);
    lines.push_back(line.substr(line.find("\"level\"")));
  }
  REQUIRE(lines.size() == 5);
  CHECK(lines[0] == R"("level":"info","message":"plain"})");
  CHECK(lines[1] ==
        R"("level":"warning","message":"quote \" backslash \\ newline \n tab \t bell \u0007 byte \u00ff"})");
  CHECK(lines[2] == R"("level":"error","message":"with source","server":2,"member":"master-2"})");
  CHECK(lines[3] == R"("level":"info","message":"same source","server":2,"member":"master-2"})");
  CHECK(lines[4] == R"("level":"info","message":"ambiguous"})");
}

TEST_CASE("a master with log-format json writes only JSON lines to stderr, from start to SIGTERM") {
  test::process_cluster c(1, {"-r", "master", "--log-format", "json"}, test::conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(30s), c.logs());
  int status = c.signal(1, SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto log = c.log_of(1);
  CHECK_MESSAGE(log.find("leader in term") != std::string::npos, log);
  CHECK_MESSAGE(log.find(R"("message":"SIGTERM received","server":1,"member":"master-1"})") != std::string::npos,
                log);
  auto problem = json_lines_problem(c.at(1).log_file, c.path("json-check.log"));
  CHECK_MESSAGE(problem.empty(), problem << "\n" << log);
}
