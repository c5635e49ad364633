// Rendering of a dedicated stack (docs/stacks.md): the Env, the compose file's
// structural additions, the example templates, hostile values.

#include "reconcilers/stacks/render.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "manifests/types.hpp"
#include "reconcilers/stacks/model.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::stacks {
namespace {

namespace fs = std::filesystem;

const fs::path kExamples = fs::path(TM_SOURCE_DIR) / "examples";
constexpr const char* kPassword = "s3cr3t-P@ss:w/rd%";

manifests::Product Product() {
  manifests::Product p;
  p.name = "erp";
  p.image = "ghcr.io/acme/erp";
  p.default_version = "2.3.1";
  p.port = 8000;
  p.stack_template = "/templates/erp.yml";
  return p;
}

manifests::Workspace Workspace() {
  manifests::Workspace w;
  w.name = "acme";
  w.product = "erp";
  w.mode = manifests::Mode::kDedicated;
  w.subdomain = "acme-shop";
  w.dedicated = manifests::DedicatedSpec{};
  w.dedicated->endpoint = 3;
  w.dedicated->version = "2.3.2";
  w.dedicated->env = {{"LANGUAGE_CODE", "es"}, {"TIME_ZONE", "America/Lima"}};
  return w;
}

manifests::Config Config() {
  manifests::Config c;
  c.base_domain = "surgir.online";
  c.stacks.edge_network = "tenant-network";
  c.stacks.cert_resolver = "le";
  return c;
}

DbConnection Db() { return {"pg.internal", 5433, "tenant_acme", "user_acme", Secret(kPassword)}; }

RenderInputs Inputs() { return MakeRenderInputs(Workspace(), Product(), Config()); }

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::map<std::string, EnvVar> ByName(const std::vector<EnvVar>& env) {
  std::map<std::string, EnvVar> out;
  for (const auto& var : env) out[var.name] = var;
  return out;
}

std::size_t Count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

const char* kMinimal = "services:\n  web:\n    restart: always\n";

}  // namespace

TEST_CASE("stack render: the Env has every variable, sorted, secrets marked") {
  const auto env = BuildStackEnv(Inputs(), Db(), Workspace().dedicated->env);
  REQUIRE(env.ok());
  std::vector<std::string> names;
  for (const auto& var : *env) names.push_back(var.name);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(names == std::vector<std::string>{"DATABASE_URL", "DB_HOST", "DB_NAME", "DB_PASSWORD",
                                          "DB_PORT", "DB_USER", "LANGUAGE_CODE", "TIME_ZONE",
                                          "TM_CERT_RESOLVER", "TM_EDGE_NETWORK", "TM_HOST",
                                          "TM_IMAGE", "TM_PORT", "TM_VERSION", "TM_WORKSPACE"});
  const auto vars = ByName(*env);
  CHECK(vars.at("TM_WORKSPACE").value == "acme");
  CHECK(vars.at("TM_HOST").value == "acme-shop.surgir.online");
  CHECK(vars.at("TM_IMAGE").value == "ghcr.io/acme/erp");
  CHECK(vars.at("TM_VERSION").value == "2.3.2");
  CHECK(vars.at("TM_PORT").value == "8000");
  CHECK(vars.at("TM_EDGE_NETWORK").value == "tenant-network");
  CHECK(vars.at("TM_CERT_RESOLVER").value == "le");
  CHECK(vars.at("DB_HOST").value == "pg.internal");
  CHECK(vars.at("DB_PORT").value == "5433");
  CHECK(vars.at("DB_NAME").value == "tenant_acme");
  CHECK(vars.at("DB_USER").value == "user_acme");
  CHECK(vars.at("DB_PASSWORD").value == kPassword);
  CHECK(vars.at("LANGUAGE_CODE").value == "es");
  CHECK(vars.at("TIME_ZONE").value == "America/Lima");
  for (const auto& var : *env) {
    CAPTURE(var.name);
    CHECK(var.secret == (var.name == "DB_PASSWORD" || var.name == "DATABASE_URL"));
    CHECK(IsSecretEnvName(var.name) == var.secret);
  }
}

TEST_CASE("stack render: TM_VERSION defaults to the product's defaultVersion") {
  manifests::Workspace w = Workspace();
  w.dedicated->version.clear();
  CHECK(MakeRenderInputs(w, Product(), Config()).version == "2.3.1");
  w.subdomain.clear();
  CHECK(MakeRenderInputs(w, Product(), Config()).host == "acme.surgir.online");
}

TEST_CASE("stack render: DATABASE_URL percent-encodes user, password and database") {
  DbConnection db = Db();
  db.user = "us@r";
  db.database = "tenant acme/x";
  CHECK(DatabaseUrl(db).Reveal() ==
        "postgresql://us%40r:s3cr3t-P%40ss%3Aw%2Frd%25@pg.internal:5433/tenant%20acme%2Fx");
  db = Db();
  CHECK(DatabaseUrl(db).Reveal() ==
        "postgresql://user_acme:s3cr3t-P%40ss%3Aw%2Frd%25@pg.internal:5433/tenant_acme");
  db.host = "fd00::5";
  CHECK(DatabaseUrl(db).Reveal().find("@[fd00::5]:5433/") != std::string::npos);
  db.host = "/var/run/postgresql";
  CHECK(DatabaseUrl(db).Reveal().find("@%2Fvar%2Frun%2Fpostgresql:5433/") != std::string::npos);

  const auto env = BuildStackEnv(Inputs(), Db(), {});
  REQUIRE(env.ok());
  CHECK(ByName(*env).at("DATABASE_URL").value == DatabaseUrl(Db()).Reveal());
}

TEST_CASE("stack render: hostile Env values are refused, naming the variable only") {
  const std::vector<std::string> hostile = {"es\nDB_PASSWORD=stolen", "a\rb",
                                            std::string("a\0b", 3), "x\n"};
  for (const auto& value : hostile) {
    CAPTURE(value.size());
    const auto env = BuildStackEnv(Inputs(), Db(), {{"LANGUAGE_CODE", value}});
    REQUIRE_FALSE(env.ok());
    CHECK(env.failure().kind == FailureKind::kStalled);
    CHECK(env.failure().reason == "InvalidStackEnv");
    CHECK(env.failure().message.find("LANGUAGE_CODE") != std::string::npos);
    CHECK(env.failure().message.find(value) == std::string::npos);
  }
  // A database password (or host) that an env file cannot carry is refused the same way, and the
  // message never shows it.
  DbConnection db = Db();
  db.password = Secret("pw\nX=1");
  const auto bad = BuildStackEnv(Inputs(), db, {});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.failure().message.find("DB_PASSWORD") != std::string::npos);
  CHECK(bad.failure().message.find("pw\nX=1") == std::string::npos);

  // Operator names and malformed names cannot come in through spec.dedicated.env.
  for (const std::string name : {"TM_HOST", "DB_PASSWORD", "DATABASE_URL", "1BAD", "A-B", ""}) {
    CAPTURE(name);
    const auto env = BuildStackEnv(Inputs(), Db(), {{name, "x"}});
    REQUIRE_FALSE(env.ok());
    CHECK(env.failure().reason == "InvalidStackEnv");
  }
}

TEST_CASE("stack render: YAML-looking Env values never reach the file") {
  manifests::Workspace w = Workspace();
  w.dedicated->env = {{"GREETING", "'; privileged: true #"},
                      {"OTHER", "${DB_PASSWORD} ]]] {{ !!python/object"}};
  const auto stack = BuildDesiredStack(w, Product(), Config(), Db(), kMinimal);
  REQUIRE(stack.ok());
  CHECK(stack->file.find("privileged") == std::string::npos);
  CHECK(stack->file.find("python") == std::string::npos);
  CHECK(stack->file.find(kPassword) == std::string::npos);
  CHECK(stack->file.find("pg.internal") == std::string::npos);
  // Values are carried by the Env only.
  CHECK(ByName(stack->env).at("GREETING").value == "'; privileged: true #");
}

TEST_CASE("stack render: a template without image, labels or networks gets all of ours") {
  const auto file = RenderStackFile(kMinimal, Inputs());
  REQUIRE(file.ok());
  CHECK(*file ==
        "services:\n"
        "  web:\n"
        "    restart: always\n"
        "    image: \"ghcr.io/acme/erp:2.3.2\"\n"
        "    labels:\n"
        "      traefik.enable: \"true\"\n"
        "      traefik.docker.network: \"tenant-network\"\n"
        "      traefik.http.routers.tm-acme.rule: \"Host(`acme-shop.surgir.online`)\"\n"
        "      traefik.http.routers.tm-acme.entrypoints: \"websecure\"\n"
        "      traefik.http.routers.tm-acme.tls.certresolver: \"le\"\n"
        "      traefik.http.services.tm-acme.loadbalancer.server.port: \"8000\"\n"
        "    deploy:\n"
        "      labels:\n"
        "        traefik.enable: \"true\"\n"
        "        traefik.docker.network: \"tenant-network\"\n"
        "        traefik.swarm.network: \"tenant-network\"\n"
        "        traefik.http.routers.tm-acme.rule: \"Host(`acme-shop.surgir.online`)\"\n"
        "        traefik.http.routers.tm-acme.entrypoints: \"websecure\"\n"
        "        traefik.http.routers.tm-acme.tls.certresolver: \"le\"\n"
        "        traefik.http.services.tm-acme.loadbalancer.server.port: \"8000\"\n"
        "    networks:\n"
        "      - default\n"
        "      - tenant-network\n"
        "networks:\n"
        "  tenant-network:\n"
        "    name: \"tenant-network\"\n"
        "    external: true\n");
}

// One file for both kinds of endpoint (docs/stacks.md#one-file-for-both-kinds): compose reads
// `labels` and ignores `deploy.labels`; Traefik's swarm provider reads only `deploy.labels`.
TEST_CASE("stack render: our labels are on the container and under deploy.labels") {
  // A template written for swarm keeps its deploy settings and its own deploy labels; the keys
  // that mean ours take our values there too, once.
  const auto file = RenderStackFile(
      "services:\n  app:\n    image: x\n    deploy:\n      replicas: 2\n      labels:\n"
      "        - com.example.tier=web\n"
      "        - traefik.http.routers.tm-${TM_WORKSPACE}.rule=Host(`evil.example`)\n"
      "        - traefik.swarm.network=other\n",
      Inputs());
  REQUIRE(file.ok());
  CHECK(file->find("    deploy:\n      replicas: 2\n      labels:\n"
                   "        com.example.tier: \"web\"\n"
                   "        traefik.http.routers.tm-acme.rule: "
                   "\"Host(`acme-shop.surgir.online`)\"\n"
                   "        traefik.swarm.network: \"tenant-network\"\n"
                   "        traefik.enable: \"true\"\n"
                   "        traefik.docker.network: \"tenant-network\"\n") != std::string::npos);
  CHECK(file->find("evil.example") == std::string::npos);
  CHECK(file->find("other") == std::string::npos);
  CHECK(Count(*file, "traefik.http.routers.tm-acme.rule:") == 2);
  CHECK(Count(*file, "traefik.http.services.tm-acme.loadbalancer.server.port: \"8000\"") == 2);
  CHECK(Count(*file, "traefik.swarm.network:") == 1);  // only where a swarm provider looks
  // The template's own deploy labels stay there, not copied onto the container.
  CHECK(Count(*file, "com.example.tier") == 1);
  const auto again = RenderStackFile(*file, Inputs());
  REQUIRE(again.ok());
  CHECK(*again == *file);

  const auto bad = RenderStackFile("services:\n  app:\n    deploy: [1]\n", Inputs());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.failure().reason == "InvalidStackTemplate");
  CHECK(bad.failure().message.find("services.app.deploy is not a mapping") != std::string::npos);
  const auto bad_labels =
      RenderStackFile("services:\n  app:\n    deploy: {labels: 5}\n", Inputs());
  REQUIRE_FALSE(bad_labels.ok());
  CHECK(bad_labels.failure().message.find("services.app.deploy.labels is neither") !=
        std::string::npos);
}

TEST_CASE("stack render: env_file stack.env becomes ${NAME} entries of the Env's names") {
  const RenderInputs in = Inputs();
  REQUIRE(in.env_names.size() == 15);  // the operator's 13 and spec.dedicated.env's 2
  // Map form: the template's own entries are kept as they are and not repeated.
  const auto file = RenderStackFile(
      "services:\n  app:\n    image: x\n    env_file: stack.env\n"
      "    environment:\n      DATABASE_URL: ${DATABASE_URL}?sslmode=require\n"
      "      LANGUAGE_CODE: en\n",
      in);
  REQUIRE(file.ok());
  CHECK(file->find("env_file") == std::string::npos);
  CHECK(file->find("      DATABASE_URL: ${DATABASE_URL}?sslmode=require\n"
                   "      LANGUAGE_CODE: en\n"
                   "      DB_HOST: \"${DB_HOST}\"\n") != std::string::npos);
  for (const auto& name : in.env_names) {
    CAPTURE(name);
    CHECK(Count(*file, "      " + name + ":") == 1);
  }
  CHECK(file->find("DB_PASSWORD: \"${DB_PASSWORD}\"") != std::string::npos);
  CHECK(file->find("LANGUAGE_CODE: \"${LANGUAGE_CODE}\"") == std::string::npos);
  const auto again = RenderStackFile(*file, in);
  REQUIRE(again.ok());
  CHECK(*again == *file);

  // List form, stack.env among other env files (kept), environment as a list (a bare NAME sets
  // it too), and a second service without environment.
  const auto list = RenderStackFile(
      "services:\n  app:\n    image: x\n    env_file: [common.env, stack.env]\n"
      "    environment:\n      - TM_HOST=override\n      - TIME_ZONE\n"
      "  worker:\n    image: y\n    env_file:\n      - path: ./stack.env\n        required: true\n",
      in);
  REQUIRE(list.ok());
  CHECK(list->find("env_file: [common.env]") != std::string::npos);
  CHECK(list->find("stack.env") == std::string::npos);
  CHECK(list->find("      - TM_HOST=override\n      - TIME_ZONE\n"
                   "      - \"DATABASE_URL=${DATABASE_URL}\"\n") != std::string::npos);
  const auto worker_at = list->find("  worker:\n");
  REQUIRE(worker_at != std::string::npos);
  const std::string app = list->substr(0, worker_at);
  CHECK(Count(app, "TM_HOST") == 1);
  CHECK(Count(app, "TIME_ZONE") == 1);
  CHECK(Count(app, "${") == in.env_names.size() - 2);
  CHECK(list->find("    environment:\n      DATABASE_URL: \"${DATABASE_URL}\"\n", worker_at) !=
        std::string::npos);
  CHECK(Count(*list, "\"${TM_WORKSPACE}\"") == 1);  // the worker's; the list has its own form
  const auto list_again = RenderStackFile(*list, in);
  REQUIRE(list_again.ok());
  CHECK(*list_again == *list);

  // Names a merge key gives the environment are the service's own too.
  const auto merged = RenderStackFile(
      "x-common: &common\n  DB_HOST: custom\nservices:\n  app:\n    image: x\n"
      "    env_file: stack.env\n    environment:\n      <<: *common\n      A: b\n",
      in);
  REQUIRE(merged.ok());
  CHECK(merged->find("${DB_HOST}") == std::string::npos);
  CHECK(merged->find("      DB_NAME: \"${DB_NAME}\"\n") != std::string::npos);

  // Another env file alone is left alone, and nothing is added.
  const auto other = RenderStackFile(
      "services:\n  app:\n    image: x\n    env_file: app.env\n    environment: {A: b}\n", in);
  REQUIRE(other.ok());
  CHECK(other->find("env_file: app.env") != std::string::npos);
  CHECK(other->find("${") == std::string::npos);

  const auto bad = RenderStackFile(
      "services:\n  app:\n    image: x\n    env_file: stack.env\n    environment: 5\n", in);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.failure().reason == "InvalidStackTemplate");
  CHECK(bad.failure().message.find("services.app.environment is neither") != std::string::npos);
}

TEST_CASE("stack render: the Env's names come from the workspace and match BuildStackEnv") {
  const auto env = BuildStackEnv(Inputs(), Db(), Workspace().dedicated->env);
  REQUIRE(env.ok());
  std::vector<std::string> names;
  for (const auto& var : *env) names.push_back(var.name);
  CHECK(Inputs().env_names == names);
}

TEST_CASE("stack render: a desired stack's file carries references, never Env values") {
  manifests::Workspace w = Workspace();
  w.dedicated->env["API_SECRET"] = "extra-value-7f3a";
  const std::string text =
      "services:\n  app:\n    image: x\n    env_file: stack.env\n"
      "  worker:\n    image: y\n    env_file: [stack.env]\n    environment: [A=1]\n";
  const auto stack = BuildDesiredStack(w, Product(), Config(), Db(), text);
  REQUIRE(stack.ok());
  CHECK(stack->file.find("env_file") == std::string::npos);
  CHECK(stack->file.find(kPassword) == std::string::npos);
  CHECK(stack->file.find(DatabaseUrl(Db()).Reveal()) == std::string::npos);
  CHECK(stack->file.find("extra-value-7f3a") == std::string::npos);
  CHECK(stack->file.find("pg.internal") == std::string::npos);
  for (const auto& var : stack->env) {
    CAPTURE(var.name);
    CHECK(Count(stack->file, var.name + ": \"${" + var.name + "}\"") == 1);  // app
    CHECK(Count(stack->file, "\"" + var.name + "=${" + var.name + "}\"") == 1);  // worker
  }
  // Deterministic: the same inputs give the same text, and the result is a fixed point.
  const auto twice = BuildDesiredStack(w, Product(), Config(), Db(), text);
  REQUIRE(twice.ok());
  CHECK(twice->file == stack->file);
  const auto again = BuildDesiredStack(w, Product(), Config(), Db(), stack->file);
  REQUIRE(again.ok());
  CHECK(again->file == stack->file);
}

TEST_CASE("stack render: the template's own image wins; ours is the default") {
  const auto own = RenderStackFile("services:\n  app:\n    image: nginx:1.27\n", Inputs());
  REQUIRE(own.ok());
  CHECK(own->find("image: nginx:1.27") != std::string::npos);
  CHECK(own->find("ghcr.io/acme/erp") == std::string::npos);

  const auto empty = RenderStackFile("services:\n  app:\n    image: \"\"\n", Inputs());
  REQUIRE(empty.ok());
  CHECK(empty->find("image: \"ghcr.io/acme/erp:2.3.2\"") != std::string::npos);

  // A version bump changes the image of a template that leaves it to us.
  RenderInputs bumped = Inputs();
  bumped.version = "2.4.0";
  const auto next = RenderStackFile(kMinimal, bumped);
  REQUIRE(next.ok());
  CHECK(next->find("image: \"ghcr.io/acme/erp:2.4.0\"") != std::string::npos);
}

TEST_CASE("stack render: the routed service is `app`, else the first one") {
  const auto with_app =
      RenderStackFile("services:\n  db:\n    image: postgres\n  app:\n    image: x\n", Inputs());
  REQUIRE(with_app.ok());
  const auto db_at = with_app->find("  db:");
  const auto app_at = with_app->find("  app:");
  const auto rule_at = with_app->find("routers.tm-acme.rule");
  REQUIRE(db_at != std::string::npos);
  REQUIRE(app_at != std::string::npos);
  CHECK(rule_at > app_at);
  CHECK(Count(*with_app, "routers.tm-acme.rule") == 2);  // labels and deploy.labels of app

  const auto first =
      RenderStackFile("services:\n  web:\n    image: x\n  worker:\n    image: y\n", Inputs());
  REQUIRE(first.ok());
  CHECK(first->find("routers.tm-acme.rule") < first->find("  worker:"));
}

TEST_CASE("stack render: labels in list form become a map; our keys take our values") {
  const auto file = RenderStackFile(
      "services:\n  app:\n    image: x\n    labels:\n"
      "      - traefik.enable=false\n"
      "      - com.example.team=a=b\n"
      "      - bare\n"
      "      - traefik.http.routers.tm-acme.rule=Host(`evil.example`)\n",
      Inputs());
  REQUIRE(file.ok());
  CHECK(file->find("traefik.enable: \"true\"") != std::string::npos);
  CHECK(file->find("false") == std::string::npos);
  CHECK(file->find("com.example.team: \"a=b\"") != std::string::npos);
  CHECK(file->find("bare: \"\"") != std::string::npos);
  CHECK(file->find("evil.example") == std::string::npos);
  CHECK(Count(*file, "traefik.http.routers.tm-acme.rule") == 2);  // labels, deploy.labels
}

TEST_CASE("stack render: an edge network the template declares is reused, not duplicated") {
  const auto by_name = RenderStackFile(
      "services:\n  app:\n    image: x\n    networks: [front]\n"
      "networks:\n  front:\n    name: ${TM_EDGE_NETWORK}\n    external: true\n",
      Inputs());
  REQUIRE(by_name.ok());
  CHECK(by_name->find("networks: [front]") != std::string::npos);
  CHECK(by_name->find("  front:\n    name: \"tenant-network\"\n    external: true\n") !=
        std::string::npos);
  CHECK(by_name->find("  tenant-network:") == std::string::npos);

  // A service with a map of networks joins ours as a key; other networks are kept.
  const auto map_form = RenderStackFile(
      "services:\n  app:\n    image: x\n    networks:\n      back: {}\n"
      "networks:\n  back: {}\n",
      Inputs());
  REQUIRE(map_form.ok());
  CHECK(map_form->find("      back: {}\n      tenant-network: {}\n") != std::string::npos);
  CHECK(map_form->find("  back: {}\n  tenant-network:\n") != std::string::npos);
}

TEST_CASE("stack render: quoting, tags and flow style of the template survive") {
  const auto file = RenderStackFile(
      "services:\n  app:\n    image: x\n    ports: [\"8080:80\"]\n"
      "    environment: {DEBUG: \"false\", WORKERS: 4, VERSION: '3.8'}\n"
      "    volumes: !reset []\n    command: !!str 5\n",
      Inputs());
  REQUIRE(file.ok());
  CHECK(file->find("ports: [\"8080:80\"]") != std::string::npos);
  CHECK(file->find("environment: {DEBUG: \"false\", WORKERS: 4, VERSION: \"3.8\"}") !=
        std::string::npos);
  CHECK(file->find("volumes: !reset []") != std::string::npos);
  CHECK(file->find("command: !!str 5") != std::string::npos);
}

TEST_CASE("stack render: literal values we insert are not interpolated by compose") {
  RenderInputs in = Inputs();
  in.image = "registry.local/img$x";
  const auto file = RenderStackFile(kMinimal, in);
  REQUIRE(file.ok());
  CHECK(file->find("image: \"registry.local/img$$x:2.3.2\"") != std::string::npos);
}

TEST_CASE("stack render: templates that are not a compose mapping are Stalled, naming the file") {
  const std::vector<std::string> bad = {
      "services: [",                                  // not YAML
      "- a\n- b\n",                                   // not a mapping
      "version: '3'\n",                               // no services
      "services: {}\n",                               // no service
      "services: [app]\n",                            // services not a mapping
      "services:\n  app: [1]\n",                      // service not a mapping
      "services:\n  app:\n    labels: 5\n",           // labels neither map nor list
      "services:\n  app:\n    network_mode: host\n",  // cannot join the edge network
      "services:\n  app:\n    networks: 5\n",         // networks neither map nor list
      "services:\n  app: {}\nnetworks: [a]\n",        // top-level networks not a map
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    const auto file = RenderStackFile(text, Inputs());
    REQUIRE_FALSE(file.ok());
    CHECK(file.failure().kind == FailureKind::kStalled);
    CHECK(file.failure().reason == "InvalidStackTemplate");
    CHECK(file.failure().message.find("/templates/erp.yml") != std::string::npos);
  }
  const auto syntax = RenderStackFile("services:\n  app: {\n", Inputs());
  REQUIRE_FALSE(syntax.ok());
  CHECK(syntax.failure().message.find("line ") != std::string::npos);
}

TEST_CASE("stack render: an alias bomb is refused instead of expanded") {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 8; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev + ", " + prev +
            ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev +
            ", " + prev + ", " + prev + "]\n";
  }
  text += "services:\n  app: {}\n";
  const auto file = RenderStackFile(text, Inputs());
  REQUIRE_FALSE(file.ok());
  CHECK(file.failure().reason == "InvalidStackTemplate");
}

TEST_CASE("stack render: every example template renders, idempotently, with the router rule") {
  int rendered = 0;
  for (const auto& entry : fs::directory_iterator(kExamples / "fleet" / "stacks")) {
    if (entry.path().extension() != ".yml") continue;
    // A product's shared runtime template (`<product>-shared.yml`) is not a dedicated one: it is
    // rendered by tests/reconcilers/stacks/shared_runtime_render_test.cpp.
    if (entry.path().stem().string().ends_with("-shared")) continue;
    CAPTURE(entry.path().string());
    RenderInputs in = Inputs();
    in.template_name = entry.path().string();
    const std::string text = ReadText(entry.path());
    const auto file = RenderStackFile(text, in);
    REQUIRE(file.ok());
    ++rendered;
    // Each of ours twice: on the container (compose) and under deploy.labels (swarm).
    CHECK(Count(*file, "traefik.http.routers.tm-acme.rule: \"Host(`acme-shop.surgir.online`)\"") ==
          2);
    CHECK(Count(*file, "traefik.http.routers.tm-acme.entrypoints: \"websecure\"") == 2);
    CHECK(Count(*file, "traefik.http.routers.tm-acme.tls.certresolver: \"le\"") == 2);
    CHECK(Count(*file, "traefik.http.services.tm-acme.loadbalancer.server.port: \"8000\"") == 2);
    CHECK(Count(*file, "traefik.enable: \"true\"") == 2);
    CHECK(Count(*file, "traefik.docker.network: \"tenant-network\"") == 2);
    CHECK(Count(*file, "traefik.swarm.network: \"tenant-network\"") == 1);
    CHECK(file->find("    deploy:\n      labels:\n") != std::string::npos);
    // No stack.env on swarm: the examples' `env_file: stack.env` became ${NAME} entries.
    CHECK(file->find("env_file") == std::string::npos);
    CHECK(Count(*file, "DATABASE_URL:") == 1);  // the template's own, kept
    CHECK(file->find("DB_PASSWORD: \"${DB_PASSWORD}\"") != std::string::npos);
    // The template's ${TM_*} label keys were recognised as ours, not left beside them.
    CHECK(file->find("routers.tm-${TM_WORKSPACE}") == std::string::npos);
    // The template's `edge` network is the edge network: no second declaration.
    CHECK(file->find("  edge:\n    name: \"tenant-network\"\n    external: true\n") !=
          std::string::npos);
    CHECK(Count(*file, "name: \"tenant-network\"") == 1);
    // Interpolation is left to compose.
    CHECK(file->find("image: ${TM_IMAGE}:${TM_VERSION}") != std::string::npos);
    CHECK(file->find("DATABASE_URL: ${DATABASE_URL}") != std::string::npos);
    // A fixed point: rendering the result again changes nothing.
    const auto again = RenderStackFile(*file, in);
    REQUIRE(again.ok());
    CHECK(*again == *file);
  }
  CHECK(rendered >= 3);
}

// Found by tests/fuzz/render_fuzz.cpp (tests/fuzz/corpus/render/crash-long-label-key): YAML
// allows at most 1024 characters in a key written without `? `, and the emitter wrote longer keys
// (a label key of 260 control bytes, four characters each once escaped) into a file that did not
// parse again, nor would compose read it. Keys up to 200 bytes render to a file that parses; a
// longer one is refused, naming its line (a label in list form has none of its own).
TEST_CASE("stack render: a key too long for YAML is refused, a long one still renders") {
  const auto with_label_key = [](const std::string& key) {
    return "services:\n  app:\n    image: nginx\n    labels:\n      - \"" + key + "=1\"\n";
  };
  const std::string fits = "tm.note." + std::string(192, '\x01');  // 200 bytes, 776 escaped
  const auto file = RenderStackFile(with_label_key(fits), Inputs());
  REQUIRE(file.ok());
  const auto again = RenderStackFile(*file, Inputs());
  REQUIRE(again.ok());
  CHECK(*again == *file);

  const auto refused = RenderStackFile(with_label_key(fits + "x"), Inputs());
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().reason == "InvalidStackTemplate");
  CHECK(refused.failure().message.find("a key longer than 200 bytes") != std::string::npos);
  CHECK(refused.failure().message.find("a label: ") != std::string::npos);

  const std::string long_name(201, 'a');
  const auto service = RenderStackFile("services:\n  app:\n    image: nginx\n  " + long_name +
                                           ":\n    image: nginx\n",
                                       Inputs());
  REQUIRE_FALSE(service.ok());
  CHECK(service.failure().message.find("line 4: a key longer than 200 bytes") !=
        std::string::npos);
}

TEST_CASE("stack render: every dedicated example workspace builds its desired stack") {
  manifests::LoadOptions options;
  options.known_clusters = std::set<std::string>{"default"};
  const manifests::Fleet fleet = manifests::LoadPaths({kExamples / "fleet"}, options);
  REQUIRE_FALSE(fleet.HasErrors());
  int dedicated = 0;
  for (const auto& workspace : fleet.workspaces) {
    if (!workspace.dedicated) continue;
    CAPTURE(workspace.name);
    const manifests::Product* product = fleet.FindProduct(workspace.product);
    REQUIRE(product != nullptr);
    const auto stack = BuildDesiredStack(workspace, *product, Config(), Db());
    REQUIRE(stack.ok());
    ++dedicated;
    CHECK(stack->name == "tm-" + workspace.name);
    CHECK(stack->workspace == workspace.name);
    CHECK(stack->endpoint == workspace.dedicated->endpoint);
    CHECK(stack->active == !workspace.suspend);
    CHECK(stack->file.find("traefik.http.routers.tm-" + workspace.name + ".rule") !=
          std::string::npos);
    CHECK(ByName(stack->env).at("TM_WORKSPACE").value == workspace.name);
    CHECK(stack->file.find(kPassword) == std::string::npos);
  }
  CHECK(dedicated >= 2);
}

TEST_CASE("stack render: BuildDesiredStack reports a missing template, a shared workspace") {
  manifests::Product product = Product();
  product.stack_template.clear();
  auto stack = BuildDesiredStack(Workspace(), product, Config(), Db());
  REQUIRE_FALSE(stack.ok());
  CHECK(stack.failure().reason == "InvalidStackTemplate");

  tmaster::testing::TempDir dir;
  product.stack_template = dir.path() / "missing.yml";
  stack = BuildDesiredStack(Workspace(), product, Config(), Db());
  REQUIRE_FALSE(stack.ok());
  CHECK(stack.failure().reason == "InvalidStackTemplate");
  CHECK(stack.failure().message.find("missing.yml") != std::string::npos);

  product.stack_template = dir.Write("erp.yml", kMinimal);
  stack = BuildDesiredStack(Workspace(), product, Config(), Db());
  REQUIRE(stack.ok());

  manifests::Workspace shared = Workspace();
  shared.dedicated.reset();
  stack = BuildDesiredStack(shared, Product(), Config(), Db(), kMinimal);
  REQUIRE_FALSE(stack.ok());
  CHECK(stack.failure().reason == "NotDedicated");

  manifests::Workspace suspended = Workspace();
  suspended.suspend = true;
  stack = BuildDesiredStack(suspended, Product(), Config(), Db(), kMinimal);
  REQUIRE(stack.ok());
  CHECK_FALSE(stack->active);
}

TEST_CASE("stack render: ReadStackTemplate is confined to the product's root and capped") {
  tmaster::testing::TempDir dir;
  const std::string key = "tm-key-a7c3e9d1";
  dir.Write("outside/master-key", key + "\n");
  manifests::Product product = Product();
  product.root = dir.path() / "fleet";
  product.stack_template = dir.Write("fleet/stacks/erp.yml", kMinimal);
  REQUIRE(ReadStackTemplate(product));

  SUBCASE("over the limit: refused unread") {
    std::string big(300U * 1024U, '#');
    product.stack_template = dir.Write("fleet/stacks/big.yml", big);
    auto text = ReadStackTemplate(product);
    REQUIRE_FALSE(text);
    CHECK(text.failure().kind == FailureKind::kStalled);
    CHECK(text.failure().reason == "StackTemplateTooLarge");
    CHECK(text.failure().message ==
          "stack template stacks/big.yml of product " + product.name +
              " is larger than the limit of 262144 bytes (reconcile.maxTemplateSize); it was not "
              "read");
    CHECK(ReadStackTemplate(product, 512U * 1024U).ok());
    CHECK(ReadStackTemplate(product, 1024U).failure().reason == "StackTemplateTooLarge");
  }
  SUBCASE("a symbolic link out of the root") {
    fs::create_symlink(dir.path() / "outside/master-key", dir.path() / "fleet/stacks/link.yml");
    product.stack_template = dir.path() / "fleet/stacks/link.yml";
    auto text = ReadStackTemplate(product);
    REQUIRE_FALSE(text);
    CHECK(text.failure().reason == "InvalidStackTemplate");
    CHECK(text.failure().message ==
          "stack template stacks/link.yml of product " + product.name +
              " leads out of the source folder (a symbolic link or '..' pointing outside it); it "
              "was not read");
    CHECK(text.failure().message.find(key) == std::string::npos);
    // Without a root, the template's own folder is the root: still refused.
    product.root.clear();
    CHECK(ReadStackTemplate(product).failure().message.find("leads out of the source folder") !=
          std::string::npos);
  }
  SUBCASE("a path outside the root") {
    product.stack_template = dir.path() / "outside/master-key";
    auto text = ReadStackTemplate(product);
    REQUIRE_FALSE(text);
    CHECK(text.failure().reason == "InvalidStackTemplate");
    CHECK(text.failure().message.find(key) == std::string::npos);
  }
}

TEST_CASE("stack render: Describe never shows an Env value or a secret") {
  const auto stack = BuildDesiredStack(Workspace(), Product(), Config(), Db(), kMinimal);
  REQUIRE(stack.ok());
  const std::vector<Action> actions = {
      CreateStack{*stack},
      UpdateStack{7, *stack, {"file", "env:DB_PASSWORD", "env:TM_VERSION"}},
      StartStack{7, 3, stack->name},
      StopStack{7, 3, stack->name},
      DeleteStack{7, 3, stack->name},
  };
  for (const auto& action : actions) {
    const std::string text = Describe(action);
    CAPTURE(text);
    CHECK(text.find("tm-acme") != std::string::npos);
    CHECK(text.find(kPassword) == std::string::npos);
    CHECK(text.find("s3cr3t") == std::string::npos);
    CHECK(text.find("postgresql://") == std::string::npos);
    for (const auto& var : stack->env) {
      // `le`, `es` would match ordinary words; the workspace is in the stack's name.
      if (var.value.size() < 3 || var.name == "TM_WORKSPACE") continue;
      CHECK(text.find(var.value) == std::string::npos);
    }
  }
  CHECK(KindOf(actions[0]) == "CreateStack");
  CHECK(KindOf(actions[1]) == "UpdateStack");
  CHECK(KindOf(actions[2]) == "StartStack");
  CHECK(KindOf(actions[3]) == "StopStack");
  CHECK(KindOf(actions[4]) == "DeleteStack");
  CHECK(Describe(actions[1]).find("env:TM_VERSION") != std::string::npos);
}

}  // namespace tmaster::stacks
