#include "actors/raft/core.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "actors/raft/quorum.hpp"

namespace conclave::raft {
namespace {

// splitmix64: a tiny, well-mixed PRNG; the core's only randomness.
std::uint64_t next_random(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

term_t term_of(const message_body& body) {
  return std::visit([](const auto& m) { return m.term; }, body);
}

index_t next_index(index_t i) { return index_t{i.value + 1}; }

std::string leader_hint(node_id leader) {
  return leader == no_node ? "leader unknown" : "leader is " + std::to_string(leader.value);
}

}  // namespace

expected<void> config::validate() const {
  auto bad = [](std::string what) { return make_error(errc::invalid_argument, std::move(what)); };
  if (id == no_node) return bad("raft.id: must not be 0");
  if (heartbeat_interval_ticks < 1) return bad("raft.heartbeat_interval_ticks: must be >= 1");
  if (election_timeout_min_ticks <= heartbeat_interval_ticks) {
    return bad("raft.election_timeout_min_ticks: must be > heartbeat_interval_ticks");
  }
  if (election_timeout_max_ticks <= election_timeout_min_ticks) {
    return bad("raft.election_timeout_max_ticks: must be > election_timeout_min_ticks");
  }
  if (fast_election_step_ticks < 1) return bad("raft.fast_election_step_ticks: must be >= 1");
  if (max_entries_per_message < 1) return bad("raft.max_entries_per_message: must be >= 1");
  if (max_bytes_per_message < 1) return bad("raft.max_bytes_per_message: must be >= 1");
  if (max_inflight_messages < 1) return bad("raft.max_inflight_messages: must be >= 1");
  if (snapshot_chunk_bytes < 1) return bad("raft.snapshot_chunk_bytes: must be >= 1");
  if (max_apply_bytes < 1) return bad("raft.max_apply_bytes: must be >= 1");
  return {};
}

// --- construction --------------------------------------------------------------

core::core(config cfg, persistent_state durable, configuration bootstrap)
    : cfg_(std::move(cfg)), rng_state_(cfg_.seed * 0x2545F4914F6CDD1Dull ^ cfg_.id.value) {
  assert(cfg_.validate().has_value());
  auto& hs = durable.state;
  bool blank = !durable.snapshot && durable.start_index == index_t{0} && durable.entries.empty() &&
               hs.term == term_t{0};
  if (blank && !bootstrap.servers.empty()) {
    // Bootstrap: the founding configuration as entry 1 of term 1 on every
    // founding member (identical everywhere, hence committed by definition).
    term_ = term_t{1};
    log_entry e{term_t{1}, index_t{1}, entry_kind::configuration, {}, bootstrap};
    log_.append(std::move(e));
    log_.commit_to(index_t{1});
  } else {
    if (durable.snapshot) snapshot_ = *durable.snapshot;
    auto snap_index = snapshot_.meta.last_index;
    auto last = index_t{durable.start_index.value + durable.entries.size()};
    assert(durable.start_index <= snap_index || !durable.snapshot);
    if (last < snap_index) {
      // The snapshot is ahead of the durable log (the state machine applied
      // committed entries this disk had not yet written): the log restarts
      // at the snapshot, and the shell compacts the disk to match.
      log_ = raft_log(snap_index, snapshot_.meta.last_term, {}, snap_index, snap_index);
      out_.compact = std::make_pair(snap_index, snapshot_.meta.last_term);
    } else {
      auto commit = std::max(snap_index, std::min(hs.commit_index, last));
      log_ = raft_log(durable.start_index, durable.start_term, std::move(durable.entries), commit, snap_index);
    }
    term_ = hs.term;
    voted_for_ = hs.voted_for;
    last_state_ = hs;
    durable_term_ = hs.term;
    // The disk may record a commit index past its own last entry (entries
    // committed elsewhere that had not reached this disk); keep it, since
    // hard state never goes backwards.
    commit_floor_ = hs.commit_index;
  }
  rebuild_configs();
  last_role_ = {role_, term_, leader_};
  reset_election_timer();
  observed_ = observe();
}

void core::rebuild_configs() {
  snapshot_config_ = snapshot_.meta.config;
  configs_.clear();
  for (auto i = log_.first_index(); i <= log_.last_index(); i = next_index(i)) {
    const auto& e = log_.at(i);
    if (e.kind == entry_kind::configuration && i > snapshot_.meta.last_index) configs_.emplace_back(i, *e.config);
  }
}

const configuration& core::current_configuration() const {
  return configs_.empty() ? snapshot_config_ : configs_.back().second;
}

configuration core::config_at(index_t index) const {
  const configuration* found = &snapshot_config_;
  for (const auto& [i, c] : configs_) {
    if (i <= index) found = &c;
  }
  return *found;
}

bool core::is_voter(node_id n) const {
  for (const auto& s : current_configuration().servers) {
    if (s.id == n) return s.role == suffrage::voter;
  }
  return false;
}

std::vector<node_id> core::voters() const {
  std::vector<node_id> out;
  for (const auto& s : current_configuration().servers) {
    if (s.role == suffrage::voter) out.push_back(s.id);
  }
  return out;
}

template <class F>
auto core::quorum_value(F value_of) const {
  std::vector<decltype(value_of(node_id{}))> per_voter;
  for (auto v : voters()) per_voter.push_back(value_of(v));
  return majority_value(std::move(per_voter));
}

template <class P>
bool core::quorum_agrees(P holds) const {
  return quorum_value([&](node_id v) { return holds(v) ? 1 : 0; }) == 1;
}

const std::map<node_id, progress>& core::followers() const {
  static const std::map<node_id, progress> none;
  return lead_ ? lead_->followers : none;
}

std::optional<node_id> core::transfer_target() const {
  return lead_ ? lead_->transfer_target : std::nullopt;
}

bool core::promotable() const {
  if (storage_unwritable_) return false;
  if (is_voter(cfg_.id)) return true;
  // Thesis 4.2.2: a server that its latest, uncommitted configuration removes
  // must still campaign, as it may be needed to commit that very entry (its
  // log can be the only up-to-date one among the remaining voters).
  if (configs_.empty() || configs_.back().first <= log_.commit_index()) return false;
  for (const auto& s : config_at(log_.commit_index()).servers) {
    if (s.id == cfg_.id) return s.role == suffrage::voter;
  }
  return false;
}

// --- transitions -----------------------------------------------------------------

void core::reset_election_timer() {
  election_elapsed_ = 0;
  auto span = static_cast<std::uint64_t>(cfg_.election_timeout_max_ticks - cfg_.election_timeout_min_ticks);
  randomized_election_timeout_ = cfg_.election_timeout_min_ticks + static_cast<int>(next_random(rng_state_) % span);
}

void core::become_follower(term_t term, node_id leader) {
  if (lead_) {
    fail_reads();
    lead_.reset();
  }
  if (term > term_) {
    term_ = term;
    voted_for_ = no_node;
  }
  role_ = raft::role::follower;
  leader_ = leader;
  votes_granted_.clear();
  votes_rejected_.clear();
  reset_election_timer();
}

void core::campaign(bool leadership_transfer) {
  // Pre-vote first (thesis 9.6), unless the leader asked us to take over.
  if (cfg_.pre_vote && !leadership_transfer) {
    become_pre_candidate();
  } else {
    become_candidate(leadership_transfer);
  }
}

void core::become_pre_candidate() {
  // A pre-candidate asks whether it could win at term + 1 without changing
  // anybody's term, so a server that cannot win (a lagging or partitioned
  // one) never disrupts the cluster by bumping terms.
  role_ = raft::role::pre_candidate;
  leader_ = no_node;
  votes_granted_ = {cfg_.id};
  votes_rejected_.clear();
  reset_election_timer();
  if (quorum_agrees([&](node_id v) { return votes_granted_.count(v) > 0; })) return become_candidate(false);
  for (auto v : voters()) {
    if (v == cfg_.id) continue;
    send(v, vote_request{next_term(), log_.last_index(), log_.last_term(), true, false});
  }
}

void core::become_candidate(bool leadership_transfer) {
  // §5.2: increment the term, vote for self, ask every voter. The requests
  // go out at once, while term and vote are being written (one disk write
  // less on every election and leadership transfer); our own vote counts
  // only once it is durable (persisted()). Were it counted before, we could
  // win, crash before the write, come back without the vote, grant it to
  // another candidate of the same term, and two leaders would share a term.
  term_ = next_term();
  voted_for_ = cfg_.id;
  role_ = raft::role::candidate;
  leader_ = no_node;
  votes_granted_.clear();
  votes_rejected_.clear();
  reset_election_timer();
  for (auto v : voters()) {
    if (v == cfg_.id) continue;
    send(v, vote_request{term_, log_.last_index(), log_.last_term(), false, leadership_transfer});
  }
}

void core::become_leader() {
  role_ = raft::role::leader;
  leader_ = cfg_.id;
  votes_granted_.clear();
  votes_rejected_.clear();
  lead_.emplace();
  sync_progress();
  // Thesis 6.4 / §8: a new leader commits a no-op entry of its own term, which
  // commits everything before it and tells it its commit index.
  log_entry noop{term_, next_index(log_.last_index()), entry_kind::noop, {}, std::nullopt};
  lead_->term_start_index = noop.index;
  append_entry(std::move(noop));
  lead_->broadcast_pending = true;
  maybe_commit();  // a single voter commits on its own durable write
}

void core::sync_progress() {
  // One progress per other server in the current configuration; new ones
  // start probing at the end of the leader's log (§5.3: nextIndex = last + 1).
  auto& current = lead_->followers;
  std::map<node_id, progress> next;
  for (const auto& s : current_configuration().servers) {
    if (s.id == cfg_.id) continue;
    auto it = current.find(s.id);
    if (it != current.end()) {
      next.emplace(s.id, it->second);
    } else {
      next.emplace(s.id, progress::starting_at(next_index(log_.last_index()), sequence_ + 1));
    }
  }
  current = std::move(next);
}

// --- ticks -------------------------------------------------------------------------

void core::tick() {
  input_scope scope{*this};
  if (role_ == raft::role::leader) return tick_leader();
  ++election_elapsed_;
  // §5.2: a follower that hears nothing for an election timeout campaigns.
  // Learners and servers outside the configuration never do.
  if (election_elapsed_ >= randomized_election_timeout_ && promotable()) campaign(false);
}

void core::tick_leader() {
  auto& lead = *lead_;
  ++lead.heartbeat_elapsed;
  ++lead.quorum_round_elapsed;
  if (lead.preferred_backoff_ticks > 0) --lead.preferred_backoff_ticks;
  if (lead.quorum_round_elapsed >= cfg_.election_timeout_min_ticks) {
    lead.quorum_round_elapsed = 0;
    // Check quorum (thesis 6.2): a leader that has not heard from a quorum
    // within an election timeout steps down, so a partitioned leader stops
    // serving instead of lingering.
    bool quorum_active = quorum_agrees([&](node_id v) {
      auto it = lead.followers.find(v);
      return v == cfg_.id || (it != lead.followers.end() && it->second.recent_active);
    });
    if (cfg_.check_quorum && !quorum_active) return become_follower(term_, no_node);
    for (auto& [id, pr] : lead.followers) pr.recent_active = false;
    // Thesis 3.10: a transfer that did not finish within an election timeout
    // is aborted and the leader takes proposals again.
    if (lead.transfer_target) {
      lead.transfer_target.reset();
      lead.preferred_backoff_ticks = 10 * cfg_.election_timeout_max_ticks;
    }
  }
  if (lead.heartbeat_elapsed >= cfg_.heartbeat_interval_ticks) {
    lead.heartbeat_elapsed = 0;
    for (auto& [id, pr] : lead.followers) {
      switch (pr.state) {
        case progress::mode::probe:
          pr.probe_again();
          send_append(id, pr, true);
          break;
        case progress::mode::replicate:
          // Acks stopped while messages are in flight: some were lost.
          // Resend from the last known match.
          if (pr.heartbeat_unanswered()) {
            restart_probe(pr, next_index(pr.match));
            send_append(id, pr, true);
          } else {
            send_heartbeat(id, pr);
            send_append(id, pr, false);
          }
          break;
        case progress::mode::snapshot:
          // A lost chunk or reply: send the same chunk again.
          if (pr.heartbeat_unanswered()) pr.snapshot_resume_at(pr.snapshot_offset);
          if (!pr.snapshot_chunk_sent) send_snapshot_chunk(id, pr);
          break;
      }
    }
    maybe_transfer_to_preferred();
  }
}

// --- messages ------------------------------------------------------------------------

void core::send(node_id to, message_body body, bool after_persist) {
  // A leader acts for its term only once the term (and its own vote) is
  // durable: a leader that won alone, with no round trip, could otherwise
  // crash, forget the term, win it again and send different entries under
  // the same (index, term) (found by the simulation, seed 363).
  if (role_ == raft::role::leader && durable_term_ < term_) after_persist = true;
  message m{cfg_.id, to, std::move(body)};
  (after_persist ? out_.messages_after_persist : out_.messages).push_back(std::move(m));
}

bool core::hears_leader() const {
  // Thesis 4.2.3: a server that heard from a live leader within the minimum
  // election timeout neither grants votes nor updates its term for a
  // RequestVote, so a server that cannot see the leader cannot depose it.
  // A leader hears itself (it steps down when it stops hearing a quorum).
  if (!cfg_.check_quorum) return false;
  return role_ == raft::role::leader || (leader_ != no_node && election_elapsed_ < cfg_.election_timeout_min_ticks);
}

void core::step(const message& m) {
  input_scope scope{*this};
  if (m.from == cfg_.id || m.from == no_node) return;   // ignoring: not from a peer
  if (m.to != cfg_.id && m.to != no_node) return;        // ignoring: meant for another server
  if (lead_) {
    if (auto it = lead_->followers.find(m.from); it != lead_->followers.end()) {
      it->second.recent_active = true;
      it->second.connected = true;
    }
  }
  auto mterm = term_of(m.body);
  if (mterm > term_) {
    if (auto* r = std::get_if<vote_request>(&m.body)) {
      if (!r->leadership_transfer && hears_leader()) {
        // Thesis 4.2.3 (above): refuse without adopting the term.
        send(m.from, vote_reply{term_, false, r->pre_vote});
        return;
      }
      // A pre-vote changes nobody's term; a real vote at a higher term does (§5.1).
      if (!r->pre_vote) become_follower(mterm, no_node);
    } else if (auto* v = std::get_if<vote_reply>(&m.body); v && v->pre_vote && v->granted) {
      // A granted pre-vote carries the term we would campaign in; not news.
    } else {
      // §5.1: a higher term makes us a follower; a message that only a leader
      // sends tells us who leads.
      bool from_leader = std::holds_alternative<append_entries>(m.body) ||
                         std::holds_alternative<install_snapshot>(m.body) ||
                         std::holds_alternative<timeout_now>(m.body);
      become_follower(mterm, from_leader ? m.from : no_node);
    }
  } else if (mterm < term_) {
    // §5.1: a stale request is rejected with our term, so its sender learns
    // it is stale (a deposed leader steps down); stale replies are dropped.
    if (std::holds_alternative<append_entries>(m.body)) {
      send(m.from, append_entries_reply{term_, false, {}, {}, {}, std::get<append_entries>(m.body).sequence});
    } else if (std::holds_alternative<install_snapshot>(m.body)) {
      send(m.from, install_snapshot_reply{term_, 0, false, {}});
    } else if (auto* r = std::get_if<vote_request>(&m.body)) {
      send(m.from, vote_reply{term_, false, r->pre_vote});
    }
    return;
  }
  std::visit(
      [&](const auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, vote_request>) on_vote_request(m.from, body);
        else if constexpr (std::is_same_v<T, vote_reply>) on_vote_reply(m.from, body);
        else if constexpr (std::is_same_v<T, append_entries>) on_append_entries(m.from, body);
        else if constexpr (std::is_same_v<T, append_entries_reply>) on_append_entries_reply(m.from, body);
        else if constexpr (std::is_same_v<T, install_snapshot>) on_install_snapshot(m.from, body);
        else if constexpr (std::is_same_v<T, install_snapshot_reply>) on_install_snapshot_reply(m.from, body);
        else if constexpr (std::is_same_v<T, timeout_now>) on_timeout_now(m.from, body);
      },
      m.body);
}

void core::on_vote_request(node_id from, const vote_request& m) {
  // §5.4.1: never vote for a candidate whose log is behind ours.
  bool up_to_date = log_.is_up_to_date(m.last_log_index, m.last_log_term);
  if (m.pre_vote) {
    // Thesis 9.6: grant if the candidate could win an election at m.term: it
    // is ahead of our term, its log is up to date, and (checked in step) we
    // have not heard from a live leader.
    bool grant = m.term > term_ && up_to_date && role_ != raft::role::leader;
    send(from, vote_reply{grant ? m.term : term_, grant, true});
    return;
  }
  // Here m.term == term_. §5.2: one vote per term, first come first served;
  // a server that already follows a leader this term votes for nobody else.
  bool can_vote = voted_for_ == from || (voted_for_ == no_node && leader_ == no_node);
  bool grant = can_vote && up_to_date && role_ == raft::role::follower;
  if (grant) {
    voted_for_ = from;
    election_elapsed_ = 0;  // §5.2: granting a vote restarts the election timer
  }
  // The reply promises the vote is durable.
  send(from, vote_reply{term_, grant, false}, true);
}

void core::on_vote_reply(node_id from, const vote_reply& m) {
  bool counts = (role_ == raft::role::pre_candidate && m.pre_vote) ||
                (role_ == raft::role::candidate && !m.pre_vote && m.term == term_);
  if (!counts || !is_voter(from)) return;  // ignoring: stale or not a voter's
  (m.granted ? votes_granted_ : votes_rejected_).insert(from);
  if (quorum_agrees([&](node_id v) { return votes_granted_.count(v) > 0; })) {
    if (role_ == raft::role::pre_candidate) {
      become_candidate(false);
    } else {
      become_leader();
    }
  } else if (quorum_agrees([&](node_id v) { return votes_rejected_.count(v) > 0; })) {
    // The election is lost; wait for a leader or the next timeout.
    become_follower(term_, no_node);
  }
}

void core::on_append_entries(node_id from, const append_entries& m) {
  if (role_ == raft::role::leader) return;  // ignoring: a second leader in our term cannot exist (§5.2)
  // §5.2: a candidate that hears from the leader of its term steps down.
  if (role_ != raft::role::follower || leader_ != from) {
    become_follower(term_, from);
  } else {
    election_elapsed_ = 0;
  }
  append_entries_reply reply{term_, false, {}, {}, {}, m.sequence};

  // A well-formed batch is consecutive after prev, with terms that never
  // decrease and never exceed the leader's.
  auto expect = next_index(m.prev_log_index);
  for (const auto& e : m.entries) {
    if (e.index != expect || e.term > m.term || e.term == term_t{0} ||
        (e.kind == entry_kind::configuration) != e.config.has_value()) {
      return;  // ignoring: malformed batch
    }
    expect = next_index(expect);
  }

  // Entries up to our commit index are ours already: committed entries are
  // in every later leader's log (§5.4, Leader Completeness).
  auto prev = m.prev_log_index;
  auto prev_term = m.prev_log_term;
  std::size_t skip = 0;
  if (prev < log_.commit_index()) {
    skip = std::min<std::size_t>(m.entries.size(), log_.commit_index().value - prev.value);
    prev = index_t{prev.value + skip};
    prev_term = skip > 0 ? m.entries[skip - 1].term : prev_term;
    if (prev < log_.commit_index()) {
      // The whole batch is behind our commit index.
      reply.success = true;
      reply.match_index = log_.commit_index();
      send(from, reply, true);
      return;
    }
    assert(log_.matches(prev, prev_term));
  }

  // §5.3: reject unless our log holds prev with the same term.
  if (!log_.matches(prev, prev_term)) {
    // Thesis 5.3 hint: our term at prev and the first index of that term
    // let the leader skip a whole term per round trip.
    if (prev > log_.last_index()) {
      reply.conflict_index = next_index(log_.last_index());
      reply.conflict_term = term_t{0};
    } else {
      reply.conflict_term = *log_.term_at(prev);
      reply.conflict_index = log_.first_index_of_term_at(prev);
    }
    send(from, reply);
    return;
  }

  // §5.3: an existing entry that conflicts with a new one (same index,
  // different term) goes, with all that follow; entries already present stay.
  for (std::size_t k = skip; k < m.entries.size(); ++k) {
    const auto& e = m.entries[k];
    if (e.index <= log_.last_index()) {
      if (log_.matches(e.index, e.term)) continue;
      truncate_log(e.index);
    }
    append_entry(e);
  }
  // §5.3: commitIndex = min(leaderCommit, index of last new entry).
  auto last_new = index_t{m.prev_log_index.value + m.entries.size()};
  auto commit = std::min(m.leader_commit, last_new);
  if (commit > log_.commit_index()) {
    log_.commit_to(commit);
    on_commit_advanced();
  }
  reply.success = true;
  reply.match_index = last_new;
  send(from, reply, true);  // promises the entries are durable
}

void core::append_entry(log_entry e) {
  if (e.kind == entry_kind::configuration) {
    configs_.emplace_back(e.index, *e.config);
    if (lead_) sync_progress();
  }
  log_.append(std::move(e));
}

void core::truncate_log(index_t from) {
  log_.truncate_from(from);
  // A configuration entry that is truncated no longer applies (thesis 4.1).
  while (!configs_.empty() && configs_.back().first >= from) configs_.pop_back();
}

void core::on_append_entries_reply(node_id from, const append_entries_reply& m) {
  if (!lead_) return;
  auto it = lead_->followers.find(from);
  if (it == lead_->followers.end()) return;  // ignoring: not in the configuration
  auto& pr = it->second;
  pr.acked_sequence = std::max(pr.acked_sequence, m.sequence);
  if (m.success) {
    if (m.match_index > log_.last_index()) return;  // ignoring: claims entries we never had
    pr.acknowledged(m.match_index);
    if (pr.state == progress::mode::probe) {
      pr.become_replicate();  // the logs agree up to match: pipeline from there
    } else if (pr.state == progress::mode::snapshot && pr.match >= pr.snapshot_index) {
      restart_probe(pr, next_index(pr.match));
    }
    auto match = pr.match;
    maybe_commit();
    // Committing may end our leadership (a committed configuration without us).
    if (!lead_) return;
    if (lead_->transfer_target == from && match == log_.last_index()) send(from, timeout_now{term_});
    auto& now = lead_->followers.at(from);
    send_append(from, now, false);
    // A follower whose ack came after the commit (the quorum was reached
    // without it) learns the commit now, not at the next heartbeat.
    if (now.state == progress::mode::replicate && now.commit_behind(log_.commit_index())) send_heartbeat(from, now);
  } else {
    // Rejections of messages sent before the last reset are stale.
    if (m.sequence < pr.reset_sequence || pr.state == progress::mode::snapshot) {
      confirm_reads();
      return;
    }
    // Fast backtracking (thesis 5.3): if we hold entries of the follower's
    // conflicting term, resume after our last one; otherwise skip its whole term.
    index_t next = m.conflict_index;
    if (m.conflict_term != term_t{0}) {
      auto j = log_.last_index_with_term_at_most(m.conflict_term, log_.last_index());
      if (j > log_.start_index() && log_.term_at(j) == m.conflict_term) next = next_index(j);
    }
    next = std::max(next, next_index(pr.match));
    next = std::min(next, next_index(log_.last_index()));
    if (next == index_t{0}) next = index_t{1};
    restart_probe(pr, next);
    send_append(from, pr, false);
  }
  confirm_reads();
}

void core::send_append(node_id to, progress& pr, bool allow_empty) {
  if (pr.state == progress::mode::snapshot) {
    if (!pr.snapshot_chunk_sent) send_snapshot_chunk(to, pr);
    return;
  }
  if (!pr.may_send_append(cfg_.max_inflight_messages)) return;
  if (pr.next <= log_.start_index()) {
    if (!snapshot_.data) return;  // cannot happen: the log is compacted only behind a snapshot
    // §7: the entries it needs are compacted; send the snapshot instead.
    pr.become_snapshot(snapshot_.meta.last_index);
    send_snapshot_chunk(to, pr);
    return;
  }
  bool has_entries = pr.next <= log_.last_index();
  if (!has_entries && !allow_empty) return;
  append_entries ae;
  ae.term = term_;
  ae.prev_log_index = index_t{pr.next.value - 1};
  ae.prev_log_term = *log_.term_at(ae.prev_log_index);
  if (has_entries) ae.entries = log_.slice(pr.next, cfg_.max_entries_per_message, cfg_.max_bytes_per_message);
  ae.leader_commit = log_.commit_index();
  ae.sequence = ++sequence_;
  pr.append_sent(has_entries ? ae.entries.back().index : index_t{0});
  pr.commit_sent(ae.leader_commit, has_entries ? ae.entries.back().index : ae.prev_log_index);
  send(to, std::move(ae));
}

void core::send_heartbeat(node_id to, progress& pr) {
  // An empty AppendEntries anchored at the follower's match index, which it
  // is known to hold, so it cannot fail on entries still in flight.
  auto prev_term = log_.term_at(pr.match);
  if (!prev_term) return;  // its entries are compacted; it is being sent a snapshot
  append_entries ae;
  ae.term = term_;
  ae.prev_log_index = pr.match;
  ae.prev_log_term = *prev_term;
  ae.leader_commit = log_.commit_index();
  ae.sequence = ++sequence_;
  pr.commit_sent(ae.leader_commit, pr.match);
  send(to, std::move(ae));
}

void core::send_snapshot_chunk(node_id to, progress& pr) {
  // A newer snapshot replaced the one being sent: start it over.
  if (pr.snapshot_index != snapshot_.meta.last_index) pr.become_snapshot(snapshot_.meta.last_index);
  const auto& data = *snapshot_.data;
  if (pr.snapshot_offset > data.size()) pr.snapshot_resume_at(0);  // the follower answered nonsense
  install_snapshot m;
  m.term = term_;
  m.meta = snapshot_.meta;
  m.offset = pr.snapshot_offset;
  m.data = data.substr(pr.snapshot_offset, cfg_.snapshot_chunk_bytes);
  m.total_size = data.size();
  m.done = m.offset + m.data.size() == data.size();
  pr.snapshot_chunk_sent = true;
  send(to, std::move(m));
}

void core::on_install_snapshot(node_id from, const install_snapshot& m) {
  if (role_ == raft::role::leader) return;  // ignoring: a second leader in our term cannot exist
  if (role_ != raft::role::follower || leader_ != from) {
    become_follower(term_, from);
  } else {
    election_elapsed_ = 0;
  }
  install_snapshot_reply reply{term_, 0, false, m.meta.last_index};
  if (m.meta.last_index <= log_.commit_index()) {
    // We already hold everything it covers.
    reply.done = true;
    send(from, reply, true);
    return;
  }
  if (m.total_size > cfg_.max_snapshot_bytes) return;  // ignoring: larger than we accept
  if (m.offset == 0) incoming_ = incoming_snapshot{m.meta, m.total_size, {}};
  bool same = incoming_ && incoming_->meta.last_index == m.meta.last_index &&
              incoming_->meta.last_term == m.meta.last_term && incoming_->total_size == m.total_size;
  if (!same || m.offset != incoming_->data.size() || m.offset + m.data.size() > m.total_size) {
    // Out of order: tell the leader where to resume.
    reply.next_offset = same ? incoming_->data.size() : 0;
    send(from, reply);
    return;
  }
  incoming_->data += m.data;
  reply.next_offset = incoming_->data.size();
  if (!m.done) {
    send(from, reply);
    return;
  }
  if (incoming_->data.size() != incoming_->total_size) {
    incoming_.reset();
    reply.next_offset = 0;
    send(from, reply);
    return;
  }
  // §7: install it. The log keeps what follows the snapshot's last entry if
  // it holds that entry; otherwise the snapshot replaces the whole log.
  auto meta = incoming_->meta;
  snapshot_ = snapshot_data{meta, std::make_shared<const std::string>(std::move(incoming_->data))};
  incoming_.reset();
  log_.restore(meta.last_index, meta.last_term);
  rebuild_configs();
  out_.snapshot = snapshot_;
  out_.snapshot_from_leader = true;
  out_.compact = std::make_pair(meta.last_index, meta.last_term);
  reply.done = true;
  send(from, reply, true);
}

void core::on_install_snapshot_reply(node_id from, const install_snapshot_reply& m) {
  if (!lead_) return;
  auto it = lead_->followers.find(from);
  if (it == lead_->followers.end()) return;
  auto& pr = it->second;
  if (m.done) {
    if (m.last_index > log_.last_index()) return;  // ignoring: claims entries we never had
    pr.acknowledged(m.last_index);
    restart_probe(pr, next_index(pr.match));
    maybe_commit();
    if (!lead_) return;
    send_append(from, lead_->followers.at(from), true);
    return;
  }
  if (pr.state != progress::mode::snapshot || m.last_index != pr.snapshot_index) return;  // stale
  pr.snapshot_resume_at(m.next_offset);
  send_snapshot_chunk(from, pr);
}

void core::on_timeout_now(node_id from, const timeout_now&) {
  // Thesis 3.10: the leader asks us to campaign at once, skipping pre-vote;
  // voters let our request through although they hear from a live leader.
  if (role_ != raft::role::follower || !promotable() || from != leader_) return;
  campaign(true);
}

// --- commit -----------------------------------------------------------------------

void core::maybe_commit() {
  if (!lead_) return;
  // §5.3/5.4.2: the highest index stored durably on a quorum of voters
  // commits, but only if it is of the current term; earlier entries commit
  // with it. The leader counts itself only once its own write is durable.
  auto candidate = quorum_value([&](node_id v) {
    if (v == cfg_.id) return log_.stable_index();
    auto it = lead_->followers.find(v);
    return it != lead_->followers.end() ? it->second.match : index_t{0};
  });
  if (candidate > log_.commit_index() && log_.term_at(candidate) == term_) {
    log_.commit_to(candidate);
    on_commit_advanced();
  }
}

void core::on_commit_advanced() {
  if (!lead_) return;
  lead_->commit_pending = true;
  // Thesis 6.4: reads wait until the leader has committed an entry of its term.
  if (log_.commit_index() >= lead_->term_start_index) {
    auto& waiting = lead_->reads_waiting_commit;
    while (!waiting.empty()) {
      auto id = waiting.front();
      waiting.pop_front();
      start_read(id);
    }
  }
  // Thesis 4.2.2: a leader that is not in the committed configuration steps
  // down, after handing leadership to the most caught-up voter.
  if (!configs_.empty() && configs_.back().first <= log_.commit_index() && !is_voter(cfg_.id)) {
    if (auto best = best_transfer_target()) send(*best, timeout_now{term_});
    become_follower(term_, no_node);
  }
}

// --- reads ------------------------------------------------------------------------

expected<void> core::read_index(std::uint64_t id) {
  input_scope scope{*this};
  if (!lead_) return make_error(errc::not_leader, leader_hint(leader_));
  if (log_.commit_index() < lead_->term_start_index) {
    lead_->reads_waiting_commit.push_back(id);
  } else {
    start_read(id);
  }
  return {};
}

void core::start_read(std::uint64_t id) {
  // Thesis 6.4 ReadIndex: the read index is the commit index now; the read is
  // safe once a quorum confirms we were still leader after this moment.
  auto index = log_.commit_index();
  if (quorum_agrees([&](node_id v) { return v == cfg_.id; })) {  // a lone voter is its own quorum
    out_.reads.push_back({id, index});
    return;
  }
  lead_->reads_pending.push_back({id, index, sequence_ + 1});
  lead_->heartbeat_pending = true;
}

void core::confirm_reads() {
  if (!lead_ || lead_->reads_pending.empty()) return;
  // The highest sequence answered by a quorum (the leader counts as having
  // answered everything).
  auto quorum_acked = quorum_value([&](node_id v) -> std::uint64_t {
    if (v == cfg_.id) return sequence_;
    auto it = lead_->followers.find(v);
    return it != lead_->followers.end() ? it->second.acked_sequence : 0;
  });
  auto& pending = lead_->reads_pending;
  while (!pending.empty() && pending.front().sequence <= quorum_acked) {
    out_.reads.push_back({pending.front().id, pending.front().index});
    pending.pop_front();
  }
}

void core::fail_reads() {
  for (auto id : lead_->reads_waiting_commit) out_.failed_reads.push_back(id);
  for (const auto& r : lead_->reads_pending) out_.failed_reads.push_back(r.id);
  lead_->reads_waiting_commit.clear();
  lead_->reads_pending.clear();
}

// --- proposals ----------------------------------------------------------------------

expected<entry_id> core::propose(std::string payload) {
  input_scope scope{*this};
  if (!lead_) return make_error(errc::not_leader, leader_hint(leader_));
  if (auto t = lead_->transfer_target) return make_error(errc::transferring, "to " + std::to_string(t->value));
  if (log_.uncommitted_bytes() > 0 && log_.uncommitted_bytes() + payload.size() > cfg_.max_uncommitted_bytes) {
    return make_error(errc::busy, std::to_string(log_.uncommitted_bytes()) + " bytes uncommitted");
  }
  log_entry e{term_, next_index(log_.last_index()), entry_kind::command, std::move(payload), std::nullopt};
  entry_id id{e.index, e.term};
  append_entry(std::move(e));
  lead_->broadcast_pending = true;
  maybe_commit();
  return id;
}

expected<entry_id> core::propose_membership(const membership_change& change) {
  input_scope scope{*this};
  if (!lead_) return make_error(errc::not_leader, leader_hint(leader_));
  if (auto t = lead_->transfer_target) return make_error(errc::transferring, "to " + std::to_string(t->value));
  // Thesis 4.1 (and its 2015 erratum): one change at a time, and not before
  // an entry of this term committed.
  if (log_.commit_index() < lead_->term_start_index) {
    return make_error(errc::config_change_pending, "the new leader has not committed its first entry yet");
  }
  if (!configs_.empty() && configs_.back().first > log_.commit_index()) {
    return make_error(errc::config_change_pending, "entry " + std::to_string(configs_.back().first.value) +
                                                       " is not committed yet");
  }
  auto next = current_configuration();
  auto it = std::find_if(next.servers.begin(), next.servers.end(),
                         [&](const server& s) { return s.id == change.subject.id; });
  auto id_text = std::to_string(change.subject.id.value);
  switch (change.what) {
    case membership_change::kind::add_learner:
      if (change.subject.id == no_node) return make_error(errc::invalid_argument, "server id 0");
      if (it != next.servers.end()) return make_error(errc::invalid_argument, "server " + id_text + " is already a member");
      next.servers.push_back({change.subject.id, change.subject.address, suffrage::learner});
      break;
    case membership_change::kind::promote: {
      if (it == next.servers.end() || it->role != suffrage::learner) {
        return make_error(errc::invalid_argument, "server " + id_text + " is not a learner");
      }
      // A learner votes only once its log has caught up, so that adding it
      // does not stall commits while it copies the log.
      auto pr = lead_->followers.find(change.subject.id);
      bool known = pr != lead_->followers.end();
      if (!known || pr->second.match.value + cfg_.promotion_lag_entries < log_.last_index().value) {
        return make_error(errc::not_caught_up, "server " + id_text + " is at " +
                                                   std::to_string(known ? pr->second.match.value : 0) +
                                                   ", the log at " + std::to_string(log_.last_index().value));
      }
      it->role = suffrage::voter;
      break;
    }
    case membership_change::kind::remove:
      if (it == next.servers.end()) return make_error(errc::invalid_argument, "server " + id_text + " is not a member");
      next.servers.erase(it);
      if (std::none_of(next.servers.begin(), next.servers.end(),
                       [](const server& s) { return s.role == suffrage::voter; })) {
        return make_error(errc::invalid_argument, "cannot remove the last voter");
      }
      break;
  }
  log_entry e{term_, next_index(log_.last_index()), entry_kind::configuration, {}, std::move(next)};
  entry_id id{e.index, e.term};
  append_entry(std::move(e));
  lead_->broadcast_pending = true;
  maybe_commit();
  return id;
}

// --- leadership transfer -------------------------------------------------------------

expected<void> core::transfer_leadership(node_id target) {
  input_scope scope{*this};
  if (!lead_) return make_error(errc::not_leader, leader_hint(leader_));
  if (target == cfg_.id) return {};
  if (!is_voter(target)) return make_error(errc::invalid_argument, "server " + std::to_string(target.value) + " is not a voter");
  if (lead_->transfer_target == target) return {};
  // Thesis 3.10: stop taking proposals, bring the target up to date, then
  // tell it to campaign at once.
  lead_->transfer_target = target;
  lead_->quorum_round_elapsed = 0;  // the transfer gets one election timeout
  auto& pr = lead_->followers.at(target);
  if (pr.match == log_.last_index()) {
    send(target, timeout_now{term_});
  } else {
    send_append(target, pr, false);
  }
  return {};
}

std::optional<node_id> core::best_transfer_target() const {
  if (!lead_) return std::nullopt;
  // A voter whose connection is lost would most likely miss the TimeoutNow.
  // Followers are in id order, so a strict > leaves ties to the lowest id.
  std::optional<node_id> best;
  index_t best_match;
  for (const auto& [id, pr] : lead_->followers) {
    if (!is_voter(id) || !pr.connected) continue;
    if (!best || pr.match > best_match) {
      best = id;
      best_match = pr.match;
    }
  }
  return best;
}

expected<void> core::step_down() {
  input_scope scope{*this};
  if (!lead_) return make_error(errc::not_leader, leader_hint(leader_));
  // Like a transfer (thesis 3.10) without waiting: the target campaigns at
  // once if it is caught up; otherwise an election follows the timeout.
  if (auto target = best_transfer_target()) send(*target, timeout_now{term_});
  become_follower(term_, no_node);
  return {};
}

void core::set_storage_unwritable(bool unwritable) {
  input_scope scope{*this};
  storage_unwritable_ = unwritable;
  if (!unwritable) return;
  if (role_ == raft::role::leader) (void)step_down();
  if (role_ == raft::role::candidate || role_ == raft::role::pre_candidate) become_follower(term_, no_node);
}

void core::maybe_transfer_to_preferred() {
  if (!cfg_.preferred_leader || *cfg_.preferred_leader == cfg_.id || lead_->transfer_target) return;
  if (lead_->preferred_backoff_ticks > 0 || log_.commit_index() < lead_->term_start_index) return;
  auto target = *cfg_.preferred_leader;
  auto it = lead_->followers.find(target);
  if (!is_voter(target) || it == lead_->followers.end()) return;
  // Only a healthy, caught-up preferred leader gets leadership back.
  if (!it->second.connected || !it->second.recent_active || it->second.match != log_.last_index()) return;
  (void)transfer_leadership(target);
}

// --- connection loss -------------------------------------------------------------------

int core::fast_election_delay(node_id lost_leader) const {
  // Rank among the remaining voters: the preferred leader first, then by id.
  std::vector<node_id> order;
  for (auto v : voters()) {
    if (v != lost_leader) order.push_back(v);
  }
  std::sort(order.begin(), order.end(), [&](node_id a, node_id b) {
    bool pa = cfg_.preferred_leader == a, pb = cfg_.preferred_leader == b;
    return pa != pb ? pa : a < b;
  });
  auto rank = std::find(order.begin(), order.end(), cfg_.id) - order.begin();
  return static_cast<int>(1 + rank) * cfg_.fast_election_step_ticks;
}

void core::peer_connection_lost(node_id peer) {
  input_scope scope{*this};
  if (lead_) {
    auto it = lead_->followers.find(peer);
    if (it == lead_->followers.end()) return;
    auto& pr = it->second;
    pr.connected = false;
    pr.recent_active = false;
    if (pr.state == progress::mode::replicate) restart_probe(pr, next_index(pr.match));
    // A leader cut off from a quorum knows it at once and steps down
    // (fencing), instead of waiting for the check-quorum round.
    bool quorum_connected = quorum_agrees([&](node_id v) {
      auto p = lead_->followers.find(v);
      return v == cfg_.id || (p != lead_->followers.end() && p->second.connected);
    });
    if (cfg_.check_quorum && !quorum_connected) become_follower(term_, no_node);
    return;
  }
  // The leader's process is gone: forget it (so we grant pre-votes to others
  // who saw the same) and campaign soon instead of after a full election
  // timeout. If the signal was spurious the others still hear the leader and
  // refuse our pre-vote (thesis 4.2.3), so no healthy leader is disturbed.
  if (peer != leader_ || leader_ == no_node) return;
  leader_ = no_node;
  if (promotable()) {
    election_elapsed_ = std::max(election_elapsed_, randomized_election_timeout_ - fast_election_delay(peer));
  }
}

// --- durability and snapshots --------------------------------------------------------------

void core::persisted(std::uint64_t persist_id) {
  input_scope scope{*this};
  while (!unsynced_.empty() && unsynced_.front().id <= persist_id) {
    const auto& w = unsynced_.front();
    if (w.index != index_t{0}) log_.stable_to(w.index, w.term);
    durable_term_ = std::max(durable_term_, w.state_term);
    unsynced_.pop_front();
  }
  // A candidate's own vote counts from here (become_candidate()): the only
  // hard state of its term on disk is the one voting for itself.
  if (role_ == raft::role::candidate && durable_term_ >= term_ && voted_for_ == cfg_.id && is_voter(cfg_.id)) {
    votes_granted_.insert(cfg_.id);
    if (quorum_agrees([&](node_id v) { return votes_granted_.count(v) > 0; })) become_leader();
  }
  maybe_commit();
}

snapshot_meta core::snapshot_taken(index_t index, std::shared_ptr<const std::string> data) {
  input_scope scope{*this};
  assert(index <= log_.applied_index());
  assert(index >= log_.start_index());
  snapshot_meta meta{index, *log_.term_at(index), config_at(index)};
  if (index <= snapshot_.meta.last_index) return meta;  // not newer than what we have
  snapshot_ = snapshot_data{meta, std::move(data)};
  // Keep some entries behind the snapshot for followers that lag a little;
  // compact only what is durable here (the disk must hold the log's start).
  configs_.erase(std::remove_if(configs_.begin(), configs_.end(), [&](const auto& c) { return c.first <= index; }),
                 configs_.end());
  snapshot_config_ = meta.config;
  auto keep = static_cast<std::uint64_t>(cfg_.snapshot_trailing_entries);
  auto upto = index_t{index.value > keep ? index.value - keep : 0};
  upto = std::min(upto, log_.stable_index());
  if (upto > log_.start_index()) {
    log_.compact_to(upto);
    out_.compact = std::make_pair(upto, log_.start_term());
  }
  out_.snapshot = snapshot_;
  out_.snapshot_from_leader = false;
  return meta;
}

// --- output -------------------------------------------------------------------------------

hard_state core::current_state() const {
  return hard_state{term_, voted_for_, std::max(log_.commit_index(), commit_floor_)};
}

bool core::has_ready() const {
  return !out_.messages.empty() || !out_.messages_after_persist.empty() || out_.snapshot || out_.compact ||
         !out_.reads.empty() || !out_.failed_reads.empty() || log_.has_unpersisted() ||
         log_.applied_index() < log_.commit_index() ||
         (lead_ && (lead_->broadcast_pending || lead_->heartbeat_pending || lead_->commit_pending)) ||
         current_state() != last_state_ ||
         ready::role_change{role_, term_, leader_} != last_role_;
}

ready core::take_ready() {
  input_scope scope{*this};
  if (lead_) {
    auto& lead = *lead_;
    if (lead.broadcast_pending) {
      for (auto& [id, pr] : lead.followers) send_append(id, pr, false);
    }
    if (lead.heartbeat_pending) {
      for (auto& [id, pr] : lead.followers) {
        if (is_voter(id)) send_heartbeat(id, pr);
      }
    }
    if (lead.commit_pending) {
      // Followers learn the new commit index now rather than at the next
      // heartbeat, unless a message this round already told them.
      for (auto& [id, pr] : lead.followers) {
        if (pr.state == progress::mode::replicate && pr.commit_behind(log_.commit_index())) send_heartbeat(id, pr);
      }
    }
    lead.broadcast_pending = lead.heartbeat_pending = lead.commit_pending = false;
  }
  ready r = std::move(out_);
  out_ = ready{};
  auto unpersisted = log_.take_unpersisted();
  r.truncate_from = unpersisted.truncate_from;
  r.entries = std::move(unpersisted.entries);
  auto state = current_state();
  if (state != last_state_) {
    r.state = state;
    last_state_ = state;
  }
  if (r.needs_persist() || !r.messages_after_persist.empty()) {
    unsynced_write w{++next_persist_id_, {}, {}, r.state ? r.state->term : term_t{}};
    if (!r.entries.empty()) {
      w.index = r.entries.back().index;
      w.term = r.entries.back().term;
    } else if (r.snapshot && r.snapshot_from_leader) {
      w.index = r.snapshot->meta.last_index;
      w.term = r.snapshot->meta.last_term;
    }
    r.persist_id = w.id;
    unsynced_.push_back(w);
  }
  ready::role_change now{role_, term_, leader_};
  if (now != last_role_) {
    r.role = now;
    last_role_ = now;
  }
  r.committed = log_.take_committed(cfg_.max_apply_bytes);
  return r;
}

// --- invariants ---------------------------------------------------------------------------

void core::check_invariants() const {
  assert(log_.start_index() <= log_.applied_index());
  assert(log_.applied_index() <= log_.commit_index());
  assert(log_.commit_index() <= log_.last_index());
  assert(log_.stable_index() <= log_.last_index());
  assert(log_.start_index() <= snapshot_.meta.last_index || snapshot_.meta.last_index == index_t{0});
  assert(term_ >= log_.last_term());
  assert((role_ == raft::role::leader) == (leader_ == cfg_.id));
  assert(role_ != raft::role::candidate || voted_for_ == cfg_.id);
  assert(lead_.has_value() == (role_ == raft::role::leader));
  if (lead_) {
    assert(voted_for_ == cfg_.id);
    for (const auto& [id, pr] : lead_->followers) {
      assert(pr.match < pr.next);
      assert(pr.next.value <= log_.last_index().value + 1);
      assert(pr.inflight.size() <= cfg_.max_inflight_messages);
    }
  }
}

observed_state core::observe() const {
  return observed_state{term_,
                        voted_for_,
                        leader_,
                        role_,
                        log_.commit_index(),
                        log_.applied_index(),
                        snapshot_.meta.last_index,
                        log_.start_index(),
                        durable_term_};
}

void core::after_input() {
#ifndef NDEBUG
  auto now = observe();
  if (auto broken = transition_violation(observed_, now)) {
    std::fprintf(stderr, "raft core %llu: %s\n", static_cast<unsigned long long>(cfg_.id.value), broken->c_str());
    std::abort();
  }
  observed_ = now;
#endif
}

}  // namespace conclave::raft
