"""Errors the governance domain and its use cases raise; the gRPC entrypoint maps each to one status code."""

from __future__ import annotations


class GovernanceError(Exception):
    """Base of every governance error; the message is safe to show to the caller."""


class UnknownVersion(GovernanceError):
    """The model version is not in the registry (NOT_FOUND)."""


class UnknownArtifact(GovernanceError):
    """No artifact is stored under that sha256 (NOT_FOUND)."""


class UnknownDecision(GovernanceError):
    """No decision is recorded for that transaction (NOT_FOUND)."""


class DuplicateVersion(GovernanceError):
    """The model version is already registered (ALREADY_EXISTS)."""


class InvalidTransition(GovernanceError):
    """The lifecycle does not allow this step from the version's current stage (FAILED_PRECONDITION)."""


class InvalidCommand(GovernanceError):
    """The command is well-formed on the wire but makes no sense for the domain (INVALID_ARGUMENT)."""


class InvalidArtifact(InvalidCommand):
    """An uploaded artifact is corrupt or does not match the declared features (INVALID_ARGUMENT)."""


class ConcurrentChange(GovernanceError):
    """Another writer appended to the model's event subject since we read it (ABORTED, retry)."""


class ServingUnavailable(GovernanceError):
    """The inference server cannot be reached (UNAVAILABLE)."""


class DeploymentFailed(GovernanceError):
    """The inference server refused to load or run the model (FAILED_PRECONDITION)."""


class ArtifactDamaged(GovernanceError):
    """A stored artifact no longer hashes to its name (DATA_LOSS)."""
