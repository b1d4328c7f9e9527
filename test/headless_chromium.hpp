// Debian's chromium, headless, driven over its DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages, each ended by a NUL byte, read on
// fd 3 and written on fd 4), for tests that look at a page as a browser
// renders it and keeps running it: --dump-dom and --screenshot capture a
// page once, at its load, before a stream has delivered anything.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "test/processes.hpp"
#include "test/temp_dir.hpp"

namespace conclave::test {

class headless_chromium {
 public:
  // The chromium program on PATH, if there is one.
  static std::optional<std::string> program() {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
      auto candidate = std::filesystem::path(dir) / "chromium";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    return std::nullopt;
  }

  // Starts the browser with a profile of its own (parallel tests do not share one).
  explicit headless_chromium(const std::string& binary) {
    // A browser that died closes its end of the pipe: writing then fails
    // (EPIPE) instead of killing the test.
    ::signal(SIGPIPE, SIG_IGN);
    int to_browser[2], from_browser[2];
    if (::pipe2(to_browser, O_CLOEXEC) != 0 || ::pipe2(from_browser, O_CLOEXEC) != 0) std::abort();
    std::vector<std::string> args{binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                                  "--user-data-dir=" + (dir_ / "profile"), "about:blank"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto log = dir_ / "chromium.log";
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls here (as in fork_exec).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(127);
      int in = ::fcntl(to_browser[0], F_DUPFD, 10), out = ::fcntl(from_browser[1], F_DUPFD, 10);
      int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::dup2(in, 3);
      ::dup2(out, 4);
      ::close_range(5, ~0U, 0);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(to_browser[0]);
    ::close(from_browser[1]);
    out_ = to_browser[1];
    in_ = from_browser[0];
  }

  ~headless_chromium() {
    if (pid_ > 0) {
      send("Browser.close", nlohmann::json::object(), false);
      if (!wait_pid(pid_, std::chrono::seconds(10))) kill_pid(pid_);
    }
    ::close(out_);
    ::close(in_);
  }

  // Opens `url` in a new tab that later calls go to. False (with why()) if
  // the browser does not answer.
  bool open(const std::string& url) {
    auto target = call("Target.createTarget", {{"url", url}}, false);
    if (!target) return false;
    auto attached = call("Target.attachToTarget", {{"targetId", (*target)["targetId"]}, {"flatten", true}}, false);
    if (!attached) return false;
    session_ = (*attached)["sessionId"].get<std::string>();
    return true;
  }

  // The value of a JavaScript expression in the page (null if it throws).
  nlohmann::json evaluate(const std::string& expression) {
    auto r = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}});
    if (!r || r->contains("exceptionDetails")) return nullptr;
    return (*r)["result"].value("value", nlohmann::json());
  }

  // The page as a PNG of `width` x `height` CSS pixels.
  bool screenshot(const std::string& path, int width, int height) {
    if (!call("Emulation.setDeviceMetricsOverride",
              {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}})) {
      return false;
    }
    auto shot = call("Page.captureScreenshot", {{"format", "png"}});
    if (!shot) return false;
    std::string bytes = decode_base64((*shot)["data"].get<std::string>());
    std::ofstream(path, std::ios::binary) << bytes;
    return true;
  }

  // What went wrong last, with the browser's own output.
  std::string why() const { return why_ + "\nchromium's output:\n" + file_text(dir_ / "chromium.log"); }

 private:
  int send(const std::string& method, const nlohmann::json& params, bool in_session) {
    nlohmann::json m{{"id", ++last_id_}, {"method", method}, {"params", params}};
    if (in_session) m["sessionId"] = session_;
    auto text = m.dump();
    text.push_back('\0');
    for (std::size_t sent = 0; sent < text.size();) {
      auto n = ::write(out_, text.data() + sent, text.size() - sent);
      if (n <= 0) return -1;
      sent += static_cast<std::size_t>(n);
    }
    return last_id_;
  }

  // The result of a call, or nothing (why_ says why) after an error or 30 s.
  std::optional<nlohmann::json> call(const std::string& method, const nlohmann::json& params, bool in_session = true) {
    int id = send(method, params, in_session);
    if (id < 0) {
      why_ = method + ": the browser's pipe is closed";
      return std::nullopt;
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      for (auto end = buffer_.find('\0'); end != std::string::npos; end = buffer_.find('\0')) {
        auto message = nlohmann::json::parse(buffer_.substr(0, end), nullptr, false);
        buffer_.erase(0, end + 1);
        if (!message.is_object() || message.value("id", -1) != id) continue;  // events, earlier replies
        if (message.contains("error")) {
          why_ = method + ": " + message["error"].dump();
          return std::nullopt;
        }
        return message["result"];
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
      pollfd p{in_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        why_ = method + ": no answer from the browser";
        return std::nullopt;
      }
      char chunk[65536];
      auto n = ::read(in_, chunk, sizeof chunk);
      if (n <= 0) {
        why_ = method + ": the browser closed its pipe";
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  static std::string decode_base64(const std::string& in) {
    static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned value = 0;
    int bits = 0;
    for (char c : in) {
      auto at = alphabet.find(c);
      if (at == std::string::npos) continue;  // padding
      value = (value << 6) | static_cast<unsigned>(at);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push_back(static_cast<char>((value >> bits) & 0xff));
      }
    }
    return out;
  }

  temp_dir dir_;
  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  int last_id_ = 0;
  std::string session_;
  std::string buffer_;
  std::string why_;
};

}  // namespace conclave::test
