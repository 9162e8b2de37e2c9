"""A Lambda context for calling handlers directly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeLambdaContext:
    """What Powertools reads of a Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = "7d0a3c1e-6f1d-4bb5-9c59-3c2b9f7e0a11"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-central-1:210987654321:function:{self.function_name}"
