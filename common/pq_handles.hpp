#pragma once

// RAII owners of libpq's C handles (every C handle in a unique_ptr with a deleter:
// docs/architecture.md#interfaces-adapters-and-fakes), shared by the libpq adapters (the PostgreSQL
// reconciler, the store) and the test support. Header-only; include it only from targets that link
// libpq.

#include <libpq-fe.h>

#include <memory>

namespace tmaster::pq {

struct ConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct FreememDeleter {
  void operator()(char* text) const { PQfreemem(text); }
};
using Text = std::unique_ptr<char, FreememDeleter>;

struct ConninfoDeleter {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
using ConninfoPtr = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

/// Drops the server's NOTICE messages on `conn` instead of letting libpq print them to stderr.
inline void SilenceNotices(PGconn* conn) {
  PQsetNoticeProcessor(conn, [](void* /*arg*/, const char* /*message*/) {}, nullptr);
}

}  // namespace tmaster::pq
