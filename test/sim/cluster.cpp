#include "test/sim/cluster.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "schema/codec.hpp"

namespace conclave::sim {
namespace {

constexpr std::uint64_t fnv_offset = 0xcbf29ce484222325ull;

std::uint64_t fnv(std::uint64_t h, const void* data, std::size_t size) {
  auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::uint64_t fnv_u64(std::uint64_t h, std::uint64_t v) { return fnv(h, &v, sizeof v); }

std::uint64_t entry_hash(const log_entry& e) {
  auto h = fnv_u64(fnv_offset, e.index.value);
  h = fnv_u64(h, e.term.value);
  h = fnv_u64(h, static_cast<std::uint64_t>(e.kind));
  h = fnv(h, e.payload.data(), e.payload.size());
  if (e.config) {
    for (const auto& s : e.config->servers) {
      h = fnv_u64(h, s.id.value);
      h = fnv_u64(h, static_cast<std::uint64_t>(s.role));
    }
  }
  return h;
}

std::string describe(const message& m) {
  std::ostringstream out;
  out << m.from << "->" << m.to << " ";
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, vote_request>) {
          out << (b.pre_vote ? "PreVote" : "RequestVote") << " t" << b.term << " last " << b.last_log_index << "/t"
              << b.last_log_term << (b.leadership_transfer ? " transfer" : "");
        } else if constexpr (std::is_same_v<T, vote_reply>) {
          out << (b.pre_vote ? "PreVoteReply" : "VoteReply") << " t" << b.term << (b.granted ? " granted" : " rejected");
        } else if constexpr (std::is_same_v<T, append_entries>) {
          out << "AppendEntries t" << b.term << " prev " << b.prev_log_index << "/t" << b.prev_log_term << " n="
              << b.entries.size() << " commit " << b.leader_commit << " seq " << b.sequence;
        } else if constexpr (std::is_same_v<T, append_entries_reply>) {
          out << "AppendReply t" << b.term << (b.success ? " ok match " : " reject hint ")
              << (b.success ? b.match_index : b.conflict_index) << (b.success ? "" : "/t")
              << (b.success ? std::string() : std::to_string(b.conflict_term.value)) << " seq " << b.sequence;
        } else if constexpr (std::is_same_v<T, install_snapshot>) {
          out << "InstallSnapshot t" << b.term << " at " << b.meta.last_index << " off " << b.offset << "+"
              << b.data.size() << "/" << b.total_size << (b.done ? " done" : "");
        } else if constexpr (std::is_same_v<T, install_snapshot_reply>) {
          out << "SnapshotReply t" << b.term << " next " << b.next_offset << (b.done ? " done" : "");
        } else {
          out << "TimeoutNow t" << b.term;
        }
      },
      m.body);
  return out.str();
}

}  // namespace

cluster::cluster(cluster_options options) : opts_(std::move(options)), rng_(opts_.seed) {
  int total = opts_.voters + opts_.learners + opts_.spares;
  for (int i = 1; i <= opts_.voters + opts_.learners; ++i) {
    bootstrap_.servers.push_back({node_id{static_cast<std::uint64_t>(i)}, "sim:" + std::to_string(i),
                                  i <= opts_.voters ? suffrage::voter : suffrage::learner});
  }
  for (int i = 1; i <= total; ++i) {
    node_id id{static_cast<std::uint64_t>(i)};
    auto& n = nodes_[id];
    n.id = id;
    n.io.c = this;
    n.io.n = &n;
    n.founding = i <= opts_.voters + opts_.learners;
    n.tick_phase = static_cast<int>(random(static_cast<std::uint64_t>(opts_.units_per_tick)));
    auto init = opts_.initial.find(id.value);
    if (init == opts_.initial.end()) {
      start(n, persistent_state{}, n.founding ? bootstrap_ : configuration{});
      continue;
    }
    // Put the given state on the node's disk, then start from it.
    const auto& ps = init->second;
    if (ps.snapshot) (void)n.snapshots.save(ps.snapshot->meta, *ps.snapshot->data);
    if (ps.start_index != index_t{0}) (void)n.disk.compact(ps.start_index, ps.start_term);
    storage::write_batch batch;
    batch.entries = ps.entries;
    batch.state = ps.state;
    if (auto ok = n.disk.write(batch); !ok) throw sim_failure("initial state: " + ok.error().message());
    start(n, ps, configuration{});
  }
  for (auto& [id, n] : nodes_) process(n);
}

// Starts n's driver from what its disk holds (`ps`), as a server process does.
void cluster::start(node& n, persistent_state ps, const configuration& bootstrap) {
  n.applied = index_t{0};
  n.sm_hash = 0;
  n.last_persist_id = 0;
  if (ps.snapshot) restore_state_machine(n, *ps.snapshot->data, ps.snapshot->meta.last_index);
  driver_options o;
  o.name = "node " + std::to_string(n.id.value);
  o.storage_stall_ms = static_cast<int>(opts_.base.election_timeout_min_ticks) * opts_.units_per_tick;
  o.snapshot_every_entries = opts_.snapshot_every_entries;
  o.membership_wait_ticks = opts_.membership_wait_ticks;
  driver::parts parts;
  parts.writer = &n.io;
  parts.net = &n.io;
  parts.machine = &n.io;
  parts.clock = this;
  parts.faults = &n.io;
  parts.log = [this](log_level, const std::string& line) { note(line); };
  parts.on_role = [this, id = n.id](const ready::role_change& rc) {
    note("node " + std::to_string(id.value) + " is " + to_string(rc.role) + " in term " +
         std::to_string(rc.term.value) + ", leader " + std::to_string(rc.leader.value));
  };
  parts.on_applied_entry = [this, np = &n](const log_entry& e) { apply(*np, e); };
  parts.on_fatal = [this, id = n.id](const std::string& why) {
    fail("node " + std::to_string(id.value) + ": fatal storage error: " + why);
  };
  auto applied = n.applied;
  n.drv = std::make_unique<driver>(o, std::make_unique<core>(config_for(n.id), std::move(ps), bootstrap),
                                   std::move(parts), applied);
  n.raft = &n.drv->raft();
  n.up = true;
}

raft::config cluster::config_for(node_id id) const {
  auto c = opts_.base;
  c.id = id;
  c.seed = opts_.seed * 1000003 + id.value;
  return c;
}

cluster::node& cluster::at(node_id id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) throw sim_failure("no node " + std::to_string(id.value));
  return it->second;
}

std::vector<node_id> cluster::ids() const {
  std::vector<node_id> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

std::optional<node_id> cluster::leader() const {
  std::optional<node_id> best;
  term_t best_term;
  for (const auto& [id, n] : nodes_) {
    if (n.up && n.raft->role() == role::leader && (!best || n.raft->term() > best_term)) {
      best = id;
      best_term = n.raft->term();
    }
  }
  return best;
}

index_t cluster::max_applied() const {
  index_t m;
  for (const auto& [id, n] : nodes_) m = std::max(m, n.applied);
  return m;
}

void cluster::note(const std::string& event) {
  std::string line = "t=" + std::to_string(now_) + " " + event;
  if (verbose) std::fprintf(stderr, "%s\n", line.c_str());
  trace_.push_back(std::move(line));
  if (trace_.size() > 400) trace_.pop_front();
}

std::string cluster::trace() const {
  std::string out;
  for (const auto& line : trace_) out += line + "\n";
  return out;
}

void cluster::fail(const std::string& what) {
  note("FAILURE: " + what);
  throw sim_failure(what + "\nlast events:\n" + trace());
}

// --- time ------------------------------------------------------------------------

void cluster::run_units(std::uint64_t units) {
  for (std::uint64_t u = 0; u < units; ++u) {
    ++now_;
    while (!network_.empty() && network_.begin()->first <= now_) {
      auto m = network_.begin()->second;
      network_.erase(network_.begin());
      deliver(m);
    }
    while (!signals_.empty() && signals_.begin()->first <= now_) {
      auto s = signals_.begin()->second;
      signals_.erase(signals_.begin());
      connection_lost(s.at, s.peer);
    }
    for (auto& [id, n] : nodes_) {
      if (!n.up) continue;
      complete_writes(n);
      if (!n.up) continue;
      if ((now_ + static_cast<std::uint64_t>(n.tick_phase)) % static_cast<std::uint64_t>(opts_.units_per_tick) == 0) {
        n.drv->tick();
      }
      process(n);
    }
    check();
  }
}

bool cluster::run_until(const std::function<bool()>& pred, int max_ticks) {
  for (int t = 0; t < max_ticks * opts_.units_per_tick; ++t) {
    if (pred()) return true;
    run_units(1);
  }
  return pred();
}

// --- node work ---------------------------------------------------------------------

void cluster::process(node& n) {
  if (!n.up) return;
  n.drv->flush();
  complete_writes(n);
  if (n.up) n.raft->check_invariants();
}

void cluster::node_io::write(storage_job job) {
  auto delay = static_cast<std::uint64_t>(c->opts_.disk_delay_min_units) +
               c->random(static_cast<std::uint64_t>(c->opts_.disk_delay_max_units - c->opts_.disk_delay_min_units + 1));
  n->write = pending_write{std::move(job), c->now_ + delay};
}

void cluster::node_io::send(const message& m) { c->send(m); }

bool cluster::node_io::disk_stalled(std::int64_t now_ms) {
  return static_cast<std::uint64_t>(now_ms) < n->disk_stalled_until;
}

void cluster::stall_disk(node_id id, std::uint64_t units) {
  auto& n = at(id);
  n.disk_stalled_until = now_ + units;
  note("node " + std::to_string(id.value) + ": disk stalls for " + std::to_string(units) + " units");
}

std::string cluster::node_io::snapshot() const { return c->snapshot_bytes(*n); }

void cluster::node_io::restore(std::string_view bytes) {
  std::istringstream in{std::string(bytes)};
  std::uint64_t index = 0;
  in >> index;
  c->restore_state_machine(*n, bytes, index_t{index});
}

// The disk finishes its job when due, by the production rules
// (storage_job.hpp), and the driver carries on.
void cluster::complete_writes(node& n) {
  while (n.up && n.write && n.write->done_at <= now_) {
    auto w = std::move(*n.write);
    n.write.reset();
    if (w.job.persist_id > n.last_persist_id + 1) ++merged_writes_;
    if (w.job.batch.truncate_from) ++truncating_writes_;
    n.last_persist_id = w.job.persist_id;
    if (auto ok = carry_out(n.disk, n.snapshots, w.job); !ok) {
      fail("node " + std::to_string(n.id.value) + ": disk refused a job: " + ok.error().message());
    }
    n.drv->written(w.job.persist_id, {});
    n.drv->flush();
  }
}

void cluster::apply(node& n, const log_entry& e) {
  // State machine safety: entries are applied in order without gaps, and no
  // two servers apply different entries at one index.
  if (e.index.value != n.applied.value + 1) {
    fail("node " + std::to_string(n.id.value) + " applied " + std::to_string(e.index.value) + " after " +
         std::to_string(n.applied.value));
  }
  auto h = entry_hash(e);
  auto [it, fresh] = applied_entries_.emplace(e.index.value, std::make_pair(e.term, h));
  if (!fresh && it->second != std::make_pair(e.term, h)) {
    fail("state machine safety: node " + std::to_string(n.id.value) + " applied term " +
         std::to_string(e.term.value) + " at " + std::to_string(e.index.value) + ", another node applied term " +
         std::to_string(it->second.first.value));
  }
  n.sm_hash = fnv_u64(n.sm_hash ^ 0x9e37, h);
  n.applied = e.index;
  auto [c, new_chain] = chain_.emplace(e.index.value, n.sm_hash);
  if (!new_chain && c->second != n.sm_hash) {
    fail("node " + std::to_string(n.id.value) + " state diverged at " + std::to_string(e.index.value));
  }
}

std::string cluster::snapshot_bytes(const node& n) const {
  auto s = std::to_string(n.applied.value) + " " + std::to_string(n.sm_hash) + " ";
  s.append(100 + n.applied.value % 200, static_cast<char>('a' + n.applied.value % 26));
  return s;
}

void cluster::restore_state_machine(node& n, std::string_view bytes, index_t meta_index) {
  std::istringstream in{std::string(bytes)};
  std::uint64_t index = 0, hash = 0;
  in >> index >> hash;
  if (index != meta_index.value) fail("snapshot bytes say " + std::to_string(index) + ", meta says " + std::to_string(meta_index.value));
  auto c = chain_.find(index);
  if (c != chain_.end() && c->second != hash) fail("snapshot at " + std::to_string(index) + " holds a diverged state");
  n.applied = index_t{index};
  n.sm_hash = hash;
  note("node " + std::to_string(n.id.value) + " restored snapshot at " + std::to_string(index));
}

// --- network ------------------------------------------------------------------------

void cluster::send(const message& original) {
  ++messages_sent_;
  if (blocked_.count({original.from, original.to})) return;
  if (faults.drop > 0 && std::uniform_real_distribution<>(0, 1)(rng_) < faults.drop) return;
  message m = original;
  if (opts_.encode_messages) {
    auto decoded = wire::decode(wire::encode(original, "sim"), "sim");
    if (!decoded) fail("codec refused a message the core sent: " + decoded.error().message());
    m = std::move(*decoded);
  }
  int copies = (faults.duplicate > 0 && std::uniform_real_distribution<>(0, 1)(rng_) < faults.duplicate) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    auto span = static_cast<std::uint64_t>(faults.delay_max_units - faults.delay_min_units + 1);
    auto delay = static_cast<std::uint64_t>(faults.delay_min_units) + random(span);
    network_.emplace(now_ + delay, m);
  }
}

void cluster::deliver(const message& m) {
  auto it = nodes_.find(m.to);
  if (it == nodes_.end() || !it->second.up || blocked_.count({m.from, m.to})) return;
  ++messages_delivered_;
  if (verbose) note(describe(m));
  if (on_deliver) on_deliver(m);
  it->second.drv->receive(m);
  process(it->second);
}

void cluster::connection_lost(node_id at_id, node_id peer) {
  auto& n = at(at_id);
  if (!n.up) return;
  note("node " + std::to_string(at_id.value) + " lost its connection to " + std::to_string(peer.value));
  n.drv->connection_lost(peer);
  process(n);
}

void cluster::isolate(node_id id) {
  for (const auto& [other, n] : nodes_) {
    if (other == id) continue;
    block(id, other);
    block(other, id);
  }
  note("isolated node " + std::to_string(id.value));
}

void cluster::partition(const std::set<node_id>& side) {
  for (const auto& [a, na] : nodes_) {
    for (const auto& [b, nb] : nodes_) {
      if (side.count(a) != side.count(b)) block(a, b);
    }
  }
  std::string names;
  for (auto id : side) names += " " + std::to_string(id.value);
  note("partitioned {" + names + " } from the rest");
}

// --- clients -------------------------------------------------------------------------

cluster::node* cluster::client_target(node_id where) {
  if (where == node_id{0}) {
    auto l = leader();
    if (!l) return nullptr;
    where = *l;
  }
  auto& n = at(where);
  return n.up ? &n : nullptr;
}

std::optional<std::size_t> cluster::propose(node_id where, bool flush) {
  auto* target = client_target(where);
  if (!target) return std::nullopt;
  auto& n = *target;
  where = n.id;
  auto payload = "p" + std::to_string(next_payload_++);
  payload.append(random(40), 'x');
  auto index = proposals_.size();
  auto r = n.drv->propose(payload, [this, where, index](expected<commit> c) {
    auto& prop = proposals_[index];
    pending_proposals_.erase({where, prop.where.index.value});
    if (!c) return;
    // The driver says committed: the entry applied at its index must be
    // this very proposal.
    log_entry mine;
    mine.index = c->index;
    mine.term = c->term;
    mine.kind = entry_kind::command;
    mine.payload = prop.payload;
    auto applied = applied_entries_.find(c->index.value);
    if (c->index != prop.where.index || c->term != prop.where.term || applied == applied_entries_.end() ||
        applied->second.second != entry_hash(mine)) {
      fail("node " + std::to_string(where.value) + " acknowledged proposal " + std::to_string(index) + " at " +
           std::to_string(c->index.value) + " but another entry was applied there");
    }
    prop.acked = true;
    ++acked_;
    max_acked_index_ = std::max(max_acked_index_, c->index);
  });
  if (!r) return std::nullopt;
  proposals_.push_back({where, *r, payload, false});
  pending_proposals_[{where, r->index.value}] = index;
  if (flush) process(n);
  return index;
}

std::optional<std::uint64_t> cluster::read(node_id where) {
  auto* target = client_target(where);
  if (!target) return std::nullopt;
  auto& n = *target;
  where = n.id;
  auto id = next_read_id_++;
  auto min_index = max_acked_index_;
  auto ok = n.drv->read([this, where, id, min_index](expected<void> safe) {
    if (!safe) return;
    // Linearizability: the state read reflects every write acknowledged
    // before the read began.
    auto& rn = at(where);
    if (rn.applied < min_index) {
      fail("stale read " + std::to_string(id) + " at node " + std::to_string(where.value) + ": applied " +
           std::to_string(rn.applied.value) + " but a write at " + std::to_string(min_index.value) +
           " was acknowledged before the read began");
    }
    ++reads_served_;
  });
  if (!ok) return std::nullopt;
  process(n);
  return id;
}

expected<void> cluster::change_membership(const membership_change& change, commit_callback done) {
  auto l = leader();
  if (!l) return make_error(errc::not_leader);
  auto& n = at(*l);
  auto what = std::string(change.what == membership_change::kind::add_learner ? "add learner "
                          : change.what == membership_change::kind::promote   ? "promote "
                                                                               : "remove ") +
              std::to_string(change.subject.id.value);
  auto r = n.drv->propose_membership(change, [this, what, done = std::move(done)](expected<commit> c) {
    note("membership change " + what + (c ? " committed at " + std::to_string(c->index.value) : ": " + c.error().message()));
    if (done) done(std::move(c));
  });
  if (r) note("membership change asked of node " + std::to_string(l->value) + ": " + what);
  process(n);
  return r;
}

void cluster::snapshot(node_id id) {
  auto& n = at(id);
  if (!n.up || n.applied <= n.raft->last_snapshot().meta.last_index) return;
  n.drv->take_snapshot();
  note("node " + std::to_string(id.value) + " took a snapshot at " + std::to_string(n.applied.value));
  process(n);
}

// --- crashes ---------------------------------------------------------------------------

void cluster::crash(node_id id, bool signal_peers) {
  auto& n = at(id);
  if (!n.up) return;
  note("crash node " + std::to_string(id.value) + (n.write ? " (a write lost)" : ""));
  n.up = false;
  n.drv.reset();  // its pending proposals and reads die with it: their clients never hear
  n.raft = nullptr;
  n.write.reset();  // not yet durable: gone
  n.applied = index_t{0};
  n.sm_hash = 0;
  for (auto it = pending_proposals_.begin(); it != pending_proposals_.end();) {
    it = it->first.first == id ? pending_proposals_.erase(it) : std::next(it);
  }
  if (!signal_peers) return;
  // Peers see the broken connection soon after (the process is gone), but
  // only after what it had already sent them, as a TCP stream delivers its
  // bytes before its end.
  for (const auto& [other, o] : nodes_) {
    if (other == id || !o.up || blocked_.count({id, other})) continue;
    auto at = now_ + 1 + random(5);
    for (const auto& [when, m] : network_) {
      if (m.from == id && m.to == other) at = std::max(at, when + 1);
    }
    signals_.emplace(at, lost_signal{other, id});
  }
}

void cluster::restart(node_id id) {
  auto& n = at(id);
  if (n.up) return;
  persistent_state ps;
  ps.state = n.disk.state();
  if (const auto* latest = n.snapshots.latest()) {
    ps.snapshot = snapshot_data{latest->meta, std::make_shared<const std::string>(latest->data)};
  }
  ps.start_index = n.disk.start_index();
  ps.start_term = n.disk.start_term();
  if (n.disk.last_index() >= n.disk.first_index()) {
    ps.entries = *n.disk.entries(n.disk.first_index(), SIZE_MAX, SIZE_MAX);
  }
  ++n.restarts;
  n.verified_upto = index_t{0};
  n.verified_term = term_t{0};
  note("restart node " + std::to_string(id.value) + " with log " + std::to_string(n.disk.first_index().value) +
       ".." + std::to_string(n.disk.last_index().value) + ", term " + std::to_string(n.disk.state().term.value));
  start(n, std::move(ps), n.founding ? bootstrap_ : configuration{});
  process(n);
}

// --- checks ------------------------------------------------------------------------------

void cluster::check() {
  for (auto& [id, n] : nodes_) {
    if (!n.up) continue;
    check_leader(n);
    check_log_matching(n);
  }
}

void cluster::check_leader(node& n) {
  if (n.raft->role() != role::leader) return;
  // Election safety (§5.2): at most one leader per term.
  auto [it, fresh] = leader_of_term_.emplace(n.raft->term(), n.id);
  if (!fresh && it->second != n.id) {
    fail("election safety: nodes " + std::to_string(it->second.value) + " and " + std::to_string(n.id.value) +
         " both lead term " + std::to_string(n.raft->term().value));
  }
  if (!fresh) return;
  // Leader completeness (§5.4): a new leader holds every entry already
  // applied (hence committed) anywhere, unless compacted into its snapshot.
  const auto& log = n.raft->log();
  for (auto e = applied_entries_.upper_bound(log.start_index().value); e != applied_entries_.end(); ++e) {
    index_t i{e->first};
    if (i > log.last_index() || log.term_at(i) != e->second.first || entry_hash(log.at(i)) != e->second.second) {
      fail("leader completeness: node " + std::to_string(n.id.value) + " leads term " +
           std::to_string(n.raft->term().value) + " without committed entry " + std::to_string(i.value));
    }
  }
}

void cluster::check_log_matching(node& n) {
  // Log matching (§5.3): entries with the same index and term are identical
  // and so are their predecessors' terms (which by induction makes the
  // whole prefix identical). Checked on what is durable: an entry a leader
  // appended but never wrote or sent before crashing is not part of any log.
  const auto& log = n.disk;
  auto term_of = [&](index_t i) {
    auto t = log.term(i);
    return t ? std::optional<term_t>(*t) : std::nullopt;
  };
  bool recheck = now_ % 64 == 0 || n.verified_upto > log.last_index() || n.verified_upto < log.start_index() ||
                 term_of(n.verified_upto) != n.verified_term;
  auto from = recheck ? log.start_index() : n.verified_upto;
  for (auto i = index_t{from.value + 1}; i <= log.last_index(); i = index_t{i.value + 1}) {
    auto e = log.entry(i);
    if (!e) fail("node " + std::to_string(n.id.value) + " disk: " + e.error().message());
    auto prev = *term_of(index_t{i.value - 1});
    auto key = std::make_pair(i.value, e->term.value);
    auto value = std::make_pair(entry_hash(*e), prev.value);
    auto [it, fresh] = seen_entries_.emplace(key, value);
    if (!fresh && it->second != value) {
      fail("log matching: node " + std::to_string(n.id.value) + " holds a different entry " + std::to_string(i.value) +
           " of term " + std::to_string(e->term.value) + " than another node did");
    }
  }
  n.verified_upto = log.last_index();
  n.verified_term = *term_of(log.last_index());
}

void cluster::check_liveness(int max_ticks) {
  heal();
  faults = network_faults{};
  for (auto id : ids()) restart(id);
  note("liveness: healed, every node up");
  auto describe_nodes = [&] {
    std::string state;
    for (const auto& [id, n] : nodes_) {
      const auto& log = n.raft->log();
      state += "\n  node " + std::to_string(id.value) + ": " + to_string(n.raft->role()) + " term " +
               std::to_string(n.raft->term().value) + " log " + std::to_string(log.start_index().value) + ".." +
               std::to_string(log.last_index().value) + "/t" + std::to_string(log.last_term().value) + " commit " +
               std::to_string(log.commit_index().value) + " applied " + std::to_string(n.applied.value) + " config";
      for (const auto& srv : n.raft->current_configuration().servers) {
        state += " " + std::to_string(srv.id.value) + (srv.role == suffrage::voter ? "v" : "l");
      }
    }
    return state;
  };
  if (!run_until([&] { return leader().has_value(); }, max_ticks)) fail("liveness: no leader after healing" + describe_nodes());
  // A proposal can be lost to a leader change; then propose again.
  std::optional<std::size_t> p;
  auto lost = [&](const proposal& q) {
    if (q.acked) return false;
    auto& n = at(q.at);
    return !n.up || n.raft->role() != role::leader || n.raft->term() != q.where.term ||
           !pending_proposals_.count({q.at, q.where.index.value});
  };
  auto done = [&] {
    if (!p || lost(proposals_[*p])) {
      p = propose();
      return false;
    }
    if (!proposals_[*p].acked) return false;
    auto l = leader();
    if (!l) return false;
    for (const auto& s : at(*l).raft->current_configuration().servers) {
      auto it = nodes_.find(s.id);
      if (it != nodes_.end() && it->second.applied < proposals_[*p].where.index) return false;
    }
    return true;
  };
  if (!run_until(done, max_ticks)) {
    std::string state;
    for (const auto& [id, n] : nodes_) {
      state += " node " + std::to_string(id.value) + ": " + to_string(n.raft->role()) + " term " +
               std::to_string(n.raft->term().value) + " applied " + std::to_string(n.applied.value) + " commit " +
               std::to_string(n.raft->log().commit_index().value) + " last " +
               std::to_string(n.raft->log().last_index().value) + ";";
    }
    if (!p) fail("liveness: no proposal accepted within " + std::to_string(max_ticks) + " ticks;" + state);
    fail("liveness: proposal at " + std::to_string(proposals_[*p].where.index.value) + " not applied everywhere within " +
         std::to_string(max_ticks) + " ticks (acked: " + (proposals_[*p].acked ? "yes" : "no") + ");" + state);
  }
}

}  // namespace conclave::sim
