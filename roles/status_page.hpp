// The status page on a master's HTTP listener (http-listen):
//   GET /               the page (roles/status_page.html): updates itself from /status/events
//   GET /status.json    one snapshot (roles/status_snapshot.hpp), built now
//   GET /status/events  Server-Sent Events: each snapshot as it changes
//                       ("event: snapshot", one JSON line of data), the current one first
#pragma once

#include "roles/http_listener.hpp"
#include "roles/status_feed.hpp"

namespace conclave {

// The handlers for `feed`, which must outlive the listener (stop it first:
// its streams end).
http_listener::routes status_routes(status_feed& feed);

}  // namespace conclave
