"""The Reports page of the dashboard and the printable security report in headless Chromium
(Debian's package, driven by Playwright with the system executable). Run by
tests/all/reports.rs against a real server holding the day of events it seeded; saves
screenshots to OUT_DIR (test-artefacts/reports/).

Usage: reports.py BASE_URL READ_KEY OUT_DIR EXPECTED_JSON
EXPECTED_JSON: {"date", "total", "failure_rate", "alerts", "hours": {"HH": count}, "hostile"}.
Every request to anything but BASE_URL is refused and fails the test (the page and the
report load no external resource). Exit status 0 when every step passed.
"""

import json
import os
import sys

from playwright.sync_api import expect, sync_playwright

BASE, READ_KEY, OUT, EXPECTED = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
DATE = EXPECTED["date"]
problems = []
foreign = []
shots = []


def shot(page, name):
    path = os.path.join(OUT, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    shots.append(path)


def only_this_server(route):
    """Lets requests to the server through; refuses (and records) any other."""
    url = route.request.url
    if url.startswith(BASE + "/") or url == BASE:
        route.continue_()
    else:
        foreign.append(url)
        route.abort()


def watch(page, what):
    page.on("console", lambda m: problems.append(f"{what} console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"{what} page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"{what}: a dialog opened ({d.message}): a script ran"), d.dismiss()))


def timeline_counts(page):
    return page.evaluate(
        "() => [...document.querySelectorAll('#report-timeline rect')].map(r => Number(r.getAttribute('data-count')))"
    )


def reports_page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    context.route("**/*", only_this_server)
    page = context.new_page()
    watch(page, "dashboard")
    page.goto(f"{BASE}/")
    expect(page.locator("#key")).to_be_focused()
    page.keyboard.type(READ_KEY)
    page.keyboard.press("Enter")
    expect(page.locator("header#top")).to_be_visible()

    # The nav entry leads to the page (today's day report by default).
    page.locator("nav a[data-page=reports]").click()
    expect(page.locator("h1")).to_have_text("Reports")
    expect(page.locator("#report-total")).to_be_visible()

    # The seeded day: totals, the chart's 24 hourly columns carrying the right counts.
    page.goto(f"{BASE}/#/reports?period=day&date={DATE}")
    expect(page.locator("#report-period")).to_contain_text(f"day of {DATE}")
    expect(page.locator("#report-total")).to_have_text(str(EXPECTED["total"]))
    expect(page.locator("#report-failure-rate")).to_have_text(EXPECTED["failure_rate"])
    expect(page.locator("#report-alerts")).to_have_text(str(EXPECTED["alerts"]))
    expect(page.locator("#report-integrity")).to_have_text("ok")
    counts = timeline_counts(page)
    assert len(counts) == 24, f"a day has 24 hourly columns, the chart has {len(counts)}"
    assert sum(counts) == EXPECTED["total"], f"the columns sum to {sum(counts)}: {counts}"
    for hour, n in EXPECTED["hours"].items():
        assert counts[int(hour)] == n, f"hour {hour}: column {counts[int(hour)]}, expected {n}: {counts}"
    categories = page.locator("section", has_text="By category").locator("[role=listitem]")
    expect(categories.first).to_contain_text("authentication")
    # Attacker text (a user id holding markup) is shown as text, never as an element.
    expect(page.locator("section", has_text="Top users")).to_contain_text(EXPECTED["hostile"])
    assert page.locator("main img, main script").count() == 0, "event text became markup"
    # Compliance evidence of the same period, per framework.
    expect(page.locator("#compliance tr[data-control='10.2']")).to_be_visible()
    expect(page.locator("#compliance tr[data-control='10.2']")).to_contain_text(f"logged: {EXPECTED['total']} events")
    shot(page, "reports-day")
    page.locator("#compliance button[data-framework=soc2]").click()
    expect(page.locator("#compliance tr[data-control='CC7.2']")).to_be_visible()
    expect(page.locator("#compliance h2")).to_contain_text("SOC 2")
    shot(page, "reports-compliance-soc2")

    # The week and the month holding the day: the same events, 7 and 31 daily columns.
    for period, columns in [("week", 7), ("month", 31)]:
        page.locator(f"button[data-period={period}]").click()
        expect(page.locator(f"button[data-period={period}]")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#report-period")).to_contain_text(f"{period} of")
        expect(page.locator("#report-total")).to_have_text(str(EXPECTED["total"]))
        counts = timeline_counts(page)
        assert len(counts) == columns and sum(counts) == EXPECTED["total"], f"{period}: {counts}"
        shot(page, f"reports-{period}")

    # The printable page, fetched with the key and saved as a file.
    page.goto(f"{BASE}/#/reports?period=day&date={DATE}")
    expect(page.locator("#report-total")).to_have_text(str(EXPECTED["total"]))
    with page.expect_download() as info:
        page.locator("#download-html").click()
    saved = os.path.join(OUT, f"report-{DATE}-downloaded.html")
    info.value.save_as(saved)
    with open(saved, encoding="utf-8") as f:
        text = f.read()
    assert "Vigil security report" in text and f"{EXPECTED['total']} events" in text, text[:500]
    assert "vgl_" not in page.url, "the key must never be in a URL"
    context.close()


def printable_report(browser):
    # The page itself, as a browser with the key shows it (the key in a header, never in a URL).
    context = browser.new_context(viewport={"width": 1100, "height": 900},
                                  extra_http_headers={"Authorization": f"Bearer {READ_KEY}"})
    context.route("**/*", only_this_server)
    page = context.new_page()
    watch(page, "report")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    for period in ["day", "week"]:
        response = page.goto(f"{BASE}/v1/reports/security?period={period}&date={DATE}&format=html")
        assert response.ok, f"{period}: {response.status}"
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp, csp
        expect(page.locator("h1")).to_contain_text(f"Vigil security report: {period} of")
        expect(page.locator("body")).to_contain_text(f"{EXPECTED['total']} events")
        assert page.locator("svg").count() >= 5, "the charts"
        assert page.locator("svg rect").count() > 0, "bars drawn"
        expect(page.locator("body")).to_contain_text(EXPECTED["hostile"])
        assert page.locator("img, script").count() == 0, "attacker text became markup"
        shot(page, f"report-{period}")
    # The page fetched nothing but itself.
    assert all(u.startswith(BASE) for u in requests), f"requests outside the server: {requests}"
    assert len(requests) == 2, f"one request per page, nothing else: {requests}"
    context.close()


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        reports_page(browser)
        printable_report(browser)
        browser.close()
    assert not foreign, f"requests outside the server: {foreign}"
    assert not problems, "browser errors: " + "; ".join(problems)
    print(json.dumps({"ok": True, "screenshots": shots}))


if __name__ == "__main__":
    main()
