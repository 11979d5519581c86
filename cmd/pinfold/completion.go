package main

import (
	"fmt"
	"os"
	"strings"
)

const completionUsage = `Usage: pinfold completion bash|zsh

Prints a shell completion script for pinfold's commands and flags; app ids
and policy names come from the daemon (pinfold ps -aq, policy list -q) when
one is set.

  bash: source <(pinfold completion bash)     (or save it in /etc/bash_completion.d/pinfold)
  zsh:  source <(pinfold completion zsh)      (or save it as _pinfold in a directory of $fpath)
`

type completionEntry struct {
	cmd   string
	flags string // space-separated
	args  string // "app", "policy", "cmd" (a command line after --), or ""
}

// completionSpec is what the scripts complete: each command's flags, and
// what its other arguments are (ids, policies, files, or a command line).
var completionSpec = []completionEntry{
	{"run", "--policy --name --timeout --env --bind --workdir --stats -o --state-dir -d --", "cmd"},
	{"ps", "-a -q -o", ""},
	{"inspect", "-o", "app"},
	{"logs", "-f", "app"},
	{"stats", "-o", "app"},
	{"stop", "-t", "app"},
	{"kill", "-s", "app"},
	{"wait", "", "app"},
	{"rm", "-f", "app"},
	{"events", "--since -f --app -o", ""},
	{"policy", "", "policy"},
	{"info", "-o", ""},
	{"version", "-o", ""},
	{"up", "--abort-on-exit -v --state-dir", ""},
	{"daemon", "--socket --state-dir --policy-dir --metrics-addr --group --config --log-format --events --ipc-max-objects --ipc-max-bytes", ""},
	{"completion", "", ""},
	{"help", "", ""},
}

const policySubcommands = "apply list get rm validate reload default show"

func completionCmd(args []string) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Print(completionUsage)
		return nil
	}
	if len(args) != 1 {
		fmt.Fprint(os.Stderr, completionUsage)
		return &exitError{code: exitUsage, msg: "completion: name one shell: bash or zsh"}
	}
	switch args[0] {
	case "bash":
		fmt.Print(bashCompletion())
	case "zsh":
		fmt.Print(zshCompletion())
	default:
		return &exitError{code: exitUsage, msg: fmt.Sprintf("completion: %q: the shells are bash and zsh", args[0])}
	}
	return nil
}

func commandNames() string {
	names := make([]string, len(completionSpec))
	for i, c := range completionSpec {
		names[i] = c.cmd
	}
	return strings.Join(names, " ")
}

// bashCompletion is a bash completion function for pinfold. The global
// --host (or PINFOLD_HOST) given on the line is passed on to the pinfold
// calls that list ids and policies.
func bashCompletion() string {
	var cases strings.Builder
	for _, c := range completionSpec {
		fmt.Fprintf(&cases, "\t%s) flags=%q; kind=%q ;;\n", c.cmd, c.flags, c.args)
	}
	return `# bash completion for pinfold (pinfold completion bash)
_pinfold() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
	fi
	local i=1 host=()
	while [[ $i -lt $cword ]]; do
		case ${words[i]} in
		--host|-H|-host) host=(--host "${words[i+1]}"); i=$((i+2)) ;;
		--host=*|-host=*) host=("${words[i]}"); i=$((i+1)) ;;
		*) break ;;
		esac
	done
	if [[ $i -ge $cword ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--host" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "` + commandNames() + `" -- "$cur"))
		fi
		return
	fi
	local cmd=${words[i]} flags="" kind=""
	case $cmd in
` + cases.String() + `	esac
	local j
	for ((j = i + 1; j < cword; j++)); do
		if [[ ${words[j]} == -- && $kind == cmd ]]; then
			COMPREPLY=($(compgen -c -- "$cur"))
			return
		fi
	done
	case $prev in
	--policy) if [[ $cmd == run ]]; then COMPREPLY=($(compgen -W "$(pinfold "${host[@]}" policy list -q 2>/dev/null)" -- "$cur")); compopt -o default 2>/dev/null; return; fi ;;
	--bind|--workdir|--state-dir|--socket|--policy-dir|--config) compopt -o default 2>/dev/null; COMPREPLY=(); return ;;
	-o) COMPREPLY=($(compgen -W "json" -- "$cur")); return ;;
	-s) COMPREPLY=($(compgen -W "TERM INT HUP KILL QUIT USR1 USR2 STOP CONT" -- "$cur")); return ;;
	--app) COMPREPLY=($(compgen -W "$(pinfold "${host[@]}" ps -aq 2>/dev/null)" -- "$cur")); return ;;
	--name|--timeout|--env|-t|--since|--metrics-addr|--group|--log-format|--events) return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
		return
	fi
	case $kind in
	app) COMPREPLY=($(compgen -W "$(pinfold "${host[@]}" ps -aq 2>/dev/null)" -- "$cur")) ;;
	policy)
		if [[ $((i + 1)) -eq $cword ]]; then
			COMPREPLY=($(compgen -W "` + policySubcommands + `" -- "$cur"))
		else
			case ${words[i+1]} in
			get|rm) COMPREPLY=($(compgen -W "$(pinfold "${host[@]}" policy list -q 2>/dev/null)" -- "$cur")) ;;
			apply|validate|show) compopt -o default 2>/dev/null; COMPREPLY=() ;;
			esac
		fi ;;
	cmd) COMPREPLY=($(compgen -c -- "$cur")) ;;
	esac
	if [[ $cmd == completion ]]; then
		COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))
	fi
}
complete -F _pinfold pinfold
`
}

// zshCompletion is a zsh completion function for pinfold.
func zshCompletion() string {
	var cases strings.Builder
	for _, c := range completionSpec {
		fmt.Fprintf(&cases, "\t%s) flags=(%s); kind=%q ;;\n", c.cmd, c.flags, c.args)
	}
	return `#compdef pinfold
# zsh completion for pinfold (pinfold completion zsh)
_pinfold() {
	local -a host flags
	local kind i=2
	while (( i < CURRENT )); do
		case ${words[i]} in
		--host|-H|-host) host=(--host ${words[i+1]}); (( i += 2 )) ;;
		--host=*|-host=*) host=(${words[i]}); (( i += 1 )) ;;
		*) break ;;
		esac
	done
	if (( i >= CURRENT )); then
		if [[ $PREFIX == -* ]]; then
			compadd -- --host
		else
			compadd -- ` + commandNames() + `
		fi
		return
	fi
	local cmd=${words[i]}
	case $cmd in
` + cases.String() + `	esac
	local j
	for (( j = i + 1; j < CURRENT; j++ )); do
		if [[ ${words[j]} == -- && $kind == cmd ]]; then
			_command_names
			return
		fi
	done
	case ${words[CURRENT-1]} in
	--policy) [[ $cmd == run ]] && { compadd -- ${(f)"$(pinfold $host policy list -q 2>/dev/null)"}; _files; return } ;;
	--bind|--workdir|--state-dir|--socket|--policy-dir|--config) _files; return ;;
	-o) compadd -- json; return ;;
	-s) compadd -- TERM INT HUP KILL QUIT USR1 USR2 STOP CONT; return ;;
	--app) compadd -- ${(f)"$(pinfold $host ps -aq 2>/dev/null)"}; return ;;
	--name|--timeout|--env|-t|--since|--metrics-addr|--group|--log-format|--events) return ;;
	esac
	if [[ $PREFIX == -* ]]; then
		compadd -- $flags
		return
	fi
	case $kind in
	app) compadd -- ${(f)"$(pinfold $host ps -aq 2>/dev/null)"} ;;
	policy)
		if (( i + 1 == CURRENT )); then
			compadd -- ` + policySubcommands + `
		else
			case ${words[i+1]} in
			get|rm) compadd -- ${(f)"$(pinfold $host policy list -q 2>/dev/null)"} ;;
			apply|validate|show) _files ;;
			esac
		fi ;;
	cmd) _command_names ;;
	esac
	[[ $cmd == completion ]] && compadd -- bash zsh
}
if [[ ${funcstack[1]} == _pinfold ]]; then
	_pinfold "$@"
else
	compdef _pinfold pinfold
fi
`
}
