// Rendering of a product's shared runtime `tm-shared-<product>` (docs/stacks.md#shared-runtime):
// the bindings mounted read-only, SERVICE_BINDING_ROOT, the edge alias Traefik routes to, no
// router labels, and no database credential anywhere in the Env.

#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "manifests/types.hpp"
#include "reconcilers/stacks/model.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::stacks {
namespace {

namespace fs = std::filesystem;

manifests::Product Product() {
  manifests::Product p;
  p.name = "erp";
  p.image = "ghcr.io/acme/erp";
  p.default_version = "2.3.1";
  p.port = 8000;
  p.shared_runtime = manifests::SharedRuntimeSpec{"/fleet/stacks/erp-shared.yml", 2};
  return p;
}

manifests::Config Config() {
  manifests::Config c;
  c.base_domain = "surgir.online";
  c.stacks.edge_network = "tenant-network";
  c.stacks.cert_resolver = "le";
  return c;
}

const fs::path kBindings = "/var/lib/tenant-master/bindings";

SharedRuntimeInputs Inputs() { return MakeSharedRuntimeInputs(Product(), Config(), kBindings); }

std::string Render(const std::string& text) {
  auto out = RenderSharedRuntimeFile(text, Inputs());
  INFO((out ? std::string() : out.failure().message));
  REQUIRE(out.ok());
  return *out;
}

YAML::Node App(const std::string& rendered) { return YAML::Load(rendered)["services"]["app"]; }

bool Contains(const YAML::Node& list, const std::string& value) {
  for (const auto& item : list) {
    if (item.Scalar() == value) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("shared runtime: names and marker") {
  CHECK(SharedRuntimeStackName("erp") == "tm-shared-erp");
  CHECK(SharedRuntimeStackKey("erp") == "shared-erp");
  ObservedStack stack;
  stack.name = "tm-shared-erp";
  stack.env = {{"TM_PRODUCT", "erp", false}};
  CHECK(SharedRuntimeMarkerOf(stack) == "erp");
  stack.name = "tm-shared-shop";  // the name must match the product
  CHECK(SharedRuntimeMarkerOf(stack).empty());
  stack.name = "tm-shared-erp";
  stack.env.push_back({"TM_WORKSPACE", "shared-erp", false});  // a dedicated workspace's stack
  CHECK(SharedRuntimeMarkerOf(stack).empty());
  stack.env.clear();
  CHECK(SharedRuntimeMarkerOf(stack).empty());
}

TEST_CASE("shared runtime: Env holds no database credential") {
  auto env = BuildSharedRuntimeEnv(Inputs());
  REQUIRE(env.ok());
  std::vector<std::string> names;
  for (const EnvVar& var : *env) {
    names.push_back(var.name);
    CHECK_FALSE(var.secret);
  }
  CHECK(names == std::vector<std::string>{"SERVICE_BINDING_ROOT", "TM_BINDINGS_DIR",
                                          "TM_CERT_RESOLVER", "TM_EDGE_NETWORK", "TM_IMAGE",
                                          "TM_PORT", "TM_PRODUCT", "TM_VERSION"});
  CHECK(std::is_sorted(names.begin(), names.end()));
  for (const char* forbidden : {"DB_PASSWORD", "DATABASE_URL", "DB_USER", "TM_WORKSPACE"}) {
    CHECK(std::find(names.begin(), names.end(), forbidden) == names.end());
  }
  const auto value = [&](const std::string& name) {
    for (const EnvVar& var : *env) {
      if (var.name == name) return var.value;
    }
    return std::string("<absent>");
  };
  CHECK(value("SERVICE_BINDING_ROOT") == "/bindings");
  CHECK(value("TM_BINDINGS_DIR") == "/var/lib/tenant-master/bindings/erp");
  CHECK(value("TM_VERSION") == "2.3.1");
  CHECK(value("TM_PRODUCT") == "erp");
  CHECK(value("TM_PORT") == "8000");
}

TEST_CASE("shared runtime: the routed service gets bindings, alias, no routers") {
  const std::string rendered = Render(
      "services:\n"
      "  app:\n"
      "    image: ${TM_IMAGE}:${TM_VERSION}\n"
      "    command: [example-runtime, --bindings, /bindings, --listen, \"0.0.0.0:${TM_PORT}\"]\n"
      "    networks: [edge]\n"
      "    labels:\n"
      "      traefik.enable: \"true\"\n"
      "      com.example.team: erp\n"
      "networks:\n"
      "  edge: {name: \"${TM_EDGE_NETWORK}\", external: true}\n");
  const YAML::Node app = App(rendered);
  INFO(rendered);

  SUBCASE("the bindings folder, read-only") {
    REQUIRE(app["volumes"].IsSequence());
    CHECK(Contains(app["volumes"], "/var/lib/tenant-master/bindings/erp:/bindings:ro"));
  }
  SUBCASE("SERVICE_BINDING_ROOT in its environment") {
    CHECK(app["environment"]["SERVICE_BINDING_ROOT"].Scalar() == "/bindings");
  }
  SUBCASE("the alias on the edge network, the stack's default network kept") {
    REQUIRE(app["networks"].IsMap());
    CHECK(Contains(app["networks"]["edge"]["aliases"], "tm-shared-erp"));
    CHECK(YAML::Load(rendered)["networks"]["edge"]["external"].as<bool>());
  }
  SUBCASE("Traefik ignores the container; no router labels; other labels pass") {
    CHECK(app["labels"]["traefik.enable"].Scalar() == "false");
    CHECK(app["labels"]["com.example.team"].Scalar() == "erp");
    CHECK(rendered.find("traefik.http.routers") == std::string::npos);
  }
  SUBCASE("the template's image and command are kept") {
    CHECK(app["image"].Scalar() == "${TM_IMAGE}:${TM_VERSION}");
    CHECK(app["command"][4].Scalar() == "0.0.0.0:${TM_PORT}");
  }
  SUBCASE("a fixed point: rendering the rendered file changes nothing") {
    CHECK(Render(rendered) == rendered);
  }
}

TEST_CASE("shared runtime: a bare template gets image, networks, volumes and environment") {
  const std::string rendered =
      Render("services:\n  runtime:\n    environment: [LOG_LEVEL=info, SERVICE_BINDING_ROOT=/x]\n"
             "    volumes: [\"cache:/cache\"]\n  worker: {image: busybox}\n");
  const YAML::Node runtime = YAML::Load(rendered)["services"]["runtime"];
  INFO(rendered);
  CHECK(runtime["image"].Scalar() == "ghcr.io/acme/erp:2.3.1");
  CHECK(Contains(runtime["environment"], "SERVICE_BINDING_ROOT=/bindings"));
  CHECK(Contains(runtime["environment"], "LOG_LEVEL=info"));
  CHECK_FALSE(Contains(runtime["environment"], "SERVICE_BINDING_ROOT=/x"));
  CHECK(Contains(runtime["volumes"], "cache:/cache"));
  CHECK(Contains(runtime["volumes"], "/var/lib/tenant-master/bindings/erp:/bindings:ro"));
  CHECK(runtime["networks"]["default"].IsMap());
  CHECK(Contains(runtime["networks"]["tenant-network"]["aliases"], "tm-shared-erp"));
  CHECK(YAML::Load(rendered)["services"]["worker"]["volumes"].IsDefined() == false);
  CHECK(Render(rendered) == rendered);
}

// Issue 10: the runtime's file deploys on a swarm manager as on a standalone engine.
TEST_CASE("shared runtime: one file for both kinds of endpoint") {
  const std::string rendered = Render(
      "services:\n"
      "  app:\n"
      "    env_file: stack.env\n"
      "    environment: {LOG_LEVEL: info, TM_PORT: \"9000\"}\n"
      "    deploy: {replicas: 2, labels: {traefik.enable: \"true\", com.example.team: erp}}\n"
      "  worker:\n"
      "    image: busybox\n"
      "    env_file: [./stack.env, extra.env]\n");
  INFO(rendered);
  const YAML::Node root = YAML::Load(rendered);
  const YAML::Node app = root["services"]["app"];
  const YAML::Node worker = root["services"]["worker"];

  SUBCASE("Traefik's swarm provider ignores the service too") {
    CHECK(app["deploy"]["labels"]["traefik.enable"].Scalar() == "false");
    CHECK(app["deploy"]["labels"]["com.example.team"].Scalar() == "erp");
    CHECK(app["deploy"]["replicas"].Scalar() == "2");
    CHECK(app["labels"]["traefik.enable"].Scalar() == "false");
  }
  SUBCASE("env_file: stack.env becomes references to the runtime's Env, no value written") {
    CHECK_FALSE(app["env_file"].IsDefined());
    CHECK(app["environment"]["TM_PRODUCT"].Scalar() == "${TM_PRODUCT}");
    CHECK(app["environment"]["TM_BINDINGS_DIR"].Scalar() == "${TM_BINDINGS_DIR}");
    // The template's own entries and the operator's SERVICE_BINDING_ROOT keep precedence.
    CHECK(app["environment"]["TM_PORT"].Scalar() == "9000");
    CHECK(app["environment"]["LOG_LEVEL"].Scalar() == "info");
    CHECK(app["environment"]["SERVICE_BINDING_ROOT"].Scalar() == "/bindings");
    CHECK_FALSE(app["environment"]["DB_PASSWORD"].IsDefined());
    REQUIRE(worker["env_file"].IsSequence());
    CHECK(worker["env_file"].size() == 1);
    CHECK(worker["env_file"][0].Scalar() == "extra.env");
    CHECK(worker["environment"]["TM_VERSION"].Scalar() == "${TM_VERSION}");
  }
  SUBCASE("a fixed point") { CHECK(Render(rendered) == rendered); }
  SUBCASE("deploy of the wrong shape is refused, naming it") {
    auto out = RenderSharedRuntimeFile("services:\n  app:\n    deploy: [x]\n", Inputs());
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().reason == "InvalidStackTemplate");
    CHECK(out.failure().message.find("services.app.deploy is not a mapping") != std::string::npos);
  }
}

TEST_CASE("shared runtime: refused templates and bindings folders") {
  SUBCASE("something else mounted at /bindings") {
    auto out = RenderSharedRuntimeFile(
        "services:\n  app:\n    volumes: [\"/etc:/bindings\"]\n", Inputs());
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().reason == "InvalidStackTemplate");
    CHECK(out.failure().message.find("mounts something else at /bindings") != std::string::npos);
    out = RenderSharedRuntimeFile(
        "services:\n  app:\n    volumes: [{type: bind, source: /etc, target: /bindings}]\n",
        Inputs());
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().reason == "InvalidStackTemplate");
  }
  SUBCASE("volumes of the wrong shape") {
    auto out = RenderSharedRuntimeFile("services:\n  app:\n    volumes: {a: b}\n", Inputs());
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().message.find("services.app.volumes is not a list") != std::string::npos);
  }
  SUBCASE("a bindings folder with ':' or a relative one") {
    SharedRuntimeInputs in = Inputs();
    in.bindings = "/srv/a:b/erp";
    auto out = RenderSharedRuntimeFile("services: {app: {}}\n", in);
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().reason == "InvalidBindingsDir");
    in.bindings = "bindings/erp";
    out = RenderSharedRuntimeFile("services: {app: {}}\n", in);
    REQUIRE_FALSE(out.ok());
    CHECK(out.failure().reason == "InvalidBindingsDir");
  }
  SUBCASE("a '$' in the bindings folder is not interpolated by compose") {
    SharedRuntimeInputs in = Inputs();
    in.bindings = "/srv/$HOME/erp";
    auto out = RenderSharedRuntimeFile("services: {app: {}}\n", in);
    REQUIRE(out.ok());
    CHECK(out->find("/srv/$$HOME/erp:/bindings:ro") != std::string::npos);
  }
}

TEST_CASE("shared runtime: the desired stack") {
  auto stack = BuildSharedRuntimeStack(Product(), Config(), kBindings, "services: {app: {}}\n");
  REQUIRE(stack.ok());
  CHECK(stack->name == "tm-shared-erp");
  CHECK(stack->workspace == "shared-erp");
  CHECK(stack->endpoint == 2);
  CHECK(stack->active);
  for (const EnvVar& var : stack->env) {
    CHECK(var.name != "DB_PASSWORD");
    CHECK(var.name != "DATABASE_URL");
  }
  manifests::Product without = Product();
  without.shared_runtime.reset();
  auto none = BuildSharedRuntimeStack(without, Config(), kBindings, "services: {app: {}}\n");
  REQUIRE_FALSE(none.ok());
  CHECK(none.failure().reason == "NoSharedRuntime");
  manifests::Product unversioned = Product();
  unversioned.default_version.clear();
  auto bad = BuildSharedRuntimeStack(unversioned, Config(), kBindings, "services: {app: {}}\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.failure().reason == "InvalidStackVersion");
}

TEST_CASE("shared runtime: every example shared template renders, idempotently") {
  const fs::path fleet_dir = fs::path(TM_SOURCE_DIR) / "examples" / "fleet";
  const manifests::Fleet fleet = manifests::LoadPaths({fleet_dir}, {});
  REQUIRE_FALSE(fleet.HasErrors());
  int rendered = 0;
  for (const manifests::Product& product : fleet.products) {
    if (!product.shared_runtime) continue;
    CAPTURE(product.name);
    manifests::Product as_template = product;
    as_template.stack_template = product.shared_runtime->stack_template;
    auto text = ReadStackTemplate(as_template);
    REQUIRE(text.ok());
    const SharedRuntimeInputs in = MakeSharedRuntimeInputs(product, Config(), kBindings);
    auto file = RenderSharedRuntimeFile(*text, in);
    REQUIRE(file.ok());
    ++rendered;
    const YAML::Node app = App(*file);
    CHECK(Contains(app["volumes"], (kBindings / product.name).string() + ":/bindings:ro"));
    CHECK(app["environment"]["SERVICE_BINDING_ROOT"].Scalar() == "/bindings");
    CHECK(app["labels"]["traefik.enable"].Scalar() == "false");
    CHECK(file->find("DATABASE_URL") == std::string::npos);
    auto again = RenderSharedRuntimeFile(*file, in);
    REQUIRE(again.ok());
    CHECK(*again == *file);
  }
  CHECK(rendered >= 1);
}

}  // namespace tmaster::stacks
