// How much a log line matters (actors/log.hpp), apart from the logging itself
// so that CAF-free code (the Raft driver) can name it.
#pragma once

namespace conclave {

// info: what happened; warning: something an operator should look at, the
// process carries on; error: a failure, the process (or the part named) stops.
enum class log_level { info, warning, error };

}  // namespace conclave
