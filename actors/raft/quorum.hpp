// The quorum rule, written once (etcd quorum/majority.go, LogCabin quorumMin).
// The core uses it for the commit index (§5.3), ReadIndex confirmation
// (thesis 6.4), check-quorum (thesis 6.2) and counting votes (§5.2).
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

namespace conclave::raft {

// Given one value per voter, the largest value that a majority of the voters
// have reached: with n voters, the (n/2 + 1)-th largest. T{} with no voters.
template <class T>
T majority_value(std::vector<T> per_voter) {
  if (per_voter.empty()) return T{};
  auto kth = per_voter.begin() + static_cast<std::ptrdiff_t>(per_voter.size() / 2);
  std::nth_element(per_voter.begin(), kth, per_voter.end(), std::greater<>());
  return *kth;
}

}  // namespace conclave::raft
