#!/usr/bin/env bash
# Two stories replayed through the whole service against DynamoDB Local, on a virtual clock driven by the
# events' eventTime (the settle window passes as it would in AWS):
#  - report-mailer's configuration is updated: Lambda creates a new grant and retires the old one. Benign.
#  - invoice-renderer is deployed and Lambda creates its grant; weeks later an administrator retires it.
#    grantwatch alerts before the function's next cold start fails, with the documented two-step fix: the
#    function's key switched away (to the AWS managed key) and back, each update waited for.
# Then a DynamoDB table on another key that is disabled: `grantwatch resources` shows when it is archived.
set -euo pipefail
cd "$(dirname "$0")/.."

GRANTWATCH=${GRANTWATCH:-grantwatch}
PORT=${GRANTWATCH_DEMO_PORT:-8765}
export GRANTWATCH_TABLE=${GRANTWATCH_DEMO_TABLE:-grantwatch-demo-$$}
GRANT_ID=abfc6dbbc686122cb75763f3007e5aa9c67f9d9caafa2dd4320bbf61b393fd9a
alerts=$(mktemp)

started_here=false
if endpoint=$("$GRANTWATCH" local status 2>/dev/null); then
  echo "Using the DynamoDB Local already running for this checkout."
else
  endpoint=$("$GRANTWATCH" local start --port "$PORT" --in-memory)
  started_here=true
fi
export "${endpoint?}"
"$GRANTWATCH" local start >/dev/null   # creates this run's table
stop() { rm -f "$alerts"; if $started_here; then "$GRANTWATCH" local stop; fi; }
trap stop EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "0. Is everything wired? Here only DynamoDB Local is; against a deployed stack doctor checks every part"
"$GRANTWATCH" doctor --local

step "1. report-mailer's configuration is updated: a new grant, the old one retired by Lambda. No alert."
"$GRANTWATCH" replay events/kms-create-grant-lambda-superseded.json events/lambda-update-function-configuration.json \
  events/kms-retire-grant-by-lambda-service.json events/kms-create-grant-lambda-after-update.json

step "2. 2026-11-02: the pipeline deploys invoice-renderer; Lambda creates a KMS grant for its environment"
"$GRANTWATCH" replay events/lambda-create-function.json events/kms-create-grant-lambda.json

step "3. 2026-11-20: an administrator retires that grant; two minutes later grantwatch alerts"
"$GRANTWATCH" replay events/kms-retire-grant-by-admin.json --alerts-out "$alerts" | tail -n 1
echo "Delivered again, and out of order:"
"$GRANTWATCH" replay events/kms-retire-grant-by-admin.json events/kms-create-grant-lambda.json | tail -n 1

step "4. The grant's lineage, and the function's timeline as a page"
"$GRANTWATCH" history "$GRANT_ID"
mkdir -p build
"$GRANTWATCH" lineage --function arn:aws:lambda:eu-central-1:210987654321:function:invoice-renderer \
  --html build/timeline.html
echo "open build/timeline.html in a browser: the grant as a bar, the alert as a marker"

step "5. The alert as SNS delivers it (delivered again above: no second alert): a short e-mail, and JSON for programs"
"${PYTHON:-python3}" - "$alerts" <<'PY'
import json, sys
from grantwatch.adapters.notifier import publish_request
from grantwatch.domain.notices import Notice, NoticeKind
for line in open(sys.argv[1], encoding="utf-8"):
    n = json.loads(line)
    notice = Notice(NoticeKind(n["kind"]), n["incidentId"], n["subject"], n["message"], n["attributes"],
                    n["details"], n["email"], n["command"])
    request = publish_request("arn:aws:sns:eu-central-1:210987654321:grantwatch-alerts", notice)
    per_protocol = json.loads(request["Message"])
    email = per_protocol["email"]
    print(f"-- e-mail ({len(email.splitlines())} lines; the full text was {len(notice.message.splitlines())}) --")
    print(f"Subject: {request['Subject']}")
    print()
    print(email)
    print()
    print("-- SQS, Lambda, HTTP(S), email-json and Firehose subscribers: the same notice as JSON --")
    print("Attributes: " + ", ".join(f"{k}={v['StringValue']}" for k, v in request["MessageAttributes"].items()))
    print(json.dumps(json.loads(per_protocol["sqs"]), indent=2))
PY

step "6. The same alert as the other channels receive it: the Slack/Teams card, the EventBridge event, the Security Hub finding"
"${PYTHON:-python3}" - "$alerts" <<'PY'
import json, sys
from types import SimpleNamespace
from grantwatch.domain.channels import chat_notification, event_entry, finding
for line in open(sys.argv[1], encoding="utf-8"):
    n = json.loads(line)
    notice = SimpleNamespace(kind=n["kind"], incident_id=n["incidentId"], subject=n["subject"], details=n["details"])
    entry = event_entry(notice, "default")
    print("Amazon Q Developer (Slack/Teams) card:", json.dumps(chat_notification(notice), indent=2))
    print("EventBridge event:", json.dumps(entry | {"Detail": json.loads(entry["Detail"])}, indent=2))
    print("Security Hub finding:", json.dumps(finding(notice, region=n["details"]["region"], account=n["details"]["account"]), indent=2))
PY

step "7. A DynamoDB table on another customer managed key, then that key disabled: what depends on it, and when the table is archived"
"$GRANTWATCH" replay events/kms-create-grant-dynamodb-table.json events/kms-disable-key-of-dynamodb-table.json | tail -n 1
"$GRANTWATCH" resources --key arn:aws:kms:eu-central-1:210987654321:key/8d2c4b6a-1e3f-4a5b-9c7d-0e1f2a3b4c5d
