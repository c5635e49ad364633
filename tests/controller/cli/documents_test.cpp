// The documents `tenantctl apply` and `diff` send (controller/cli/documents.hpp): split at the
// markers with the line each starts at, known by kind and name, and the server's findings moved
// from the request body's lines back to the file's.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "controller/cli/documents.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using tmaster::cli::DocumentText;
using tmaster::cli::Finding;
using tmaster::cli::Identify;
using tmaster::cli::LineMap;
using tmaster::cli::ParseFindings;
using tmaster::cli::ReadDocuments;
using tmaster::cli::SplitDocuments;
using tmaster::testing::TempDir;

constexpr const char* kFile =
    "# the fleet\n"                                  // 1
    "apiVersion: tenantmaster.io/v1alpha1\n"         // 2
    "kind: Product\n"                                // 3
    "metadata: {name: erp}\n"                        // 4
    "---\n"                                          // 5
    "# only a comment\n"                             // 6
    "---\n"                                          // 7
    "apiVersion: tenantmaster.io/v1alpha1\n"         // 8
    "kind: Workspace\n"                              // 9
    "metadata:\n"                                    // 10
    "  name: acme\n"                                 // 11
    "spec:\n"                                        // 12
    "  product: erp\n"                               // 13
    "...\n"                                          // 14
    "--- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n"  // 15
    "---\n"                                          // 16
    "kind: [unclosed\n";                             // 17

}  // namespace

TEST_CASE("cli documents: split at every marker, each with the line it starts at") {
  const std::vector<DocumentText> docs = SplitDocuments(kFile, "fleet.yaml");
  REQUIRE(docs.size() == 4);  // the comment-only document is dropped
  CHECK(docs[0].first_line == 1);
  CHECK(docs[0].text.rfind("# the fleet\napiVersion", 0) == 0);
  CHECK(docs[1].first_line == 7);
  CHECK(docs[1].text ==
        "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: acme\n"
        "spec:\n  product: erp\n");
  CHECK(docs[2].first_line == 15);
  CHECK(docs[3].first_line == 16);
  CHECK(docs[3].file == "fleet.yaml");

  CHECK(SplitDocuments("\xEF\xBB\xBFkind: A\n", "f").at(0).text == "kind: A\n");
  CHECK(SplitDocuments("# nothing\n\n", "f").empty());
  CHECK(SplitDocuments("a: 1\n----\nb: 2\n", "f").size() == 1);  // `----` is no marker
}

TEST_CASE("cli documents: kind, name and the kind's line; invalid YAML at the file's line") {
  const std::vector<DocumentText> docs = SplitDocuments(kFile, "fleet.yaml");
  REQUIRE(docs.size() == 4);
  const auto product = Identify(docs[0]);
  CHECK(product.kind == "Product");
  CHECK(product.name == "erp");
  CHECK(product.kind_line == 3);
  const auto workspace = Identify(docs[1]);
  CHECK(workspace.api_version == "tenantmaster.io/v1alpha1");
  CHECK(workspace.kind == "Workspace");
  CHECK(workspace.name == "acme");
  CHECK(workspace.kind_line == 9);
  CHECK(Identify(docs[2]).kind == "ConfigMap");
  const auto broken = Identify(docs[3]);
  CHECK(broken.kind.empty());
  CHECK(broken.error.rfind("fleet.yaml:18:1: invalid YAML: ", 0) == 0);
  CHECK(Identify(DocumentText{"f", "- a\n- b\n", 4}).error ==
        "f:4:1: the document is not a mapping");
}

TEST_CASE("cli documents: a finding's line is moved from the request body to the file") {
  const std::vector<DocumentText> docs = SplitDocuments(kFile, "fleet.yaml");
  REQUIRE(docs.size() == 4);
  std::string body;
  // One document, as apply sends it: body line 7 is `  product: erp`, the file's line 13.
  const LineMap single = LineMap::Join({docs[1]}, body);
  CHECK(body == docs[1].text);
  const Finding finding =
      single.Map(Finding{"request", 7, 12, "spec.product", "no product \"erp\"", ""});
  CHECK(finding.Format() == "fleet.yaml:13:12: spec.product: no product \"erp\"");

  // Several documents of several files, as diff sends them: each keeps its own lines.
  const DocumentText other{"other.yaml", "kind: Workspace\nmetadata: {name: b}\nspec: 1\n", 20};
  const LineMap joined = LineMap::Join({docs[0], other, docs[1]}, body);
  CHECK(body == docs[0].text + "---\n" + other.text + docs[1].text);
  CHECK(joined.Map(Finding{"request", 3, 1, "", "m", ""}).Format() == "fleet.yaml:3:1: m");
  CHECK(joined.Map(Finding{"request", 8, 7, "spec", "m", ""}).Format() ==
        "other.yaml:22:7: spec: m");
  CHECK(joined.Map(Finding{"request", 15, 3, "", "m", ""}).Format() == "fleet.yaml:13:3: m");
}

TEST_CASE("cli documents: the findings of a 422") {
  const std::vector<Finding> findings = ParseFindings(
      R"([{"file":"request","line":4,"column":3,"field":"spec.mode","message":"must be shared or dedicated"},
          "not an object",
          {"file":"request","line":1,"column":1,"message":"x","severity":"notice"}])");
  REQUIRE(findings.size() == 2);
  CHECK(findings[0].Format() == "request:4:3: spec.mode: must be shared or dedicated");
  CHECK(findings[1].severity == "notice");
  CHECK(ParseFindings("{}").empty());
}

TEST_CASE("cli documents: -f takes files, directories (sorted, *.yaml and *.yml) and stdin") {
  TempDir dir;
  dir.Write("fleet/b.yml", "kind: Workspace\nmetadata: {name: b}\n");
  dir.Write("fleet/a/a.yaml", "kind: Workspace\nmetadata: {name: a}\n---\nkind: Product\n");
  dir.Write("fleet/notes.txt", "kind: Workspace\n");
  auto docs = ReadDocuments({(dir.path() / "fleet").string(), "-"}, "kind: Workspace\n");
  REQUIRE(docs.ok());
  REQUIRE(docs->size() == 4);
  CHECK((*docs)[0].file == (dir.path() / "fleet/a/a.yaml").string());
  CHECK((*docs)[1].first_line == 3);
  CHECK((*docs)[2].file == (dir.path() / "fleet/b.yml").string());
  CHECK((*docs)[3].file == "<stdin>");

  auto missing = ReadDocuments({(dir.path() / "nope.yaml").string()}, "");
  REQUIRE(!missing.ok());
  CHECK(missing.failure().message.find("nope.yaml does not exist") != std::string::npos);
}
