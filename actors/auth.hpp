// Cluster credentials: a shared secret, checked without ever sending it.
//
// Masters hold the cluster secret. Workers and clients may hold either the
// secret or the member key derived from it (HMAC-SHA256(secret, label)),
// which lets them use the registry but never speak Raft or change who votes.
//
//  - Peer messages and requests a follower passes on carry
//    HMAC(secret, bytes). Raft tolerates duplicated, delayed and reordered
//    messages, so a replayed authentic message cannot break safety; a forged
//    one is refused.
//  - A client connection proves its key once, by challenge and response:
//    the server sends a fresh random nonce, the client answers
//    HMAC(key, "conclave-auth" | cluster id | nonce). A recorded answer is
//    useless for another nonce.
//
// Without a secret, authentication is off (any process that reaches a port
// may join); servers log that at start. This does not encrypt traffic: on
// an untrusted network, also run the cluster inside a VPN or over TLS.
#pragma once

#include <string>

#include "schema/error.hpp"

namespace conclave::auth {

enum class level { none, member, master };

const char* to_string(level l);

struct keys {
  std::string master;  // the cluster secret (masters), or empty
  std::string member;  // the member key (hex), derived from the secret or given
  bool enabled() const { return !member.empty(); }
};

// The keys of a process holding the cluster secret.
keys from_secret(const std::string& secret);
// The keys of a process holding only a member key.
keys from_member_key(const std::string& member_key);
// Reads a secret or member-key file: its first line, which must not be empty;
// the file must not be readable by group or others (chmod 600).
expected<std::string> read_key_file(const std::string& path);
// Which keys a file's text gives: a member key (64 hex digits, as
// `conclavectl member-key` prints it) or else the cluster secret.
keys from_file_text(const std::string& text);

std::string member_key_of(const std::string& secret);  // hex
std::string hmac(const std::string& key, const std::string& data);  // 32 raw bytes
bool equal(const std::string& a, const std::string& b);  // constant time
std::string random_nonce();                               // 16 raw bytes

// The challenge answer for `nonce`, with the best key held.
std::string prove(const keys& k, const std::string& cluster_id, const std::string& nonce);
// The level `proof` shows for `nonce` (none when it matches no key).
level verify(const keys& k, const std::string& cluster_id, const std::string& nonce, const std::string& proof);

// Tags for peer messages and passed-on requests (master secret only).
std::string tag(const keys& k, const std::string& bytes);
bool check_tag(const keys& k, const std::string& bytes, const std::string& tag);

}  // namespace conclave::auth
