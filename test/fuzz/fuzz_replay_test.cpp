// Runs every fuzz target (test/fuzz/*_fuzz.cpp) in the ordinary test suite,
// without libFuzzer: each file of corpus/<target>/ (the seeds, which must all
// decode) and regressions/<target>/ (inputs that once crashed a target), then
// a seeded random mutation smoke of the seeds (bit flips, truncations,
// extensions, random words, splices of seeds). A target reports a bug by
// aborting; the test then prints which input did it and, for a mutated
// input, saves it to add under regressions/<target>/.
//
// Each target is compiled with -DLLVMFuzzerTestOneInput=fuzz_<target>
// (see meson.build) so that all of them link into this one program.
//
// Environment:
//   CONCLAVE_FUZZ_DIR         test/fuzz in the source tree (set by meson test)
//   CONCLAVE_FUZZ_SMOKE_RUNS  mutated inputs per target (default 20000)
//   CONCLAVE_FUZZ_SEED        the mutation seed (default 1)
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "schema/client_codec.hpp"
#include "schema/codec.hpp"
#include "schema/registry_codec.hpp"
#include "storage/snapshot_store.hpp"
#include "test/fuzz/fuzz_common.hpp"

#ifndef CONCLAVE_FUZZ_SOURCE_DIR
#define CONCLAVE_FUZZ_SOURCE_DIR "test/fuzz"
#endif

#define CONCLAVE_FUZZ_TARGETS(X) \
  X(peer_message)                \
  X(log_entry)                   \
  X(snapshot_header)             \
  X(client_request)              \
  X(client_response)             \
  X(registry_command)            \
  X(registry_result)             \
  X(registry_snapshot)           \
  X(registry_query)              \
  X(registry_query_result)       \
  X(snapshot_file)

#define CONCLAVE_DECLARE_TARGET(name) extern "C" int fuzz_##name(const std::uint8_t* data, std::size_t size);
CONCLAVE_FUZZ_TARGETS(CONCLAVE_DECLARE_TARGET)

using namespace conclave;
namespace fs = std::filesystem;

namespace {

// --- which input is running, for a target that aborts ---------------------------

const char* current_target = "";
std::string current_label;
std::string current_input;

extern "C" void on_abort(int sig) {
  std::string msg = std::string("\nfuzz replay: target ") + current_target + " aborted on " + current_label + "\n";
  if (current_label.rfind("mutation", 0) == 0) {
    const char* tmp = std::getenv("TMPDIR");
    std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/fuzz-replay-" + current_target + "-crash";
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (fd >= 0) {
      auto n = ::write(fd, current_input.data(), current_input.size());
      (void)n;
      ::close(fd);
      msg += "the input is saved in " + path + "; copy it to test/fuzz/regressions/" + current_target + "/\n";
    }
  }
  auto n = ::write(2, msg.data(), msg.size());
  (void)n;
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

struct abort_reporter {
  abort_reporter() { std::signal(SIGABRT, on_abort); }
} reporter;

int run(int (*fn)(const std::uint8_t*, std::size_t), const std::string& input) {
  current_input = input;
  return fn(reinterpret_cast<const std::uint8_t*>(current_input.data()), current_input.size());
}

// --- does the decoder take it? (every seed must decode) -----------------------

bool reads_as_snapshot_file(std::string_view bytes) {
  auto path = fuzz::scratch_dir("replay") + "/seed.snap";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  return storage::snapshot_store::read_file(path).has_value();
}

bool accepts(const std::string& target, std::string_view b) {
  if (target == "peer_message") return wire::decode(b, fuzz::cluster).has_value();
  if (target == "log_entry") return wire::decode_entry(b).has_value() || wire::decode_configuration(b).has_value();
  if (target == "snapshot_header") return wire::decode_snapshot_header(b).has_value();
  if (target == "client_request") return wire::decode_request(b, fuzz::cluster).has_value();
  if (target == "client_response") return wire::decode_response(b).has_value();
  if (target == "registry_command") return wire::decode_command(b).has_value();
  if (target == "registry_result") return wire::decode_result(b).has_value();
  if (target == "registry_snapshot") return wire::decode_registry_snapshot(b).has_value();
  if (target == "registry_query") return wire::decode_query(b).has_value();
  if (target == "registry_query_result") return wire::decode_query_result(b).has_value();
  if (target == "snapshot_file") return reads_as_snapshot_file(b);
  FAIL("no decoder known for target " << target);
  return false;
}

// --- inputs -------------------------------------------------------------------------

fs::path fuzz_dir() {
  const char* env = std::getenv("CONCLAVE_FUZZ_DIR");
  return env && *env ? fs::path(env) : fs::path(CONCLAVE_FUZZ_SOURCE_DIR);
}

std::size_t env_number(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? static_cast<std::size_t>(std::strtoull(v, nullptr, 10)) : fallback;
}

struct input_file {
  std::string name;
  std::string bytes;
};

std::vector<input_file> files_in(const fs::path& dir) {
  std::vector<input_file> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    auto name = entry.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::ifstream in(entry.path(), std::ios::binary);
    out.push_back({entry.path().string(),
                   std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

// --- the mutator (deterministic across platforms: splitmix64, no <random>) ------

class rng {
 public:
  explicit rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
  bool one_in(std::size_t n) { return below(n) == 0; }

 private:
  std::uint64_t s_;
};

constexpr std::size_t max_input = 64 * 1024;

std::string random_bytes(rng& r, std::size_t n) {
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(r.next());
  return out;
}

// A value likely to matter in a Cap'n Proto word: segment counts and sizes,
// pointers of each kind with small, huge and negative offsets, list sizes.
std::uint64_t interesting_word(rng& r) {
  static const std::uint64_t values[] = {
      0,
      ~0ull,
      0x0000000100000000ull,  // segment table: 1 segment... of size 1
      0x00000001ffffffffull,
      0xffffffff00000000ull,
      0x7fffffff00000000ull,
      0x0001000000000000ull,  // struct pointer, 1 data word
      0x0000000100000000ull,
      0x0000000000000001ull,  // list pointer, offset 0
      0x0000000dfffffffdull,  // list of bytes, huge
      0x0000000700000001ull,  // composite list, 0 words
      0xfffffff800000001ull,
      0x0000000000000002ull,  // far pointer
      0x00000000fffffffaull,
      0x0000000000000003ull,  // capability
      0xfffffffc00000000ull,  // struct pointer, offset -1
      0x00000000fffffffcull,
  };
  auto v = values[r.below(sizeof values / sizeof values[0])];
  if (r.one_in(4)) v ^= r.next() & 0xff;
  return v;
}

void put_word(std::string& s, std::size_t at, std::uint64_t v) {
  for (int i = 0; i < 8 && at + i < s.size(); ++i) s[at + i] = static_cast<char>(v >> (8 * i));
}

std::size_t aligned(std::size_t n, rng& r) { return r.one_in(4) ? n : n / 8 * 8; }

std::string mutate(rng& r, const std::vector<std::string>& seeds) {
  std::string s = seeds.empty() || r.one_in(32) ? random_bytes(r, aligned(r.below(256), r))
                                                : seeds[r.below(seeds.size())];
  auto steps = 1 + r.below(4);
  for (std::size_t k = 0; k < steps; ++k) {
    switch (r.below(11)) {
      case 0:  // bit flips
        if (!s.empty()) {
          for (auto n = 1 + r.below(3); n > 0; --n) s[r.below(s.size())] ^= static_cast<char>(1u << r.below(8));
        }
        break;
      case 1: {  // an interesting byte
        static const unsigned char bytes[] = {0, 1, 2, 3, 7, 8, 0x7f, 0x80, 0xfe, 0xff};
        if (!s.empty()) s[r.below(s.size())] = static_cast<char>(bytes[r.below(sizeof bytes)]);
        break;
      }
      case 2:  // an interesting or random aligned word
        if (s.size() >= 8) put_word(s, r.below(s.size() / 8) * 8, r.one_in(2) ? interesting_word(r) : r.next());
        break;
      case 3:  // truncate
        s.resize(aligned(r.below(s.size() + 1), r));
        break;
      case 4: {  // extend
        auto n = aligned(1 + r.below(64), r);
        s += r.one_in(2) ? std::string(n, '\0') : random_bytes(r, n);
        break;
      }
      case 5: {  // insert words in the middle
        auto at = r.below(s.size() / 8 + 1) * 8;
        s.insert(at, r.one_in(2) ? std::string(8 * (1 + r.below(4)), '\0') : random_bytes(r, 8 * (1 + r.below(4))));
        break;
      }
      case 6:  // delete words
        if (s.size() >= 16) {
          auto at = r.below(s.size() / 8) * 8;
          s.erase(at, 8 * (1 + r.below(4)));
        }
        break;
      case 7:  // splice: a prefix of this, a suffix of another seed
        if (!seeds.empty()) {
          const auto& other = seeds[r.below(seeds.size())];
          auto cut = aligned(r.below(s.size() + 1), r);
          auto from = aligned(r.below(other.size() + 1), r);
          s = s.substr(0, cut) + other.substr(from);
        }
        break;
      case 8:  // copy a chunk over another place
        if (s.size() >= 16) {
          auto len = 8 * (1 + r.below(std::min<std::size_t>(s.size() / 8 - 1, 4)));
          auto from = r.below(s.size() - len + 1);
          auto to = r.below(s.size() - len + 1);
          std::string chunk = s.substr(from, len);
          s.replace(to, len, chunk);
        }
        break;
      case 9:  // nudge a 32-bit field (a size, a count, an offset)
        if (s.size() >= 4) {
          auto at = r.below(s.size() / 4) * 4;
          std::uint32_t v;
          std::memcpy(&v, s.data() + at, 4);
          v += static_cast<std::uint32_t>(static_cast<int>(r.below(33)) - 16);
          std::memcpy(s.data() + at, &v, 4);
        }
        break;
      case 10:  // random bytes over a range
        if (!s.empty()) {
          auto at = r.below(s.size());
          auto len = std::min(s.size() - at, 1 + r.below(16));
          s.replace(at, len, random_bytes(r, len));
        }
        break;
    }
  }
  if (s.size() > max_input) s.resize(max_input);
  return s;
}

void replay(const char* target, int (*fn)(const std::uint8_t*, std::size_t)) {
  auto started = std::chrono::steady_clock::now();
  current_target = target;
  auto dir = fuzz_dir();
  REQUIRE_MESSAGE(fs::is_directory(dir / "corpus"), "no corpus under " << dir << " (set CONCLAVE_FUZZ_DIR)");

  auto corpus = files_in(dir / "corpus" / target);
  REQUIRE_MESSAGE(!corpus.empty(), "no seeds in " << (dir / "corpus" / target));
  std::vector<std::string> seeds;
  for (const auto& f : corpus) {
    current_label = f.name;
    CHECK_MESSAGE(accepts(target, f.bytes), "seed does not decode: " << f.name);
    CHECK(run(fn, f.bytes) == 0);
    seeds.push_back(f.bytes);
  }
  auto regressions = files_in(dir / "regressions" / target);
  for (const auto& f : regressions) {
    current_label = f.name;
    CHECK(run(fn, f.bytes) == 0);
  }

  auto runs = env_number("CONCLAVE_FUZZ_SMOKE_RUNS", 20000);
  std::uint64_t seed = env_number("CONCLAVE_FUZZ_SEED", 1);
  for (const char* c = target; *c; ++c) seed = (seed ^ static_cast<unsigned char>(*c)) * 0x100000001b3ull;
  rng r(seed);
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < runs; ++i) {
    auto input = mutate(r, seeds);
    current_label = "mutation " + std::to_string(i);
    CHECK(run(fn, input) == 0);
    if (i % 16 == 0 && accepts(target, input)) ++accepted;  // sampled: how much gets past the front door
  }
  current_label = "(none)";
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  MESSAGE(std::string(target) << ": " << corpus.size() << " seeds, " << regressions.size() << " regressions, " << runs
                 << " mutations (" << accepted << " of " << (runs + 15) / 16 << " sampled decode) in " << ms
                 << " ms");
}

}  // namespace

#define CONCLAVE_TARGET_CASE(name) \
  TEST_CASE("fuzz target " #name ": corpus, regressions and a mutation smoke") { replay(#name, fuzz_##name); }
CONCLAVE_FUZZ_TARGETS(CONCLAVE_TARGET_CASE)
