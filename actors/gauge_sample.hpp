// A number describing a state machine's applied state (members by status,
// sessions, ...), for monitoring: the Raft shell samples it about once a
// second from the state machine and its push service (actors/metrics.hpp).
#pragma once

#include <string>

namespace conclave::metrics {

struct gauge_sample {
  std::string name;  // without the conclave_ prefix
  std::string help;
  std::string label, label_value;  // label may be empty
  double value = 0;
};

}  // namespace conclave::metrics
