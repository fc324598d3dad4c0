"""The API explorer in a real browser, with every other origin blocked.

Opens the explorer page in headless Chromium (Debian's, driven by Playwright; see
ops/ensure-browser), aborts and records every request the browser tries to send anywhere but
the page's own origin, pastes an Authorization header into GraphiQL's headers editor, fetches
the schema again and opens the docs, pastes a query into the query editor, runs it with the
run button and reads the result panel. Prints one
JSON object with what it saw; exits 1 if anything went wrong (an other-origin request, a
Content-Security-Policy violation, a page error, docs without the schema, or a result that is
not the expected one).

Called by tests/tests/explorer.rs, which starts the server and checks the printed report too:

    explorer_check.py URL --token TOKEN --query QUERY --expect TEXT… [--screenshot PNG]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("DEZKY_CHROMIUM", "/usr/bin/chromium")
# What this machine's Chromium needs headless as root, and to keep it from calling home at
# start-up (a closed network refuses those calls, and they are no business of the test).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Each wait is for something that takes well under a second on an idle machine; the margin is
# for a loaded two-core CI machine.
TIMEOUT_MS = 30_000

# Collects Content-Security-Policy violations; Playwright injects it before the page's own
# scripts (init scripts are not subject to the page's policy).
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push({
    directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile,
    line: e.lineNumber, sample: e.sample,
  });
});
"""


def origin_of(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def editor_text(page, selector):
    """The text of the CodeMirror 5 editor under `selector` (GraphiQL 3's editors)."""
    return page.eval_on_selector(selector + " .CodeMirror", "el => el.CodeMirror.getValue()")


def replace_editor_text(page, selector, text):
    """Replaces an editor's text as a person pasting would: focus, select all, insert."""
    page.click(selector + " .CodeMirror-lines")
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)
    written = editor_text(page, selector)
    if written != text:
        raise AssertionError(f"the editor {selector} holds {written!r}, not {text!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the explorer page, e.g. http://127.0.0.1:PORT/graphql")
    parser.add_argument("--token", required=True, help="the bearer token to set")
    parser.add_argument("--query", required=True, help="the query to run")
    parser.add_argument(
        "--expect", required=True, action="append", help="text the result must contain (repeatable)"
    )
    parser.add_argument("--screenshot", help="where to save a PNG of the page after the query")
    args = parser.parse_args()

    own = origin_of(args.url)
    report = {
        "own_origin": own,
        "requests": [],
        "blocked": [],
        "websockets": [],
        "csp_violations": [],
        "page_errors": [],
        "console_errors": [],
        "result": None,
        "failures": [],
    }
    profile = tempfile.mkdtemp(prefix="dezky-explorer-chromium-")
    started = time.monotonic()
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
            page = context.pages[0] if context.pages else context.new_page()
            try:
                # Routed on the context, so any page or worker the explorer might open is
                # covered too. Same-origin requests go on; everything else is aborted and kept.
                def route(route):
                    url = route.request.url
                    if origin_of(url) == own:
                        report["requests"].append(url)
                        route.continue_()
                    else:
                        report["blocked"].append(url)
                        route.abort()

                context.route("**/*", route)
                context.add_init_script(RECORD_VIOLATIONS)
                page.set_default_timeout(TIMEOUT_MS)
                page.on("websocket", lambda ws: report["websockets"].append(ws.url))
                page.on("pageerror", lambda error: report["page_errors"].append(str(error)))
                page.on(
                    "console",
                    lambda message: report["console_errors"].append(message.text)
                    if message.type == "error"
                    else None,
                )

                page.goto(args.url, wait_until="load")
                # GraphiQL is up once its query editor exists.
                page.wait_for_selector(".graphiql-query-editor .CodeMirror")
                page.click('.graphiql-editor-tools button[data-name="headers"]')
                replace_editor_text(
                    page,
                    '.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden)',
                    json.dumps({"Authorization": f"Bearer {args.token}"}, indent=2),
                )
                # With the token in place, fetch the schema again (the refresh button, as a
                # person would: the first fetch went out before the header was set) and open
                # the docs, which list the root types only if the schema arrived and built.
                page.click('button[aria-label="Re-fetch GraphQL schema"]')
                page.wait_for_selector(
                    'button[aria-label="Re-fetch GraphQL schema"]:not([disabled])'
                )
                page.click('button[aria-label="Show Documentation Explorer"]')
                page.wait_for_selector(
                    ".graphiql-doc-explorer-root-type, .graphiql-doc-explorer-error"
                )
                report["docs_root_types"] = page.eval_on_selector_all(
                    ".graphiql-doc-explorer-root-type", "els => els.map(el => el.textContent)"
                )
                report["docs_errors"] = page.eval_on_selector_all(
                    ".graphiql-doc-explorer-error", "els => els.map(el => el.textContent)"
                )
                replace_editor_text(page, ".graphiql-query-editor", args.query)
                page.click(".graphiql-execute-button")
                page.wait_for_function(
                    """() => {
                        const el = document.querySelector('.graphiql-response .CodeMirror');
                        return el && el.CodeMirror.getValue().trim() !== '';
                    }"""
                )
                shown = editor_text(page, ".graphiql-response")
                report["result"] = json.loads(shown)
                for expected in args.expect:
                    if expected not in shown:
                        report["failures"].append(f"the result panel does not show {expected!r}")
                # Let anything the page would still load after the answer show up.
                page.wait_for_load_state("networkidle")
            finally:
                # What the page shows, also (above all) when a step failed.
                try:
                    report["csp_violations"] = page.evaluate("window.__cspViolations")
                    report["response_panel"] = editor_text(page, ".graphiql-response")
                    if args.screenshot:
                        page.screenshot(path=args.screenshot, full_page=True)
                except Exception as error:
                    report["failures"].append(f"reading the page: {error}")
                context.close()
    except Exception as error:  # the report says what failed; the exit code says that it did
        report["failures"].append(f"{type(error).__name__}: {error}")
    finally:
        shutil.rmtree(profile, ignore_errors=True)

    report["seconds"] = round(time.monotonic() - started, 2)
    if report["blocked"]:
        report["failures"].append("the page tried to reach another origin")
    if report["websockets"]:
        report["failures"].append("the page opened a WebSocket")
    if report["csp_violations"]:
        report["failures"].append("the Content-Security-Policy refused something the page uses")
    if report["page_errors"]:
        report["failures"].append("the page threw")
    if report.get("docs_errors") or not report.get("docs_root_types"):
        report["failures"].append("the docs show no schema")
    if report["result"] is not None and report["result"].get("errors"):
        report["failures"].append("the query answered with errors")
    print(json.dumps(report, indent=2))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
