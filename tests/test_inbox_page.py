"""The simulator's inbox page in a real browser (Debian's Chromium, headless, via Playwright).

One flow, as a developer lives it: a verification's SMS appears without a reload, its code
is copied with the button and approves the verification, a STOP pressed on the page makes
the next start 409, and "Delivery failed" on a held message of a two-sender tenant brings
the fallback SMS in. The page is then photographed: into the test's own folder, or over the
README's ``docs/inbox.png`` when ``OTP_UPDATE_SCREENSHOT=1`` (so that a test run leaves the
checkout as it found it, and refreshing the picture is one command).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import PROFILE_ID, MakeTenant, Simulator, fresh_number

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "inbox.png"
LONG_CODE = "+447400123000"
TWO_SENDERS: dict[str, Any] = {
    "messaging_profile_id": PROFILE_ID,
    "senders": {
        "GB": [
            {"type": "alphanumeric_sender_id", "from": "ACME"},
            {"type": "long_code", "from": LONG_CODE},
        ],
        "default": [{"type": "long_code", "from": "+13125550100"}],
    },
}
WAIT_MS = 15_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium (installed by scripts/browser), headless, with no network of its own."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser, simulator: Simulator) -> AsyncIterator[Page]:
    """The inbox page, with clipboard access (the copy button writes to it)."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 820}, color_scheme="dark"
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=simulator.url)
    page = await context.new_page()
    await page.goto(f"{simulator.url}/")
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    yield page
    await context.close()


@pytest.fixture
async def unheld(sim: httpx.AsyncClient) -> AsyncIterator[None]:
    """The session's simulator delivers again after the test, whatever it left switched on."""
    yield
    (await sim.post("/_sim/hold", json={"hold": False})).raise_for_status()


async def start(client: httpx.AsyncClient, number: str) -> httpx.Response:
    return await client.post("/v1/verifications", json={"phone_number": number})


async def open_thread(page: Page, number: str) -> None:
    """Pick the number in the left list, once its first message has arrived."""
    entry = page.locator(f'#number-list button[data-number="{number}"]')
    await entry.click(timeout=WAIT_MS)
    await expect(page.locator("#thread-title")).to_have_text(number)


@pytest.mark.usefixtures("unheld")
async def test_the_inbox_page_answers_as_a_phone_and_a_carrier(
    page: Page, make_tenant: MakeTenant, tmp_path: Path
) -> None:
    """Start, see, copy, check; STOP then 409; delivery failed then the fallback SMS."""
    tenant = await make_tenant(**TWO_SENDERS)
    await page.evaluate("window.notReloaded = true")

    # A verification's SMS appears without a reload, its code large, and the copy works.
    number = fresh_number()
    started = await start(tenant.client, number)
    assert started.status_code == 201, started.text
    await open_thread(page, number)
    card = page.locator("#thread-items .card").first
    await expect(card.locator(".status")).to_have_text("delivered", timeout=WAIT_MS)
    shown = await card.locator(".code").inner_text()
    assert re.fullmatch(r"[0-9]{6}", shown)
    await card.get_by_role("button", name=f"Copy code {shown}").click()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == shown
    check = await tenant.client.post(
        f"/v1/verifications/{started.json()['id']}/check", json={"code": copied}
    )
    assert check.json()["status"] == "approved", check.text

    # The search by number (spaces allowed) narrows the list to the number.
    await page.get_by_label("Search by number").fill(f"{number[:3]} {number[3:7]} {number[7:]}")
    await expect(page.locator("#number-list button")).to_have_count(1)
    await expect(page.locator("#number-list button")).to_have_attribute("data-number", number)
    await page.get_by_label("Search by number").fill("")

    # STOP from the phone (by keyboard): the service records it, the next start is refused.
    await page.locator("#thread-head").get_by_role("button", name="STOP").focus()
    await page.keyboard.press("Enter")
    reply = page.locator("#thread-items .reply").first
    await expect(reply).to_contain_text("webhook delivered", timeout=WAIT_MS)
    refused = await start(tenant.client, number)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "recipient_opted_out"
    await expect(page.locator("#thread-meta")).to_contain_text("opted out")

    # A held message reported undelivered: the service falls back to the long code.
    await page.get_by_role("switch", name="Hold receipts").check()
    await expect(page.locator("#toast")).to_have_text("New messages are held for your answer")
    other = fresh_number()
    assert (await start(tenant.client, other)).status_code == 201
    await open_thread(page, other)
    first = page.locator("#thread-items .card").first
    await expect(first).to_contain_text("held: waiting for your answer", timeout=WAIT_MS)
    await expect(first.locator(".code")).to_be_visible()
    await page.get_by_role("switch", name="Hold receipts").uncheck()
    await expect(page.locator("#toast")).to_have_text("New messages are delivered")
    await first.get_by_role("button", name="Delivery failed").click()
    cards = page.locator("#thread-items .card")
    await expect(cards).to_have_count(2, timeout=WAIT_MS)
    fallback, failed = cards.nth(0), cards.nth(1)
    await expect(failed.locator(".status")).to_have_text("failed")
    await expect(failed).to_contain_text("Telnyx error 40008")
    await expect(fallback).to_contain_text(f"{LONG_CODE} → {other}")
    await expect(fallback.locator(".status")).to_have_text("delivered", timeout=WAIT_MS)

    assert await page.evaluate("window.notReloaded") is True
    screenshot = (
        README_SCREENSHOT
        if os.environ.get("OTP_UPDATE_SCREENSHOT") == "1"
        else tmp_path / "inbox.png"
    )
    await page.screenshot(path=screenshot)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
