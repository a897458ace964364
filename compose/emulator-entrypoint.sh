#!/bin/sh
# Start the batchbox emulator so that node containers (made through the host's Docker socket) can mount what it
# names: the state directory must be mounted at the same path inside and outside this container, and the node
# agent is run from a copy inside it, not from this image's site-packages (a path the host does not have).
# Arguments are passed to `batchbox emulator` (e.g. --node-image, --port).
set -eu

state="${BATCHBOX_STATE:?set BATCHBOX_STATE to the state directory, mounted at the same path on the host}"
mkdir -p "$state/emulator" "$state/agent"
site="$(python -c 'import pathlib, batchbox; print(pathlib.Path(batchbox.__file__).parent.parent)')"
rm -rf "$state/agent/batchbox"
cp -r "$site/batchbox" "$state/agent/batchbox"
export PYTHONPATH="$state/agent"
exec python -m batchbox.cli.main emulator --host 127.0.0.1 --state-dir "$state/emulator" --instance-label compose "$@"
