// Between the store's catalog rows and the backups room (docs/backups.md#the-catalog): the words
// of kinds and states agree on both sides, new ids are valid catalog ids in time order, and
// rows become retention entries.
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "controller/backups/catalog.hpp"
#include "controller/store/store.hpp"

namespace {

using tmaster::backups::BackupKind;
using tmaster::backups::BackupState;
using tmaster::backups::NewBackupId;
using tmaster::backups::ParseBackupKind;
using tmaster::backups::ParseBackupState;
using tmaster::backups::ToRetentionEntries;
using tmaster::controller::CheckBackupRecord;
using tmaster::controller::StoredBackup;

StoredBackup Row(std::string id, std::string kind, std::string state, std::int64_t created) {
  StoredBackup row;
  row.id = std::move(id);
  row.workspace = "acme";
  row.kind = std::move(kind);
  row.state = std::move(state);
  row.file = "acme/" + row.id + ".dump";
  row.sha256 = std::string(64, 'a');
  row.created_unix = created;
  return row;
}

}  // namespace

TEST_CASE("catalog: every kind and state word is one the store accepts, and parses back") {
  for (const BackupKind kind :
       {BackupKind::kScheduled, BackupKind::kManual, BackupKind::kPreMigration, BackupKind::kSafety,
        BackupKind::kFinal}) {
    const std::string word(ToString(kind));
    CAPTURE(word);
    CHECK(ParseBackupKind(word) == kind);
    CHECK_FALSE(CheckBackupRecord(Row("b1", word, "ok", 0)).has_value());
  }
  for (const BackupState state : {BackupState::kOk, BackupState::kVerified,
                                  BackupState::kVerifyFailed, BackupState::kFailed}) {
    const std::string word(ToString(state));
    CAPTURE(word);
    CHECK(ParseBackupState(word) == state);
    CHECK_FALSE(CheckBackupRecord(Row("b1", "manual", word, 0)).has_value());
  }
  CHECK_FALSE(ParseBackupKind("Scheduled").has_value());
  CHECK_FALSE(ParseBackupKind("").has_value());
  CHECK_FALSE(ParseBackupState("verify-failed").has_value());
}

TEST_CASE("catalog: a new backup's id carries the workspace and the UTC time, and is a valid id") {
  const std::string id = NewBackupId("lavanderia-express", 1796266800, "k3x9");  // 2026-12-03 03:00
  CHECK(id == "lavanderia-express-20261203T030000Z-k3x9");
  CHECK_FALSE(CheckBackupRecord(Row(id, "scheduled", "ok", 0)).has_value());
  CHECK(NewBackupId("acme", 0, "a") == "acme-19700101T000000Z-a");
  // Ids of one workspace sort by time as text.
  CHECK(NewBackupId("acme", 1796266800, "zz") < NewBackupId("acme", 1796266801, "aa"));
}

TEST_CASE("catalog: rows become retention entries; an unknown word is left out, never removed") {
  const std::vector<StoredBackup> rows = {
      Row("b1", "scheduled", "verified", 100),
      Row("b2", "pre-migration", "verifyFailed", 200),
      Row("b3", "weekly", "ok", 300),
      Row("b4", "manual", "done", 400),
  };
  const auto entries = ToRetentionEntries(rows);
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].id == "b1");
  CHECK(entries[0].kind == BackupKind::kScheduled);
  CHECK(entries[0].state == BackupState::kVerified);
  CHECK(entries[0].created_unix == 100);
  CHECK(entries[1].id == "b2");
  CHECK(entries[1].kind == BackupKind::kPreMigration);
  CHECK(entries[1].state == BackupState::kVerifyFailed);
}
