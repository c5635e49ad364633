#include "controller/cli/args.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <iterator>

namespace tmaster::cli {
namespace {

Failure UsageError(std::string message) { return Failure::Stalled("Usage", std::move(message)); }

std::optional<long> ParsePositive(std::string_view text) {
  long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 1) return std::nullopt;
  return value;
}

// One flag: its long name, an optional one-letter name, and what its value does to the command
// (nullptr for a switch). A setter answers an error message, empty when the value is good.
struct FlagSpec {
  std::string_view name;
  char short_name = 0;
  std::function<std::string(Command&, std::string_view)> set;
  std::function<void(Command&)> toggle;
};

std::string SetDuration(std::chrono::seconds& slot, std::string_view flag, std::string_view text) {
  const std::optional<std::chrono::seconds> parsed = ParseDuration(text);
  if (!parsed) {
    return "--" + std::string(flag) + ": \"" + std::string(text) +
           "\" is not a duration (90s, 5m, 2h, 30d)";
  }
  slot = *parsed;
  return {};
}

const std::vector<FlagSpec>& Flags() {
  static const std::vector<FlagSpec> flags = {
      {"server", 's', [](Command& c, std::string_view v) { c.connection.server = std::string(v); return std::string(); }, nullptr},
      {"token", 0, [](Command& c, std::string_view v) { c.connection.token = std::string(v); return std::string(); }, nullptr},
      {"certificate-authority", 0, [](Command& c, std::string_view v) { c.connection.certificate_authority = std::string(v); return std::string(); }, nullptr},
      {"insecure-skip-tls-verify", 0, nullptr, [](Command& c) { c.connection.insecure_skip_tls_verify = true; }},
      {"output", 'o',
       [](Command& c, std::string_view v) {
         if (v != "table" && v != "wide" && v != "json" && v != "yaml" && v != "name") {
           return "-o: \"" + std::string(v) + "\" is not one of table, wide, json, yaml, name";
         }
         c.output = std::string(v);
         return std::string();
       },
       nullptr},
      {"filename", 'f', [](Command& c, std::string_view v) { c.files.emplace_back(v); return std::string(); }, nullptr},
      {"selector", 'l', [](Command& c, std::string_view v) { c.selector = std::string(v); return std::string(); }, nullptr},
      {"phase", 0, [](Command& c, std::string_view v) { c.phase = std::string(v); return std::string(); }, nullptr},
      {"workspace", 0, [](Command& c, std::string_view v) { c.workspace = std::string(v); return std::string(); }, nullptr},
      {"limit", 0,
       [](Command& c, std::string_view v) {
         c.limit = ParsePositive(v);
         return c.limit ? std::string() : "--limit: \"" + std::string(v) + "\" is not a number >= 1";
       },
       nullptr},
      {"chunk-size", 0,
       [](Command& c, std::string_view v) {
         const std::optional<long> size = ParsePositive(v);
         if (!size || *size > 1000) return "--chunk-size: \"" + std::string(v) + "\" is not 1..1000";
         c.chunk_size = *size;
         return std::string();
       },
       nullptr},
      {"wait", 0, nullptr, [](Command& c) { c.wait = true; }},
      {"timeout", 0, [](Command& c, std::string_view v) { c.timeout_given = true; return SetDuration(c.timeout, "timeout", v); }, nullptr},
      {"all", 0, nullptr, [](Command& c) { c.all = true; }},
      {"backup", 0, [](Command& c, std::string_view v) { c.backup = std::string(v); return std::string(); }, nullptr},
      {"into", 0, [](Command& c, std::string_view v) { c.into = std::string(v); return std::string(); }, nullptr},
      {"to", 0, [](Command& c, std::string_view v) { c.to = std::string(v); return std::string(); }, nullptr},
      {"prune", 0, nullptr, [](Command& c) { c.prune = true; }},
      {"request-timeout", 0, [](Command& c, std::string_view v) { return SetDuration(c.request_timeout, "request-timeout", v); }, nullptr},
      {"force", 0, nullptr, [](Command& c) { c.force = true; }},
      {"client", 0, nullptr, [](Command& c) { c.client_only = true; }},
      {"role", 0,
       [](Command& c, std::string_view v) {
         if (v != "admin" && v != "viewer") return "--role: \"" + std::string(v) + "\" is not admin or viewer";
         c.role = std::string(v);
         return std::string();
       },
       nullptr},
      {"ttl", 0,
       [](Command& c, std::string_view v) {
         if (!ParseDuration(v)) return "--ttl: \"" + std::string(v) + "\" is not a duration (90s, 5m, 2h, 30d)";
         c.ttl = std::string(v);
         return std::string();
       },
       nullptr},
      {"description", 0, [](Command& c, std::string_view v) { c.description = std::string(v); return std::string(); }, nullptr},
      {"config", 0, [](Command& c, std::string_view v) { c.config_file = std::string(v); return std::string(); }, nullptr},
      {"help", 'h', nullptr, [](Command& c) { c.help = true; }},
  };
  return flags;
}

const FlagSpec* FindLong(std::string_view name) {
  for (const FlagSpec& flag : Flags()) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

const FlagSpec* FindShort(char name) {
  for (const FlagSpec& flag : Flags()) {
    if (flag.short_name != 0 && flag.short_name == name) return &flag;
  }
  return nullptr;
}

}  // namespace

Outcome<Command> ParseCommand(const std::vector<std::string>& args) {
  Command command;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    // `-` alone is a value (stdin for -f), never a flag; after `--` every word is positional.
    if (arg == "--") {
      for (++i; i < args.size(); ++i) command.positionals.push_back(args[i]);
      break;
    }
    if (arg.size() < 2 || arg.front() != '-') {
      if (command.verb.empty()) {
        command.verb = std::string(arg);
      } else {
        command.positionals.emplace_back(arg);
      }
      continue;
    }
    const FlagSpec* flag = nullptr;
    std::optional<std::string_view> inline_value;
    std::string shown;
    if (arg.substr(0, 2) == "--") {
      std::string_view name = arg.substr(2);
      if (const std::size_t eq = name.find('='); eq != std::string_view::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      flag = FindLong(name);
      shown = "--" + std::string(name);
    } else {
      flag = FindShort(arg[1]);
      shown = "-" + std::string(1, arg[1]);
      if (arg.size() > 2) inline_value = arg.substr(arg[2] == '=' ? 3 : 2);
    }
    if (flag == nullptr) return UsageError("unknown flag " + shown);
    if (flag->toggle) {
      if (inline_value && *inline_value != "true") {
        if (*inline_value == "false") continue;
        return UsageError(shown + " takes no value");
      }
      flag->toggle(command);
      continue;
    }
    std::string_view value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return UsageError(shown + " needs a value");
    }
    if (std::string error = flag->set(command, value); !error.empty()) {
      return UsageError(std::move(error));
    }
  }
  return command;
}

Outcome<RolloutArguments> ParseRolloutArguments(const Command& command) {
  std::string actions;
  for (const std::string_view action : kRolloutActions) {
    actions += actions.empty() ? "" : ", ";
    actions += action;
  }
  if (command.positionals.empty()) {
    return UsageError("rollout: expected `rollout ACTION PRODUCT`, ACTION one of " + actions);
  }
  const std::string& action = command.positionals[0];
  if (std::find(std::begin(kRolloutActions), std::end(kRolloutActions), action) ==
      std::end(kRolloutActions)) {
    return UsageError("rollout: unknown action \"" + action + "\" (" + actions + ")");
  }
  if (command.positionals.size() != 2) {
    return UsageError("rollout " + action + ": expected `rollout " + action + " PRODUCT`");
  }
  if (command.output != "table" && command.output != "json" && command.output != "yaml") {
    return UsageError("rollout: -o must be table, json or yaml");
  }
  if (command.wait) {
    return UsageError("rollout: --wait is not supported; run `tenantctl rollout status " +
                      command.positionals[1] + "` again to follow it");
  }
  return RolloutArguments{action, command.positionals[1]};
}

Outcome<MoveArguments> ParseMoveArguments(const Command& command) {
  constexpr std::string_view kForms =
      "expected `move NAME --to CLUSTER [--wait]` or `move --prune NAME`";
  if (command.positionals.size() != 1) return UsageError("move: " + std::string(kForms));
  if (command.prune && command.to) {
    return UsageError("move: --to and --prune: give one of them (" + std::string(kForms) + ")");
  }
  if (!command.prune && !command.to) {
    return UsageError("move: --to CLUSTER is required (or --prune to drop the source a "
                      "succeeded move kept)");
  }
  if (command.to && command.to->empty()) return UsageError("move: --to: a cluster name is needed");
  if (command.prune && (command.wait || command.timeout_given)) {
    return UsageError("move --prune: --wait and --timeout follow a move; a prune is done when "
                      "it answers");
  }
  if (command.output != "table" && command.output != "json" && command.output != "yaml") {
    return UsageError("move: -o must be table, json or yaml");
  }
  if (command.wait && command.output != "table") {
    return UsageError("move: -o " + command.output + " prints the recorded move; without "
                      "--wait (then `tenantctl get move " + command.positionals[0] +
                      " -o " + command.output + "`)");
  }
  if (command.timeout_given && !command.wait) return UsageError("move: --timeout needs --wait");
  return MoveArguments{command.positionals[0], command.to.value_or(""), command.prune};
}

std::optional<std::chrono::seconds> ParseDuration(std::string_view text) {
  constexpr long long kMost = 10LL * 366 * 24 * 3600;
  if (text.empty()) return std::nullopt;
  long long total = 0;
  while (!text.empty()) {
    long long number = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (error != std::errc() || end == text.data() || number < 0 || number > kMost) {
      return std::nullopt;
    }
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    long long unit = 1;
    if (!text.empty()) {
      switch (text.front()) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return std::nullopt;
      }
      text.remove_prefix(1);
    } else if (total != 0) {
      return std::nullopt;  // `1h30`: a unit is required after the first part
    }
    total += number * unit;
    if (total > kMost) return std::nullopt;
  }
  if (total == 0) return std::nullopt;
  return std::chrono::seconds(total);
}

}  // namespace tmaster::cli
