"""What each AWS service does to its resources when their KMS key, or the service's grant on it, goes:
one entry per service, every effect as AWS's documentation states it (in our words), with the pages that
state it.
Where the documentation is silent the entry says None, and nothing here guesses. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Service(StrEnum):
    """A service whose key loss grantwatch can describe; the value is the name `dependent_resource` stores
    in GrantTerms.service (the middle part of the service's encryption-context key)."""

    DYNAMODB = "dynamodb"
    RDS = "rds"
    EBS = "ebs"
    EFS = "elasticfilesystem"
    WORKSPACES = "workspaces"


@dataclass(frozen=True)
class Source:
    title: str
    url: str


@dataclass(frozen=True)
class KeyLossEffect:
    """What one kind of loss does to one service's resources."""

    what_happens: str  # one sentence, as the docs say it
    takes_effect: str  # how soon, as documented
    resource_state: str | None  # the state the resource shows, where the docs name one
    irreversible_after: timedelta | None  # how long after the loss something can no longer be undone
    irreversible: str | None  # what can no longer be undone
    recovery: str  # what brings the resource back
    sources: tuple[Source, ...]
    # True when the key's deletion, at the end of its waiting period, makes the data unrecoverable.
    ends_with_key_deletion: bool = False


@dataclass(frozen=True)
class ServiceEntry:
    service: Service
    resource_kind: str  # "table", "DB instance", "volume", ...
    context_keys: tuple[str, ...]  # encryption-context keys naming the resource
    grantee_pattern: str  # how the service's grants name their grantee (documented)
    on_key_disabled: KeyLossEffect
    on_key_pending_deletion: KeyLossEffect
    on_grant_revoked: KeyLossEffect | None  # None when the docs do not say
    benign_churn: tuple[str, ...]  # documented cases where the service retires its own grants
    title: str = ""  # the service's name for people ("Amazon DynamoDB")
    churn_sources: tuple[Source, ...] = ()  # where benign_churn is documented
    context_sources: tuple[Source, ...] = ()  # where the context keys and grantee are documented

    @property
    def effects(self) -> tuple[KeyLossEffect, ...]:
        found = (self.on_key_disabled, self.on_key_pending_deletion, self.on_grant_revoked)
        return tuple(e for e in found if e is not None)


# The KMS guide's pages that apply to every service: a key that is disabled or pending deletion can't be
# used in cryptographic operations; a deleted key's data can't be decrypted; cancelling a deletion leaves
# the key disabled; a service retires the grants it creates once its task is complete.
KEY_STATES = Source(
    "Key states of AWS KMS keys - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/key-state.html",
)
DELETING_KEYS = Source(
    "Delete an AWS KMS key - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/deleting-keys.html",
)
UNUSABLE_KEYS = Source(
    "How unusable KMS keys affect data keys - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/unusable-kms-keys.html",
)
GRANTS = Source(
    "Grants in AWS KMS - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/grants.html",
)

_DYNAMODB_SSE = Source(
    "SSEDescription - Amazon DynamoDB (API Reference)",
    "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_SSEDescription.html",
)
_DYNAMODB_ARCHIVAL = Source(
    "ArchivalSummary - Amazon DynamoDB (API Reference)",
    "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ArchivalSummary.html",
)
_DYNAMODB_TABLE = Source(
    "TableDescription - Amazon DynamoDB (API Reference)",
    "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TableDescription.html",
)
_DYNAMODB_NOTES = Source(
    "DynamoDB encryption at rest usage notes - Amazon DynamoDB",
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.usagenotes.html",
)
_RDS_ENCRYPTION = Source(
    "Encrypting Amazon RDS resources - Amazon Relational Database Service",
    "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.html",
)
_AURORA_ENCRYPTION = Source(
    "Encrypting Amazon Aurora resources - Amazon Aurora",
    "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Overview.Encryption.html",
)
_RDS_KEYS = Source(
    "AWS KMS key management - Amazon Relational Database Service",
    "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Overview.Encryption.Keys.html",
)
_RDS_INACCESSIBLE = Source(
    "How do I resolve an Amazon RDS instance or Amazon Aurora cluster that's in an inaccessible encryption "
    "state? - AWS re:Post Knowledge Center",
    "https://repost.aws/knowledge-center/rds-aurora-inaccessible-state",
)
_EBS_KMS = Source(
    "How Amazon Elastic Block Store (Amazon EBS) uses AWS KMS - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/services-ebs.html",
)
_EC2_GRANT_RECORD = Source(
    "Amazon EC2 example two - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/ct-ec2two.html",
)
_EFS_KEYS = Source(
    "Managing KMS keys for EFS file systems - Amazon Elastic File System",
    "https://docs.aws.amazon.com/efs/latest/ug/use-kms-key.html",
)
_EFS_CLOUDTRAIL = Source(
    "Logging Amazon EFS API calls with AWS CloudTrail - Amazon Elastic File System",
    "https://docs.aws.amazon.com/efs/latest/ug/logging-using-cloudtrail.html",
)
_WORKSPACES_ENCRYPTION = Source(
    "Encrypted WorkSpaces in WorkSpaces Personal - Amazon WorkSpaces",
    "https://docs.aws.amazon.com/workspaces/latest/adminguide/encrypt-workspaces.html",
)
_WORKSPACES_KMS = Source(
    "How Amazon WorkSpaces uses AWS KMS - AWS Key Management Service",
    "https://docs.aws.amazon.com/kms/latest/developerguide/services-workspaces.html",
)

SEVEN_DAYS = timedelta(days=7)
KEY_DELETED = "once the key is deleted, the data encrypted under it can't be decrypted"
NOT_DOCUMENTED = "not documented"

_DYNAMODB_LOSS = KeyLossEffect(
    what_happens=(
        "The table's status becomes INACCESSIBLE_ENCRYPTION_CREDENTIALS and table operations may fail; "
        "DynamoDB records when it detected the key inaccessible "
        "(SSEDescription.InaccessibleEncryptionDateTime) and starts archiving the table once the key has "
        "stayed inaccessible for more than seven days from then."
    ),
    takes_effect=(
        "when DynamoDB next asks KMS for the table key: it caches the key for each connection and asks again "
        "after five minutes of inactivity"
    ),
    resource_state="INACCESSIBLE_ENCRYPTION_CREDENTIALS",
    irreversible_after=SEVEN_DAYS,
    irreversible=(
        "the table is archived (ArchivalSummary reason INACCESSIBLE_ENCRYPTION_CREDENTIALS) to an on-demand "
        "backup taken at archival, and is gone until that backup is restored"
    ),
    recovery=(
        "make the key usable again before the seven days end (DynamoDB clears InaccessibleEncryptionDateTime "
        "when it detects the key accessible again); once archived, restore the archival backup "
        "(ArchivalSummary.ArchivalBackupArn), under the same name only after deleting the original table"
    ),
    sources=(_DYNAMODB_TABLE, _DYNAMODB_SSE, _DYNAMODB_ARCHIVAL, _DYNAMODB_NOTES),
)
_DYNAMODB_GRANT_REVOKED = KeyLossEffect(
    what_happens=(
        "DynamoDB uses its grant for background maintenance and continuous data protection: if the grant "
        "on an active encrypted table is revoked, DynamoDB will not be able to protect and maintain the "
        "table."
    ),
    takes_effect=NOT_DOCUMENTED,
    resource_state=None,
    irreversible_after=None,
    irreversible=None,
    recovery=NOT_DOCUMENTED,
    sources=(_DYNAMODB_NOTES,),
)

_RDS_LOSS = KeyLossEffect(
    what_happens=(
        "When RDS loses access to the key (the key is not enabled, or RDS's access to it is revoked), the "
        "encrypted DB instance or Aurora cluster goes into inaccessible-encryption-credentials-recoverable "
        "and stays there, stopped, for seven days; API calls to it might not succeed. Only instances and "
        "clusters that can stop get this state (not, for example, ones with cross-Region read replicas); "
        "RDS's key management page says it more starkly: RDS puts the database into a terminal state when it "
        "next needs the key."
    ),
    takes_effect="when RDS next needs the key: immediately or deferred, depending on what needs it",
    resource_state="inaccessible-encryption-credentials-recoverable",
    irreversible_after=SEVEN_DAYS,
    irreversible=(
        "the DB instance or cluster goes into the terminal state inaccessible-encryption-credentials: it is "
        "not usable anymore and can only be restored from a backup"
    ),
    recovery=(
        "enable the key (or restore RDS's access to it) and start the DB instance or cluster within the "
        "seven days (start-db-instance, start-db-cluster: it checks that the key is active); in the terminal "
        "state, restore from a backup or to a point in time, with the key enabled"
    ),
    sources=(_RDS_ENCRYPTION, _AURORA_ENCRYPTION, _RDS_KEYS, _RDS_INACCESSIBLE),
)

_EBS_LOSS = KeyLossEffect(
    what_happens=(
        "No immediate effect on an attached volume: EC2 encrypts its I/O with the data key held in the "
        "Nitro hardware while it stays attached. Once the volume is detached, attaching it again fails (EBS "
        "sends an invalid-encryption-key event), and so does creating a volume with the key."
    ),
    takes_effect="at the volume's next attachment, after it is detached",
    resource_state=None,
    irreversible_after=None,
    irreversible=None,
    recovery="enable the key (or cancel its deletion); the volume can then be attached",
    sources=(UNUSABLE_KEYS, _EBS_KMS),
)

_EFS_LOSS = KeyLossEffect(
    what_happens=(
        "An encrypted file system on the key keeps working, then stops working after a period of time; "
        "the key can't be used for new encrypted file systems. Revoking Amazon EFS's access to its grant "
        "does the same."
    ),
    takes_effect="after a period of time the documentation does not give",
    resource_state=None,
    irreversible_after=None,
    irreversible=None,
    recovery="re-enable the key, or restore Amazon EFS's access to it: both are reversible",
    sources=(_EFS_KEYS,),
)

_WORKSPACES_LOSS = KeyLossEffect(
    what_happens=(
        "A running WorkSpace's encrypted volumes keep working while attached (EBS keeps their data key in "
        "memory); rebooting or rebuilding the WorkSpace while the key is not enabled makes it unusable."
    ),
    takes_effect="at the WorkSpace's next reboot or rebuild",
    resource_state=None,
    irreversible_after=None,
    irreversible=None,
    recovery="enable the key before the WorkSpace is rebooted or rebuilt",
    sources=(_WORKSPACES_ENCRYPTION, _WORKSPACES_KMS),
)


def _pending_deletion(loss: KeyLossEffect, recovery: str) -> KeyLossEffect:
    """A key pending deletion can't be used, as a disabled one can't; and its deletion, at the end of its
    waiting period, ends the data (`ends_with_key_deletion`)."""
    return KeyLossEffect(
        what_happens=loss.what_happens,
        takes_effect=f"from the moment the deletion is scheduled, {loss.takes_effect}",
        resource_state=loss.resource_state,
        irreversible_after=loss.irreversible_after,
        irreversible=loss.irreversible or KEY_DELETED,
        recovery=f"cancel the key deletion (the key is then disabled) and enable the key; {recovery}",
        sources=(*loss.sources, KEY_STATES, DELETING_KEYS),
        ends_with_key_deletion=True,
    )


SERVICES: Mapping[Service, ServiceEntry] = {
    Service.DYNAMODB: ServiceEntry(
        service=Service.DYNAMODB,
        title="Amazon DynamoDB",
        resource_kind="table",
        context_keys=("aws:dynamodb:tableName",),
        grantee_pattern="dynamodb.REGION.amazonaws.com (also the retiring principal)",
        on_key_disabled=_DYNAMODB_LOSS,
        on_key_pending_deletion=_pending_deletion(
            _DYNAMODB_LOSS, "then, as for a disabled key, " + _DYNAMODB_LOSS.recovery
        ),
        on_grant_revoked=_DYNAMODB_GRANT_REVOKED,
        benign_churn=("DynamoDB retires a table's grant when the table is deleted",),
        churn_sources=(_DYNAMODB_NOTES,),
        context_sources=(_DYNAMODB_NOTES,),
    ),
    Service.RDS: ServiceEntry(
        service=Service.RDS,
        title="Amazon RDS and Amazon Aurora",
        resource_kind="DB instance",
        context_keys=("aws:rds:db-id",),
        grantee_pattern=NOT_DOCUMENTED,
        on_key_disabled=_RDS_LOSS,
        on_key_pending_deletion=_pending_deletion(
            _RDS_LOSS, "then, as for a disabled key, " + _RDS_LOSS.recovery
        ),
        on_grant_revoked=_RDS_LOSS,
        benign_churn=(),
        context_sources=(_RDS_KEYS,),
    ),
    Service.EBS: ServiceEntry(
        service=Service.EBS,
        title="Amazon EBS",
        resource_kind="volume",
        context_keys=("aws:ebs:id",),
        grantee_pattern="ACCOUNT:aws:ec2-infrastructure:INSTANCE-ID (a grant for each instance)",
        on_key_disabled=_EBS_LOSS,
        on_key_pending_deletion=_pending_deletion(_EBS_LOSS, "the volume can then be attached"),
        on_grant_revoked=None,
        benign_churn=("AWS services retire the grants they create as soon as their task is complete",),
        churn_sources=(GRANTS,),
        context_sources=(_EBS_KMS, _EC2_GRANT_RECORD),
    ),
    Service.EFS: ServiceEntry(
        service=Service.EFS,
        title="Amazon EFS",
        resource_kind="file system",
        context_keys=("aws:elasticfilesystem:filesystem:id",),
        grantee_pattern=NOT_DOCUMENTED,
        on_key_disabled=_EFS_LOSS,
        on_key_pending_deletion=_pending_deletion(
            _EFS_LOSS, "disabling is reversible, deleting the key is not"
        ),
        on_grant_revoked=_EFS_LOSS,
        benign_churn=(),
        context_sources=(_EFS_CLOUDTRAIL,),
    ),
    Service.WORKSPACES: ServiceEntry(
        service=Service.WORKSPACES,
        title="Amazon WorkSpaces",
        resource_kind="WorkSpace (user and directory)",
        context_keys=("aws:workspaces:sid-directoryid",),
        grantee_pattern=NOT_DOCUMENTED,
        on_key_disabled=_WORKSPACES_LOSS,
        on_key_pending_deletion=_pending_deletion(
            _WORKSPACES_LOSS, "do it before the WorkSpace is rebooted or rebuilt"
        ),
        on_grant_revoked=None,
        benign_churn=(
            "Amazon WorkSpaces and Amazon EBS retire a WorkSpace's grants when the WorkSpace is removed "
            "(TerminateWorkspaces)",
        ),
        churn_sources=(_WORKSPACES_ENCRYPTION, _WORKSPACES_KMS),
        context_sources=(_WORKSPACES_ENCRYPTION, _WORKSPACES_KMS),
    ),
}


def entry_for(service_name: str | None) -> ServiceEntry | None:
    """The catalogue's entry for a service as GrantTerms.service names it; None for one not covered."""
    if not service_name:
        return None
    try:
        return SERVICES.get(Service(service_name))
    except ValueError:
        return None


def deadline(
    effect: KeyLossEffect, loss_started: datetime, key_deletion_date: datetime | None = None
) -> datetime | None:
    """When the loss becomes irreversible: the documented period counted from the loss, or the key's
    deletion date where the key's deletion ends the data, whichever comes first; None when neither
    applies."""
    moments = []
    if effect.irreversible_after is not None:
        moments.append(loss_started + effect.irreversible_after)
    if effect.ends_with_key_deletion and key_deletion_date is not None:
        moments.append(key_deletion_date)
    return min(moments, default=None)
