// A product's revision (docs/rollouts.md#revisions): what the product hands a workspace, reduced to
// a digest, and the rule that a new revision's migrations extend the previous one's. Pure.
#pragma once

#include <string>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::rollouts {

/// One migration file as a revision sees it.
struct MigrationRef {
  std::string version;   ///< `0003`
  std::string file;      ///< `0003_add_invoices.sql`
  std::string checksum;  ///< hex SHA-256 of its bytes
};

/// What a product hands a workspace. Anything else of the product (display name, labels, modes,
/// the rollout policy itself) makes no revision.
struct RevisionInputs {
  std::string version;        ///< spec.defaultVersion
  std::string image;          ///< spec.image
  std::string template_text;  ///< the stack template's bytes; empty: none
  std::vector<MigrationRef> migrations;  ///< in version order
  std::vector<std::string> extensions;   ///< in any order (a set)
};

/// The revision's digest: lower-case hex SHA-256 over the inputs in a fixed, length-prefixed
/// encoding (so no two different inputs share an encoding), extensions sorted and deduplicated.
std::string RevisionDigest(const RevisionInputs& inputs);

/// The revision as the store keeps it (tm_product_revisions.spec_json): every input, so that a
/// workspace pinned to it can be reconciled from it later (docs/rollouts.md#revisions).
std::string RevisionSpecJson(const RevisionInputs& inputs);
/// RevisionSpecJson's text read back; Stalled "CorruptRevision" naming the field otherwise.
Outcome<RevisionInputs> RevisionInputsFromJson(const std::string& json);

/// Whether `next`'s migrations extend `previous`'s: the same files with the same checksums, in
/// the same order, and new ones only after the last (numbered above it). Otherwise Stalled
/// "RolloutRefused" naming the first file that breaks the rule and how (edited: both checksums'
/// first 12 hex; removed; renamed; out of order: numbered below the previous revision's last).
Status CheckMigrationsExtend(const std::vector<MigrationRef>& previous,
                             const std::vector<MigrationRef>& next);

/// The migrations of a revision whose last applied version is `last_version`: the prefix of
/// `files` up to and including it (empty `last_version`: none). Used to reconcile a workspace
/// pinned to an older revision from the product's current files.
std::vector<MigrationRef> MigrationsUpTo(const std::vector<MigrationRef>& files,
                                         const std::string& last_version);

}  // namespace tmaster::rollouts
