#!/usr/bin/env bash
# The SDK's checks (make sdk-check, part of make test):
#  1. the generated code is what graphql-codegen makes from schema/public.graphql and
#     src/documents now (regenerated into a temporary file and compared; `make schema` fixes it);
#  2. the SDK builds with tsc --strict (tsconfig.json);
#  3. src/generated/trusted-documents.json holds exactly the generated documents (by sha256);
#  4. the unit tests pass (node's test runner; the end-to-end ones run in tests/router).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if ! ADX_SDK_GENERATED_FILE="$tmp/graphql.ts" node_modules/.bin/graphql-codegen --config codegen.ts \
  > "$tmp/codegen.log" 2>&1; then
  cat "$tmp/codegen.log" >&2
  echo "graphql-codegen failed (a document in sdk/src/documents no longer fits schema/public.graphql?)" >&2
  exit 1
fi
if ! diff -u src/generated/graphql.ts "$tmp/graphql.ts" > "$tmp/diff"; then
  head -n 80 "$tmp/diff" >&2
  echo >&2
  echo "sdk/src/generated/graphql.ts is not what codegen makes from schema/public.graphql and" >&2
  echo "sdk/src/documents: run \`make schema\` and commit the result." >&2
  exit 1
fi
echo "sdk: generated code up to date"

node scripts/coverage.mjs

node_modules/.bin/tsc -p tsconfig.json
echo "sdk: tsc --strict build ok"

node scripts/trusted-documents.mjs "$tmp/trusted-documents.json"
if ! diff -q src/generated/trusted-documents.json "$tmp/trusted-documents.json" > /dev/null; then
  echo "sdk/src/generated/trusted-documents.json is not the generated documents: run" >&2
  echo "\`make schema\` and commit the result." >&2
  exit 1
fi
echo "sdk: trusted documents up to date"

node_modules/.bin/tsc -p tsconfig.test.json
node --test --test-reporter=dot build/test/unit/
echo "sdk: unit tests ok"
