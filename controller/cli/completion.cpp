// `tenantctl completion bash|zsh`: the scripts. Workspace, product and cluster names come from the
// server itself (`tenantctl get workspaces -o name`, `get products -o name` for `rollout`,
// `get clusters -o name` for `move --to`, with the
// --server/--token/--certificate-authority words already typed), so they are as fresh as the
// server's answer; no answer completes nothing.
#include <string_view>

#include "controller/cli/tenantctl.hpp"

namespace tmaster::cli {
namespace {

constexpr std::string_view kBash = R"BASH(# bash completion for tenantctl (docs/api.md#tenantctl):
#   source <(tenantctl completion bash)      or save it as /etc/bash_completion.d/tenantctl
_tenantctl_value_flags='-o --output -f --filename -l --selector -s --server --token --certificate-authority --request-timeout --phase --workspace --limit --chunk-size --timeout --role --ttl --description --config --backup --into --to'

_tenantctl_workspaces() {
  "$1" get workspaces -o name "${@:2}" 2>/dev/null | sed -n 's|^workspace/||p'
}

_tenantctl_products() {
  "$1" get products -o name "${@:2}" 2>/dev/null | sed -n 's|^product/||p'
}

_tenantctl_clusters() {
  "$1" get clusters -o name "${@:2}" 2>/dev/null | sed -n 's|^cluster/||p'
}

_tenantctl() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local verbs='apply get describe diff delete reconcile suspend resume backup backups restore move rollout token validate version completion help'
  local global='--server --token --certificate-authority --insecure-skip-tls-verify --request-timeout --help'
  COMPREPLY=()
  case "$prev" in
    -o|--output) COMPREPLY=($(compgen -W 'table wide json yaml name' -- "$cur")); return;;
    -f|--filename|--certificate-authority|--config)
      compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return;;
    --role) COMPREPLY=($(compgen -W 'admin viewer' -- "$cur")); return;;
    --phase) COMPREPLY=($(compgen -W 'Pending Progressing Ready Degraded Stalled Suspended Deleting' -- "$cur")); return;;
    -l|--selector|-s|--server|--token|--request-timeout|--workspace|--limit|--chunk-size|--timeout|--ttl|--description|--backup) return;;
    --into) COMPREPLY=($(compgen -W "$(_tenantctl_workspaces "${COMP_WORDS[0]}")" -- "$cur")); return;;
    --to) COMPREPLY=($(compgen -W "$(_tenantctl_clusters "${COMP_WORDS[0]}")" -- "$cur")); return;;
  esac
  local verb='' i w
  local -a pos=() conn=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    case " $_tenantctl_value_flags " in
      *" $w "*)
        case "$w" in
          -s|--server|--token|--certificate-authority) conn+=("$w" "${COMP_WORDS[i+1]}");;
        esac
        ((i++)); continue;;
    esac
    case "$w" in
      --insecure-skip-tls-verify) conn+=("$w");;
      -*) ;;
      *) if [[ -z "$verb" ]]; then verb="$w"; else pos+=("$w"); fi;;
    esac
  done
  if [[ -z "$verb" ]]; then
    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$global" -- "$cur"));
    else COMPREPLY=($(compgen -W "$verbs" -- "$cur")); fi
    return
  fi
  local words='' flags=''
  case "$verb" in
    apply) flags='-f --filename --force';;
    diff) flags='-f --filename';;
    get)
      flags='-o --output -l --selector --phase --workspace --limit --chunk-size'
      if ((${#pos[@]} == 0)); then words='workspaces workspace products sources events clusters endpoints moves move'
      elif ((${#pos[@]} == 1)) && [[ "${pos[0]}" == workspace || "${pos[0]}" == workspaces || "${pos[0]}" == ws || "${pos[0]}" == move ]]; then
        words="$(_tenantctl_workspaces "${COMP_WORDS[0]}" "${conn[@]}")"
      fi;;
    describe|delete|reconcile|suspend|resume)
      case "$verb" in delete) flags='--force';; reconcile) flags='--wait --timeout';; esac
      if ((${#pos[@]} == 0)); then words='workspace'; [[ "$verb" == describe ]] && words='workspace move'
      elif ((${#pos[@]} == 1)); then words="$(_tenantctl_workspaces "${COMP_WORDS[0]}" "${conn[@]}")"; fi;;
    move)
      flags='--to --prune --wait --timeout -o --output'
      ((${#pos[@]} == 0)) && words="$(_tenantctl_workspaces "${COMP_WORDS[0]}" "${conn[@]}")";;
    backup|backups|restore)
      case "$verb" in
        backup) flags='--all -l --selector --wait --timeout';;
        backups) flags='-o --output';;
        restore) flags='--backup --into --wait --timeout';;
      esac
      ((${#pos[@]} == 0)) && words="$(_tenantctl_workspaces "${COMP_WORDS[0]}" "${conn[@]}")";;
    rollout)
      flags='-o --output'
      if ((${#pos[@]} == 0)); then words='status pause resume promote abort undo'
      elif ((${#pos[@]} == 1)); then words="$(_tenantctl_products "${COMP_WORDS[0]}" "${conn[@]}")"; fi;;
    token)
      flags='--role --ttl --description -o --output'
      ((${#pos[@]} == 0)) && words='create list revoke';;
    validate) flags='-f --filename --config';;
    version) flags='--client';;
    completion) ((${#pos[@]} == 0)) && words='bash zsh';;
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$flags $global" -- "$cur"));
  else COMPREPLY=($(compgen -W "$words" -- "$cur")); fi
}
complete -F _tenantctl tenantctl
)BASH";

constexpr std::string_view kZsh = R"ZSH(#compdef tenantctl
# zsh completion for tenantctl (docs/api.md#tenantctl):
#   source <(tenantctl completion zsh)   or save it as _tenantctl in a directory of $fpath

_tenantctl_workspaces() {
  local -a names
  names=(${(f)"$(${words[1]} get workspaces -o name "$@" 2>/dev/null)"})
  names=(${${(M)names:#workspace/*}#workspace/})
  compadd -a names
}

_tenantctl_products() {
  local -a names
  names=(${(f)"$(${words[1]} get products -o name "$@" 2>/dev/null)"})
  names=(${${(M)names:#product/*}#product/})
  compadd -a names
}

_tenantctl_clusters() {
  local -a names
  names=(${(f)"$(${words[1]} get clusters -o name "$@" 2>/dev/null)"})
  names=(${${(M)names:#cluster/*}#cluster/})
  compadd -a names
}

_tenantctl() {
  local -a verbs global value_flags pos conn
  verbs=(
    'apply:create or change workspaces from manifests'
    'get:list or show workspaces, products, sources, events, clusters, endpoints, moves'
    'describe:show a workspace or its move in detail'
    'diff:show the plan for manifests'
    'delete:delete a workspace'
    'reconcile:queue a workspace for reconciliation'
    'suspend:suspend a workspace'
    'resume:resume a workspace'
    'backup:take a backup of a workspace now (or --all)'
    'backups:list the backups of a workspace'
    'restore:restore a backup of a workspace'
    'move:move a workspace to another cluster (or --prune its kept source)'
    'rollout:show or steer the rollout of a product in waves'
    'token:create, list or revoke managed tokens'
    'validate:validate manifests offline'
    'version:print the client and server versions'
    'completion:print a completion script'
    'help:print the usage'
  )
  global=(--server --token --certificate-authority --insecure-skip-tls-verify --request-timeout --help)
  value_flags=(-o --output -f --filename -l --selector -s --server --token --certificate-authority
    --request-timeout --phase --workspace --limit --chunk-size --timeout --role --ttl --description --config --backup --into --to)
  local verb='' i w
  for ((i = 2; i < CURRENT; i++)); do
    w=${words[i]}
    if (( ${value_flags[(Ie)$w]} )); then
      case $w in
        -s|--server|--token|--certificate-authority) conn+=($w ${words[i+1]});;
      esac
      (( i++ ))
      continue
    fi
    case $w in
      --insecure-skip-tls-verify) conn+=($w);;
      -*) ;;
      *) if [[ -z $verb ]]; then verb=$w; else pos+=($w); fi;;
    esac
  done
  case ${words[CURRENT-1]} in
    -o|--output) compadd table wide json yaml name; return;;
    -f|--filename|--certificate-authority|--config) _files; return;;
    --role) compadd admin viewer; return;;
    --phase) compadd Pending Progressing Ready Degraded Stalled Suspended Deleting; return;;
    -l|--selector|-s|--server|--token|--request-timeout|--workspace|--limit|--chunk-size|--timeout|--ttl|--description|--backup) return;;
    --into) _tenantctl_workspaces $conn; return;;
    --to) _tenantctl_clusters $conn; return;;
  esac
  if [[ -z $verb ]]; then
    if [[ ${words[CURRENT]} == -* ]]; then compadd -- $global; else _describe 'command' verbs; fi
    return
  fi
  local -a flags choices
  local names=0 products=0
  case $verb in
    apply) flags=(-f --filename --force);;
    diff) flags=(-f --filename);;
    get)
      flags=(-o --output -l --selector --phase --workspace --limit --chunk-size)
      if (( ${#pos} == 0 )); then choices=(workspaces workspace products sources events clusters endpoints moves move)
      elif (( ${#pos} == 1 )) && [[ ${pos[1]} == (workspace|workspaces|ws|move) ]]; then names=1; fi;;
    describe|delete|reconcile|suspend|resume)
      case $verb in delete) flags=(--force);; reconcile) flags=(--wait --timeout);; esac
      if (( ${#pos} == 0 )); then choices=(workspace); [[ $verb == describe ]] && choices=(workspace move)
      elif (( ${#pos} == 1 )); then names=1; fi;;
    move)
      flags=(--to --prune --wait --timeout -o --output)
      (( ${#pos} == 0 )) && names=1;;
    backup|backups|restore)
      case $verb in
        backup) flags=(--all -l --selector --wait --timeout);;
        backups) flags=(-o --output);;
        restore) flags=(--backup --into --wait --timeout);;
      esac
      (( ${#pos} == 0 )) && names=1;;
    rollout)
      flags=(-o --output)
      if (( ${#pos} == 0 )); then choices=(status pause resume promote abort undo)
      elif (( ${#pos} == 1 )); then products=1; fi;;
    token)
      flags=(--role --ttl --description -o --output)
      (( ${#pos} == 0 )) && choices=(create list revoke);;
    validate) flags=(-f --filename --config);;
    version) flags=(--client);;
    completion) (( ${#pos} == 0 )) && choices=(bash zsh);;
  esac
  if [[ ${words[CURRENT]} == -* ]]; then compadd -- $flags $global; return; fi
  if (( names )); then _tenantctl_workspaces $conn; return; fi
  if (( products )); then _tenantctl_products $conn; return; fi
  (( ${#choices} )) && compadd -a choices
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _tenantctl "$@"
else
  compdef _tenantctl tenantctl
fi
)ZSH";

}  // namespace

std::string CompletionScript(const std::string& shell) {
  if (shell == "bash") return std::string(kBash);
  if (shell == "zsh") return std::string(kZsh);
  return {};
}

}  // namespace tmaster::cli
