"""Telnyx webhook signatures (Ed25519 over ``timestamp|body``) and event parsing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from otp_service.adapters.telnyx_webhook import (
    DeliveryEvent,
    InboundEvent,
    parse_event,
    verify_signature,
)
from otp_service.errors import InvalidSignature, MalformedBody
from otp_service.simulator.spec import TelnyxSpec

SIGNING_KEY = SigningKey(bytes(range(32)))
PUBLIC_KEY = bytes(SIGNING_KEY.verify_key)
NOW = 1_750_000_000.0
BODY = b'{"data":{"event_type":"message.sent"}}'


def sign(body: bytes, timestamp: str, key: SigningKey = SIGNING_KEY) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + b"|" + body).signature).decode()


def verify(
    *,
    timestamp: str | None = str(int(NOW)),
    signature: str | None = None,
    body: bytes = BODY,
    now: float = NOW,
) -> None:
    if signature is None and timestamp is not None:
        signature = sign(BODY, timestamp)
    verify_signature(PUBLIC_KEY, timestamp=timestamp, signature=signature, body=body, now=now)


def test_a_correct_signature_verifies() -> None:
    """A body signed by the key at the current time passes."""
    verify()


@pytest.mark.parametrize("skew", [-300, 300])
def test_a_timestamp_at_the_tolerance_verifies(skew: int) -> None:
    """A timestamp exactly 300 s before or after now is still accepted."""
    verify(timestamp=str(int(NOW) + skew))


def test_a_signature_from_another_key_is_rejected() -> None:
    """A signature made with a different private key does not verify."""
    other = SigningKey(bytes(range(1, 33)))
    with pytest.raises(InvalidSignature):
        verify(signature=sign(BODY, str(int(NOW)), other))


def test_a_tampered_body_is_rejected() -> None:
    """Changing one byte of the signed body makes the signature fail."""
    with pytest.raises(InvalidSignature):
        verify(body=BODY.replace(b"sent", b"SENT"))


def test_a_signature_over_another_timestamp_is_rejected() -> None:
    """The timestamp is part of what is signed, so it cannot be swapped for a fresh one."""
    with pytest.raises(InvalidSignature):
        verify(timestamp=str(int(NOW)), signature=sign(BODY, str(int(NOW) - 10)))


@pytest.mark.parametrize("skew", [-301, 301, -86_400])
def test_a_stale_or_future_timestamp_is_rejected(skew: int) -> None:
    """A correctly signed webhook more than 300 s from now, either way, is rejected."""
    timestamp = str(int(NOW) + skew)
    with pytest.raises(InvalidSignature, match="too far"):
        verify(timestamp=timestamp, signature=sign(BODY, timestamp))


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [(None, "c2ln"), (str(int(NOW)), None), (None, None)],
)
def test_a_missing_header_is_rejected(timestamp: str | None, signature: str | None) -> None:
    """Without both the timestamp and the signature header nothing verifies."""
    with pytest.raises(InvalidSignature, match="missing"):
        verify_signature(PUBLIC_KEY, timestamp=timestamp, signature=signature, body=BODY, now=NOW)


@pytest.mark.parametrize("timestamp", ["", "soon", "1.75e9", "-1750000000", " 1750000000"])
def test_an_unparseable_timestamp_is_rejected(timestamp: str) -> None:
    """A timestamp that is not plain decimal Unix seconds is rejected."""
    with pytest.raises(InvalidSignature, match="Unix time"):
        verify(timestamp=timestamp, signature=sign(BODY, str(int(NOW))))


@pytest.mark.parametrize(
    "signature",
    ["not base64!", "c2lnbmF0dXJl=", base64.b64encode(bytes(32)).decode()],
)
def test_a_malformed_signature_is_rejected(signature: str) -> None:
    """A signature that is not base64 of exactly 64 bytes is rejected before verifying."""
    with pytest.raises(InvalidSignature):
        verify(signature=signature)


def outbound_event(event_type: str, status: str, errors: list[dict[str, Any]]) -> bytes:
    example = TelnyxSpec().document["components"]["schemas"]["OutboundMessage"]["example"]
    data = json.loads(json.dumps(example))
    data["event_type"] = event_type
    data["payload"]["to"][0]["status"] = status
    data["payload"]["errors"] = errors
    return json.dumps({"data": data, "meta": {"attempt": 1, "delivered_to": "x"}}).encode()


def test_parse_event_reads_message_sent_from_telnyx_example() -> None:
    """Telnyx's own message.sent example parses into a DeliveryEvent with its ids."""
    event = parse_event(outbound_event("message.sent", "sent", []))

    assert event == DeliveryEvent(
        event_id="86f58db9-0fe3-4adc-9d1f-46e66e6e9323",
        event_type="message.sent",
        message_id="40385f64-5717-4562-b3fc-2c963f66afa6",
        status="sent",
        error_codes=(),
        occurred_at="2019-01-23T18:10:02.574Z",
    )


def test_parse_event_reads_a_failed_finalized_event_with_its_codes() -> None:
    """A failed message.finalized carries its status and every error code as a string."""
    errors: list[dict[str, Any]] = [
        {"code": "40008", "title": "Undeliverable"},
        {"code": 40002, "title": "Spam"},
    ]

    event = parse_event(outbound_event("message.finalized", "delivery_failed", errors))

    assert isinstance(event, DeliveryEvent)
    assert event.event_type == "message.finalized"
    assert event.status == "delivery_failed"
    assert event.error_codes == ("40008", "40002")


def test_parse_event_reads_message_received_from_telnyx_example() -> None:
    """Telnyx's own message.received example parses into an InboundEvent."""
    example = TelnyxSpec().document["components"]["schemas"]["InboundMessage"]["example"]

    event = parse_event(json.dumps({"data": example}).encode())

    assert event == InboundEvent(
        event_id="bf6307bd-884d-4c1f-b6ea-c62b8c495d3c",
        from_number="+18665550001",
        to_number="+18445550001",
        text="Hello, World!",
        messaging_profile_id="0f512bda-ae1e-4597-8e11-e5f5686b97d3",
    )


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(
            {"data": {"event_type": "message.link_click", "id": "e-1", "payload": {"id": "m"}}}
        ).encode(),
        json.dumps({"data": {"message_id": "m", "record_type": "link_clicked"}}).encode(),
    ],
)
def test_parse_event_ignores_other_event_types(body: bytes) -> None:
    """Events the service does not handle, such as link clicks, parse to None."""
    assert parse_event(body) is None


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"data": "\xff"}', b"[" * 1000 + b"]" * 1000, b'{"data": {}} trailing'],
)
def test_parse_event_refuses_bodies_that_are_not_json(body: bytes) -> None:
    """Bytes that are not JSON (syntax, UTF-8, nesting) are no Telnyx event: MalformedBody."""
    with pytest.raises(MalformedBody):
        parse_event(body)


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"data": null}',
        b'{"data": {"event_type": "message.sent", "id": "e", "payload": {"to": []}}}',
        b'{"data": {"event_type": "message.sent", "id": "e", "payload": {"id": "m", "to": []}}}',
        b'{"data": {"event_type": "message.received", "id": "e", "payload": {"text": "STOP"}}}',
        b'{"data": {"event_type": "message.sent", "id": 7, "payload": {"id": "m"}}}',
    ],
)
def test_parse_event_returns_none_for_malformed_bodies(body: bytes) -> None:
    """JSON missing what its event needs parses to None without raising."""
    assert parse_event(body) is None
