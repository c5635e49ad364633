// tenantctl's command line (controller/cli/args.hpp): flags anywhere, kubectl's spellings, and a
// clear error for what is not understood.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "controller/cli/args.hpp"

namespace {

using tmaster::cli::Command;
using tmaster::cli::ParseCommand;
using tmaster::cli::ParseDuration;

Command Parsed(const std::vector<std::string>& args) {
  auto parsed = ParseCommand(args);
  REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.failure().message));
  return *parsed;
}

std::string ErrorOf(const std::vector<std::string>& args) {
  auto parsed = ParseCommand(args);
  REQUIRE(!parsed.ok());
  CHECK(parsed.failure().reason == "Usage");
  return parsed.failure().message;
}

}  // namespace

TEST_CASE("cli args: the verb, its words and flags in any order, in every kubectl spelling") {
  const Command get = Parsed({"-o", "wide", "get", "workspaces", "-l", "plan=enterprise",
                              "--server=https://tm:8443", "--limit", "20"});
  CHECK(get.verb == "get");
  CHECK(get.positionals == std::vector<std::string>{"workspaces"});
  CHECK(get.output == "wide");
  CHECK(get.selector == "plan=enterprise");
  CHECK(get.connection.server == "https://tm:8443");
  CHECK(get.limit == 20);

  CHECK(Parsed({"get", "ws", "-ojson"}).output == "json");
  CHECK(Parsed({"get", "ws", "--output", "yaml"}).output == "yaml");
  CHECK(Parsed({"get", "ws", "-o=name"}).output == "name");
  CHECK(Parsed({"get", "ws"}).output == "table");

  const Command apply = Parsed({"apply", "-f", "a.yaml", "--filename=dir", "-f", "-", "--force"});
  CHECK(apply.files == std::vector<std::string>{"a.yaml", "dir", "-"});
  CHECK(apply.force);

  const Command wait =
      Parsed({"reconcile", "workspace", "acme", "--wait", "--timeout", "2m"});
  CHECK(wait.positionals == std::vector<std::string>{"workspace", "acme"});
  CHECK(wait.wait);
  CHECK(wait.timeout == std::chrono::seconds(120));
  CHECK(Parsed({"reconcile", "workspace", "acme"}).timeout == std::chrono::seconds(60));

  const Command token = Parsed({"token", "create", "--role", "viewer", "--ttl", "30d",
                                "--description", "ci deploy", "--token", "secret-value",
                                "--insecure-skip-tls-verify", "--certificate-authority", "ca.pem"});
  CHECK(token.role == "viewer");
  CHECK(token.ttl == "30d");
  CHECK(token.description == "ci deploy");
  CHECK(token.connection.token == "secret-value");
  CHECK(token.connection.insecure_skip_tls_verify);
  CHECK(token.connection.certificate_authority == "ca.pem");

  CHECK(Parsed({"get", "--", "-odd-name"}).positionals == std::vector<std::string>{"-odd-name"});
  CHECK(Parsed({"--help"}).help);
}

TEST_CASE("cli args: an unknown flag, a missing value, a bad -o, number or duration is named") {
  CHECK(ErrorOf({"get", "ws", "--outptu", "json"}) == "unknown flag --outptu");
  CHECK(ErrorOf({"get", "ws", "-x"}) == "unknown flag -x");
  CHECK(ErrorOf({"get", "ws", "-o"}) == "-o needs a value");
  CHECK(ErrorOf({"get", "ws", "-o", "xml"}).find("\"xml\" is not one of table, wide, json, "
                                                 "yaml, name") != std::string::npos);
  CHECK(ErrorOf({"get", "ws", "--limit", "0"}).find("--limit") != std::string::npos);
  CHECK(ErrorOf({"get", "ws", "--chunk-size", "5000"}).find("--chunk-size") != std::string::npos);
  CHECK(ErrorOf({"reconcile", "--timeout", "soon"}).find("--timeout: \"soon\"") !=
        std::string::npos);
  CHECK(ErrorOf({"token", "create", "--role", "root"}).find("admin or viewer") !=
        std::string::npos);
  CHECK(ErrorOf({"reconcile", "--wait=maybe"}) == "--wait takes no value");
}

TEST_CASE("cli args: durations") {
  CHECK(ParseDuration("90s") == std::chrono::seconds(90));
  CHECK(ParseDuration("5m") == std::chrono::seconds(300));
  CHECK(ParseDuration("2h") == std::chrono::seconds(7200));
  CHECK(ParseDuration("30d") == std::chrono::seconds(30 * 86400));
  CHECK(ParseDuration("1h30m") == std::chrono::seconds(5400));
  CHECK(ParseDuration("45") == std::chrono::seconds(45));
  CHECK_FALSE(ParseDuration(""));
  CHECK_FALSE(ParseDuration("0s"));
  CHECK_FALSE(ParseDuration("5w"));
  CHECK_FALSE(ParseDuration("1h30"));
  CHECK_FALSE(ParseDuration("-5m"));
  CHECK_FALSE(ParseDuration("99999d"));
}

TEST_CASE("cli args: backup, backups and restore flags") {
  const Command backup = Parsed({"backup", "acme", "--wait", "--timeout=15m"});
  CHECK(backup.verb == "backup");
  CHECK(backup.positionals == std::vector<std::string>{"acme"});
  CHECK(backup.wait);
  CHECK(backup.timeout == std::chrono::seconds(900));
  CHECK(backup.timeout_given);
  CHECK_FALSE(Parsed({"backup", "acme"}).timeout_given);

  const Command all = Parsed({"backup", "--all", "-l", "plan=enterprise"});
  CHECK(all.all);
  CHECK(all.positionals.empty());
  CHECK(all.selector == "plan=enterprise");
  CHECK_FALSE(Parsed({"backup", "acme"}).all);

  const Command restore = Parsed({"restore", "acme", "--backup", "acme-20261203T030000Z-k3x9",
                                  "--into=acme-copy", "--wait"});
  CHECK(restore.positionals == std::vector<std::string>{"acme"});
  CHECK(restore.backup == "acme-20261203T030000Z-k3x9");
  CHECK(restore.into == "acme-copy");
  CHECK(restore.wait);
  CHECK_FALSE(Parsed({"restore", "acme"}).backup);

  CHECK(ErrorOf({"restore", "acme", "--backup"}) == "--backup needs a value");
  CHECK(ErrorOf({"restore", "acme", "--backup", "x", "--into"}) == "--into needs a value");
  CHECK(ErrorOf({"backup", "--all=yes"}) == "--all takes no value");
}

TEST_CASE("cli args: rollout ACTION PRODUCT, -o table|json|yaml, a usage error for the rest") {
  using tmaster::cli::ParseRolloutArguments;
  const Command status = Parsed({"rollout", "status", "erp", "-o", "yaml"});
  CHECK(status.verb == "rollout");
  CHECK(status.positionals == std::vector<std::string>{"status", "erp"});
  auto args = ParseRolloutArguments(status);
  REQUIRE(args.ok());
  CHECK(args->action == "status");
  CHECK(args->product == "erp");

  // Flags anywhere, every action.
  for (const std::string action : {"status", "pause", "resume", "promote", "abort", "undo"}) {
    CAPTURE(action);
    args = ParseRolloutArguments(
        Parsed({"--server=https://tm:8443", "rollout", "-ojson", action, "erp"}));
    REQUIRE(args.ok());
    CHECK(args->action == action);
    CHECK(args->product == "erp");
  }
  CHECK(ParseRolloutArguments(Parsed({"rollout", "pause", "--", "-odd"}))->product == "-odd");

  const auto usage = [&](const std::vector<std::string>& words) {
    auto parsed = ParseRolloutArguments(Parsed(words));
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.failure().reason == "Usage");
    return parsed.failure().message;
  };
  CHECK(usage({"rollout"}) ==
        "rollout: expected `rollout ACTION PRODUCT`, ACTION one of status, pause, resume, "
        "promote, abort, undo");
  CHECK(usage({"rollout", "rollback", "erp"}) ==
        "rollout: unknown action \"rollback\" (status, pause, resume, promote, abort, undo)");
  CHECK(usage({"rollout", "pause"}) == "rollout pause: expected `rollout pause PRODUCT`");
  CHECK(usage({"rollout", "status", "erp", "crm"}) ==
        "rollout status: expected `rollout status PRODUCT`");
  CHECK(usage({"rollout", "status", "erp", "-o", "wide"}) ==
        "rollout: -o must be table, json or yaml");
  CHECK(usage({"rollout", "status", "erp", "-o", "name"}) ==
        "rollout: -o must be table, json or yaml");
  CHECK(usage({"rollout", "status", "erp", "--wait"}).find("--wait is not supported") !=
        std::string::npos);
}

TEST_CASE("cli args: move NAME --to CLUSTER [--wait], move --prune NAME; a usage error for the rest") {
  using tmaster::cli::ParseMoveArguments;
  const Command move =
      Parsed({"move", "acme", "--to", "c2", "--wait", "--timeout", "45m"});
  CHECK(move.verb == "move");
  CHECK(move.to == "c2");
  CHECK(move.wait);
  CHECK(move.timeout == std::chrono::minutes(45));
  auto args = ParseMoveArguments(move);
  REQUIRE(args.ok());
  CHECK(args->workspace == "acme");
  CHECK(args->to == "c2");
  CHECK_FALSE(args->prune);

  args = ParseMoveArguments(Parsed({"move", "--prune", "acme"}));
  REQUIRE(args.ok());
  CHECK(args->workspace == "acme");
  CHECK(args->to.empty());
  CHECK(args->prune);
  args = ParseMoveArguments(Parsed({"--to=c3", "-ojson", "move", "acme"}));
  REQUIRE(args.ok());
  CHECK(args->to == "c3");

  const auto usage = [&](const std::vector<std::string>& words) {
    auto parsed = ParseMoveArguments(Parsed(words));
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.failure().reason == "Usage");
    return parsed.failure().message;
  };
  CHECK(usage({"move", "--to", "c2"}) ==
        "move: expected `move NAME --to CLUSTER [--wait]` or `move --prune NAME`");
  CHECK(usage({"move", "acme", "beta", "--to", "c2"}).find("expected `move NAME") !=
        std::string::npos);
  CHECK(usage({"move", "acme"}) ==
        "move: --to CLUSTER is required (or --prune to drop the source a succeeded move kept)");
  CHECK(usage({"move", "acme", "--to", "c2", "--prune"}).find("move: --to and --prune: give one") == 0);
  CHECK(usage({"move", "acme", "--to="}) == "move: --to: a cluster name is needed");
  CHECK(usage({"move", "--prune", "acme", "--wait"}).find("move --prune: --wait and --timeout") ==
        0);
  CHECK(usage({"move", "acme", "--to", "c2", "-o", "wide"}) ==
        "move: -o must be table, json or yaml");
  CHECK(usage({"move", "acme", "--to", "c2", "--wait", "-o", "json"})
            .find("get move acme -o json") != std::string::npos);
  CHECK(usage({"move", "acme", "--to", "c2", "--timeout", "5m"}) ==
        "move: --timeout needs --wait");
  CHECK(ErrorOf({"move", "acme", "--to"}) == "--to needs a value");
  CHECK(ErrorOf({"move", "acme", "--prune=yes"}) == "--prune takes no value");
}
