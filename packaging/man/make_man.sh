#!/bin/sh
# Writes the man page NAME(1), gzipped, from the built binary itself: NAME and VERSION from
# `BINARY --version`, SYNOPSIS the text of `BINARY --help` verbatim (the README quotes the same
# text, so page, binary and README cannot drift apart), then the sections of SECTIONS (roff;
# a line `[TITLE]` starts `.SH TITLE`). No date: the same binary gives the same bytes.
#   make_man.sh BINARY NAME SUMMARY SECTIONS OUT.gz
set -eu
bin="$1" name="$2" summary="$3" sections="$4" out="$5"

version="$("$bin" --version)"
help="$("$bin" --help)"
# roff: a backslash is \e, a minus \- (so options copy as ASCII), a leading . or ' is text.
escape() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

{
  printf '.TH %s 1 "" "%s" "User Commands"\n' "$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')" \
    "$(printf '%s' "$version" | escape)"
  printf '.SH NAME\n%s \\- %s\n' "$(printf '%s' "$name" | escape)" "$(printf '%s' "$summary" | escape)"
  printf '.SH SYNOPSIS\n.nf\n'
  printf '%s\n' "$help" | escape
  printf '.fi\n'
  sed -e 's/^\[\(.*\)\]$/.SH \1/' "$sections"
  printf '.SH VERSION\n%s\n' "$(printf '%s' "$version" | escape)"
} | gzip -9n >"$out.tmp"
mv "$out.tmp" "$out"
