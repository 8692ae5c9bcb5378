"""GCPSecretManagerResolver through the real google-cloud-secret-manager client, against a local fake server.

The fake (a labelled stand-in for Secret Manager) is a gRPC server speaking the real
``google.cloud.secretmanager.v1.SecretManagerService/AccessSecretVersion`` method with the library's own
protobuf messages; the client library does the call over an insecure local channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import dagster
import google_crc32c
import grpc
import pytest
from conftest import run_sql
from google.cloud import secretmanager
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import SecretManagerServiceGrpcTransport
from google.cloud.secretmanager_v1.types import AccessSecretVersionRequest, AccessSecretVersionResponse, SecretPayload
from oso_dagster import sql_assets
from oso_dagster.errors import SecretNotFoundError
from oso_dagster.utils.secrets import GCPSecretManagerResolver, SecretReference

PROJECT = "oso-test"
VALUE = "postgresql://reader:hunter2@db.internal:5432/app"


@dataclass
class FakeSecretManager:
    """Secrets by full version name; names in ``denied`` answer PERMISSION_DENIED like a missing IAM role."""

    secrets: dict[str, str] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)

    def access(self, request: AccessSecretVersionRequest, context: grpc.ServicerContext) -> AccessSecretVersionResponse:
        self.requests.append(request.name)
        if request.name in self.denied:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"Permission denied on resource {request.name}")
        if request.name not in self.secrets:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{request.name}] not found or has no versions.")
        data = self.secrets[request.name].encode()
        return AccessSecretVersionResponse(
            name=request.name.replace("/latest", "/3"),
            payload=SecretPayload(data=data, data_crc32c=google_crc32c.value(data)),
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeSecretManager, secretmanager.SecretManagerServiceClient]]:
    state = FakeSecretManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "google.cloud.secretmanager.v1.SecretManagerService",
        {"AccessSecretVersion": grpc.unary_unary_rpc_method_handler(
            state.access,
            request_deserializer=AccessSecretVersionRequest.deserialize,
            response_serializer=AccessSecretVersionResponse.serialize,
        )},
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(address)
    client = secretmanager.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(host=address, channel=channel)
    )
    try:
        yield state, client
    finally:
        channel.close()
        server.stop(grace=None)


def _name(secret: str) -> str:
    return f"projects/{PROJECT}/secrets/{secret}/versions/latest"


def test_resolves_latest_version_of_prefixed_name(fake: tuple[FakeSecretManager, object]) -> None:
    state, client = fake
    state.secrets[_name("dagster__mydb__db_connection_string")] = VALUE
    resolver = GCPSecretManagerResolver(PROJECT, client=client)
    value = resolver.resolve(SecretReference(group_name="mydb", key="db_connection_string"))
    assert value.reveal() == VALUE
    assert state.requests == [_name("dagster__mydb__db_connection_string")]
    assert VALUE not in repr(value) + str(value) + repr(resolver)


def test_custom_prefix(fake: tuple[FakeSecretManager, object]) -> None:
    state, client = fake
    state.secrets[_name("prod__mydb__url")] = VALUE
    value = GCPSecretManagerResolver(PROJECT, prefix="prod", client=client).resolve(SecretReference("mydb", "url"))
    assert value.reveal() == VALUE


def test_not_found_names_the_secret_and_how_to_create_it(fake: tuple[FakeSecretManager, object]) -> None:
    state, client = fake
    state.secrets[_name("dagster__other__url")] = VALUE
    with pytest.raises(SecretNotFoundError) as info:
        GCPSecretManagerResolver(PROJECT, client=client).resolve(SecretReference("mydb", "url"))
    message = str(info.value)
    assert "dagster__mydb__url" in message and PROJECT in message and "gcloud secrets create" in message
    assert VALUE not in message


def test_permission_denied_names_the_secret_and_the_role(fake: tuple[FakeSecretManager, object]) -> None:
    state, client = fake
    name = _name("dagster__mydb__url")
    state.secrets[name] = VALUE
    state.denied.add(name)
    with pytest.raises(SecretNotFoundError) as info:
        GCPSecretManagerResolver(PROJECT, client=client).resolve(SecretReference("mydb", "url"))
    message = str(info.value)
    assert "Permission denied" in message and "dagster__mydb__url" in message
    assert "roles/secretmanager.secretAccessor" in message
    assert VALUE not in message and info.value.__cause__ is None


def test_a_run_reads_the_secret_named_by_the_environment(
    fake: tuple[FakeSecretManager, secretmanager.SecretManagerServiceClient], sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OSO_SECRETS=gcp, OSO_GCP_SECRETS_PROJECT and OSO_GCP_SECRETS_PREFIX, read from the environment by a real run.

    Only the client's construction is redirected to the stand-in; the resolver, the run and the load are real.
    """
    state, client = fake
    run_sql(sqlite_url, "CREATE TABLE t (id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1), (2)")
    state.secrets[_name("prod__lite__db")] = sqlite_url
    monkeypatch.setattr(secretmanager, "SecretManagerServiceClient", lambda: client)
    monkeypatch.setenv("OSO_SECRETS", "gcp")
    monkeypatch.setenv("OSO_GCP_SECRETS_PROJECT", PROJECT)
    monkeypatch.setenv("OSO_GCP_SECRETS_PREFIX", "prod")
    assets = sql_assets("lite", SecretReference(group_name="lite", key="db"), [{"table": "t"}])
    result = dagster.materialize([assets], instance=dagster.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert state.requests == [_name("prod__lite__db")]
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["rows_loaded"].value == 2
