"""What the AWS Serverless Application Repository accepts in a published template, as data.

The repository checks a template against its own published list of supported resource types when it is
published, and its validator lags AWS SAM and CloudFormation: it has refused AWS::IAM::ManagedPolicy, a
RetryPolicy on a Schedule event (aws/aws-sam-cli#2645) and the ScheduleV2 event type (aws/aws-sam-cli#4543,
January 2023) while CloudFormation deployed them.

Sources, read 2026-12-07:
- "List of Supported AWS Resources",
  https://docs.aws.amazon.com/serverlessrepo/latest/devguide/list-supported-resources.html
- "Application Capabilities: IAM Roles, Resource Policies, and Nested Applications" (the IAM resources and
  resource policies it names), https://docs.aws.amazon.com/serverlessrepo/latest/devguide/acknowledging-application-capabilities.html

Only the entries that matter here are written down: every type a template of this project uses must be one
of them. The copy of the live list read on that date showed its first entries (AWS::AccessAnalyzer to
AWS::AppSync) and the capabilities page its IAM and resource-policy types; the documentation's own source
(the awsdocs/aws-serverlessrepo-developer-guide repository, doc_source/list-supported-resources.md, an
older and shorter edition of the same list) shows the rest of READ. The two EventBridge types PagerDuty
paging needs are in neither copy: UNCONFIRMED, to be checked against the live page, or by a test
publication, before publishing with PagerDuty (docs/install.md says so).
"""

from __future__ import annotations

# Named on the capabilities page as resources an application may contain (with CAPABILITY_IAM or
# CAPABILITY_RESOURCE_POLICY), or in the list.
READ = frozenset(
    {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::Group",
        "AWS::IAM::InstanceProfile",
        "AWS::Lambda::Permission",
        "AWS::Lambda::LayerVersionPermission",
        "AWS::Events::EventBusPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::S3::BucketPolicy",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGatewayV2::Api",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::DynamoDB::Table",
        "AWS::Events::Rule",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Subscription",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::Serverless::Function",
        "AWS::Serverless::LayerVersion",
    }
)
# In no copy of the list read on that date (newer than the documentation source's edition).
# The canary's key is past the first entries the live copy showed and not in the documentation's edition.
UNCONFIRMED = frozenset({"AWS::Events::ApiDestination", "AWS::Events::Connection", "AWS::KMS::Key"})
SUPPORTED_RESOURCE_TYPES = READ | UNCONFIRMED

# Refused by the repository although CloudFormation deploys them.
REFUSED_RESOURCE_TYPES = frozenset({"AWS::IAM::ManagedPolicy"})

# AWS::Serverless::Function event types the repository's validator takes. ScheduleV2 was refused in
# January 2023 (aws/aws-sam-cli#4543, since closed): to confirm with a test publication.
SUPPORTED_FUNCTION_EVENT_TYPES = frozenset(
    {
        "SNS",
        "SQS",
        "Schedule",
        "ScheduleV2",
        "CloudWatchEvent",
        "EventBridgeRule",
        "S3",
        "DynamoDB",
        "Kinesis",
    }
)
