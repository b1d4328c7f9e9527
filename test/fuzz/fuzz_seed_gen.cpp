// Writes the seed corpus of every fuzz target: a few small, valid inputs of
// each kind, encoded by the codecs themselves.
//
//   ninja -C build test/fuzz/fuzz_seed_gen && build/test/fuzz/fuzz_seed_gen test/fuzz/corpus
//
// Existing files of the same names are overwritten; others are left alone
// (libFuzzer's own finds may sit beside the seeds if you merge them in).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "schema/client_codec.hpp"
#include "schema/codec.hpp"
#include "schema/registry_codec.hpp"
#include "storage/snapshot_store.hpp"
#include "test/fuzz/fuzz_common.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace conclave::raft;
namespace fs = std::filesystem;

namespace {

fs::path out_root;

void seed(const std::string& target, const std::string& name, const std::string& bytes) {
  auto dir = out_root / target;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
    std::exit(1);
  }
}

configuration servers() {
  return configuration{{{node_id{1}, "10.0.0.1:7001", suffrage::voter},
                        {node_id{2}, "10.0.0.2:7001", suffrage::voter},
                        {node_id{3}, "10.0.0.3:7001", suffrage::learner}}};
}

log_entry entry(std::uint64_t index, std::uint64_t term, std::string payload, entry_kind kind = entry_kind::command) {
  log_entry e{term_t{term}, index_t{index}, kind, std::move(payload)};
  if (kind == entry_kind::configuration) e.config = servers();
  return e;
}

void peer_messages() {
  auto msg = [](message_body body) {
    return wire::encode(message{node_id{1}, node_id{2}, std::move(body)}, fuzz::cluster);
  };
  seed("peer_message", "request_vote", msg(vote_request{term_t{3}, index_t{9}, term_t{2}, false, false}));
  seed("peer_message", "pre_vote_transfer", msg(vote_request{term_t{4}, index_t{9}, term_t{2}, true, true}));
  seed("peer_message", "vote_reply", msg(vote_reply{term_t{3}, true, true}));
  seed("peer_message", "append_entries",
       msg(append_entries{term_t{7}, index_t{10}, term_t{6},
                          {entry(11, 7, "put k v"), entry(12, 7, "", entry_kind::noop),
                           entry(13, 7, "", entry_kind::configuration)},
                          index_t{9}, 42}));
  seed("peer_message", "heartbeat", msg(append_entries{term_t{7}, index_t{13}, term_t{7}, {}, index_t{13}, 43}));
  seed("peer_message", "append_entries_reply",
       msg(append_entries_reply{term_t{7}, false, index_t{0}, index_t{5}, term_t{3}, 42}));
  seed("peer_message", "install_snapshot",
       msg(install_snapshot{term_t{7}, snapshot_meta{index_t{100}, term_t{5}, servers()}, 64, "chunk of state", true,
                            78}));
  seed("peer_message", "install_snapshot_reply", msg(install_snapshot_reply{term_t{7}, 78, true, index_t{100}}));
  seed("peer_message", "timeout_now", msg(timeout_now{term_t{8}}));
}

void log_entries() {
  seed("log_entry", "command", wire::encode_entry(entry(5, 2, "put /a 1")));
  seed("log_entry", "noop", wire::encode_entry(entry(6, 3, "", entry_kind::noop)));
  seed("log_entry", "configuration_entry", wire::encode_entry(entry(7, 3, "", entry_kind::configuration)));
  seed("log_entry", "configuration", wire::encode_configuration(servers()));
  seed("log_entry", "empty_configuration", wire::encode_configuration(configuration{}));
}

void snapshot_headers() {
  seed("snapshot_header", "header", wire::encode_snapshot_header(snapshot_meta{index_t{100}, term_t{5}, servers()}, 4096));
  seed("snapshot_header", "empty_config", wire::encode_snapshot_header(snapshot_meta{index_t{1}, term_t{1}, {}}, 0));
}

void client_requests() {
  auto req = [](client::request r) { return wire::encode_request(r, fuzz::cluster); };
  seed("client_request", "propose", req(client::propose{"put /a 1"}));
  seed("client_request", "read", req(client::read{wire::encode_query(registry::get_key{"/a"})}));
  seed("client_request", "status", req(client::status_request{}));
  seed("client_request", "transfer_leadership", req(client::transfer_leadership{2}));
  seed("client_request", "keepalive", req(client::keepalive{17, "usage"}));
  seed("client_request", "stale_read", req(client::stale_read{wire::encode_query(registry::members_query{})}));
  seed("client_request", "change_membership", req(client::change_membership{0, 4, "10.0.0.4:7001"}));
}

void client_responses() {
  seed("client_response", "committed", wire::encode_response(client::committed{12, 3, "result"}));
  seed("client_response", "read_result", wire::encode_response(client::read_result{12, "value"}));
  seed("client_response", "status",
       wire::encode_response(client::status{1, "leader", 3, 1, "10.0.0.1:7001", 12, 12, 13, "abc123", "", {{1, "10.0.0.1:7001", false}}}));
  seed("client_response", "ok", wire::encode_response(client::ok{}));
  seed("client_response", "failure",
       wire::encode_response(client::failure{"not_leader", "ask node 2", 2, "10.0.0.2:7001"}));
}

registry::member a_member() {
  registry::member m;
  m.id = "w1";
  m.role = registry::member_role::master_and_worker;
  m.host = "10.0.0.1";
  m.port = 7000;
  m.start_time_ms = 123456;
  m.labels = {{"zone", "a"}, {"gpu", "2"}};
  m.usage = registry::resources{12.5, 0.75, 1 << 20, 2 << 20, 3 << 20};
  m.session = 4;
  m.changed = 9;
  m.incarnation = 0x5eed;
  return m;
}

void registry_commands() {
  namespace r = registry;
  auto cmd = [](const std::string& name, r::command c) { seed("registry_command", name, wire::encode_command(c)); };
  cmd("register_member", r::register_member{a_member(), 3000});
  cmd("report_usage", r::report_usage{{{"w1", r::resources{50, 1.5, 10, 20, 30}}}});
  cmd("set_member_status", r::set_member_status{"w1", r::member_status::suspect});
  cmd("open_session", r::open_session{"client", 2000});
  cmd("close_session", r::close_session{4, true});
  cmd("checkpoint_sessions", r::checkpoint_sessions{{{1, 1500}, {4, 100}}});
  cmd("put", r::put{"/k", "v", 4, std::nullopt});
  cmd("put_if_version", r::put{"/k", "w", 0, std::uint64_t{1}});
  cmd("remove_key", r::remove_key{"/k", std::uint64_t{2}});
  cmd("acquire_lock", r::acquire_lock{"L", 4, true});
  cmd("release_lock", r::release_lock{"L", 4});
  cmd("cancel_lock_wait", r::cancel_lock_wait{"L", 1});
  cmd("publish_event", r::publish_event{"w1", "", "hello"});
  cmd("ack_events", r::ack_events{"w1", 1});
}

void registry_results() {
  namespace r = registry;
  seed("registry_result", "ok", wire::encode_result({r::outcome{r::code::ok, 17, ""}, {}}));
  seed("registry_result", "grants",
       wire::encode_result({r::outcome{r::code::queued, 0, "behind 4"}, {{"L", 5, 21}, {"M", 6, 22}}}));
  seed("registry_result", "invalid", wire::encode_result({r::outcome{r::code::invalid, 0, "empty key"}, {}}));
}

registry::registry_state a_state() {
  namespace r = registry;
  r::registry_state st;
  st.rev = 30;
  st.event_seq = 2;
  st.members["w1"] = a_member();
  st.sessions[4] = r::session{4, "w1", 3000, 2500};
  st.sessions[5] = r::session{5, "client", 2000, 2000};
  st.keys["/k"] = r::key_value{"v", 10, 12, 2, 0};
  st.keys["/eph"] = r::key_value{"x", 13, 13, 1, 4};
  st.locks["L"] = r::lock{4, 20, {5}};
  st.events.push_back(r::event{1, "w1", "", "hello", {"w1"}});
  st.events.push_back(r::event{2, "client", "w1", "direct", {"w1"}});
  st.events_acked["w1"] = 1;
  st.history.push_back(r::change{12, false, "/k", "v"});
  st.history.push_back(r::change{14, true, "/gone", ""});
  st.history_floor = 11;
  return st;
}

void registry_snapshots() {
  seed("registry_snapshot", "empty", wire::encode_registry_snapshot(registry::registry_state{}));
  seed("registry_snapshot", "state", wire::encode_registry_snapshot(a_state()));
}

void registry_queries() {
  namespace r = registry;
  auto q = [](const std::string& name, r::query x) { seed("registry_query", name, wire::encode_query(x)); };
  q("get_key", r::get_key{"/k"});
  q("list_prefix", r::list_prefix{"/"});
  q("members", r::members_query{});
  q("members_dead", r::members_query{r::member_status::dead});
  q("lock", r::lock_query{"L"});
  q("session", r::session_query{4});
  q("events", r::events_query{"w1"});
  q("changes", r::changes_query{12, "/k"});
  q("revision", r::revision_query{});
  q("digest", r::digest_query{});
}

void registry_query_results() {
  namespace r = registry;
  auto st = a_state();
  auto res = [](const std::string& name, r::query_result x) {
    seed("registry_query_result", name, wire::encode_query_result(x));
  };
  res("key", r::key_result{st.keys["/k"]});
  res("no_key", r::key_result{});
  res("keys", r::keys_result{30, {st.keys.begin(), st.keys.end()}});
  res("members", r::members_result{{a_member()}});
  res("lock", r::lock_result{st.locks["L"]});
  res("no_lock", r::lock_result{});
  res("session", r::session_result{st.sessions[4]});
  res("events", r::events_result{{st.events.begin(), st.events.end()}});
  res("changes", r::changes_result{30, false, {st.history.begin(), st.history.end()}});
  res("compacted", r::changes_result{30, true, {}});
  res("revision", r::revision_result{30});
  res("digest", r::digest_result{30, 0x0123456789abcdefull});
  res("error", r::query_error{"undecodable registry query"});
}

void snapshot_files() {
  test::temp_dir dir;
  auto store = storage::snapshot_store::open(dir.path(), 1);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message().c_str());
    std::exit(1);
  }
  auto one = [&](const std::string& name, const snapshot_meta& meta, const std::string& data) {
    auto saved = store->save(meta, data);
    auto files = store->files();
    if (!saved || !files || files->size() != 1) {
      std::fprintf(stderr, "cannot save a snapshot\n");
      std::exit(1);
    }
    std::ifstream in(files->front(), std::ios::binary);
    seed("snapshot_file", name, std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  };
  one("small", snapshot_meta{index_t{100}, term_t{5}, servers()}, "state up to 100");
  one("empty_data", snapshot_meta{index_t{1}, term_t{1}, {}}, "");
  one("registry", snapshot_meta{index_t{30}, term_t{2}, servers()}, wire::encode_registry_snapshot(a_state()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (e.g. test/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  out_root = argv[1];
  peer_messages();
  log_entries();
  snapshot_headers();
  client_requests();
  client_responses();
  registry_commands();
  registry_results();
  registry_snapshots();
  registry_queries();
  registry_query_results();
  snapshot_files();
  return 0;
}
