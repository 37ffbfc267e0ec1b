#!/usr/bin/env bash
# Downloads OpenAI's CLIP weights (TorchScript archives) into weights/ and checks their SHA-256
# (OpenAI puts each file's SHA-256 in its URL). Needs internet; not used by tests or CI.
#   scripts/tools/download_weights.sh              # ViT-L-14-336 (the paper's backbone)
#   scripts/tools/download_weights.sh all          # + ViT-B-16 and ViT-L-14
# The released VCP-CLIP checkpoints (train_visa.pth, train_mvtec.pth) are on Google Drive (links in
# README.md, "Real data"); download them by hand into weights/.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p weights
fetch() {  # name sha256
  local name=$1 sha=$2 file="weights/$1.pt"
  if [ -f "$file" ] && echo "$sha  $file" | sha256sum -c --status; then echo "ok $file"; return; fi
  curl -fL --retry 3 -o "$file.part" "https://openaipublic.azureedge.net/clip/models/$sha/$name.pt"
  echo "$sha  $file.part" | sha256sum -c --status || { echo "SHA-256 mismatch for $name.pt"; rm -f "$file.part"; exit 1; }
  mv "$file.part" "$file"
  echo "ok $file"
}
fetch ViT-L-14-336px 3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02
if [ "${1:-}" = all ]; then
  fetch ViT-B-16 5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f
  fetch ViT-L-14 b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836
fi
