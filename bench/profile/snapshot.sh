#!/bin/sh
# Builds a private copy of the working tree (dist/ of others' concurrent builds would move under a measurement).
# usage: bench/profile/snapshot.sh DEST
set -e
dest=$1
rm -rf "$dest"
mkdir -p "$dest"
tar -c --exclude=./node_modules --exclude=./.git --exclude=./dist --exclude=./.tmp . | tar -x -C "$dest"
ln -s "$PWD/node_modules" "$dest/node_modules"
(cd "$dest" && ./node_modules/.bin/tsc -p tsconfig.build.json)
