"""S3 event notifications: what happened to which object, in S3's event JSON shape.

Operation handlers call ``req.emit(...)`` after a change has committed; the event goes
to every sink that a plugin returned from the ``make_event_sink`` hook. Sinks must not
block the request: ``publish`` only enqueues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote_plus

#: The event names S3 uses (without the ``s3:`` prefix that configurations add).
OBJECT_CREATED_PUT = "ObjectCreated:Put"
OBJECT_CREATED_POST = "ObjectCreated:Post"
OBJECT_CREATED_COPY = "ObjectCreated:Copy"
OBJECT_CREATED_COMPLETE = "ObjectCreated:CompleteMultipartUpload"
OBJECT_REMOVED_DELETE = "ObjectRemoved:Delete"


@dataclass(slots=True, frozen=True)
class S3Event:
    name: str
    bucket: str
    key: str
    request_id: str
    region: str
    principal: str = "anonymous"
    source_ip: str = ""
    size: int | None = None
    etag: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def record(self) -> dict[str, Any]:
        """One entry of the ``Records`` list of an S3 event notification."""
        obj: dict[str, Any] = {
            "key": quote_plus(self.key, safe="/"),
            # Orders events for the same key (S3: hex, comparable as strings).
            "sequencer": f"{int(self.time.timestamp() * 1_000_000):016X}",
        }
        if self.size is not None:
            obj["size"] = self.size
        if self.etag is not None:
            obj["eTag"] = self.etag
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": self.time.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{self.time.microsecond // 1000:03d}Z",
            "eventName": self.name,
            "userIdentity": {"principalId": self.principal},
            "requestParameters": {"sourceIPAddress": self.source_ip},
            "responseElements": {
                "x-amz-request-id": self.request_id,
                "x-amz-id-2": self.request_id,
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "s3proxy",
                "bucket": {
                    "name": self.bucket,
                    "ownerIdentity": {"principalId": "s3proxy"},
                    "arn": f"arn:aws:s3:::{self.bucket}",
                },
                "object": obj,
            },
        }

    def document(self) -> dict[str, Any]:
        """The notification body as S3 sends it: ``{"Records": [record]}``."""
        return {"Records": [self.record()]}


class EventSink(Protocol):
    """Receives events; ``publish`` must return at once (queue, never block).

    A sink may also have ``async def close()``: the core awaits it when the worker
    stops, so queued events can be delivered (within the sink's own bound).
    """

    def publish(self, event: S3Event) -> None: ...
