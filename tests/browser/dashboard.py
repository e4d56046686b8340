"""End-to-end test of the Vigil dashboard in headless Chromium (Debian's package, driven by
Playwright with the system executable). Run by tests/all/dashboard.rs against a real
server that already holds a brute-force alert; saves a screenshot of every page.

Usage: dashboard.py BASE_URL ADMIN_KEY READ_KEY OUT_DIR
Exit status 0 when every step passed; a failed step raises with what it saw.
"""

import json
import os
import re
import sys

from playwright.sync_api import expect, sync_playwright

BASE, ADMIN_KEY, READ_KEY, OUT = sys.argv[1:5]
CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
shots = []
problems = []


def shot(page, name):
    path = os.path.join(OUT, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    shots.append(path)


def login(page, key):
    page.goto(f"{BASE}/")
    expect(page.locator("#key")).to_be_focused()
    # Keyboard only: the key field has focus; type the key and press Enter.
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.locator("header#top")).to_be_visible()


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1366, "height": 800})
        page = context.new_page()
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        # Log in (the login page first, and a wrong key is refused with a message).
        page.goto(f"{BASE}/")
        expect(page.locator("h1")).to_have_text("Vigil")
        shot(page, "login")
        page.fill("#key", "vgl_wrong_key_000000000000000000")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("Login failed")
        problems.clear()  # the refused login logs a 401 to the console, as it should
        login(page, ADMIN_KEY)
        expect(page.locator("h1")).to_have_text("Alerts")
        assert "vgl_" not in page.url, "the key must never be in a URL"

        # The alert raised by the posted events, with its action buttons (admin key).
        row = page.locator("tr[data-alert]", has_text="brute_force").first
        expect(row).to_be_visible()
        expect(row.locator("button[data-action=ack]")).to_be_visible()
        expect(row.locator("button[data-action=resolve]")).to_be_visible()
        expect(row.locator("button[data-action=silence]")).to_be_visible()
        shot(page, "alerts")

        # The alert's page: history and triggering events; acknowledge it there.
        row.locator("a").first.click()
        expect(page.locator("h1")).to_have_text(re.compile(r"^Alert \d+$"))
        expect(page.locator("#alert-status")).to_have_text("open")
        expect(page.get_by_role("heading", name=re.compile("Triggering events"))).to_be_visible()
        page.click("button[data-action=ack]")
        expect(page.locator("#alert-status")).to_have_text("acknowledged")
        expect(page.locator("table", has_text="acknowledged").first).to_be_visible()
        shot(page, "alert")
        page.goto(f"{BASE}/#/alerts?status=acknowledged")
        expect(page.locator("tr[data-alert]", has_text="brute_force").first).to_be_visible()

        # Events: a hostile event's fields are shown as text (no element, no script run).
        page.goto(f"{BASE}/#/events")
        expect(page.locator("h1")).to_have_text("Events")
        hostile = page.locator("tr[data-seq]", has_text="permission_denied").first
        expect(hostile.locator("td:nth-child(7)")).to_have_text("<img src=x onerror=alert(1)>")
        assert page.locator("main img, main script").count() == 0, "event text became markup"
        hostile.locator("button").click()
        expect(page.locator("#event-detail pre")).to_contain_text("<script>alert(2)</script>")
        assert not dialogs, f"a script from event data ran: {dialogs}"

        # Events: filter by action, see only matching rows, open one, verify it.
        page.fill("input[name=action]", "login_failed")
        page.select_option("select[name=outcome]", "failure")
        page.click("form.filters button[type=submit]")
        expect(page).to_have_url(re.compile(r"action=login_failed"))
        rows = page.locator("tr[data-seq]")
        expect(rows.first).to_be_visible()
        actions = rows.locator("td:nth-child(4)").all_inner_texts()
        assert actions and all(a == "login_failed" for a in actions), f"filtered rows: {actions}"
        rows.first.locator("button").click()
        expect(page.locator("#event-detail pre")).to_contain_text('"action": "login_failed"')
        page.locator("#event-detail button", has_text="Verify seq").click()
        expect(page.locator("#verify-result")).to_contain_text("ok")
        shot(page, "events")

        # Overview: charts drawn locally (SVG), counts.
        page.goto(f"{BASE}/#/overview")
        expect(page.locator("h1")).to_have_text("Overview")
        expect(page.locator("svg.chart rect").first).to_be_attached()
        expect(page.locator("#events-total")).not_to_have_text("0")
        shot(page, "overview")

        # Rules: a rule's stats.
        page.goto(f"{BASE}/#/rules")
        rule = page.locator("tr[data-rule=brute_force]")
        expect(rule).to_be_visible()
        events_seen = int(rule.locator("td:nth-child(6)").inner_text())
        assert events_seen > 0, f"brute_force saw {events_seen} events"
        expect(rule.locator("button[data-action=delete]")).to_be_visible()
        expect(page.locator("form[aria-label='Deploy a rule']")).to_be_visible()
        shot(page, "rules")

        # Integrity: head, checkpoint, verify the whole log.
        page.goto(f"{BASE}/#/integrity")
        expect(page.locator("h1")).to_have_text("Integrity")
        page.get_by_role("button", name="Verify the whole log").click()
        expect(page.locator("#verify-result")).to_contain_text("ok")
        page.reload()
        expect(page.locator("section", has_text="Last verify")).to_contain_text("ok")
        shot(page, "integrity")

        # Receivers: circuit state and admin buttons.
        page.goto(f"{BASE}/#/receivers")
        receiver = page.locator("tr[data-receiver]").first
        expect(receiver).to_be_visible()
        receiver.locator("button[data-action=force_open]").click()
        expect(page.locator("tr[data-receiver]").first).to_contain_text("forced open")
        page.locator("tr[data-receiver]").first.locator("button[data-action=reset]").click()
        expect(page.locator("tr[data-receiver]").first).not_to_contain_text("forced")
        shot(page, "receivers")

        # Decisions: the one tied to the alert is listed (its reason as text), lifted with a reason.
        page.goto(f"{BASE}/#/decisions")
        expect(page.locator("h1")).to_have_text("Decisions")
        row = page.locator("tr[data-decision]", has_text="203.0.113.7")
        expect(row).to_contain_text("<b>confirmed</b> brute force")
        assert page.locator("tr[data-decision] b").count() == 0, "markup in a reason was rendered"
        expect(page.locator("form#decide")).to_be_visible()
        shot(page, "decisions")
        row.locator("button[data-action=lift]").click()
        expect(page.locator("[role=status], .toast").first).to_contain_text("reason is required")
        row.locator("input").fill("pentest, agreed with the SOC")
        row.locator("button[data-action=lift]").click()
        expect(page.locator("tr[data-decision]", has_text="203.0.113.7")).to_have_count(0)
        page.get_by_role("button", name="lifted").click()
        expect(page.locator("tr[data-decision]", has_text="203.0.113.7")).to_contain_text("pentest, agreed with the SOC")

        # A read-only key sees the same pages with no action buttons.
        page.click("#logout")
        login(page, READ_KEY)
        expect(page.locator("h1")).to_have_text("Alerts")
        page.goto(f"{BASE}/#/alerts?status=acknowledged")
        expect(page.locator("tr[data-alert]").first).to_be_visible()
        assert page.locator("button[data-action]").count() == 0, "read key sees action buttons on alerts"
        shot(page, "alerts-read-only")
        page.locator("tr[data-alert] a").first.click()
        expect(page.locator("#alert-status")).to_be_visible()
        assert page.locator("button[data-action]").count() == 0, "read key sees action buttons on an alert"
        page.goto(f"{BASE}/#/decisions?status=all")
        expect(page.locator("tr[data-decision]").first).to_be_visible()
        assert page.locator("button[data-action]").count() == 0, "read key sees action buttons on decisions"
        assert page.locator("form#decide").count() == 0, "read key sees the decision form"
        for path, what in [("#/rules", "tr[data-rule]"), ("#/receivers", "tr[data-receiver]")]:
            page.goto(f"{BASE}/{path}")
            expect(page.locator(what).first).to_be_visible()
            assert page.locator("button[data-action]").count() == 0, f"read key sees action buttons on {path}"
            assert page.locator("form[aria-label='Deploy a rule']").count() == 0, "read key sees the deploy form"

        # Nothing was fetched from anywhere but this server.
        foreign = [u for u in requests if not u.startswith(BASE)]
        assert not foreign, f"requests outside the server: {foreign}"
        browser.close()
    assert not dialogs, f"a script from event data ran: {dialogs}"
    assert not problems, "browser errors: " + "; ".join(problems)
    print(json.dumps({"ok": True, "screenshots": shots}))


if __name__ == "__main__":
    main()
