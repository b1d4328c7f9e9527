#include "actors/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <fstream>

namespace conclave::auth {

namespace {

const char* member_label = "conclave member key v1";

std::string hex(const std::string& raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

bool is_member_key(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string challenge(const std::string& cluster_id, const std::string& nonce) {
  return "conclave-auth|" + cluster_id + "|" + nonce;
}

}  // namespace

const char* to_string(level l) {
  switch (l) {
    case level::none: return "none";
    case level::member: return "member";
    case level::master: return "master";
  }
  return "none";
}

std::string hmac(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

bool equal(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_nonce() {
  std::string n(16, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size()));
  return n;
}

std::string member_key_of(const std::string& secret) { return hex(hmac(secret, member_label)); }

keys from_secret(const std::string& secret) { return {secret, member_key_of(secret)}; }

keys from_member_key(const std::string& member_key) { return {"", member_key}; }

keys from_file_text(const std::string& text) { return is_member_key(text) ? from_member_key(text) : from_secret(text); }

expected<std::string> read_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return make_error(errc::invalid_argument, "cannot read secret file " + path);
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    return make_error(errc::invalid_argument,
                      "secret file " + path + " is readable by group or others; chmod 600 it");
  }
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.empty()) return make_error(errc::invalid_argument, "secret file " + path + " is empty");
  if (line.size() < 16 && !is_member_key(line)) {
    return make_error(errc::invalid_argument, "the secret in " + path + " is too short (at least 16 characters)");
  }
  return line;
}

std::string prove(const keys& k, const std::string& cluster_id, const std::string& nonce) {
  return hmac(k.master.empty() ? k.member : k.master, challenge(cluster_id, nonce));
}

level verify(const keys& k, const std::string& cluster_id, const std::string& nonce, const std::string& proof) {
  auto c = challenge(cluster_id, nonce);
  if (!k.master.empty() && equal(hmac(k.master, c), proof)) return level::master;
  if (equal(hmac(k.member, c), proof)) return level::member;
  return level::none;
}

std::string tag(const keys& k, const std::string& bytes) {
  return k.master.empty() ? std::string() : hmac(k.master, bytes);
}

bool check_tag(const keys& k, const std::string& bytes, const std::string& t) {
  return !k.master.empty() && equal(hmac(k.master, bytes), t);
}

}  // namespace conclave::auth
