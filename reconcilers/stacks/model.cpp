#include "reconcilers/stacks/model.hpp"
#include "common/text.hpp"

#include <string>
#include <variant>
#include <vector>

namespace tmaster::stacks {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;



std::string Where(StackId id, int endpoint) {
  std::string out = "(";
  if (id != 0) out += "id " + std::to_string(id) + ", ";
  out += "endpoint " + std::to_string(endpoint) + ")";
  return out;
}

// Env is described by its size only: the names are the fixed ones of docs/stacks.md#name-and-env
// plus the spec's, and the values may be secrets.
std::string EnvSummary(const DesiredStack& stack) {
  return std::to_string(stack.env.size()) + " variables";
}

}  // namespace

std::string Describe(const Action& action) {
  return std::visit(Overloaded{
                        [](const CreateStack& a) {
                          std::string out = "create stack " + Quoted(a.stack.name) + " " +
                                            Where(0, a.stack.endpoint) +
                                            " with its compose file and " + EnvSummary(a.stack);
                          if (!a.stack.active) out += ", then stop it (workspace suspended)";
                          return out;
                        },
                        [](const UpdateStack& a) {
                          std::string out = "update stack " + Quoted(a.stack.name) + " " +
                                            Where(a.id, a.stack.endpoint) + ": file and " +
                                            EnvSummary(a.stack) + " sent whole";
                          if (!a.changed.empty()) out += "; changed: " + Join(a.changed);
                          return out;
                        },
                        [](const StartStack& a) {
                          return "start stack " + Quoted(a.name) + " " + Where(a.id, a.endpoint);
                        },
                        [](const StopStack& a) {
                          return "stop stack " + Quoted(a.name) + " " + Where(a.id, a.endpoint);
                        },
                        [](const DeleteStack& a) {
                          return "delete stack " + Quoted(a.name) + " " + Where(a.id, a.endpoint);
                        },
                    },
                    action);
}

std::string KindOf(const Action& action) {
  return std::visit(Overloaded{
                        [](const CreateStack&) { return std::string("CreateStack"); },
                        [](const UpdateStack&) { return std::string("UpdateStack"); },
                        [](const StartStack&) { return std::string("StartStack"); },
                        [](const StopStack&) { return std::string("StopStack"); },
                        [](const DeleteStack&) { return std::string("DeleteStack"); },
                    },
                    action);
}

}  // namespace tmaster::stacks
