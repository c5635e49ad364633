#include "controller/rollouts/revision.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <utility>

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

std::string RevisionSpecJson(const RevisionInputs& inputs) {
  namespace json = boost::json;
  json::array migrations;
  for (const MigrationRef& migration : inputs.migrations) {
    migrations.push_back(json::object{{"version", migration.version},
                                      {"file", migration.file},
                                      {"checksum", migration.checksum}});
  }
  json::array extensions;
  for (const std::string& extension : inputs.extensions) extensions.emplace_back(extension);
  return json::serialize(json::object{{"version", inputs.version},
                                      {"image", inputs.image},
                                      {"template", inputs.template_text},
                                      {"migrations", std::move(migrations)},
                                      {"extensions", std::move(extensions)}});
}

Outcome<RevisionInputs> RevisionInputsFromJson(const std::string& text) {
  namespace json = boost::json;
  const auto corrupt = [](const std::string& field) {
    return Failure::Stalled("CorruptRevision",
                            "stored revision: " + field + ": missing or of another type");
  };
  boost::system::error_code error;
  const json::value parsed = json::parse(text, error);
  if (error || !parsed.is_object()) return corrupt("(the text)");
  const json::object& object = parsed.get_object();
  const auto text_at = [](const json::object& o, std::string_view key) -> const json::string* {
    const json::value* value = o.if_contains(key);
    return value != nullptr ? value->if_string() : nullptr;
  };
  RevisionInputs inputs;
  for (const auto& [key, target] : {std::pair<std::string_view, std::string*>{"version", &inputs.version},
                                    {"image", &inputs.image},
                                    {"template", &inputs.template_text}}) {
    const json::string* value = text_at(object, key);
    if (value == nullptr) return corrupt(std::string(key));
    *target = std::string(*value);
  }
  const json::value* migrations = object.if_contains("migrations");
  if (migrations == nullptr || !migrations->is_array()) return corrupt("migrations");
  for (std::size_t i = 0; i < migrations->get_array().size(); ++i) {
    const json::value& item = migrations->get_array()[i];
    const std::string at = "migrations[" + std::to_string(i) + "]";
    if (!item.is_object()) return corrupt(at);
    MigrationRef migration;
    for (const auto& [key, target] :
         {std::pair<std::string_view, std::string*>{"version", &migration.version},
          {"file", &migration.file},
          {"checksum", &migration.checksum}}) {
      const json::string* value = text_at(item.get_object(), key);
      if (value == nullptr) return corrupt(at + "." + std::string(key));
      *target = std::string(*value);
    }
    inputs.migrations.push_back(std::move(migration));
  }
  const json::value* extensions = object.if_contains("extensions");
  if (extensions == nullptr || !extensions->is_array()) return corrupt("extensions");
  for (const json::value& item : extensions->get_array()) {
    if (!item.is_string()) return corrupt("extensions");
    inputs.extensions.emplace_back(item.get_string());
  }
  return inputs;
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
