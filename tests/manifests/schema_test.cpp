// The CRD-driven validator: the embedded CRDs build, a schema change changes validation, and
// each supported keyword and YAML typing rule, checked on inline CRDs.
#include "manifests/schema.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "crds/embedded.hpp"

namespace {

using tmaster::manifests::Diagnostic;
using tmaster::manifests::Schema;

// A CRD of kind Widget whose spec schema is `spec_schema` (indented to sit under `spec:`).
std::string Crd(const std::string& spec_schema) {
  return R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
spec:
  group: example.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata:
              type: object
              properties:
                name: {type: string, maxLength: 10}
            spec:
)" + spec_schema;
}

Schema Build(const std::string& spec_schema) {
  tmaster::Outcome<Schema> built = Schema::FromCrd(Crd(spec_schema), "v1");
  if (!built.ok()) FAIL("schema did not build: " << built.failure().message);
  return std::move(built).value();
}

std::string Doc(const std::string& spec) {
  return "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n" + spec;
}

std::string Messages(const std::vector<Diagnostic>& found) {
  std::string out;
  for (const Diagnostic& d : found) out += d.Format() + "\n";
  return out;
}

// The single finding of validating `spec` (lines from 5 on), as `line:column: field: message`.
std::string One(const Schema& schema, const std::string& spec) {
  std::vector<Diagnostic> found = schema.ValidateText(Doc(spec), "w.yaml");
  if (found.size() != 1) return "expected one finding, got:\n" + Messages(found);
  const Diagnostic& d = found[0];
  return std::to_string(d.where.line) + ":" + std::to_string(d.where.column) + ": " + d.field +
         ": " + d.message;
}

bool Valid(const Schema& schema, const std::string& spec) {
  std::vector<Diagnostic> found = schema.ValidateText(Doc(spec), "w.yaml");
  INFO(Messages(found));
  return found.empty();
}

}  // namespace

TEST_CASE("schema: the embedded CRDs build validators") {
  const Schema& workspace = tmaster::manifests::WorkspaceSchema();
  CHECK(workspace.Group() == "tenantmaster.io");
  CHECK(workspace.Version() == "v1alpha1");
  CHECK(workspace.Kind() == "Workspace");
  CHECK(workspace.Plural() == "workspaces");
  CHECK(workspace.ShortNames() == std::vector<std::string>{"ws"});
  const Schema& product = tmaster::manifests::ProductSchema();
  CHECK(product.Kind() == "Product");
  CHECK(product.Plural() == "products");
  CHECK(product.ShortNames() == std::vector<std::string>{"prod"});
  // The embedded text is the CRD file itself.
  CHECK(tmaster::crds::WorkspacesCrd().find("name: workspaces.tenantmaster.io") !=
        std::string_view::npos);
  CHECK(tmaster::crds::ProductsCrd().find("kind: CustomResourceDefinition") !=
        std::string_view::npos);
  CHECK(tmaster::crds::WorkspacesCrd().find("x-kubernetes-validations") != std::string_view::npos);
}

TEST_CASE("schema: validation is driven by the CRD text") {
  const std::string before = R"(              type: object
              properties:
                size: {type: integer, maximum: 3}
)";
  const std::string after = R"(              type: object
              properties:
                size: {type: integer, maximum: 10}
                color: {type: string}
)";
  const std::string doc = "  size: 5\n  color: red\n";
  const Schema strict = Build(before);
  std::vector<Diagnostic> found = strict.ValidateText(Doc(doc), "w.yaml");
  REQUIRE(found.size() == 2);
  CHECK(found[0].Format() == "w.yaml:5:9: spec.size: must be <= 3, got 5");
  CHECK(found[1].Format() == "w.yaml:6:3: spec.color: unknown field \"color\"");
  CHECK(Valid(Build(after), doc));
}

TEST_CASE("schema: keywords") {
  SUBCASE("required") {
    const Schema s = Build(
        "              type: object\n              required: [a]\n"
        "              properties: {a: {type: string}, b: {type: string}}\n");
    CHECK(One(s, "  b: x\n") == "5:3: spec.a: required field is missing");
    CHECK(Valid(s, "  a: x\n"));
  }
  SUBCASE("additionalProperties: schema makes a map") {
    const Schema s =
        Build("              type: object\n              additionalProperties: {type: integer}\n");
    CHECK(Valid(s, "  x: 1\n  y: 2\n"));
    CHECK(One(s, "  x: 1\n  y: two\n") == "6:6: spec[y]: must be integer, got string \"two\"");
  }
  SUBCASE("additionalProperties: true allows anything, false nothing") {
    CHECK(Valid(Build("              type: object\n              additionalProperties: true\n"),
                "  x: [1]\n"));
    CHECK(One(Build("              type: object\n              additionalProperties: false\n"),
              "  x: 1\n") == "5:3: spec.x: unknown field \"x\"");
  }
  SUBCASE("x-kubernetes-preserve-unknown-fields keeps known fields checked") {
    const Schema s = Build(
        "              type: object\n              x-kubernetes-preserve-unknown-fields: true\n"
        "              properties: {n: {type: integer}}\n");
    CHECK(Valid(s, "  anything: {x: 1}\n"));
    CHECK(One(s, "  n: x\n") == "5:6: spec.n: must be integer, got string \"x\"");
  }
  SUBCASE("enum of integers") {
    const Schema s = Build(
        "              type: object\n              properties: {n: {type: integer, enum: [1, "
        "2]}}\n");
    CHECK(Valid(s, "  n: 2\n"));
    CHECK(One(s, "  n: 3\n") == "5:6: spec.n: must be one of 1, 2, got 3");
  }
  SUBCASE("minLength, maxLength count characters") {
    const Schema s = Build(
        "              type: object\n              properties: {t: {type: string, minLength: 2, "
        "maxLength: 3}}\n");
    CHECK(Valid(s, "  t: \"ñññ\"\n"));
    CHECK(One(s, "  t: a\n") == "5:6: spec.t: must be at least 2 characters long, got 1");
    CHECK(One(s, "  t: abcd\n") == "5:6: spec.t: must be at most 3 characters long, got 4");
    CHECK(One(s, "  t: \"\"\n") == "5:6: spec.t: must be at least 2 characters long, got 0");
  }
  SUBCASE("pattern is a search, anchored by the CRD") {
    const Schema s = Build(
        "              type: object\n              properties: {t: {type: string, pattern: "
        "'b+'}}\n");
    CHECK(Valid(s, "  t: abbc\n"));
    CHECK(One(s, "  t: ac\n") == "5:6: spec.t: must match b+, got \"ac\"");
  }
  SUBCASE("minimum, maximum, exclusive bounds, numbers") {
    const Schema s = Build(
        "              type: object\n              properties:\n"
        "                r: {type: number, minimum: 0, maximum: 1, exclusiveMaximum: true}\n");
    CHECK(Valid(s, "  r: 0.5\n"));
    CHECK(Valid(s, "  r: 0\n"));
    CHECK(One(s, "  r: 1\n") == "5:6: spec.r: must be < 1, got 1");
    CHECK(One(s, "  r: -0.5\n") == "5:6: spec.r: must be >= 0, got -0.5");
    CHECK(One(s, "  r: \"0.5\"\n") ==
          "5:6: spec.r: must be number, got string \"0.5\" (remove the quotes)");
  }
  SUBCASE("arrays: items, minItems, maxItems, uniqueItems") {
    const Schema s = Build(
        "              type: object\n              properties:\n"
        "                l: {type: array, minItems: 1, maxItems: 3, uniqueItems: true, items: "
        "{type: integer}}\n");
    CHECK(Valid(s, "  l: [1, 2, 3]\n"));
    CHECK(One(s, "  l: []\n") == "5:6: spec.l: must have at least 1 item, got 0");
    CHECK(One(s, "  l: [1, 2, 3, 4]\n") == "5:6: spec.l: must have at most 3 items, got 4");
    CHECK(One(s, "  l: [1, 01]\n") == "5:10: spec.l[1]: duplicate of spec.l[0] (\"01\")");
    CHECK(One(s, "  l:\n    - 1\n    - x\n") ==
          "7:7: spec.l[1]: must be integer, got string \"x\"");
    CHECK(One(s, "  l: 1\n") == "5:6: spec.l: must be array, got integer 1");
  }
  SUBCASE("x-kubernetes-list-type: map keys items by their key fields") {
    const Schema s = Build(
        "              type: object\n              properties:\n"
        "                c:\n                  type: array\n                  "
        "x-kubernetes-list-type: map\n"
        "                  x-kubernetes-list-map-keys: [type]\n"
        "                  items: {type: object, properties: {type: {type: string}, v: {type: "
        "integer}}}\n");
    CHECK(Valid(s, "  c: [{type: a, v: 1}, {type: b, v: 1}]\n"));
    CHECK(One(s, "  c: [{type: a, v: 1}, {type: a, v: 2}]\n") ==
          "5:24: spec.c[1]: duplicate of spec.c[0]");
  }
  SUBCASE("nullable") {
    const Schema s = Build(
        "              type: object\n              properties:\n"
        "                a: {type: string, nullable: true}\n                b: {type: string}\n");
    CHECK(Valid(s, "  a: null\n"));
    CHECK(Valid(s, "  a: ~\n"));
    CHECK(One(s, "  b: null\n") == "5:3: spec.b: must be string, got null");
    CHECK(One(s, "  b:\n") == "5:3: spec.b: must be string, got null");
    CHECK(Valid(s, "  b: \"null\"\n"));  // quoted: a string
  }
  SUBCASE("x-kubernetes-int-or-string") {
    const Schema s = Build(
        "              type: object\n              properties:\n"
        "                p: {x-kubernetes-int-or-string: true, pattern: '^[0-9]+%$', minimum: "
        "0}\n");
    CHECK(Valid(s, "  p: 5\n"));
    CHECK(Valid(s, "  p: \"50%\"\n"));
    CHECK(One(s, "  p: -1\n") == "5:6: spec.p: must be >= 0, got -1");
    CHECK(One(s, "  p: half\n") == "5:6: spec.p: must match ^[0-9]+%$, got \"half\"");
    CHECK(One(s, "  p: true\n") == "5:6: spec.p: must be integer or string, got boolean true");
  }
  SUBCASE("format int32 and date-time") {
    const Schema s = Build(
        "              type: object\n              properties:\n"
        "                i: {type: integer, format: int32}\n"
        "                t: {type: string, format: date-time}\n");
    CHECK(Valid(s, "  i: 2147483647\n  t: \"2024-01-02T03:04:05Z\"\n"));
    CHECK(One(s, "  i: 2147483648\n") ==
          "5:6: spec.i: must fit in a 32-bit integer, got 2147483648");
    CHECK(One(s, "  t: yesterday\n") ==
          "5:6: spec.t: must be an RFC 3339 date-time, got \"yesterday\"");
    CHECK(One(s, "  i: 99999999999999999999\n") ==
          "5:6: spec.i: integer 99999999999999999999 is out of range");
  }
  SUBCASE("minProperties, maxProperties") {
    const Schema s = Build(
        "              type: object\n              maxProperties: 1\n"
        "              additionalProperties: {type: string}\n");
    CHECK(One(s, "  a: x\n  b: y\n") == "5:3: spec: must have at most 1 entry, got 2");
  }
}

TEST_CASE("schema: YAML scalar typing is strict") {
  const Schema s = Build(
      "              type: object\n              properties:\n"
      "                n: {type: integer}\n                b: {type: boolean}\n"
      "                s: {type: string}\n");
  CHECK(One(s, "  n: \"20\"\n") ==
        "5:6: spec.n: must be integer, got string \"20\" (remove the quotes)");
  CHECK(One(s, "  n: 2.0\n") == "5:6: spec.n: must be integer, got number 2.0");
  CHECK(One(s, "  b: yes\n") ==
        "5:6: spec.b: must be boolean, got string \"yes\" (use true or false)");
  CHECK(One(s, "  b: True\n") ==
        "5:6: spec.b: must be boolean, got string \"True\" (use true or false)");
  CHECK(One(s, "  b: \"true\"\n") ==
        "5:6: spec.b: must be boolean, got string \"true\" (use true or false)");
  CHECK(Valid(s, "  b: false\n"));
  CHECK(One(s, "  s: 12\n") ==
        "5:6: spec.s: must be string, got integer 12 (quote it to make it a string)");
  CHECK(One(s, "  s: [a]\n") == "5:6: spec.s: must be string, got array");
  CHECK(Valid(s, "  s: no\n"));        // the Norway problem: a string
  CHECK(Valid(s, "  s: !!str 12\n"));  // explicitly a string
  CHECK(Valid(s, "  s: |\n    block\n"));
  CHECK(One(s, "  s: !vault x\n") == "5:6: spec.s: unsupported YAML tag \"!vault\"");
  CHECK(One(s, "  s: a\n  s: b\n") == "6:3: spec.s: duplicate field \"s\"");
  CHECK(One(s, "  ? [k]\n  : v\n") == "5:5: spec: field names must be strings");
}

TEST_CASE("schema: metadata follows the Kubernetes ObjectMeta rules") {
  const Schema s = Build("              type: object\n");
  auto meta = [&](const std::string& metadata) {
    std::vector<Diagnostic> found = s.ValidateText(
        "apiVersion: example.io/v1\nkind: Widget\nmetadata:\n" + metadata + "spec: {}\n", "w.yaml");
    if (found.size() != 1) return "expected one finding, got:\n" + Messages(found);
    return std::to_string(found[0].where.line) + ":" + std::to_string(found[0].where.column) +
           ": " + found[0].field + ": " + found[0].message;
  };
  // The CRD's metadata.name schema applies (maxLength 10 in this CRD).
  CHECK(meta("  name: abcdefghijk\n") ==
        "4:9: metadata.name: must be at most 10 characters long, got 11");
  CHECK(meta("  labels: {a: b}\n") == "4:3: metadata.name: required field is missing");
  CHECK(meta("  name: w\n  namespace: Bad\n") ==
        "5:14: metadata.namespace: must be a DNS label (lower-case letters, digits and '-', at "
        "most 63 characters), got \"Bad\"");
  CHECK(meta("  name: w\n  generateName: w-\n") ==
        "5:3: metadata.generateName: unknown field \"generateName\" (metadata may hold only name, "
        "namespace, labels and annotations)");
  CHECK(meta("  name: w\n  annotations: {note: 5}\n") ==
        "5:23: metadata.annotations[note]: must be string, got integer 5 (quote it to make it a "
        "string)");
  std::vector<Diagnostic> ok = s.ValidateText(
      "apiVersion: example.io/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: team-a\n"
      "  labels: {app.kubernetes.io/name: w, empty: \"\"}\n  annotations: {\"example.io/any\": "
      "\"any text: ok\"}\nspec: {}\n",
      "w.yaml");
  CHECK(Messages(ok) == "");
}

TEST_CASE("schema: FromCrd refuses what it cannot enforce") {
  auto failure = [](const std::string& spec_schema) {
    tmaster::Outcome<Schema> built = Schema::FromCrd(Crd(spec_schema), "v1");
    return built.ok() ? std::string("built") : built.failure().message;
  };
  CHECK(failure("              type: object\n              oneOf: [{required: [a]}]\n") ==
        "invalid CustomResourceDefinition: "
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.oneOf: "
        "unsupported schema keyword \"oneOf\"");
  CHECK(failure("              type: object\n              properties: {a: {type: string, pattern: "
                "'('}}\n")
            .find("properties.spec.properties.a.pattern: invalid regular expression") !=
        std::string::npos);
  CHECK(failure("              type: object\n              properties: {a: {type: integer, "
                "default: x}}\n") ==
        "invalid CustomResourceDefinition: "
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.a.default: "
        "must be integer, got string \"x\"");
  CHECK(failure("              properties: {a: {type: string}}\n")
            .find("properties.spec: type is required (structural schema)") != std::string::npos);
  CHECK(failure("              type: object\n              required: [b]\n              "
                "properties: {a: {type: string}}\n")
            .find("names \"b\", not a property") != std::string::npos);
  CHECK(failure("              type: object\n              properties: {a: {type: string, format: "
                "uuid}}\n")
            .find("unsupported format \"uuid\"") != std::string::npos);
  CHECK(failure("              type: object\n              properties: {a: {type: array}}\n")
            .find("an array needs items") != std::string::npos);

  tmaster::Outcome<Schema> wrong_version =
      Schema::FromCrd(Crd("              type: object\n"), "v2");
  REQUIRE_FALSE(wrong_version.ok());
  CHECK(wrong_version.failure().reason == "InvalidSchema");
  CHECK(wrong_version.failure().message == "invalid CustomResourceDefinition: no version \"v2\"");
  CHECK_FALSE(Schema::FromCrd("kind: ConfigMap\n", "v1").ok());
  CHECK_FALSE(Schema::FromCrd("{{{", "v1").ok());
}

TEST_CASE("schema: documents that are not objects") {
  const Schema s = Build("              type: object\n");
  std::vector<Diagnostic> found = s.ValidateText("- a\n- b\n", "w.yaml");
  REQUIRE(found.size() == 1);
  CHECK(found[0].Format() == "w.yaml:1:1: must be object, got array");
  found = s.ValidateText(
      "apiVersion: example.io/v1\nkind: Widget\nmetadata: {name: w}\nspec: [1]\n", "w.yaml");
  REQUIRE(found.size() == 1);
  CHECK(found[0].Format() == "w.yaml:4:7: spec: must be object, got array");
}
