#include "actors/stage_trace.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace conclave::stage_trace {

namespace {

// DIR/stages-PID.bin is mapped shared, so the marks survive a kill -9 of the
// process (the benchmarks stop servers that way): a header, then records.
struct header {
  char magic[8];  // "CNCLSTG1"
  std::uint64_t node;
  std::uint64_t used;
  std::uint64_t capacity;
};
struct record {
  std::uint64_t first, last;
  std::int64_t t_ns;
  std::uint64_t what;
};
static_assert(sizeof(header) == 32 && sizeof(record) == 32);

// Enough for a minute of the 64-client load; marks beyond are dropped.
constexpr std::size_t capacity = 1 << 22;

struct recorder {
  header* head = nullptr;
  record* records = nullptr;

  recorder() {
    const char* d = std::getenv("CONCLAVE_STAGE_TRACE");
    if (!d || !*d) return;
    auto path = std::string(d) + "/stages-" + std::to_string(::getpid()) + ".bin";
    auto bytes = sizeof(header) + capacity * sizeof(record);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      std::fprintf(stderr, "CONCLAVE_STAGE_TRACE: cannot create %s; not tracing\n", path.c_str());
      if (fd >= 0) ::close(fd);
      return;
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return;
    head = static_cast<header*>(p);
    std::memcpy(head->magic, "CNCLSTG1", 8);
    head->capacity = capacity;
    records = reinterpret_cast<record*>(head + 1);
  }
};

recorder& the_recorder() {
  static recorder r;
  return r;
}

std::atomic<std::uint64_t> used{0};

}  // namespace

bool detail::on = the_recorder().records != nullptr;

const char* name(stage s) {
  static const char* const names[] = {"client_sent",     "gateway_received", "proposed",      "entries_sent",
                                      "storage_queued",  "storage_started",  "storage_done",  "persisted",
                                      "entries_received", "ack_sent",        "ack_received",  "apply_started",
                                      "applied",         "gateway_replied",  "client_received",
                                      "api_called",      "api_returned",     "entries_arrived", "ack_arrived"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<std::size_t>(stage::count));
  return names[static_cast<std::size_t>(s)];
}

std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void set_node(std::uint64_t id) {
  if (auto* h = the_recorder().head) h->node = id;
}

void mark(stage s, std::uint64_t first, std::uint64_t last, std::int64_t t_ns) {
  auto& r = the_recorder();
  if (!r.records) return;
  auto i = used.fetch_add(1, std::memory_order_relaxed);
  if (i >= capacity) return;
  r.records[i] = record{first, last, t_ns, static_cast<std::uint64_t>(s)};
  // used = max(used, i + 1): readers take the records before it.
  std::uint64_t seen = __atomic_load_n(&r.head->used, __ATOMIC_RELAXED);
  while (seen < i + 1 &&
         !__atomic_compare_exchange_n(&r.head->used, &seen, i + 1, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

}  // namespace conclave::stage_trace
