// The include graph runs one way (README, Layout): schema/, then storage/,
// then actors/, then roles/, then examples/ and test/ (the harness), then
// bench/ (which drives clusters through the test harness). A file may
// include its own folder and the folders below it, never one above.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>

namespace fs = std::filesystem;

namespace {

const std::map<std::string, int> level = {{"schema", 0}, {"storage", 1}, {"actors", 2}, {"roles", 3},
                                          {"examples", 4}, {"test", 4},  {"bench", 5}};

}  // namespace

TEST_CASE("includes run one way: no file includes a folder above its own") {
  const char* root_env = std::getenv("CONCLAVE_SOURCE_ROOT");
  REQUIRE_MESSAGE(root_env, "CONCLAVE_SOURCE_ROOT is not set (meson sets it)");
  fs::path root(root_env);
  std::regex include(R"re(^\s*#\s*include\s*"([a-z_]+)/)re");
  std::string upward;
  int files = 0;
  for (const auto& [folder, own] : level) {
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
      auto ext = entry.path().extension().string();
      if (ext != ".cpp" && ext != ".hpp") continue;
      ++files;
      std::ifstream in(entry.path());
      std::string line;
      while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_search(line, m, include)) continue;
        auto it = level.find(m[1].str());
        if (it == level.end()) continue;
        // examples/ and test/ share a level but do not include each other.
        bool sideways = it->second == own && it->first != folder;
        if (it->second > own || sideways) {
          upward += fs::relative(entry.path(), root).string() + ": " + line + "\n";
        }
      }
    }
  }
  CHECK(files > 100);
  CHECK_MESSAGE(upward.empty(), "upward includes:\n" << upward);
}
