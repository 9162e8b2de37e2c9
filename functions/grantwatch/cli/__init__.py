"""`grantwatch`: replay events through the recorder, query grant lineage, and run DynamoDB Local.

Exit codes: 0 success; 1 some events were rejected (everything else was still processed); 2 usage error;
3 the table or endpoint cannot be used (missing, unreachable, not configured, stopped answering for longer
than the client's timeout and retries), or `local` was given another port than the one running;
4 nothing found; 5 (impact) the change would make a Lambda function lose decrypt; 6 (heal) a safety rule
refused the heal; 7 (heal) the heal was attempted and failed; 8, 9, 10 (doctor) a wiring, delivery or
silence check failed. grantwatch.cli.errors maps errors to them.
"""

from grantwatch.cli.app import app, main
from grantwatch.cli.errors import ExitCode

EXIT_REJECTED = ExitCode.REJECTED
EXIT_UNAVAILABLE = ExitCode.UNAVAILABLE
EXIT_NOT_FOUND = ExitCode.NOT_FOUND
EXIT_WOULD_BREAK = ExitCode.WOULD_BREAK
EXIT_HEAL_REFUSED = ExitCode.HEAL_REFUSED
EXIT_HEAL_FAILED = ExitCode.HEAL_FAILED

__all__ = [
    "EXIT_HEAL_FAILED",
    "EXIT_HEAL_REFUSED",
    "EXIT_NOT_FOUND",
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "EXIT_WOULD_BREAK",
    "ExitCode",
    "app",
    "main",
]
