// Cluster credentials (actors/auth.hpp): what each key proves, and the
// secret file's checks.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "actors/auth.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;

TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2") {
  auto mac = auth::hmac("Jefe", "what do ya want for nothing?");
  std::string hex;
  for (unsigned char c : mac) hex += "0123456789abcdef"[c >> 4], hex += "0123456789abcdef"[c & 15];
  CHECK(hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("the secret proves master, the member key member, anything else nothing") {
  auto server = auth::from_secret("a long enough cluster secret");
  auto worker = auth::from_member_key(server.member);
  auto stranger = auth::from_secret("another cluster's secret!!");
  auto nonce = auth::random_nonce();
  CHECK(auth::verify(server, "c", nonce, auth::prove(server, "c", nonce)) == auth::level::master);
  CHECK(auth::verify(server, "c", nonce, auth::prove(worker, "c", nonce)) == auth::level::member);
  CHECK(auth::verify(server, "c", nonce, auth::prove(stranger, "c", nonce)) == auth::level::none);
  // A proof is bound to its nonce and its cluster id: a recorded one is useless.
  CHECK(auth::verify(server, "c", auth::random_nonce(), auth::prove(server, "c", nonce)) == auth::level::none);
  CHECK(auth::verify(server, "d", nonce, auth::prove(server, "c", nonce)) == auth::level::none);
}

TEST_CASE("only the secret tags peer messages; the member key cannot") {
  auto server = auth::from_secret("a long enough cluster secret");
  auto worker = auth::from_member_key(server.member);
  CHECK(auth::check_tag(server, "bytes", auth::tag(server, "bytes")));
  CHECK_FALSE(auth::check_tag(server, "bytes", auth::tag(worker, "bytes")));
  CHECK_FALSE(auth::check_tag(server, "other", auth::tag(server, "bytes")));
  CHECK_FALSE(auth::check_tag(server, "bytes", ""));
}

TEST_CASE("a key file must be private, non-empty and long enough; 64 hex digits are a member key") {
  test::temp_dir dir;
  auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
    auto path = dir / name;
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  };
  CHECK(auth::read_key_file(write("ok", "a long enough cluster secret\n", 0600)).value() == "a long enough cluster secret");
  auto open = auth::read_key_file(write("open", "a long enough cluster secret\n", 0644));
  REQUIRE_FALSE(open);
  CHECK(open.error().detail.find("chmod 600") != std::string::npos);
  CHECK_FALSE(auth::read_key_file(write("empty", "\n", 0600)));
  CHECK_FALSE(auth::read_key_file(write("short", "secret\n", 0600)));
  CHECK_FALSE(auth::read_key_file(dir / "missing"));
  auto member = auth::member_key_of("a long enough cluster secret");
  CHECK(auth::from_file_text(member).master.empty());
  CHECK(auth::from_file_text(member).member == member);
  CHECK(auth::from_file_text("a long enough cluster secret").master == "a long enough cluster secret");
}
