// Where settings come from (roles/config.hpp): flags, CONCLAVE_* environment
// variables, the config file, defaults, in that order; and the example
// configuration deploy/conclave.conf.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "roles/config.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;

namespace {

// argv for read_settings: the program name, then `args`.
struct command_line {
  explicit command_line(std::vector<std::string> args) : words(std::move(args)) {
    words.insert(words.begin(), "conclave");
    for (auto& w : words) argv.push_back(w.data());
  }
  int argc() { return static_cast<int>(argv.size()); }
  std::vector<std::string> words;
  std::vector<char*> argv;
};

env_settings env_of(std::vector<std::string> entries) {
  static std::vector<std::string> kept;
  kept = std::move(entries);
  std::vector<const char*> env;
  for (auto& e : kept) env.push_back(e.c_str());
  env.push_back(nullptr);
  return read_env(env.data());
}

std::string source_root() {
  const char* root = std::getenv("CONCLAVE_SOURCE_ROOT");
  return root ? root : ".";
}

}  // namespace

TEST_CASE("every setting has an environment variable: CONCLAVE_ and the key upper-cased, '-' as '_'") {
  CHECK(env_name("client-listen") == "CONCLAVE_CLIENT_LISTEN");
  CHECK(env_name("id") == "CONCLAVE_ID");
  CHECK(env_name("election-ticks") == "CONCLAVE_ELECTION_TICKS");
  CHECK(env_name("cluster-id", "CONCLAVECTL_") == "CONCLAVECTL_CLUSTER_ID");
  auto env = env_of({"CONCLAVE_CLIENT_LISTEN=127.0.0.1:2379", "CONCLAVE_ID=3", "CONCLAVE_LABELS=", "PATH=/bin",
                     "ETCD_NAME=x"});
  CHECK(env.values == settings{{"client-listen", "127.0.0.1:2379"}, {"id", "3"}, {"labels", ""}});
  CHECK(env.unrecognized.empty());
  CHECK(env.config_file.empty());
}

TEST_CASE("an unrecognized CONCLAVE_ variable is reported for a warning, not taken as a setting") {
  auto env = env_of({"CONCLAVE_CLIENT_LISTNE=127.0.0.1:2379", "CONCLAVE_client_listen=x", "CONCLAVE_ID=1",
                     "CONCLAVE_FENCING_TOKEN=7"});
  CHECK(env.values == settings{{"id", "1"}});
  // Names are exact (upper case); CONCLAVE_FENCING_TOKEN is conclavectl lock's, not a typo.
  CHECK(env.unrecognized == std::vector<std::string>{"CONCLAVE_CLIENT_LISTNE", "CONCLAVE_client_listen"});
}

TEST_CASE("flags win over the environment, which wins over the config file, which wins over defaults") {
  test::temp_dir dir;
  std::ofstream(dir / "c.conf") << "tick-ms = 11\nheartbeat-ticks = 6\nthreads = 2\n";
  auto env = env_of({"CONCLAVE_HEARTBEAT_TICKS=7", "CONCLAVE_THREADS=3"});
  command_line cl({"--config", dir / "c.conf", "--threads", "4"});
  auto s = read_settings(cl.argc(), cl.argv.data(), env);
  REQUIRE(s);
  CHECK(s->at("tick-ms") == "11");          // file
  CHECK(s->at("heartbeat-ticks") == "7");  // environment over file
  CHECK(s->at("threads") == "4");          // flag over both
  CHECK_FALSE(s->count("snapshot-every"));  // default, filled in by parse_settings
}

TEST_CASE("CONCLAVE_CONFIG names the config file; --config wins over it") {
  test::temp_dir dir;
  std::ofstream(dir / "a.conf") << "tick-ms = 11\n";
  std::ofstream(dir / "b.conf") << "tick-ms = 12\n";
  auto env = env_of({"CONCLAVE_CONFIG=" + dir / "a.conf"});
  command_line none({});
  CHECK(read_settings(none.argc(), none.argv.data(), env)->at("tick-ms") == "11");
  command_line flag({"--config", dir / "b.conf"});
  CHECK(read_settings(flag.argc(), flag.argv.data(), env)->at("tick-ms") == "12");
  auto missing = env_of({"CONCLAVE_CONFIG=" + dir / "none.conf"});
  auto r = read_settings(none.argc(), none.argv.data(), missing);
  REQUIRE_FALSE(r);
  CHECK(r.error().detail.find("none.conf: cannot read") != std::string::npos);
}

TEST_CASE("a bad value from the environment is refused naming its key") {
  auto env = env_of({"CONCLAVE_ROLE=master", "CONCLAVE_ID=1", "CONCLAVE_PEERS=1=127.0.0.1:7001",
                     "CONCLAVE_CLUSTER_ID=c", "CONCLAVE_DATA_DIR=/tmp/x", "CONCLAVE_TICK_MS=ten"});
  command_line none({});
  auto s = read_settings(none.argc(), none.argv.data(), env);
  REQUIRE(s);
  auto cfg = parse_settings(*s);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().detail == "tick-ms: 'ten' is not a number");
}

TEST_CASE("log-format is text (the default) or json") {
  settings s = {{"role", "worker"}, {"peers", "1=127.0.0.1:7001"}, {"cluster-id", "c"}};
  CHECK(parse_settings(s)->log == log_format::text);
  s["log-format"] = "json";
  CHECK(parse_settings(s)->log == log_format::json);
  s["log-format"] = "xml";
  auto bad = parse_settings(s);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().detail == "log-format: 'xml' is not text or json");
}

TEST_CASE("the example configuration is valid and lists every key with its default") {
  auto path = source_root() + "/deploy/conclave.conf";
  command_line cl({"--config", path});
  auto s = read_settings(cl.argc(), cl.argv.data(), {});
  REQUIRE_MESSAGE(s, s.error().detail);
  CHECK_MESSAGE(parse_settings(*s), parse_settings(*s).error().detail);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  for (const auto& [key, value] : default_settings()) {
    // Set (KEY = ...) or commented out with its default (# KEY = DEFAULT).
    std::regex set("(^|\n)" + key + " = ");
    std::regex commented("(^|\n)# " + key + " =" + (value.empty() ? "" : " " + value) + "( |\n)");
    CHECK_MESSAGE((std::regex_search(text.str(), set) || std::regex_search(text.str(), commented)),
                  key << " (default '" << value << "') is missing from deploy/conclave.conf");
  }
}
