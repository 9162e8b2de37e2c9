"""What the tests share: sample events and paths, scenarios, stand-ins for AWS, the IAM contract, the
reliability suite's harness. Test modules import from here, never from one another or from a conftest."""
