#include "schema/codec.hpp"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <exception>
#include <type_traits>

#include "schema/capnp_util.hpp"
#include "schema/log.capnp.h"
#include "schema/peer.capnp.h"
#include "schema/snapshot.capnp.h"

namespace conclave::wire {
namespace {

using namespace detail;
namespace s = conclave::schema;
using namespace conclave::raft;

// --- configuration -----------------------------------------------------------

void write_configuration(s::Configuration::Builder out, const configuration& config) {
  auto servers = out.initServers(static_cast<unsigned>(config.servers.size()));
  for (unsigned i = 0; i < config.servers.size(); ++i) {
    const auto& srv = config.servers[i];
    servers[i].setId(srv.id.value);
    servers[i].setAddress(text_of(srv.address));
    servers[i].setSuffrage(srv.role == suffrage::voter ? s::Suffrage::VOTER : s::Suffrage::LEARNER);
  }
}

configuration read_configuration(s::Configuration::Reader in) {
  configuration config;
  auto servers = in.getServers();
  config.servers.reserve(servers.size());
  for (auto srv : servers) {
    if (srv.getId() == 0) throw invalid{errc::malformed, "server id 0 in configuration"};
    server out;
    out.id = node_id{srv.getId()};
    auto address = srv.getAddress();
    out.address.assign(address.cStr(), address.size());
    switch (srv.getSuffrage()) {
      case s::Suffrage::VOTER: out.role = suffrage::voter; break;
      case s::Suffrage::LEARNER: out.role = suffrage::learner; break;
      default: throw invalid{errc::malformed, "unknown suffrage"};
    }
    for (const auto& seen : config.servers) {
      if (seen.id == out.id) throw invalid{errc::malformed, "duplicate server id in configuration"};
    }
    config.servers.push_back(std::move(out));
  }
  return config;
}

// --- log entry ---------------------------------------------------------------

void write_entry(s::LogEntry::Builder out, const log_entry& entry) {
  out.setTerm(entry.term.value);
  out.setIndex(entry.index.value);
  switch (entry.kind) {
    case entry_kind::command: out.setKind(s::EntryKind::COMMAND); break;
    case entry_kind::noop: out.setKind(s::EntryKind::NOOP); break;
    case entry_kind::configuration: out.setKind(s::EntryKind::CONFIGURATION); break;
  }
  out.setPayload(data_of(entry.payload));
  if (entry.config) write_configuration(out.initConfiguration(), *entry.config);
}

log_entry read_entry(s::LogEntry::Reader in) {
  log_entry entry;
  entry.term = term_t{in.getTerm()};
  entry.index = index_t{in.getIndex()};
  switch (in.getKind()) {
    case s::EntryKind::COMMAND: entry.kind = entry_kind::command; break;
    case s::EntryKind::NOOP: entry.kind = entry_kind::noop; break;
    case s::EntryKind::CONFIGURATION: entry.kind = entry_kind::configuration; break;
    default: throw invalid{errc::malformed, "unknown entry kind"};
  }
  entry.payload = std::string(view(in.getPayload()));
  if (entry.kind == entry_kind::configuration) {
    if (!in.hasConfiguration()) throw invalid{errc::malformed, "configuration entry without a configuration"};
    entry.config = read_configuration(in.getConfiguration());
  }
  return entry;
}

// --- message bodies ----------------------------------------------------------

struct body_writer {
  s::Envelope::Body::Builder body;

  void operator()(const vote_request& m) {
    auto out = body.initRequestVote();
    out.setTerm(m.term.value);
    out.setLastLogIndex(m.last_log_index.value);
    out.setLastLogTerm(m.last_log_term.value);
    out.setPreVote(m.pre_vote);
    out.setLeadershipTransfer(m.leadership_transfer);
  }
  void operator()(const vote_reply& m) {
    auto out = body.initRequestVoteReply();
    out.setTerm(m.term.value);
    out.setGranted(m.granted);
    out.setPreVote(m.pre_vote);
  }
  void operator()(const append_entries& m) {
    auto out = body.initAppendEntries();
    out.setTerm(m.term.value);
    out.setPrevLogIndex(m.prev_log_index.value);
    out.setPrevLogTerm(m.prev_log_term.value);
    auto entries = out.initEntries(static_cast<unsigned>(m.entries.size()));
    for (unsigned i = 0; i < m.entries.size(); ++i) write_entry(entries[i], m.entries[i]);
    out.setLeaderCommit(m.leader_commit.value);
    out.setSequence(m.sequence);
  }
  void operator()(const append_entries_reply& m) {
    auto out = body.initAppendEntriesReply();
    out.setTerm(m.term.value);
    out.setSuccess(m.success);
    out.setMatchIndex(m.match_index.value);
    out.setConflictIndex(m.conflict_index.value);
    out.setConflictTerm(m.conflict_term.value);
    out.setSequence(m.sequence);
  }
  void operator()(const install_snapshot& m) {
    auto out = body.initInstallSnapshot();
    out.setTerm(m.term.value);
    out.setLastIncludedIndex(m.meta.last_index.value);
    out.setLastIncludedTerm(m.meta.last_term.value);
    write_configuration(out.initConfiguration(), m.meta.config);
    out.setOffset(m.offset);
    out.setData(data_of(m.data));
    out.setDone(m.done);
    out.setTotalSize(m.total_size);
  }
  void operator()(const install_snapshot_reply& m) {
    auto out = body.initInstallSnapshotReply();
    out.setTerm(m.term.value);
    out.setNextOffset(m.next_offset);
    out.setDone(m.done);
    out.setLastIncludedIndex(m.last_index.value);
  }
  void operator()(const timeout_now& m) { body.initTimeoutNow().setTerm(m.term.value); }
};

message_body read_body(s::Envelope::Body::Reader body) {
  switch (body.which()) {
    case s::Envelope::Body::REQUEST_VOTE: {
      auto in = body.getRequestVote();
      vote_request m;
      m.term = term_t{in.getTerm()};
      m.last_log_index = index_t{in.getLastLogIndex()};
      m.last_log_term = term_t{in.getLastLogTerm()};
      m.pre_vote = in.getPreVote();
      m.leadership_transfer = in.getLeadershipTransfer();
      return m;
    }
    case s::Envelope::Body::REQUEST_VOTE_REPLY: {
      auto in = body.getRequestVoteReply();
      vote_reply m;
      m.term = term_t{in.getTerm()};
      m.granted = in.getGranted();
      m.pre_vote = in.getPreVote();
      return m;
    }
    case s::Envelope::Body::APPEND_ENTRIES: {
      auto in = body.getAppendEntries();
      append_entries m;
      m.term = term_t{in.getTerm()};
      m.prev_log_index = index_t{in.getPrevLogIndex()};
      m.prev_log_term = term_t{in.getPrevLogTerm()};
      auto entries = in.getEntries();
      m.entries.reserve(entries.size());
      for (auto e : entries) m.entries.push_back(read_entry(e));
      m.leader_commit = index_t{in.getLeaderCommit()};
      m.sequence = in.getSequence();
      return m;
    }
    case s::Envelope::Body::APPEND_ENTRIES_REPLY: {
      auto in = body.getAppendEntriesReply();
      append_entries_reply m;
      m.term = term_t{in.getTerm()};
      m.success = in.getSuccess();
      m.match_index = index_t{in.getMatchIndex()};
      m.conflict_index = index_t{in.getConflictIndex()};
      m.conflict_term = term_t{in.getConflictTerm()};
      m.sequence = in.getSequence();
      return m;
    }
    case s::Envelope::Body::INSTALL_SNAPSHOT: {
      auto in = body.getInstallSnapshot();
      install_snapshot m;
      m.term = term_t{in.getTerm()};
      m.meta.last_index = index_t{in.getLastIncludedIndex()};
      m.meta.last_term = term_t{in.getLastIncludedTerm()};
      m.meta.config = read_configuration(in.getConfiguration());
      m.offset = in.getOffset();
      m.data = std::string(view(in.getData()));
      m.done = in.getDone();
      m.total_size = in.getTotalSize();
      return m;
    }
    case s::Envelope::Body::INSTALL_SNAPSHOT_REPLY: {
      auto in = body.getInstallSnapshotReply();
      install_snapshot_reply m;
      m.term = term_t{in.getTerm()};
      m.next_offset = in.getNextOffset();
      m.done = in.getDone();
      m.last_index = index_t{in.getLastIncludedIndex()};
      return m;
    }
    case s::Envelope::Body::TIMEOUT_NOW: {
      timeout_now m;
      m.term = term_t{body.getTimeoutNow().getTerm()};
      return m;
    }
  }
  throw invalid{errc::malformed, "unknown message type " + std::to_string(int(body.which()))};
}

}  // namespace

std::string encode(const raft::message& msg, std::string_view cluster_id) {
  capnp::MallocMessageBuilder builder;
  auto env = builder.initRoot<s::Envelope>();
  env.setClusterId(capnp::Text::Reader(cluster_id.data(), cluster_id.size()));
  env.setProtocolVersion(protocol_version);
  env.setSenderId(msg.from.value);
  env.setRecipientId(msg.to.value);
  std::visit(body_writer{env.initBody()}, msg.body);
  return to_bytes(builder);
}

expected<raft::message> decode(std::string_view bytes, std::string_view cluster_id) {
  return decode_root<s::Envelope>(bytes, [&](s::Envelope::Reader env) {
    // The envelope is checked before the body is looked at: a foreign or
    // future peer's body may not even have our shape.
    auto theirs = env.getClusterId();
    std::string_view their_id(theirs.cStr(), theirs.size());
    if (their_id != cluster_id) {
      throw invalid{errc::foreign_cluster,
                    "cluster id '" + excerpt(their_id) + "', expected '" + std::string(cluster_id) + "'"};
    }
    if (env.getProtocolVersion() != protocol_version) {
      throw invalid{errc::unsupported_version,
                    "version " + std::to_string(env.getProtocolVersion()) + ", this build speaks " +
                        std::to_string(protocol_version)};
    }
    if (env.getSenderId() == 0) throw invalid{errc::malformed, "sender id 0"};
    raft::message msg;
    msg.from = node_id{env.getSenderId()};
    msg.to = node_id{env.getRecipientId()};
    msg.body = read_body(env.getBody());
    return msg;
  });
}

std::string encode_entry(const raft::log_entry& entry) {
  capnp::MallocMessageBuilder builder;
  write_entry(builder.initRoot<s::LogEntry>(), entry);
  return to_bytes(builder);
}

expected<raft::log_entry> decode_entry(std::string_view bytes) {
  return decode_root<s::LogEntry>(bytes, [](s::LogEntry::Reader in) { return read_entry(in); });
}

std::string encode_configuration(const raft::configuration& config) {
  capnp::MallocMessageBuilder builder;
  write_configuration(builder.initRoot<s::Configuration>(), config);
  return to_bytes(builder);
}

expected<raft::configuration> decode_configuration(std::string_view bytes) {
  return decode_root<s::Configuration>(bytes, [](s::Configuration::Reader in) {
    return read_configuration(in);
  });
}

std::string encode_snapshot_header(const raft::snapshot_meta& meta, std::uint64_t data_size) {
  capnp::MallocMessageBuilder builder;
  auto out = builder.initRoot<s::SnapshotHeader>();
  out.setLastIncludedIndex(meta.last_index.value);
  out.setLastIncludedTerm(meta.last_term.value);
  write_configuration(out.initConfiguration(), meta.config);
  out.setDataSize(data_size);
  return to_bytes(builder);
}

expected<snapshot_header> decode_snapshot_header(std::string_view bytes) {
  return decode_root<s::SnapshotHeader>(bytes, [](s::SnapshotHeader::Reader in) {
    snapshot_header header;
    header.meta.last_index = index_t{in.getLastIncludedIndex()};
    header.meta.last_term = term_t{in.getLastIncludedTerm()};
    header.meta.config = read_configuration(in.getConfiguration());
    header.data_size = in.getDataSize();
    return header;
  });
}

}  // namespace conclave::wire
