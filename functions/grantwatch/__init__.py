"""grantwatch: records the lineage of AWS KMS grants and warns before a Lambda function loses decrypt."""

__version__ = "0.1.0"
