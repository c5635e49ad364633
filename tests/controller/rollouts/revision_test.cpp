// A product's revision (controller/rollouts/revision.hpp): what changes the digest and what does
// not, and the rule that migrations only grow at the end.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "controller/rollouts/revision.hpp"

namespace {

using tmaster::rollouts::CheckMigrationsExtend;
using tmaster::rollouts::MigrationRef;
using tmaster::rollouts::MigrationsUpTo;
using tmaster::rollouts::RevisionDigest;
using tmaster::rollouts::RevisionInputs;

const MigrationRef k1{"0001", "0001_init.sql", "aaaaaaaaaaaaaaaa1111"};
const MigrationRef k2{"0002", "0002_items.sql", "bbbbbbbbbbbbbbbb2222"};
const MigrationRef k3{"0003", "0003_prices.sql", "cccccccccccccccc3333"};

RevisionInputs Base() {
  return {"2.3.1", "ghcr.io/acme/erp", "services: {}\n", {k1, k2}, {"pg_trgm", "unaccent"}};
}

}  // namespace

TEST_CASE("rollouts: a revision's digest changes with what a workspace is handed, and only that") {
  const std::string base = RevisionDigest(Base());
  CHECK(base.size() == 64);
  CHECK(RevisionDigest(Base()) == base);

  RevisionInputs v = Base();
  v.version = "2.3.2";
  CHECK(RevisionDigest(v) != base);
  RevisionInputs image = Base();
  image.image = "ghcr.io/acme/erp2";
  CHECK(RevisionDigest(image) != base);
  RevisionInputs templ = Base();
  templ.template_text += " ";
  CHECK(RevisionDigest(templ) != base);
  RevisionInputs more = Base();
  more.migrations.push_back(k3);
  CHECK(RevisionDigest(more) != base);
  RevisionInputs edited = Base();
  edited.migrations[1].checksum = "dddd";
  CHECK(RevisionDigest(edited) != base);
  RevisionInputs extension = Base();
  extension.extensions.push_back("citext");
  CHECK(RevisionDigest(extension) != base);

  // Extensions are a set: order and repeats make no revision.
  RevisionInputs reordered = Base();
  reordered.extensions = {"unaccent", "pg_trgm", "unaccent"};
  CHECK(RevisionDigest(reordered) == base);

  // Fields cannot pass for one another: moving bytes between version and image is a change.
  RevisionInputs a = Base();
  a.version = "1";
  a.image = "23";
  RevisionInputs b = Base();
  b.version = "12";
  b.image = "3";
  CHECK(RevisionDigest(a) != RevisionDigest(b));
}

TEST_CASE("rollouts: migrations of a new revision extend the previous one's or are refused") {
  CHECK(CheckMigrationsExtend({k1, k2}, {k1, k2}).ok());
  CHECK(CheckMigrationsExtend({k1, k2}, {k1, k2, k3}).ok());
  CHECK(CheckMigrationsExtend({}, {k1}).ok());

  const auto refusal = [](const std::vector<MigrationRef>& before,
                          const std::vector<MigrationRef>& after) {
    const auto status = CheckMigrationsExtend(before, after);
    REQUIRE_FALSE(status.ok());
    CHECK(status.failure().reason == "RolloutRefused");
    return status.failure().message;
  };
  MigrationRef k2_edited = k2;
  k2_edited.checksum = "eeeeeeeeeeeeeeee9999";
  CHECK(refusal({k1, k2}, {k1, k2_edited}) ==
        "migration 0002_items.sql was edited after the previous revision applied it "
        "(SHA-256 bbbbbbbbbbbb… then, eeeeeeeeeeee… now)");
  CHECK(refusal({k1, k2}, {k1}).find("0002_items.sql was applied by the previous revision and "
                                     "is gone") != std::string::npos);
  MigrationRef k2_renamed = k2;
  k2_renamed.file = "0002_things.sql";
  CHECK(refusal({k1, k2}, {k1, k2_renamed}).find("renamed to 0002_things.sql") !=
        std::string::npos);
  // A file slipped in below the last applied one.
  CHECK(refusal({k1, k3}, {k1, k2, k3}).find("0002_items.sql is numbered below 0003_prices.sql") !=
        std::string::npos);
}

TEST_CASE("rollouts: a revision's stored form reads back whole; a damaged one is refused") {
  RevisionInputs inputs = Base();
  inputs.template_text = "services:\n  app: {image: \"x\"}\n";
  const std::string text = tmaster::rollouts::RevisionSpecJson(inputs);
  auto back = tmaster::rollouts::RevisionInputsFromJson(text);
  REQUIRE(back.ok());
  CHECK(RevisionDigest(*back) == RevisionDigest(inputs));
  CHECK(back->template_text == inputs.template_text);
  REQUIRE(back->migrations.size() == 2);
  CHECK(back->migrations[1].checksum == k2.checksum);
  CHECK(back->extensions == inputs.extensions);

  const auto refused = [](const std::string& bad) {
    auto read = tmaster::rollouts::RevisionInputsFromJson(bad);
    REQUIRE_FALSE(read.ok());
    CHECK(read.failure().reason == "CorruptRevision");
    return read.failure().message;
  };
  CHECK(refused("nope") == "stored revision: (the text): missing or of another type");
  CHECK(refused(R"({"version":"1","image":"i","template":"","migrations":[{"version":"0001"}],)"
                R"("extensions":[]})") ==
        "stored revision: migrations[0].file: missing or of another type");
  CHECK(refused(R"({"version":1})").find("version") != std::string::npos);
}

TEST_CASE("rollouts: a pinned revision's migrations are a prefix of the product's files") {
  CHECK(MigrationsUpTo({k1, k2, k3}, "0002").size() == 2);
  CHECK(MigrationsUpTo({k1, k2, k3}, "0002").back().file == "0002_items.sql");
  CHECK(MigrationsUpTo({k1, k2, k3}, "0003").size() == 3);
  CHECK(MigrationsUpTo({k1, k2, k3}, "").empty());
}
