#include <algorithm>
#include <utility>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// The records beside the workspaces: each source's status, the events, the webhook deliveries,
// the stack ledger.

namespace tmaster::controller::pqstore {
namespace {

// 0 means "never": NULL in the table, 0 again when read.
constexpr std::string_view kPutSourceStatus =
    "INSERT INTO tm_sources AS s (name, kind, revision, ready, reason, message, last_sync,"
    " last_attempt) VALUES ($1, $2, $3, $4::boolean, $5, $6,"
    " CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::bigint) END,"
    " CASE WHEN $8::bigint = 0 THEN NULL ELSE to_timestamp($8::bigint) END)"
    " ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, revision = EXCLUDED.revision,"
    " ready = EXCLUDED.ready, reason = EXCLUDED.reason, message = EXCLUDED.message,"
    " last_sync = EXCLUDED.last_sync, last_attempt = EXCLUDED.last_attempt, updated_at = now()";
constexpr std::string_view kListSourceStatuses =
    "SELECT name, kind, revision, ready, reason, message,"
    " coalesce(extract(epoch FROM last_sync)::bigint, 0),"
    " coalesce(extract(epoch FROM last_attempt)::bigint, 0)"
    " FROM tm_sources ORDER BY name COLLATE \"C\"";
constexpr std::string_view kAppendEvent =
    "INSERT INTO tm_events (workspace, type, reason, message, at) VALUES ($1, $2, $3, $4,"
    " CASE WHEN $5::bigint = 0 THEN now() ELSE to_timestamp($5::bigint) END) RETURNING id";
constexpr std::string_view kEventColumns =
    "SELECT id, workspace, type, reason, message, extract(epoch FROM at)::bigint FROM tm_events";
constexpr std::string_view kRecordDelivery =
    "INSERT INTO tm_webhook_deliveries (provider, verdict, branch, revision, received_at)"
    " VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint = 0 THEN now()"
    " ELSE to_timestamp($5::bigint) END) RETURNING id";
// The ring of rejected deliveries is kept at the insert, in the same round trip: every id at
// most `$6` below the new one is older than the newest $6 deliveries, so at most $6 rejected rows
// stay. The primary key serves the range.
constexpr std::string_view kRecordRejectedDelivery =
    "WITH added AS (INSERT INTO tm_webhook_deliveries (provider, verdict, branch, revision,"
    " received_at) VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint = 0 THEN now()"
    " ELSE to_timestamp($5::bigint) END) RETURNING id),"
    " dropped AS (DELETE FROM tm_webhook_deliveries"
    "  WHERE verdict IN ('bad_signature', 'missing_signature', 'too_large')"
    "  AND id <= (SELECT id FROM added) - $6::bigint)"
    " SELECT id FROM added";
// Both statements in one snapshot: the age cut and the count cut (the newest $2 of the rows the
// age keeps) take disjoint rows of the same snapshot, so each removed row counts once.
constexpr std::string_view kPruneEvents =
    "WITH old AS (DELETE FROM tm_events WHERE at < now() - make_interval(secs => $1::bigint)"
    "  RETURNING 1),"
    " over AS (DELETE FROM tm_events WHERE at >= now() - make_interval(secs => $1::bigint)"
    "  AND id <= (SELECT id FROM tm_events"
    "  WHERE at >= now() - make_interval(secs => $1::bigint) ORDER BY id DESC"
    "  OFFSET $2::bigint LIMIT 1) RETURNING 1)"
    " SELECT (SELECT count(*) FROM old) + (SELECT count(*) FROM over)";
constexpr std::string_view kPruneDeliveries =
    "WITH old AS (DELETE FROM tm_webhook_deliveries"
    "  WHERE received_at < now() - make_interval(secs => $1::bigint) RETURNING 1),"
    " over AS (DELETE FROM tm_webhook_deliveries"
    "  WHERE received_at >= now() - make_interval(secs => $1::bigint)"
    "  AND id <= (SELECT id FROM tm_webhook_deliveries"
    "  WHERE received_at >= now() - make_interval(secs => $1::bigint) ORDER BY id DESC"
    "  OFFSET $2::bigint LIMIT 1) RETURNING 1)"
    " SELECT (SELECT count(*) FROM old) + (SELECT count(*) FROM over)";
constexpr std::string_view kListDeliveries =
    "SELECT id, provider, verdict, branch, revision, extract(epoch FROM received_at)::bigint"
    " FROM tm_webhook_deliveries ORDER BY id DESC LIMIT $1::bigint";

constexpr std::string_view kListStackLedger =
    "SELECT workspace, backend, stack_id, update_date, file_digest FROM tm_stack_ledger"
    " WHERE backend = $1 ORDER BY workspace COLLATE \"C\"";
constexpr std::string_view kPutStackLedger =
    "INSERT INTO tm_stack_ledger (workspace, backend, stack_id, update_date, file_digest)"
    " VALUES ($1, $2, $3::bigint, $4::bigint, $5)"
    " ON CONFLICT (workspace) DO UPDATE SET backend = EXCLUDED.backend,"
    " stack_id = EXCLUDED.stack_id, update_date = EXCLUDED.update_date,"
    " file_digest = EXCLUDED.file_digest, updated_at = now()";
constexpr std::string_view kEraseStackLedger = "DELETE FROM tm_stack_ledger WHERE workspace = $1";

/// A row of kListSourceStatuses.
Outcome<SourceStatus> SourceStatusAt(PGresult* res, int row) {
  SourceStatus status;
  status.name = PQgetvalue(res, row, 0);
  status.kind = PQgetvalue(res, row, 1);
  status.revision = PQgetvalue(res, row, 2);
  status.ready = std::string_view(PQgetvalue(res, row, 3)) == "t";
  status.reason = PQgetvalue(res, row, 4);
  status.message = PQgetvalue(res, row, 5);
  auto last_sync = ParseInt(PQgetvalue(res, row, 6));
  auto last_attempt = ParseInt(PQgetvalue(res, row, 7));
  if (!last_sync || !last_attempt) return BadValue("tm_sources");
  status.last_sync_unix = *last_sync;
  status.last_attempt_unix = *last_attempt;
  return status;
}

// The row readers (SourceStatusAt, EventAt, DeliveryAt, and those of store_libpq_workspaces.cpp)
// look alike because the tables do (an id, some text, a time): one reader per table keeps each
// column index next to the statement that selects it.

/// A row of kEventColumns.
Outcome<Event> EventAt(PGresult* res, int row) {
  auto id = ParseInt(PQgetvalue(res, row, 0));
  auto at = ParseInt(PQgetvalue(res, row, 5));
  if (!id || !at) return BadValue("tm_events");
  Event event;
  event.id = *id;
  event.workspace = PQgetvalue(res, row, 1);
  event.type = PQgetvalue(res, row, 2);
  event.reason = PQgetvalue(res, row, 3);
  event.message = PQgetvalue(res, row, 4);
  event.at_unix = *at;
  return event;
}

/// A row of kListDeliveries.
Outcome<WebhookDelivery> DeliveryAt(PGresult* res, int row) {
  auto id = ParseInt(PQgetvalue(res, row, 0));
  auto at = ParseInt(PQgetvalue(res, row, 5));
  if (!id || !at) return BadValue("tm_webhook_deliveries");
  WebhookDelivery delivery;
  delivery.id = *id;
  delivery.provider = PQgetvalue(res, row, 1);
  delivery.verdict = PQgetvalue(res, row, 2);
  delivery.branch = PQgetvalue(res, row, 3);
  delivery.revision = PQgetvalue(res, row, 4);
  delivery.received_at_unix = *at;
  return delivery;
}

/// A row of kListStackLedger.
Outcome<StackLedgerRow> StackLedgerRowAt(PGresult* res, int row) {
  auto id = ParseInt(PQgetvalue(res, row, 2));
  auto update_date = ParseInt(PQgetvalue(res, row, 3));
  if (!id || !update_date) return BadValue("tm_stack_ledger");
  StackLedgerRow out;
  out.workspace = PQgetvalue(res, row, 0);
  out.backend = PQgetvalue(res, row, 1);
  out.stack_id = *id;
  out.update_date = *update_date;
  out.file_digest = PQgetvalue(res, row, 4);
  return out;
}

}  // namespace

Outcome<Done> LibpqStore::PutSourceStatus(const SourceStatus& status) {
  return Run("store status of source " + Quoted(status.name), [&](PGconn* conn) -> Outcome<Done> {
    auto result = Exec(conn, kPutSourceStatus,
                       {status.name, status.kind, status.revision, status.ready ? "true" : "false",
                        status.reason, status.message, std::to_string(status.last_sync_unix),
                        std::to_string(status.last_attempt_unix)});
    if (!result) return result.failure();
    return Done{};
  });
}

Outcome<std::vector<SourceStatus>> LibpqStore::ListSourceStatuses() {
  return Run("list source statuses", [&](PGconn* conn) -> Outcome<std::vector<SourceStatus>> {
    auto result = Exec(conn, kListSourceStatuses, {});
    if (!result) return result.failure();
    return ReadRows<SourceStatus>(result->get(), SourceStatusAt);
  });
}

Outcome<std::int64_t> LibpqStore::AppendEvent(const Event& event) {
  return Run("append event for workspace " + Quoted(event.workspace),
             [&](PGconn* conn) -> Outcome<std::int64_t> {
               auto result = Exec(conn, kAppendEvent,
                                  {event.workspace, event.type, event.reason, event.message,
                                   std::to_string(event.at_unix)});
               if (!result) return result.failure();
               return IdOf(result->get());
             });
}

Outcome<std::vector<Event>> LibpqStore::ListEvents(const std::optional<std::string>& workspace,
                                                   std::int64_t limit) {
  return Run("list events", [&](PGconn* conn) -> Outcome<std::vector<Event>> {
    std::string sql(kEventColumns);
    std::vector<std::string> params = {std::to_string(limit)};
    if (workspace) {
      sql += " WHERE workspace = $2";
      params.push_back(*workspace);
    }
    sql += " ORDER BY id DESC LIMIT $1::bigint";
    auto result = Exec(conn, sql, params);
    if (!result) return result.failure();
    return ReadRows<Event>(result->get(), EventAt);
  });
}

Outcome<std::int64_t> LibpqStore::RecordDelivery(const WebhookDelivery& delivery) {
  return Run("record webhook delivery", [&](PGconn* conn) -> Outcome<std::int64_t> {
    auto result =
        IsRejectedDelivery(delivery.verdict)
            ? Exec(conn, kRecordRejectedDelivery,
                   {delivery.provider, delivery.verdict, delivery.branch, delivery.revision,
                    std::to_string(delivery.received_at_unix),
                    std::to_string(std::max<std::int64_t>(retention_.rejected_deliveries, 1))})
            : Exec(conn, kRecordDelivery,
                   {delivery.provider, delivery.verdict, delivery.branch, delivery.revision,
                    std::to_string(delivery.received_at_unix)});
    if (!result) return result.failure();
    return IdOf(result->get());
  });
}

Outcome<std::vector<WebhookDelivery>> LibpqStore::ListDeliveries(std::int64_t limit) {
  return Run("list webhook deliveries", [&](PGconn* conn) -> Outcome<std::vector<WebhookDelivery>> {
    auto result = Exec(conn, kListDeliveries, {std::to_string(limit)});
    if (!result) return result.failure();
    return ReadRows<WebhookDelivery>(result->get(), DeliveryAt);
  });
}

Outcome<std::vector<StackLedgerRow>> LibpqStore::ListStackLedger(const std::string& backend) {
  return Run("list stack ledger", [&](PGconn* conn) -> Outcome<std::vector<StackLedgerRow>> {
    auto result = Exec(conn, kListStackLedger, {backend});
    if (!result) return result.failure();
    return ReadRows<StackLedgerRow>(result->get(), StackLedgerRowAt);
  });
}

Outcome<Done> LibpqStore::PutStackLedger(const StackLedgerRow& row) {
  if (std::optional<Failure> bad = CheckStackLedgerRow(row)) return *bad;
  return Run("store stack ledger of workspace " + Quoted(row.workspace),
             [&](PGconn* conn) -> Outcome<Done> {
               auto result = Exec(conn, kPutStackLedger,
                                  {row.workspace, row.backend, std::to_string(row.stack_id),
                                   std::to_string(row.update_date), row.file_digest});
               if (!result) return result.failure();
               return Done{};
             });
}

Outcome<bool> LibpqStore::EraseStackLedger(const std::string& workspace) {
  return Run("erase stack ledger of workspace " + Quoted(workspace),
             [&](PGconn* conn) -> Outcome<bool> {
               auto result = Exec(conn, kEraseStackLedger, {workspace});
               if (!result) return result.failure();
               return std::string_view(PQcmdTuples(result->get())) != "0";
             });
}

Outcome<Pruned> LibpqStore::Prune() {
  return Run("prune events and webhook deliveries", [&](PGconn* conn) -> Outcome<Pruned> {
    Pruned pruned;
    auto events = Exec(conn, kPruneEvents,
                       {std::to_string(retention_.events_max_age.count()),
                        std::to_string(std::max<std::int64_t>(retention_.events_max_count, 0))});
    if (!events) return events.failure();
    auto deliveries =
        Exec(conn, kPruneDeliveries,
             {std::to_string(retention_.deliveries_max_age.count()),
              std::to_string(std::max<std::int64_t>(retention_.deliveries_max_count, 0))});
    if (!deliveries) return deliveries.failure();
    auto count = [](PGresult* res) { return ParseInt(PQgetvalue(res, 0, 0)).value_or(0); };
    pruned.events = count(events->get());
    pruned.deliveries = count(deliveries->get());
    if (auto sessions = PruneSessions(conn, connector_, pruned); !sessions) {
      return sessions.failure();
    }
    return pruned;
  });
}

}  // namespace tmaster::controller::pqstore
