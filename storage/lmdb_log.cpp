#include "storage/lmdb_log.hpp"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "schema/codec.hpp"

namespace conclave::storage {
namespace {

constexpr const char* hard_state_key = "hard_state";
constexpr const char* start_key = "start";

std::string index_text(index_t i) { return std::to_string(i.value); }

// Maps an LMDB or errno code to our error codes.
error lmdb_error(int rc, const std::string& what) {
  std::string detail = what + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_MAP_FULL: return make_error(errc::map_full, detail);
    case ENOSPC:
    case EDQUOT: return make_error(errc::disk_full, detail);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return make_error(errc::corrupt, detail);
    default: return make_error(errc::io_error, detail);
  }
}

MDB_val val_of(const void* data, std::size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}

MDB_val key_of(const char* name) { return val_of(name, std::strlen(name)); }

void put_u64(unsigned char* out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}

std::uint64_t get_u64(const unsigned char* in) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | in[i];
  return v;
}

// A read-only transaction, aborted when it goes out of scope.
struct read_txn {
  MDB_txn* txn = nullptr;
  int rc = 0;
  explicit read_txn(MDB_env* env) { rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn); }
  ~read_txn() {
    if (txn) mdb_txn_abort(txn);
  }
};

struct cursor {
  MDB_cursor* cur = nullptr;
  int rc = 0;
  cursor(MDB_txn* txn, MDB_dbi dbi) { rc = mdb_cursor_open(txn, dbi, &cur); }
  ~cursor() {
    if (cur) mdb_cursor_close(cur);
  }
};

}  // namespace

struct lmdb_log::impl {
  std::string dir;
  lmdb_options options;
  MDB_env* env = nullptr;
  MDB_dbi log_db = 0;
  MDB_dbi meta_db = 0;
  int lock_fd = -1;
  std::size_t map_bytes = 0;

  ~impl() {
    if (env) mdb_env_close(env);
    if (lock_fd >= 0) ::close(lock_fd);
  }

  // Doubles the map, up to the cap. Precondition: no transaction is open.
  expected<void> grow() {
    if (map_bytes >= options.max_map_bytes) {
      return make_error(errc::map_full, dir + ": map is " + std::to_string(map_bytes) +
                                            " bytes, the configured cap (raise max_map_bytes)");
    }
    auto next = std::min(options.max_map_bytes, map_bytes * 2);
    if (int rc = mdb_env_set_mapsize(env, next); rc != 0) return lmdb_error(rc, dir + ": grow map");
    map_bytes = next;
    return {};
  }

  std::size_t free_bytes() const {
    struct statvfs s {};
    if (::statvfs(dir.c_str(), &s) != 0) return SIZE_MAX;
    return static_cast<std::size_t>(s.f_bavail) * s.f_frsize;
  }
  bool low_on_space() const { return free_bytes() < (1u << 20); }

  // Runs `body(txn)` (returning an LMDB code) in a write transaction and
  // commits it, growing the map and starting over when it is full. A failed
  // transaction is aborted whole, so nothing of it reaches the disk.
  template <class F>
  expected<void> write_txn(const char* what, F&& body) {
    for (;;) {
      MDB_txn* txn = nullptr;
      if (int rc = mdb_txn_begin(env, nullptr, 0, &txn); rc != 0) {
        return lmdb_error(rc, dir + ": begin " + what);
      }
      int rc = body(txn);
      if (rc == 0) {
        rc = mdb_txn_commit(txn);  // frees txn, also on failure
      } else {
        mdb_txn_abort(txn);
      }
      if (rc == MDB_MAP_FULL) {
        if (auto grown = grow(); !grown) return grown;
        continue;
      }
      if (rc == EIO && low_on_space()) {
        // LMDB reports a write cut short by a full file system as EIO; with
        // no room left that is the disk filling up, not a failing device.
        return make_error(errc::disk_full, dir + ": " + what + ": I/O error with " + std::to_string(free_bytes()) +
                                               " bytes left on the file system (taken as a full disk)");
      }
      if (rc != 0) return lmdb_error(rc, dir + ": " + what);
      return {};
    }
  }

  int put_hard_state(MDB_txn* txn, const hard_state& s) {
    unsigned char buf[24];
    put_u64(buf, s.term.value);
    put_u64(buf + 8, s.voted_for.value);
    put_u64(buf + 16, s.commit_index.value);
    auto key = key_of(hard_state_key);
    auto val = val_of(buf, sizeof buf);
    return mdb_put(txn, meta_db, &key, &val, 0);
  }

  int put_start(MDB_txn* txn, index_t index, term_t term) {
    unsigned char buf[16];
    put_u64(buf, index.value);
    put_u64(buf + 8, term.value);
    auto key = key_of(start_key);
    auto val = val_of(buf, sizeof buf);
    return mdb_put(txn, meta_db, &key, &val, 0);
  }

  // Deletes every log key >= from (when `suffix`) or <= upto (otherwise).
  int delete_keys(MDB_txn* txn, bool suffix, std::uint64_t bound) {
    cursor c(txn, log_db);
    if (c.rc != 0) return c.rc;
    MDB_val k, v;
    std::uint64_t start = suffix ? bound : 0;
    k = val_of(&start, sizeof start);
    int rc = suffix ? mdb_cursor_get(c.cur, &k, &v, MDB_SET_RANGE)
                    : mdb_cursor_get(c.cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
      std::uint64_t key;
      std::memcpy(&key, k.mv_data, sizeof key);
      if (!suffix && key > bound) break;
      if ((rc = mdb_cursor_del(c.cur, 0)) != 0) return rc;
      rc = mdb_cursor_get(c.cur, &k, &v, MDB_NEXT);  // after a delete: the following key
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
  }

  expected<log_entry> decode(const MDB_val& k, const MDB_val& v) const {
    std::uint64_t key;
    std::memcpy(&key, k.mv_data, sizeof key);
    auto e = wire::decode_entry({static_cast<const char*>(v.mv_data), v.mv_size});
    if (!e) return make_error(errc::corrupt, dir + ": entry " + std::to_string(key) + ": " + e.error().message());
    if (e->index.value != key || e->term == term_t{0}) {
      return make_error(errc::corrupt, dir + ": entry stored at " + std::to_string(key) +
                                           " claims index " + index_text(e->index) + ", term " +
                                           std::to_string(e->term.value));
    }
    return e;
  }
};

lmdb_log::lmdb_log(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

lmdb_log::~lmdb_log() = default;

expected<std::unique_ptr<lmdb_log>> lmdb_log::open(const std::string& dir, const lmdb_options& options) {
  if (options.initial_map_bytes == 0 || options.max_map_bytes < options.initial_map_bytes) {
    return make_error(errc::invalid_argument, "lmdb_options: need 0 < initial_map_bytes <= max_map_bytes");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(errc::io_error, dir + ": create directory: " + ec.message());

  auto p = std::make_unique<impl>();
  p->dir = dir;
  p->options = options;

  auto lock_path = dir + "/LOCK";
  p->lock_fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (p->lock_fd < 0) return make_error(errc::io_error, lock_path + ": " + std::strerror(errno));
  if (::flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return make_error(errc::io_error, dir + ": in use by another process or handle (" + lock_path +
                                          " is locked): " + std::strerror(errno));
  }

  if (int rc = mdb_env_create(&p->env); rc != 0) return lmdb_error(rc, dir + ": create environment");
  mdb_env_set_maxdbs(p->env, 2);
  mdb_env_set_mapsize(p->env, options.initial_map_bytes);
  unsigned flags = MDB_NOTLS | (options.durable ? 0 : MDB_NOSYNC);
  if (int rc = mdb_env_open(p->env, dir.c_str(), flags, 0644); rc != 0) {
    return lmdb_error(rc, dir + ": open environment");
  }
  MDB_envinfo info;
  mdb_env_info(p->env, &info);
  p->map_bytes = info.me_mapsize;

  // Open (creating) both databases once; their handles stay valid.
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(p->env, nullptr, 0, &txn); rc != 0) return lmdb_error(rc, dir + ": begin open");
  int rc = mdb_dbi_open(txn, "log", MDB_CREATE | MDB_INTEGERKEY, &p->log_db);
  if (rc == 0) rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &p->meta_db);
  if (rc == 0) {
    rc = mdb_txn_commit(txn);
  } else {
    mdb_txn_abort(txn);
  }
  if (rc != 0) return lmdb_error(rc, dir + ": open databases");

  std::unique_ptr<lmdb_log> log(new lmdb_log(std::move(p)));
  auto& i = *log->impl_;

  read_txn r(i.env);
  if (r.rc != 0) return lmdb_error(r.rc, dir + ": begin read");
  MDB_val k = key_of(hard_state_key), v;
  if ((rc = mdb_get(r.txn, i.meta_db, &k, &v)) == 0) {
    if (v.mv_size != 24) return make_error(errc::corrupt, dir + ": hard state record of " + std::to_string(v.mv_size) + " bytes");
    auto* b = static_cast<const unsigned char*>(v.mv_data);
    log->state_ = hard_state{term_t{get_u64(b)}, raft::node_id{get_u64(b + 8)}, index_t{get_u64(b + 16)}};
  } else if (rc != MDB_NOTFOUND) {
    return lmdb_error(rc, dir + ": read hard state");
  }
  k = key_of(start_key);
  if ((rc = mdb_get(r.txn, i.meta_db, &k, &v)) == 0) {
    if (v.mv_size != 16) return make_error(errc::corrupt, dir + ": start record of " + std::to_string(v.mv_size) + " bytes");
    auto* b = static_cast<const unsigned char*>(v.mv_data);
    log->start_index_ = index_t{get_u64(b)};
    log->start_term_ = term_t{get_u64(b + 8)};
  } else if (rc != MDB_NOTFOUND) {
    return lmdb_error(rc, dir + ": read start");
  }
  cursor c(r.txn, i.log_db);
  if (c.rc != 0) return lmdb_error(c.rc, dir + ": open cursor");
  log->last_index_ = log->start_index_;
  if ((rc = mdb_cursor_get(c.cur, &k, &v, MDB_LAST)) == 0) {
    std::uint64_t last;
    std::memcpy(&last, k.mv_data, sizeof last);
    log->last_index_ = index_t{last};
    // The log must continue its start without a gap.
    if ((rc = mdb_cursor_get(c.cur, &k, &v, MDB_FIRST)) != 0) return lmdb_error(rc, dir + ": read first");
    std::uint64_t first;
    std::memcpy(&first, k.mv_data, sizeof first);
    if (first != log->start_index_.value + 1 || last < first) {
      return make_error(errc::corrupt, dir + ": log starts at " + std::to_string(first) +
                                           " but its start record says " + index_text(log->start_index_));
    }
  } else if (rc != MDB_NOTFOUND) {
    return lmdb_error(rc, dir + ": read last");
  }
  return log;
}

std::size_t lmdb_log::map_bytes() const { return impl_->map_bytes; }

expected<void> lmdb_log::write(const write_batch& batch) {
  if (auto ok = validate(batch, *this); !ok) return ok;
  // Encode outside the transaction; retries after growing reuse the bytes.
  std::vector<std::string> values;
  values.reserve(batch.entries.size());
  for (const auto& e : batch.entries) values.push_back(wire::encode_entry(e));

  auto ok = impl_->write_txn("append", [&](MDB_txn* txn) {
    int rc = 0;
    if (batch.truncate_from && *batch.truncate_from <= last_index_) {
      if ((rc = impl_->delete_keys(txn, true, batch.truncate_from->value)) != 0) return rc;
    }
    for (std::size_t n = 0; n < values.size(); ++n) {
      std::uint64_t key = batch.entries[n].index.value;
      MDB_val k = val_of(&key, sizeof key);
      MDB_val v = val_of(values[n].data(), values[n].size());
      // Keys only grow, so MDB_APPEND skips the tree search.
      if ((rc = mdb_put(txn, impl_->log_db, &k, &v, MDB_APPEND)) != 0) return rc;
    }
    if (batch.state) rc = impl_->put_hard_state(txn, *batch.state);
    return rc;
  });
  if (!ok) return ok;

  if (batch.truncate_from && *batch.truncate_from <= last_index_) {
    last_index_ = index_t{batch.truncate_from->value - 1};
  }
  if (!batch.entries.empty()) last_index_ = batch.entries.back().index;
  if (batch.state) state_ = *batch.state;
  return {};
}

expected<void> lmdb_log::compact(index_t index, term_t term) {
  if (index <= start_index_) return {};
  auto local = this->term(index);
  if (!local && local.error().code == errc::corrupt) return local.error();
  bool keep_suffix = local && *local == term;
  auto state = state_;
  if (state.commit_index < index) state.commit_index = index;

  auto ok = impl_->write_txn("compact", [&](MDB_txn* txn) {
    // Raft §7: keep the entries after the snapshot only if the log holds the
    // snapshot's last entry; otherwise the snapshot replaces the whole log.
    int rc = keep_suffix ? impl_->delete_keys(txn, false, index.value)
                         : impl_->delete_keys(txn, true, 0);
    if (rc == 0) rc = impl_->put_start(txn, index, term);
    if (rc == 0) rc = impl_->put_hard_state(txn, state);
    return rc;
  });
  if (!ok) return ok;
  start_index_ = index;
  start_term_ = term;
  if (!keep_suffix) last_index_ = index;
  state_ = state;
  return {};
}

expected<void> lmdb_log::check_range(index_t index) const {
  if (index <= start_index_) {
    return make_error(errc::compacted, "index " + index_text(index) + " <= start " + index_text(start_index_));
  }
  if (index > last_index_) {
    return make_error(errc::unavailable, "index " + index_text(index) + " > last " + index_text(last_index_));
  }
  return {};
}

expected<term_t> lmdb_log::term(index_t index) const {
  if (index == start_index_) return start_term_;
  auto e = entry(index);
  if (!e) return e.error();
  return e->term;
}

expected<log_entry> lmdb_log::entry(index_t index) const {
  if (auto ok = check_range(index); !ok) return ok.error();
  read_txn r(impl_->env);
  if (r.rc != 0) return lmdb_error(r.rc, impl_->dir + ": begin read");
  std::uint64_t key = index.value;
  MDB_val k = val_of(&key, sizeof key), v;
  if (int rc = mdb_get(r.txn, impl_->log_db, &k, &v); rc != 0) {
    if (rc == MDB_NOTFOUND) return make_error(errc::corrupt, impl_->dir + ": entry " + index_text(index) + " missing");
    return lmdb_error(rc, impl_->dir + ": read entry " + index_text(index));
  }
  return impl_->decode(k, v);
}

expected<std::vector<log_entry>> lmdb_log::entries(index_t from, std::size_t max_count,
                                                   std::size_t max_bytes) const {
  if (auto ok = check_range(from); !ok) return ok.error();
  read_txn r(impl_->env);
  if (r.rc != 0) return lmdb_error(r.rc, impl_->dir + ": begin read");
  cursor c(r.txn, impl_->log_db);
  if (c.rc != 0) return lmdb_error(c.rc, impl_->dir + ": open cursor");
  std::vector<log_entry> out;
  std::size_t bytes = 0;
  std::uint64_t key = from.value;
  MDB_val k = val_of(&key, sizeof key), v;
  int rc = mdb_cursor_get(c.cur, &k, &v, MDB_SET_KEY);
  auto expect = from;
  while (rc == 0 && out.size() < max_count) {
    auto e = impl_->decode(k, v);
    if (!e) return e.error();
    if (e->index != expect) {
      return make_error(errc::corrupt, impl_->dir + ": gap in log at " + index_text(expect));
    }
    if (!out.empty() && bytes + e->payload.size() > max_bytes) break;
    bytes += e->payload.size();
    out.push_back(std::move(*e));
    expect = index_t{expect.value + 1};
    rc = mdb_cursor_get(c.cur, &k, &v, MDB_NEXT);
  }
  if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_error(rc, impl_->dir + ": read entries");
  if (out.empty() && max_count > 0) {
    return make_error(errc::corrupt, impl_->dir + ": entry " + index_text(from) + " missing");
  }
  return out;
}

}  // namespace conclave::storage
