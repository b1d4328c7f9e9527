#include "roles/status_page.hpp"

#include <httplib.h>

#include <memory>

// roles/status_page.html, embedded by roles/embed_text.py at build time.
extern const char status_page_html[];

namespace conclave {

using namespace std::chrono_literals;

http_listener::routes status_routes(status_feed& feed) {
  return [&feed](httplib::Server& s) {
    s.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(status_page_html, "text/html; charset=utf-8");
    });
    s.Get("/status.json", [&feed](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(feed.now() + "\n", "application/json");
    });
    s.Get("/status/events", [&feed](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      // The stream holds its connection (and the listener's thread for it)
      // until the client goes or the feed stops; a comment every 15 s shows
      // a dead client (the write fails) and keeps proxies from timing out.
      auto v = std::make_shared<status_feed::viewer>(feed);
      res.set_chunked_content_provider("text/event-stream", [v, &feed](std::size_t, httplib::DataSink& sink) {
        auto next = v->next(15s);
        if (feed.stopped()) {
          sink.done();
          return true;
        }
        std::string out = next ? "event: snapshot\ndata: " + *next + "\n\n" : std::string(": keep-alive\n\n");
        return sink.write(out.data(), out.size());
      });
    });
  };
}

}  // namespace conclave
