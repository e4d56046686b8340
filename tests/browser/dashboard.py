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


def api_get(page, path, key):
    res = page.request.get(f"{BASE}{path}", headers={"Authorization": f"Bearer {key}"})
    assert res.ok, f"{path}: {res.status} {res.text()}"
    return res.json()


def no_horizontal_overflow(page, what):
    sizes = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert sizes[0] <= sizes[1], f"{what}: the page is {sizes[0]} px wide in a {sizes[1]} px window"


def words_whole(page, selector, word):
    """The word is laid out on one line (not broken inside, as "M FA")."""
    rects = page.evaluate(
        """([selector, word]) => {
            for (const el of document.querySelectorAll(selector)) {
                const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
                for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                    const at = n.textContent.indexOf(word);
                    if (at < 0) continue;
                    const r = document.createRange();
                    r.setStart(n, at);
                    r.setEnd(n, at + word.length);
                    return r.getClientRects().length;
                }
            }
            return -1;
        }""",
        [selector, word],
    )
    assert rects == 1, f"{word!r} in {selector}: laid out in {rects} pieces"


def nav_hidden(page):
    # The login page shows neither the navigation nor "Log out" (`hidden` beats display: flex).
    expect(page.locator("header#top")).to_be_hidden()
    expect(page.locator("header#top nav")).to_be_hidden()
    expect(page.locator("#logout")).to_be_hidden()


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
        # No request of the page (the favicon included) may end in a 404.
        page.on("response", lambda r: problems.append(f"404: {r.url}") if r.status == 404 else None)
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        # Log in (the login page first, and a wrong key is refused with a message).
        page.goto(f"{BASE}/")
        expect(page.locator("h1")).to_have_text("Vigil")
        nav_hidden(page)
        favicon = page.request.get(f"{BASE}/favicon.ico")
        assert favicon.ok and "svg" in favicon.headers["content-type"], f"favicon: {favicon.status}"
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
        expect(page.locator("#alert-owner")).to_have_text("unassigned")
        # The triggering events show the resource.
        expect(page.locator("td[data-col=resource]").first).to_contain_text("/api/v1/accounts/0123456789")

        # The "lift decisions" box: its default follows the disposition, and what is sent is
        # exactly what it shows (the requests are held here, answered with a 409).
        sent = []

        def hold(route):
            sent.append(json.loads(route.request.post_data))
            route.fulfill(status=409, content_type="application/json",
                          body=json.dumps({"error": {"code": "conflict", "message": "held by the test", "details": None}}))

        page.route("**/v1/alerts/*/resolve", hold)
        box = page.locator("input[data-lift]")
        expect(box).to_be_visible()
        disposition = page.locator("select[aria-label^='Disposition']")
        for choice, default in [("true_positive", False), ("false_positive", True), ("benign", True)]:
            disposition.select_option(choice)
            assert box.is_checked() == default, f"{choice}: the box shows {box.is_checked()}, expected {default}"
            for shown in [default, not default]:
                box.set_checked(shown)
                before = len(sent)
                with page.expect_response("**/v1/alerts/*/resolve"):
                    page.click("button[data-action=resolve]")
                expect(page.locator("button[data-action=resolve]")).to_be_enabled()
                assert len(sent) == before + 1, f"{choice}: no request sent"
                body = sent[-1]
                assert body["disposition"] == choice and body["lift_decisions"] is shown, f"{choice}, box {shown}: sent {body}"
        page.unroute("**/v1/alerts/*/resolve")
        problems[:] = [p for p in problems if "409" not in p]
        expect(page.locator("#alert-status")).to_have_text("open")

        # Acknowledge with a long comment (one long word): the comment shows in a readable
        # history row, and the page still fits the window.
        comment = "checked-with-the-owner-" + "z" * 180 + " then enforce MFA"
        page.fill("#alert-comment", comment)
        page.click("button[data-action=ack]")
        expect(page.locator("#alert-status")).to_have_text("acknowledged")
        change = page.locator("tr[data-change]", has_text="acknowledged")
        expect(change).to_contain_text(comment)
        expect(change).to_contain_text("→ acknowledged")
        assert "{" not in change.inner_text(), f"history row is raw JSON: {change.inner_text()}"
        me = api_get(page, "/v1/whoami", ADMIN_KEY)["key_id"]
        admin_name = next(k["name"] for k in api_get(page, "/v1/keys", ADMIN_KEY)["keys"] if k["id"] == me)
        expect(page.locator("#alert-owner")).to_have_text(admin_name)
        expect(change.locator("td").nth(1)).to_have_text(admin_name)
        for width in [1280, 800]:
            page.set_viewport_size({"width": width, "height": 800})
            page.reload()
            expect(page.locator("#alert-status")).to_have_text("acknowledged")
            no_horizontal_overflow(page, f"alert page at {width} px")
            words_whole(page, "#suggested-actions", "MFA")
            words_whole(page, "tr[data-change]", "MFA")
            shot(page, "alert" if width == 1280 else "alert-800")
        page.set_viewport_size({"width": 1366, "height": 800})
        page.goto(f"{BASE}/#/alerts?status=acknowledged")
        acked = page.locator("tr[data-alert]", has_text="brute_force").first
        expect(acked).to_be_visible()
        # The owner is whoever acknowledged it, by key name for an admin.
        expect(acked.locator("td[data-col=owner]")).to_have_text(admin_name)

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
        # The URL changes before the filtered page replaces the table: wait for the rows of
        # the filtered answer (on a loaded machine the old rows are still shown for a while).
        page.wait_for_function(
            """() => {
                const cells = [...document.querySelectorAll('tr[data-seq] td:nth-child(4)')];
                return cells.length > 0 && cells.every(td => td.innerText === 'login_failed');
            }""",
            timeout=20_000,
        )
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
        # Application events by default: the server's own (the admin creating a key, rules
        # deployed) are not in the analyst's numbers; one click shows them.
        expect(page.locator("#origin button[data-origin=app]")).to_have_attribute("aria-pressed", "true")
        assert any("/v1/events/stats" in u and "origin=app" in u for u in requests), "the overview did not ask for origin=app"
        app_total = page.locator("#events-total").inner_text()
        top_users = page.locator("section", has_text="Top users")
        expect(top_users).not_to_contain_text(me)
        expect(top_users).not_to_contain_text("rule:")
        shot(page, "overview")
        page.click("#origin button[data-origin=all]")
        expect(page.locator("#origin button[data-origin=all]")).to_have_attribute("aria-pressed", "true")
        expect(page.locator(".card .label").first).to_contain_text("All events")
        all_total = page.locator("#events-total").inner_text()
        assert int(all_total) > int(app_total), f"all events {all_total} vs application events {app_total}"
        page.click("#origin button[data-origin=app]")
        expect(page.locator(".card .label").first).to_contain_text("Application events")

        # Rules: a rule's stats.
        page.goto(f"{BASE}/#/rules")
        rule = page.locator("tr[data-rule=brute_force]")
        expect(rule).to_be_visible()
        events_seen = int(rule.locator("td[data-col=events]").inner_text())
        assert events_seen > 0, f"brute_force saw {events_seen} events"
        # What the manifest says (description, severity, MITRE ids) and how many alerts.
        expect(rule.locator("[data-col=description]")).to_contain_text("Failed logins")
        expect(rule.locator("td[data-col=severity]")).to_have_text("P2")
        expect(rule.locator("td[data-col=mitre]")).to_contain_text("T1110")
        assert int(rule.locator("td[data-col=alerts]").inner_text()) >= 1, "brute_force raised no alert?"
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
        # The time left, not only the absolute expiry; the issuer by key name (admin).
        expect(row.locator("td[data-col=expires]")).to_contain_text(re.compile(r"\d+m left"))
        expect(row).to_contain_text(admin_name)
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
        nav_hidden(page)
        login(page, READ_KEY)
        expect(page.locator("h1")).to_have_text("Alerts")
        page.goto(f"{BASE}/#/alerts?status=acknowledged")
        expect(page.locator("tr[data-alert]").first).to_be_visible()
        assert page.locator("button[data-action]").count() == 0, "read key sees action buttons on alerts"
        # Key names are admin information (GET /v1/keys): a read key sees the key id.
        expect(page.locator("tr[data-alert] td[data-col=owner]").first).to_have_text(me)
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
