#!/usr/bin/env bash
# The seed story, replayed through the recorder against DynamoDB Local: Lambda creates a grant so that the
# function invoice-renderer can decrypt its environment variables; weeks later an administrator retires it.
set -euo pipefail
cd "$(dirname "$0")/.."

GRANTWATCH=${GRANTWATCH:-grantwatch}
PORT=${GRANTWATCH_DEMO_PORT:-8765}
export GRANTWATCH_TABLE=grantwatch-demo
FUNCTION_ARN=arn:aws:lambda:eu-central-1:210987654321:function:invoice-renderer
GRANT_ID=abfc6dbbc686122cb75763f3007e5aa9c67f9d9caafa2dd4320bbf61b393fd9a

started_here=false
if endpoint=$("$GRANTWATCH" local status 2>/dev/null); then
  echo "Using the DynamoDB Local already running for this checkout."
  "$GRANTWATCH" local start >/dev/null   # creates the demo table in it
else
  endpoint=$("$GRANTWATCH" local start --port "$PORT" --in-memory)
  started_here=true
fi
export "${endpoint?}"
stop() { if $started_here; then "$GRANTWATCH" local stop; fi; }
trap stop EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. 2026-11-02: the pipeline deploys invoice-renderer; Lambda creates a KMS grant for its environment"
"$GRANTWATCH" replay events/kms-create-grant-lambda.json

step "2. 2026-11-20: an administrator retires that grant (CloudTrail: requestParameters null)"
"$GRANTWATCH" replay events/kms-retire-grant-by-admin.json

step "3. Delivered again, and out of order: nothing changes"
"$GRANTWATCH" replay events/kms-retire-grant-by-admin.json events/kms-create-grant-lambda.json

step "4. The function's grants"
"$GRANTWATCH" grants --function "$FUNCTION_ARN"

step "5. The grant's lineage"
"$GRANTWATCH" history "$GRANT_ID"

step "6. The same, for scripts"
"$GRANTWATCH" history "$GRANT_ID" --json
