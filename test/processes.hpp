// Child processes for tests and benchmarks, without CAF: free loopback
// ports, fork+exec with output to a log file, waiting and killing by pid.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace conclave::test {

// The programs under test: from the environment (meson sets it), else the
// default build directory.
inline std::string program(const char* env_var, const char* fallback) {
  const char* env = std::getenv(env_var);
  return env ? env : fallback;
}
inline std::string conclave_binary() { return program("CONCLAVE_BIN", "build/roles/conclave"); }
inline std::string conclavectl_binary() { return program("CONCLAVECTL_BIN", "build/roles/conclavectl"); }

// A port that was free a moment ago (the kernel picks it).
// `n` distinct free ports on loopback: each stays bound until all are
// picked (a port just closed may be handed out again at once).
inline std::vector<std::uint16_t> free_ports(std::size_t n) {
  std::vector<int> held;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    held.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : held) ::close(fd);
  return ports;
}

inline std::uint16_t free_port() { return free_ports(1).front(); }

// Starts `args` (argv[0] a path) with stdout and stderr appended to
// `log_path`, in this process's environment plus `env` (NAME=VALUE each,
// replacing a variable of the same name).
inline pid_t fork_exec(std::vector<std::string> args, const std::string& log_path,
                       std::vector<std::string> env = {}) {
  // Everything the child needs is prepared before fork(): other threads
  // may hold locks, so the child only calls async-signal-safe functions.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  for (char** e = environ; *e; ++e) {
    bool replaced = false;
    for (auto& mine : env) {
      auto eq = mine.find('=');
      replaced = replaced || std::strncmp(*e, mine.c_str(), eq + 1) == 0;
    }
    if (!replaced) envp.push_back(*e);
  }
  envp.push_back(nullptr);
  const char* path = log_path.c_str();
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Dies with the process that started it (even on kill -9 of that
    // one), so an interrupted test or benchmark leaves nothing running.
    // (The signal follows the forking thread: fork from long-lived threads.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(127);
    int fd = ::open(path, O_CREAT | O_WRONLY | O_APPEND, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    // Our sockets must not live on in the child.
    ::close_range(3, ~0U, 0);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` to end: its wait status, or nothing after `timeout`.
inline std::optional<int> wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::nullopt;
}

// Sends SIGSTOP to `pid` and waits until the kernel shows it stopped, so
// that nothing it would still answer slips through. False if it never does.
inline bool freeze(pid_t pid, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  ::kill(pid, SIGSTOP);
  auto until = std::chrono::steady_clock::now() + timeout;
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  while (std::chrono::steady_clock::now() < until) {
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[512];
      auto n = std::fread(buf, 1, sizeof buf - 1, f);
      std::fclose(f);
      buf[n] = 0;
      // The state follows the command name, which ends with the last ')'.
      const char* p = std::strrchr(buf, ')');
      if (p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't')) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// The whole text of a file (a child's output), empty when it cannot be read.
inline std::string file_text(const std::string& path) {
  std::string out;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// Ends `pid` for good (also when it is stopped) and reaps it.
inline void kill_pid(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGCONT);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// A number from /proc/PID/status (e.g. "VmRSS" in KiB, "Threads"), 0 when
// the process is gone.
inline double status_number(pid_t pid, const std::string& field) {
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char line[256];
  double value = 0;
  auto prefix = field + ":";
  while (std::fgets(line, sizeof line, f)) {
    if (std::string(line).rfind(prefix, 0) == 0) value = std::strtod(line + prefix.size(), nullptr);
  }
  std::fclose(f);
  return value;
}

// A memory figure of `pid` in MiB ("VmRSS": resident now, "VmHWM": the peak
// so far), 0 when the process is gone.
inline double status_mib(pid_t pid, const std::string& field) { return status_number(pid, field) / 1024.0; }

inline double rss_mib(pid_t pid) { return status_mib(pid, "VmRSS"); }
inline double peak_rss_mib(pid_t pid) { return status_mib(pid, "VmHWM"); }
// The threads `pid` runs now, 0 when the process is gone.
inline int threads_of(pid_t pid) { return static_cast<int>(status_number(pid, "Threads")); }

// CPU time (user + system) `pid` has used so far, in seconds.
inline double cpu_seconds(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return 0;
  char buf[1024];
  auto n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  // Fields after the command name (which may hold spaces) start after ')'.
  std::string s(buf);
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  unsigned long utime = 0, stime = 0;
  // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  std::sscanf(s.c_str() + p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace conclave::test
