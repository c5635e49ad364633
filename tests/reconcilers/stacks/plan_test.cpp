// The stack plan table (one SUBCASE per row, docs/architecture.md#tests): every action and every
// drift of docs/stacks.md#the-plan and issue 4, planned against a hand-built observation, in both
// phases (NeedsFile, then MakePlan).

#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/crypto.hpp"
#include "reconcilers/stacks/model.hpp"
#include "reconcilers/stacks/plan.hpp"

namespace tmaster::stacks {
namespace {

constexpr const char* kFile = "services:\n  app:\n    image: ${TM_IMAGE}:${TM_VERSION}\n";
constexpr std::int64_t kWritten = 1'700'000'100;

DesiredStack Desired() {
  DesiredStack d;
  d.workspace = "acme";
  d.name = "tm-acme";
  d.endpoint = 1;
  d.file = kFile;
  d.env = {{"DATABASE_URL", "postgresql://user_acme:pw@pg:5432/tenant_acme", true},
           {"DB_PASSWORD", "pw", true},
           {"LANGUAGE_CODE", "es", false},
           {"TM_VERSION", "2.3.2", false},
           {"TM_WORKSPACE", "acme", false}};
  return d;
}

// What Portainer lists once `d` is reached (the file is not in the list).
ObservedStack Converged(const DesiredStack& d) {
  ObservedStack o;
  o.id = 7;
  o.name = d.name;
  o.endpoint = d.endpoint;
  o.type = 2;
  o.status = d.active ? 1 : 2;
  o.update_date = kWritten;
  o.env = d.env;
  o.workspace = MarkerOf(d.env);
  return o;
}

LedgerEntry Written(const DesiredStack& d) { return {7, kWritten, crypto::Sha256Hex(d.file)}; }

void SetVar(std::vector<EnvVar>& env, const std::string& name, const std::string& value) {
  for (auto& var : env) {
    if (var.name == name) var.value = value;
  }
}

struct Row {
  std::string name;
  std::optional<DesiredStack> desired;
  std::optional<ObservedStack> observed;
  std::optional<LedgerEntry> ledger;
  bool needs_file = false;                 ///< what phase one must say
  std::optional<std::string> stored_file;  ///< what the File call returns when it is asked for
  std::vector<std::string> kinds;          ///< the plan's action kinds, in order
  std::optional<std::string> blocked;      ///< the blocking reason
  std::vector<std::string> changed = {};   ///< UpdateStack's `changed`, when there is one
};

std::vector<Row> Rows() {
  const DesiredStack d = Desired();
  const ObservedStack o = Converged(d);
  const LedgerEntry l = Written(d);
  std::vector<Row> rows;

  rows.push_back({"create: nothing observed", d, std::nullopt, std::nullopt, false, std::nullopt,
                  {"CreateStack"}, std::nullopt});
  rows.push_back({"no-op with a ledger: no file read", d, o, l, false, std::nullopt, {},
                  std::nullopt});
  rows.push_back({"no-op without a ledger: the file is read and equal", d, o, std::nullopt, true,
                  std::string(kFile), {}, std::nullopt});
  {
    LedgerEntry other = l;
    other.id = 3;  // the ledger speaks of a stack that was deleted and replaced
    rows.push_back({"ledger of another stack id: the file is read", d, o, other, true,
                    std::string(kFile), {}, std::nullopt});
  }
  {
    ObservedStack moved = o;
    moved.update_date = kWritten + 60;
    rows.push_back({"file edited in Portainer: UpdateDate moved, file differs", d, moved, l, true,
                    std::string(kFile) + "    privileged: true\n", {"UpdateStack"}, std::nullopt,
                    {"file"}});
    rows.push_back({"UpdateDate moved, file unchanged: nothing to do", d, moved, l, true,
                    std::string(kFile), {}, std::nullopt});
  }
  {
    DesiredStack template_changed = d;
    template_changed.file += "    restart: always\n";
    rows.push_back({"template changed: ledger digest differs, no read needed", template_changed, o,
                    l, false, std::nullopt, {"UpdateStack"}, std::nullopt, {"file"}});
  }
  {
    ObservedStack edited = o;
    SetVar(edited.env, "LANGUAGE_CODE", "en");
    edited.update_date = kWritten + 60;
    rows.push_back({"Env edited in Portainer", d, edited, l, false, std::nullopt, {"UpdateStack"},
                    std::nullopt, {"env:LANGUAGE_CODE"}});
    ObservedStack added = o;
    added.env.push_back({"DEBUG", "1", false});
    rows.push_back({"Env variable added by hand", d, added, l, false, std::nullopt,
                    {"UpdateStack"}, std::nullopt, {"env:DEBUG"}});
  }
  {
    ObservedStack wiped = o;
    wiped.env.clear();  // Portainer's "Env": null after a PUT without Env
    wiped.workspace.clear();
    wiped.update_date = kWritten + 60;
    rows.push_back({"Env wiped (null): ours by the ledger, full update", d, wiped, l, false,
                    std::nullopt, {"UpdateStack"}, std::nullopt,
                    {"env:DATABASE_URL", "env:DB_PASSWORD", "env:LANGUAGE_CODE", "env:TM_VERSION",
                     "env:TM_WORKSPACE"}});
    rows.push_back({"Env wiped and no ledger: cannot prove it is ours", d, wiped, std::nullopt,
                    false, std::nullopt, {}, "StackConflict"});
  }
  {
    ObservedStack stopped = o;
    stopped.status = 2;
    rows.push_back({"stopped by hand: start", d, stopped, l, false, std::nullopt, {"StartStack"},
                    std::nullopt});
    DesiredStack suspended = d;
    suspended.active = false;
    rows.push_back({"suspended: stop", suspended, o, l, false, std::nullopt, {"StopStack"},
                    std::nullopt});
    rows.push_back({"suspended and stopped: nothing", suspended, stopped, l, false, std::nullopt,
                    {}, std::nullopt});
    ObservedStack stopped_drift = stopped;
    SetVar(stopped_drift.env, "LANGUAGE_CODE", "en");
    rows.push_back({"suspended, stopped, drifted: left alone until the resume", suspended,
                    stopped_drift, std::nullopt, false, std::nullopt, {}, std::nullopt});
    ObservedStack running_drift = o;
    SetVar(running_drift.env, "LANGUAGE_CODE", "en");
    rows.push_back({"suspended while drifted and running: only stop", suspended, running_drift, l,
                    false, std::nullopt, {"StopStack"}, std::nullopt});
    rows.push_back({"suspended and missing: nothing runs, created on resume", suspended,
                    std::nullopt, std::nullopt, false, std::nullopt, {}, std::nullopt});
    rows.push_back({"resume: start", d, stopped, l, false, std::nullopt, {"StartStack"},
                    std::nullopt});
    rows.push_back({"resume with drift: the update deploys, no start", d, stopped_drift, l, false,
                    std::nullopt, {"UpdateStack"}, std::nullopt, {"env:LANGUAGE_CODE"}});
  }
  {
    DesiredStack bumped = d;
    SetVar(bumped.env, "TM_VERSION", "2.4.0");
    rows.push_back({"version bump: update", bumped, o, l, false, std::nullopt, {"UpdateStack"},
                    std::nullopt, {"env:TM_VERSION"}});
    DesiredStack bumped_file = bumped;
    bumped_file.file = "services:\n  app:\n    image: \"ghcr.io/acme/erp:2.4.0\"\n";
    rows.push_back({"version bump of a template without image: file and env", bumped_file, o, l,
                    false, std::nullopt, {"UpdateStack"}, std::nullopt,
                    {"file", "env:TM_VERSION"}});
  }
  rows.push_back({"deleted by hand: create again", d, std::nullopt, l, false, std::nullopt,
                  {"CreateStack"}, std::nullopt});
  rows.push_back({"workspace removed: delete", std::nullopt, o, l, false, std::nullopt,
                  {"DeleteStack"}, std::nullopt});
  rows.push_back({"workspace removed, no ledger: the marker suffices", std::nullopt, o,
                  std::nullopt, false, std::nullopt, {"DeleteStack"}, std::nullopt});
  rows.push_back({"workspace removed, stack already gone: nothing", std::nullopt, std::nullopt, l,
                  false, std::nullopt, {}, std::nullopt});
  {
    ObservedStack foreign = o;
    foreign.env = {{"SOMETHING", "else", false}};
    foreign.workspace.clear();
    rows.push_back({"foreign holder (no marker): blocked", d, foreign, std::nullopt, false,
                    std::nullopt, {}, "StackConflict"});
    rows.push_back({"foreign holder, workspace removed: left alone", std::nullopt, foreign,
                    std::nullopt, false, std::nullopt, {}, std::nullopt});
    ObservedStack other = o;
    SetVar(other.env, "TM_WORKSPACE", "globex");
    other.workspace = "globex";
    rows.push_back({"another workspace's marker: blocked", d, other, std::nullopt, false,
                    std::nullopt, {}, "StackConflict"});
    rows.push_back({"marker edited on the stack we last wrote: ours by the ledger, update", d,
                    other, l, false, std::nullopt, {"UpdateStack"}, std::nullopt,
                    {"env:TM_WORKSPACE"}});
  }
  {
    DesiredStack moved = d;
    moved.endpoint = 2;
    rows.push_back({"endpoint changed: create on the new one, then delete the old", moved, o, l,
                    false, std::nullopt, {"CreateStack", "DeleteStack"}, std::nullopt});
  }
  return rows;
}

std::vector<std::string> Kinds(const Plan& plan) {
  std::vector<std::string> out;
  for (const auto& action : plan.actions) out.push_back(KindOf(action));
  return out;
}

}  // namespace

TEST_CASE("stack plan: table") {
  for (const Row& row : Rows()) {
    SUBCASE(row.name.c_str()) {
      bool needs = false;
      if (row.desired && row.observed) needs = NeedsFile(*row.desired, *row.observed, row.ledger);
      CHECK(needs == row.needs_file);
      const std::optional<std::string> file = needs ? row.stored_file : std::nullopt;
      const Plan plan = MakePlan(row.desired, row.observed, row.ledger, file);
      CHECK(Kinds(plan) == row.kinds);
      CHECK(plan.blocked.has_value() == row.blocked.has_value());
      if (plan.blocked && row.blocked) {
        CHECK(plan.blocked->reason == *row.blocked);
        CHECK(plan.blocked->kind == FailureKind::kStalled);
        CHECK(plan.actions.empty());
      }
      for (const auto& action : plan.actions) {
        if (const auto* update = std::get_if<UpdateStack>(&action)) {
          CHECK(update->changed == row.changed);
          CHECK(update->id == 7);
          // The whole file and the whole Env, always (Portainer replaces Env wholesale).
          CHECK(update->stack.file == row.desired->file);
          CHECK(update->stack.env == row.desired->env);
        }
        if (const auto* create = std::get_if<CreateStack>(&action)) {
          CHECK(create->stack.endpoint == row.desired->endpoint);
          CHECK(create->stack.active);
        }
        if (const auto* remove = std::get_if<DeleteStack>(&action)) {
          CHECK(remove->id == 7);
          CHECK(remove->endpoint == 1);
        }
        // A plan line never carries a value of the Env.
        const std::string text = Describe(action);
        CHECK(text.find("postgresql://") == std::string::npos);
        CHECK(text.find("=pw") == std::string::npos);
      }
    }
  }
}

TEST_CASE("stack plan: the conflict message names the stack, the endpoint, and says not ours") {
  ObservedStack foreign = Converged(Desired());
  foreign.env.clear();
  foreign.workspace.clear();
  foreign.endpoint = 4;
  DesiredStack d = Desired();
  d.endpoint = 4;
  const Plan plan = MakePlan(d, foreign, std::nullopt, std::nullopt);
  REQUIRE(plan.blocked);
  CHECK(plan.blocked->message.find("\"tm-acme\"") != std::string::npos);
  CHECK(plan.blocked->message.find("endpoint 4") != std::string::npos);
  CHECK(plan.blocked->message.find("not ours") != std::string::npos);
  CHECK_FALSE(plan.Empty());
}

TEST_CASE("stack plan: a deep pass reads the file of a converged stack, and only then") {
  const DesiredStack d = Desired();
  ObservedStack o = Converged(d);
  CHECK(NeedsFile(d, o, Written(d), true));
  CHECK(NeedsFile(d, o, std::nullopt, true));
  o.env.clear();  // Env wiped: an update is certain, no read needed; the ledger proves it ours
  o.workspace.clear();
  CHECK_FALSE(NeedsFile(d, o, Written(d), true));
  CHECK(KindOf(MakePlan(d, o, Written(d), std::nullopt).actions.at(0)) == "UpdateStack");
  DesiredStack suspended = d;
  suspended.active = false;
  CHECK_FALSE(NeedsFile(suspended, Converged(d), Written(d), true));
}

TEST_CASE("stack plan: Env is compared as a set; order does not matter") {
  const DesiredStack d = Desired();
  ObservedStack o = Converged(d);
  std::reverse(o.env.begin(), o.env.end());
  for (auto& var : o.env) var.secret = false;  // Portainer does not say which ones are secret
  CHECK(MakePlan(d, o, Written(d), std::nullopt).Empty());
  CHECK_FALSE(NeedsFile(d, o, Written(d)));
}

TEST_CASE("stack plan: a changed name reported from Portainer is sanitised") {
  const DesiredStack d = Desired();
  ObservedStack o = Converged(d);
  o.env.push_back({"PASTED secret\nvalue", "x", false});
  const Plan plan = MakePlan(d, o, Written(d), std::nullopt);
  REQUIRE(plan.actions.size() == 1);
  const auto& update = std::get<UpdateStack>(plan.actions[0]);
  REQUIRE(update.changed.size() == 1);
  CHECK(update.changed[0] == "env:PASTED?secret?value");
}

TEST_CASE("stack plan: FindStack, MarkerOf and IsOurs") {
  std::vector<ObservedStack> stacks(3);
  stacks[0].id = 1;
  stacks[0].name = "tm-acme";
  stacks[0].endpoint = 2;
  stacks[1].id = 2;
  stacks[1].name = "TM-ACME";
  stacks[1].endpoint = 1;
  stacks[2].id = 3;
  stacks[2].name = "other";
  stacks[2].endpoint = 1;
  const ObservedStack* found = FindStack(stacks, 1, "tm-acme");
  REQUIRE(found != nullptr);
  CHECK(found->id == 2);
  CHECK(FindStack(stacks, 3, "tm-acme") == nullptr);

  CHECK(MarkerOf({{"A", "1", false}, {"TM_WORKSPACE", "acme", false}}) == "acme");
  CHECK(MarkerOf({}).empty());

  ObservedStack o = Converged(Desired());
  CHECK(IsOurs("acme", o, std::nullopt));
  CHECK_FALSE(IsOurs("globex", o, std::nullopt));
  CHECK(IsOurs("", o, std::nullopt));
  o.name = "tm-other";
  CHECK_FALSE(IsOurs("", o, std::nullopt));  // a marker that does not match the stack's name
  o.workspace.clear();
  CHECK_FALSE(IsOurs("acme", o, std::nullopt));
  CHECK(IsOurs("acme", o, LedgerEntry{7, 0, ""}));
  CHECK_FALSE(IsOurs("acme", o, LedgerEntry{8, 0, ""}));
}

}  // namespace tmaster::stacks
