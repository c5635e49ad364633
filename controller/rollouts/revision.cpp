#include "controller/rollouts/revision.hpp"

#include <algorithm>
#include <cstddef>

#include "common/crypto.hpp"

namespace tmaster::rollouts {
namespace {

// `<length>:<bytes>;`: an encoding in which no field can pass for another.
void Field(std::string& out, std::string_view value) {
  out += std::to_string(value.size());
  out += ':';
  out.append(value);
  out += ';';
}

std::string Short(const std::string& checksum) { return checksum.substr(0, 12); }

}  // namespace

std::string RevisionDigest(const RevisionInputs& inputs) {
  std::string encoded = "tenant-master-revision-v1;";
  Field(encoded, inputs.version);
  Field(encoded, inputs.image);
  Field(encoded, inputs.template_text);
  Field(encoded, std::to_string(inputs.migrations.size()));
  for (const MigrationRef& migration : inputs.migrations) {
    Field(encoded, migration.version);
    Field(encoded, migration.file);
    Field(encoded, migration.checksum);
  }
  std::vector<std::string> extensions = inputs.extensions;
  std::sort(extensions.begin(), extensions.end());
  extensions.erase(std::unique(extensions.begin(), extensions.end()), extensions.end());
  Field(encoded, std::to_string(extensions.size()));
  for (const std::string& extension : extensions) Field(encoded, extension);
  return crypto::Sha256Hex(encoded);
}

Status CheckMigrationsExtend(const std::vector<MigrationRef>& previous,
                             const std::vector<MigrationRef>& next) {
  const auto refused = [](std::string message) {
    return Failure::Stalled("RolloutRefused", std::move(message));
  };
  for (std::size_t i = 0; i < previous.size(); ++i) {
    const MigrationRef& was = previous[i];
    const auto same_version = std::find_if(next.begin(), next.end(), [&](const MigrationRef& m) {
      return m.version == was.version;
    });
    if (same_version == next.end()) {
      return refused("migration " + was.file +
                     " was applied by the previous revision and is gone from the product");
    }
    if (same_version->file != was.file) {
      return refused("migration " + was.file + " was renamed to " + same_version->file +
                     " after the previous revision applied it");
    }
    if (same_version->checksum != was.checksum) {
      return refused("migration " + was.file + " was edited after the previous revision applied "
                     "it (SHA-256 " + Short(was.checksum) + "… then, " +
                     Short(same_version->checksum) + "… now)");
    }
    if (i >= next.size() || next[i].version != was.version) {
      return refused("migration " + next[std::min(i, next.size() - 1)].file +
                     " is numbered below " + was.file +
                     ", which the previous revision applied: new migrations go after the last");
    }
  }
  if (!previous.empty()) {
    const std::string& last = previous.back().version;
    for (std::size_t i = previous.size(); i < next.size(); ++i) {
      if (next[i].version <= last) {
        return refused("migration " + next[i].file + " is numbered below " + previous.back().file +
                       ", which the previous revision applied: new migrations go after the last");
      }
    }
  }
  return Ok();
}

std::vector<MigrationRef> MigrationsUpTo(const std::vector<MigrationRef>& files,
                                         const std::string& last_version) {
  std::vector<MigrationRef> prefix;
  if (last_version.empty()) return prefix;
  for (const MigrationRef& file : files) {
    if (file.version > last_version) break;
    prefix.push_back(file);
  }
  return prefix;
}

}  // namespace tmaster::rollouts
