"""The Twilio Verify v2-compatible surface under ``/twilio`` (``OTP_TWILIO_API=1``).

Code written for Twilio Verify (its SDKs, or raw form-encoded HTTP) works against this
service by changing the base URL. It is a thin adapter: each route authenticates Twilio's
way (``auth``), reads Twilio's form fields (``forms``), calls the same use case as the
matching ``/v1`` route, and renders Twilio's resource (``resources``) or error body
(``errors``). Every guarantee of ``/v1`` (hashed codes, atomic checks, limits, fraud guard,
opt-outs, events) therefore holds here too.

The routes are left out of the OpenAPI document: they are form-encoded, authenticated by
HTTP Basic and answer Twilio's error body rather than problem documents, so the document's
contract (and its contract fuzzing) is the ``/v1`` API's. docs/api.md documents them.
"""
