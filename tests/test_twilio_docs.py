"""docs/twilio.md does what it says: its curl blocks and Python examples, run as written.

Every ```sh block of the page that calls curl is run, in the page's order, by bash with the
real ``curl`` binary against the running service, with the shell variables the page names
($OTP, $OTP_ADMIN_TOKEN, $TENANT_ID, $ACCOUNT_SID, $SERVICE_SID, $API_KEY, $API_KEY_SID,
$TO, $CODE, $VERIFICATION_SID) in its environment. Each block ends with the answer the
page promises, as comment lines: ``# → <status>`` and a JSON document in which ``$VAR`` is
the variable's value, ``…`` any non-empty text and a ``"...": "..."`` member more members;
without one, the answer has exactly the members shown. Variables the page says to keep are
taken from the answers (``account_sid``, ``service_sid``, ``key``, ``twilio_sid``, ``sid``),
and ``$CODE`` is the last code the simulator received for ``$TO``, as the user would read it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    MakeTenant,
    Service,
    TenantHandle,
    fresh_number,
    sent_codes,
)

PAGE = Path(__file__).parent.parent / "docs" / "twilio.md"
_BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.DOTALL)
_VARIABLE = re.compile(r"\$([A-Z_]+)")
_KEPT = {
    "account_sid": "ACCOUNT_SID",
    "service_sid": "SERVICE_SID",
    "key": "API_KEY",
    "twilio_sid": "API_KEY_SID",
    "sid": "VERIFICATION_SID",
}
"""Members of an answer that the page tells the reader to keep, and the variable of each."""
_MORE = "..."


def blocks(language: str) -> list[str]:
    """The page's code blocks in ``language``, in order."""
    return [body for lang, body in _BLOCK.findall(PAGE.read_text()) if lang == language]


def curl_blocks() -> list[tuple[str, int, Any]]:
    """Each curl block: the command, the status it promises, the JSON it promises."""
    found = []
    for block in blocks("sh"):
        if "curl " not in block:
            continue
        command = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
        promised = [line for line in block.splitlines() if line.startswith("#")]
        status = re.fullmatch(r"# → ([0-9]{3})", promised[0])
        assert status, f"a curl block must promise its status: {block}"
        document = " ".join(line.removeprefix("#").strip() for line in promised[1:])
        found.append((command, int(status[1]), json.loads(document)))
    return found


def assert_matches(promised: Any, answered: Any, env: dict[str, str], where: str) -> None:
    """``answered`` is what ``promised`` shows, under the page's conventions."""
    if isinstance(promised, dict):
        assert isinstance(answered, dict), (where, answered)
        if _MORE not in promised:
            assert set(answered) == set(promised), (where, sorted(answered), sorted(promised))
        for name, value in promised.items():
            if name != _MORE:
                assert name in answered, (where, name, answered)
                assert_matches(value, answered[name], env, f"{where}.{name}")
    elif isinstance(promised, list):
        assert isinstance(answered, list), (where, answered)
        assert len(answered) == len(promised), (where, answered)
        for index, (value, got) in enumerate(zip(promised, answered, strict=True)):
            assert_matches(value, got, env, f"{where}[{index}]")
    elif isinstance(promised, str):
        assert isinstance(answered, str), (where, answered)
        text = _VARIABLE.sub(lambda match: env[match[1]], promised)
        pattern = ".+".join(re.escape(part) for part in text.split("…"))
        assert re.fullmatch(pattern, answered, re.DOTALL), (where, promised, answered)
    else:
        assert type(answered) is type(promised), (where, promised, answered)
        assert answered == promised, (where, promised, answered)


def run_curl(command: str, env: dict[str, str]) -> tuple[int, Any]:
    """Run one block with the real curl; its status and its JSON body."""
    written = command.rstrip() + " -w '\\n%{http_code}'"  # the block is one curl command
    finished = subprocess.run(  # noqa: S603  (bash running our own page's block)
        ["/bin/bash", "-c", written],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 0, (command, finished.stderr)
    body, _, status = finished.stdout.rpartition("\n")
    return int(status), json.loads(body)


async def test_every_curl_block_answers_what_the_page_shows(
    make_tenant: MakeTenant, service: Service, sim: httpx.AsyncClient
) -> None:
    """Credentials, start, fetch, wrong then right code, gone after approval, cancel, 60200."""
    curl = shutil.which("curl")
    assert curl, "the curl binary is needed: the page's examples are curl commands"
    tenant = await make_tenant()
    number = fresh_number("US")
    env = {
        "PATH": str(Path(curl).parent),
        "OTP": service.url,
        "OTP_ADMIN_TOKEN": ADMIN_TOKEN,
        "TENANT_ID": tenant.id,
        "TO": number,
    }
    ran = 0
    for command, status, promised in curl_blocks():
        answered_status, answered = await asyncio.to_thread(run_curl, command, env)
        assert answered_status == status, (command, answered_status, answered)
        assert_matches(promised, answered, env, command.split("\n", 1)[0])
        if isinstance(answered, dict):
            for member, variable in _KEPT.items():
                if isinstance(answered.get(member), str):
                    env[variable] = answered[member]
        codes = await sent_codes(sim, number)
        if codes:
            env["CODE"] = codes[-1]
        ran += 1
    assert ran >= 10, "the page lost some of its curl examples"
    assert len(await sent_codes(sim, number)) == 2  # the two starts; the refused call sent none


async def test_the_sdk_example_runs_as_written(
    tenant: TenantHandle,
    admin: httpx.AsyncClient,
    service: Service,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twilio's own package, pointed at the service as the page shows, approves a code."""
    sandbox = "+15550100006"
    settings = {"sandbox_numbers": {sandbox: {"outcome": "delivered", "fixed_code": "123456"}}}
    patched = await admin.patch(f"/admin/tenants/{tenant.id}", json={"settings": settings})
    assert patched.status_code == 200, patched.text
    sids = (await admin.get(f"/admin/tenants/{tenant.id}/twilio")).json()
    issued = (await admin.post(f"/admin/tenants/{tenant.id}/api-keys")).json()
    namespace = {
        "OTP": service.url,
        "ACCOUNT_SID": sids["account_sid"],
        "SERVICE_SID": sids["service_sid"],
        "API_KEY": issued["key"],
        "API_KEY_SID": issued["twilio_sid"],
        "TO": sandbox,
        "CODE": "123456",  # the number's fixed code: what its user would type
    }
    example = next(block for block in blocks("python") if "twilio.rest" in block)
    # The SDK blocks; the service runs on its own thread and loop.
    exec(compile(example, str(PAGE), "exec"), namespace)  # noqa: S102  (our own page)
    assert capsys.readouterr().out.splitlines() == ["approved"]


async def test_the_sid_of_a_v1_verification_is_what_the_page_computes(
    tenant: TenantHandle, admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """A verification started on /v1 is found on /twilio under the SID the page computes."""
    namespace: dict[str, Any] = {}
    example = next(block for block in blocks("python") if "def verification_sid" in block)
    exec(compile(example, str(PAGE), "exec"), namespace)  # noqa: S102  (our own page)
    number = fresh_number("US")
    started = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert started.status_code == 201, started.text
    sid = namespace["verification_sid"](started.json()["id"])
    assert re.fullmatch("VE[0-9a-f]{32}", sid), sid
    sids = (await admin.get(f"/admin/tenants/{tenant.id}/twilio")).json()
    fetched = await anonymous.get(
        f"/twilio/v2/Services/{sids['service_sid']}/Verifications/{sid}",
        auth=(sids["account_sid"], tenant.key),
    )
    assert fetched.status_code == 200, fetched.text
    assert (fetched.json()["sid"], fetched.json()["to"]) == (sid, number)
