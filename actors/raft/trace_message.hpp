// A Raft message's place on the write path (actors/stage_trace.hpp): the
// entries an AppendEntries carries, or what a successful reply acknowledges
// (everything up to its match index).
#pragma once

#include <cstdint>
#include <variant>

#include "actors/stage_trace.hpp"
#include "schema/raft_message.hpp"

namespace conclave::raft {

inline void trace_message(const message& m, stage_trace::stage entries, stage_trace::stage acks, std::int64_t t_ns) {
  if (auto* a = std::get_if<append_entries>(&m.body); a && !a->entries.empty()) {
    stage_trace::mark(entries, a->entries.front().index.value, a->entries.back().index.value, t_ns);
  } else if (auto* r = std::get_if<append_entries_reply>(&m.body); r && r->success) {
    stage_trace::mark(acks, 0, r->match_index.value, t_ns);
  }
}

}  // namespace conclave::raft
