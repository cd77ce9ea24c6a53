"""The chat widget: its routes, CORS, and the widget itself in Debian's Chromium.

The browser tests start the real service (the real model and index) under uvicorn on a free port
of 127.0.0.1, and a second server on another port for pages of a site that embeds the widget.
Screenshots of the open widget go to artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from browser.harness import CHROMIUM, CHROMIUM_ARGS, PageServer, host_page, require_browser
from fastapi.testclient import TestClient
from live_server import Service

from ragbot.api.app import create_app
from ragbot.config import Settings
from ragbot.embeddings import HashingEmbedder
from ragbot.guardrails import CRISIS_MESSAGE, DISCLAIMER
from ragbot.index import build_index
from ragbot.pipeline import Pipeline

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

STATIC = Path(__file__).resolve().parent.parent / "ragbot" / "static"
QUESTION = "How long does ketamine stay in the body?"


# ---------------------------------------------------------------------------------------------
# Routes, without a browser (the fast hashing embedder stands in for the model)


@pytest.fixture(scope="module")
def fake_pipeline(tmp_path_factory: pytest.TempPathFactory, shipped_corpus_dir: Path) -> Pipeline:
    """A pipeline over the shipped corpus with the hashing embedder: no model, fast."""
    settings = Settings(
        corpus_dir=shipped_corpus_dir, index_dir=tmp_path_factory.mktemp("widget") / "index"
    )
    embedder = HashingEmbedder()
    build_index(settings, embedder)
    return Pipeline.load(settings, embedder=embedder)


@pytest.fixture
def client(fake_pipeline: Pipeline) -> Iterator[TestClient]:
    with TestClient(create_app(fake_pipeline.settings, fake_pipeline)) as c:
        yield c


def test_widget_js_is_served_as_javascript_with_cache_headers(client: TestClient) -> None:
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=3600" in response.headers["cache-control"]
    assert response.headers["etag"].startswith('"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert response.content == (STATIC / "widget.js").read_bytes()


def test_widget_js_revalidates_by_etag(client: TestClient) -> None:
    etag = client.get("/widget.js").headers["etag"]
    again = client.get("/widget.js", headers={"If-None-Match": f'W/{etag}, "other"'})
    assert again.status_code == 304
    assert again.content == b""
    assert client.get("/widget.js", headers={"If-None-Match": '"stale"'}).status_code == 200


def test_demo_page_embeds_the_widget_under_a_strict_csp(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert (
        '<script src="widget.js" data-title="Ask about ketamine" defer></script>' in response.text
    )
    assert client.get("/demo.css").headers["content-type"] == "text/css; charset=utf-8"


def test_meta_gives_the_title_the_articles_questions_and_the_disclaimer(client: TestClient) -> None:
    body = client.get("/v1/meta").json()
    assert body["title"] == "What are the Effects of Ketamine on the Brain?"
    assert body["suggestions"][:2] == [
        "What are the Effects of Ketamine on the Brain?",
        "How Does Ketamine Work in the Brain?",
    ]
    assert all(q.endswith("?") for q in body["suggestions"])
    assert "not medical advice" in body["disclaimer"]
    assert body["max_question_chars"] == 1000


def test_meta_is_503_in_the_error_shape_until_the_index_is_loaded(fake_pipeline: Pipeline) -> None:
    app = create_app(fake_pipeline.settings)  # no lifespan run: nothing loaded
    response = TestClient(app).get("/v1/meta")
    assert response.status_code == 503
    assert set(response.json()["error"]) == {"code", "message", "status", "request_id", "detail"}


def test_widget_source_never_parses_html() -> None:
    source = (STATIC / "widget.js").read_text("utf-8")
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "createContextualFragment",
        "DOMParser",
        "srcdoc",
    ):
        assert sink not in code, sink


@pytest.mark.parametrize(
    ("configured", "origin", "allowed"),
    [
        (["http://127.0.0.1:8101"], "http://127.0.0.1:8101", True),
        (["http://127.0.0.1:8101"], "http://127.0.0.1:8102", False),  # same host, another port
        (["http://127.0.0.1:8101"], "http://localhost:8101", False),
        ([], "http://127.0.0.1:8101", False),
    ],
)
def test_cors_allows_the_configured_site_origins_and_no_others(
    fake_pipeline: Pipeline, configured: list[str], origin: str, allowed: bool
) -> None:
    settings = fake_pipeline.settings.model_copy(update={"cors_origins": configured})
    with TestClient(create_app(settings, fake_pipeline)) as c:
        preflight = c.options(
            "/v1/ask",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        ask = c.post("/v1/ask", json={"question": QUESTION}, headers={"Origin": origin})
        meta = c.get("/v1/meta", headers={"Origin": origin})
    assert ask.status_code == 200
    if allowed:
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
        assert ask.headers["access-control-allow-origin"] == origin
        assert meta.headers["access-control-allow-origin"] == origin
    else:
        assert preflight.status_code >= 400
        for response in (preflight, ask, meta):
            assert "access-control-allow-origin" not in response.headers


# ---------------------------------------------------------------------------------------------
# The widget in Chromium, against the real service

HOSTILE_CSS = """
* { all: unset !important; }
*::before, *::after { content: "X" !important; }
html { font-size: 4px !important; }
body { font-size: 2px !important; line-height: 0 !important; color: transparent !important;
       letter-spacing: 12px !important; text-transform: uppercase !important; }
body > * { opacity: .4 !important; filter: blur(1px) !important; transform: rotate(4deg) !important;
           z-index: 2147483647 !important; }
button, input, textarea, form, ol, li, p, svg, section, a { display: none !important; }
div { position: static !important; width: 10px !important; height: 10px !important; }
[class], [id], [role], [aria-label] { visibility: hidden !important;
                                      pointer-events: none !important; }
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright's sync API."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    """Another site (another port, so another origin) whose pages embed the widget."""
    with PageServer() as server:
        yield server


@pytest.fixture(scope="module")
def service(
    browser: Browser,
    real_pipeline: Pipeline,
    pages: PageServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    """The real service; its CORS settings allow the pages' origin only; records in a tmp file."""
    records = tmp_path_factory.mktemp("records") / "records.sqlite3"
    settings = real_pipeline.settings.model_copy(
        update={"cors_origins": [pages.origin], "database_url": f"sqlite:///{records}"}
    )
    server = Service(create_app(settings, real_pipeline)).start()
    pages.pages["/plain.html"] = host_page(server.url)
    pages.pages["/hostile.html"] = host_page(server.url, css=HOSTILE_CSS)
    pages.pages["/slow.html"] = host_page(server.url, attrs="data-timeout='1500'")
    pages.pages["/options.html"] = host_page(
        server.url,
        attrs="data-position='left' data-color='gold' data-open",
        body="<button>Page button</button>",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stub_service(browser: Browser, fake_pipeline: Pipeline) -> Iterator[Service]:
    """The service over the fast fake pipeline, for tests that stub /v1/ask in the browser."""
    server = Service(create_app(fake_pipeline.settings, fake_pipeline)).start()
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh desktop tab (its own sessionStorage); fails the test on any uncaught page error."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def screenshots(repo_root: Path) -> Path:
    folder = repo_root / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_widget(page: Page) -> None:
    page.get_by_role("button", name="Open chat: Ask about ketamine").click()
    from playwright.sync_api import expect

    expect(page.get_by_role("dialog", name="Ask about ketamine")).to_be_visible()


def ask(page: Page, question: str) -> None:
    box = page.get_by_role("textbox", name="Your question")
    box.fill(question)
    box.press("Enter")


def shadow_focus(page: Page) -> str:
    """The class of the element focused inside the widget, '' when focus is elsewhere."""
    return str(
        page.evaluate(
            """() => { const host = document.querySelector('ragbot-widget');
                   if (document.activeElement !== host) return '';
                   const el = host.shadowRoot.activeElement; return el ? el.className : ''; }"""
        )
    )


CONTRAST_JS = """
root => {
  const rgba = c => (c.match(/[\\d.]+/g) || ["0", "0", "0", "0"]).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = el => {
    for (let n = el; n; n = n.parentElement || n.getRootNode().host) {
      const c = rgba(getComputedStyle(n).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of root.querySelectorAll("*")) {
    const hasText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!hasText || !el.getClientRects().length) continue;
    const [a, b] = [lum(rgba(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${el.className}: ${ratio.toFixed(2)}`);
  }
  return low;
}
"""


def low_contrast_text(page: Page) -> list[str]:
    """Visible text in the widget below WCAG AA contrast (4.5:1) against its background."""
    shadow = page.locator("ragbot-widget").evaluate_handle("host => host.shadowRoot")
    return list(shadow.evaluate(CONTRAST_JS))


@pytest.mark.browser
@pytest.mark.model
def test_demo_page_answers_with_a_citation_that_reveals_its_quote_and_the_disclaimer(
    page: Page, service: Service, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(service.url + "/")
    open_widget(page)
    chips = page.get_by_role("group", name="Suggested questions").get_by_role("button")
    # Before the first question: the article's own questions, from /v1/meta.
    expect(chips.first).to_have_text("What are the Effects of Ketamine on the Brain?")
    ask(page, QUESTION)
    answer = page.locator("li.answered").last
    expect(answer).to_contain_text("up to fourteen days")
    marker = answer.get_by_role("button", name=re.compile(r"^Show source 1"))
    expect(marker).to_have_text("1")
    source = answer.locator("figure.source").nth(0)
    expect(source).to_be_hidden()
    marker.press("Enter")
    expect(marker).to_have_attribute("aria-expanded", "true")
    expect(source).to_be_visible()
    expect(source).to_contain_text("the metabolites of ketamine can remain in the system")
    expect(source).to_contain_text("How Long Does Ketamine Stay in the Body?")
    expect(answer.locator(".disclaimer")).to_be_visible()
    expect(answer.locator(".disclaimer")).to_contain_text("not medical advice")
    expect(page.locator("li.chips").last).to_be_visible()  # follow-up suggestions from the reply
    assert low_contrast_text(page) == []
    page.screenshot(path=str(screenshots / "widget-desktop-1280x800.png"))

    page.reload()  # the conversation, and the open panel, survive a reload in the tab
    expect(page.locator("li.answered")).to_have_count(1)
    expect(page.locator("li.user")).to_have_text("You asked: " + QUESTION)
    expect(page.get_by_role("dialog", name="Ask about ketamine")).to_be_visible()


@pytest.mark.browser
@pytest.mark.model
def test_at_phone_width_the_panel_is_full_width_and_a_suggestion_chip_asks(
    browser: Browser, service: Service, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    try:
        page = context.new_page()
        page.goto(service.url + "/")
        open_widget(page)
        panel = page.get_by_role("dialog", name="Ask about ketamine")
        box = panel.bounding_box()
        assert box is not None and box["x"] == 0 and box["width"] == 375 and box["height"] == 740
        page.get_by_role("button", name="Ask: How Long Does Ketamine Stay in the Body?").click()
        answer = page.locator("li.answered").last
        expect(answer).to_contain_text("up to fourteen days")
        answer.get_by_role("button", name=re.compile(r"^Show source 1")).click()
        expect(answer.locator("figure.source").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
        page.screenshot(path=str(screenshots / "widget-phone-375x740.png"))
        page.get_by_role("button", name="Close chat", exact=True).click()
        expect(panel).to_be_hidden()
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.model
def test_a_crisis_message_shows_the_crisis_reply_with_988_and_911_links(
    page: Page, service: Service, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(service.url + "/")
    open_widget(page)
    ask(page, "I want to end my life")
    crisis = page.locator("li.crisis")
    expect(crisis).to_be_visible()
    expect(crisis).to_contain_text("988")
    for href in ("tel:988", "sms:988", "tel:911", "tel:18002221222"):
        expect(crisis.locator(f"a[href='{href}']")).to_be_visible()
    expect(crisis.get_by_role("link", name=re.compile("Call 988"))).to_be_visible()
    expect(crisis.locator(".disclaimer")).to_be_visible()
    expect(page.locator(".live")).to_contain_text("Help is available right now")
    assert low_contrast_text(page) == []
    crisis.screenshot(path=str(screenshots / "widget-crisis.png"))


@pytest.mark.browser
@pytest.mark.model
def test_markup_in_a_question_or_a_reply_is_shown_as_text_and_never_runs(
    page: Page, service: Service, pages: PageServer
) -> None:
    from playwright.sync_api import Route, expect

    page.goto(pages.origin + "/plain.html")  # no CSP here: only the widget stands in the way
    open_widget(page)
    question = "<img src=x onerror=window.__pwned=1> <script>window.__pwned=2</script>"
    ask(page, question)
    expect(page.locator("li.user").last).to_have_text("You asked: " + question)
    expect(page.locator("li.no_answer, li.answered, li.refused")).to_have_count(1)

    # A reply whose every field carries markup, and a javascript: link.
    evil = {
        "status": "answered",
        "answer": "<img src=x onerror=window.__pwned=3>Quoted <b>text</b>. [1]",
        "citations": [
            {
                "id": 1,
                "doc_id": "d",
                "title": "<script>window.__pwned=4</script>",
                "section": "<img src=x onerror=window.__pwned=5>",
                "quote": "<svg onload=window.__pwned=6>",
                "start": 0,
                "end": 1,
                "url": "javascript:window.__pwned=7",
                "score": 1.0,
            }
        ],
        "disclaimer": "<iframe src=javascript:window.__pwned=8></iframe>",
        "suggestions": ["<img src=x onerror=window.__pwned=9>"],
        "request_id": "x",
    }

    def reply(route: Route) -> None:
        cors = {
            "Access-Control-Allow-Origin": pages.origin,
            "Access-Control-Allow-Headers": "content-type",
            "Access-Control-Allow-Methods": "POST",
        }
        if route.request.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
        else:
            route.fulfill(
                status=200, headers=cors, content_type="application/json", body=json.dumps(evil)
            )

    page.route("**/v1/ask", reply)
    ask(page, "anything")
    answer = page.locator("li.answered").last
    expect(answer).to_contain_text("<img src=x onerror=window.__pwned=3>Quoted <b>text</b>.")
    answer.get_by_role("button", name=re.compile("^Show source 1")).click()
    expect(answer.locator("figure.source")).to_contain_text("<svg onload=window.__pwned=6>")
    expect(answer.locator("figure.source")).to_contain_text("<img src=x onerror=window.__pwned=5>")
    expect(answer.locator("figure.source a")).to_have_count(0)  # javascript: is never a link
    expect(
        page.get_by_role("button", name="Ask: <img src=x onerror=window.__pwned=9>")
    ).to_be_visible()
    page.reload()  # the stored conversation is rendered again, as text again
    expect(page.locator("li.answered")).to_have_count(1)
    page.wait_for_timeout(200)  # give any injected handler its chance
    assert page.evaluate("window.__pwned") is None
    injected = page.evaluate(
        """document.querySelector('ragbot-widget').shadowRoot
           .querySelectorAll('img, script, b, iframe, [onload], [onerror]').length"""
    )
    assert injected == 0


@pytest.mark.browser
@pytest.mark.model
def test_the_whole_flow_works_by_keyboard_and_the_answer_is_announced(
    page: Page, service: Service
) -> None:
    from playwright.sync_api import expect

    page.goto(service.url + "/")
    for _ in range(20):
        page.keyboard.press("Tab")
        if "launcher" in shadow_focus(page):
            break
    assert "launcher" in shadow_focus(page), "Tab never reached the launcher"
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Ask about ketamine")).to_be_visible()
    assert "input" in shadow_focus(page)
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    live = page.locator("[aria-live='polite']")
    expect(live).to_contain_text("Answer: ")
    expect(live).to_contain_text("up to fourteen days")
    # Back from the input into the conversation: the last suggestion chip.
    page.keyboard.press("Shift+Tab")
    assert "chip" in shadow_focus(page)
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Ask about ketamine")).to_be_hidden()
    assert "launcher" in shadow_focus(page)
    launcher = page.get_by_role("button", name="Open chat: Ask about ketamine")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    controls = page.evaluate(
        """() => [...document.querySelector('ragbot-widget').shadowRoot
                      .querySelectorAll('button, textarea, a')]
                 .filter(el => !el.getAttribute('aria-label')).map(el => el.outerHTML)"""
    )
    assert controls == []


@pytest.mark.browser
@pytest.mark.model
def test_an_answer_rated_not_helpful_by_keyboard_is_stored_against_its_request_id(
    page: Page, service: Service
) -> None:
    from playwright.sync_api import expect

    from ragbot.records import Records

    page.goto(service.url + "/")
    open_widget(page)
    with page.expect_response("**/v1/ask") as asked:
        ask(page, QUESTION)
    request_id = asked.value.json()["request_id"]
    records = Records.open(service.app.state.settings)
    # The record is written just after the reply is sent; a person reads before rating.
    deadline = time.monotonic() + 10
    while records.reply(request_id) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    helpful = page.get_by_role("button", name="Helpful", exact=True)
    not_helpful = page.get_by_role("button", name="Not helpful", exact=True)
    expect(not_helpful).to_have_attribute("aria-pressed", "false")
    not_helpful.focus()
    page.keyboard.press("Enter")
    expect(not_helpful).to_have_attribute("aria-pressed", "true")
    expect(helpful).to_have_attribute("aria-pressed", "false")
    thanks = page.locator(".rate .thanks")
    expect(thanks).to_have_text("Thanks for your feedback.")
    # The optional comment: typed and sent by keyboard, stored redacted.
    page.keyboard.press("Tab")
    expect(page.get_by_role("textbox", name="Tell us more (optional)")).to_be_focused()
    page.keyboard.type("Too vague. Call me on 555 123 4567")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(thanks).to_have_text("Thanks, your comment was sent.")
    try:
        rating, reply = records.feedback(request_id), records.reply(request_id)
    finally:
        records.close()
    assert rating is not None and rating.rating == "down"
    assert rating.comment == "Too vague. Call me on [phone]"
    assert reply is not None and reply.channel == "widget" and reply.question is None


@pytest.mark.browser
@pytest.mark.model
def test_with_the_service_down_the_widget_shows_an_error_and_recovers_on_retry(
    page: Page, real_pipeline: Pipeline
) -> None:
    from playwright.sync_api import expect

    server = Service(create_app(real_pipeline.settings, real_pipeline)).start()
    try:
        page.goto(server.url + "/")
        open_widget(page)
        server.stop()
        ask(page, QUESTION)
        error = page.locator("li.error")
        expect(error).to_contain_text("Can't reach the service")
        expect(page.get_by_role("textbox", name="Your question")).to_have_value(QUESTION)
        assert low_contrast_text(page) == []
        server.start()  # the same port again
        error.get_by_role("button", name="Retry sending your question").click()
        expect(page.locator("li.answered")).to_contain_text("up to fourteen days")
        expect(error).to_have_count(0)
        expect(page.locator("li.user")).to_have_count(1)
        expect(page.get_by_role("textbox", name="Your question")).to_have_value("")
    finally:
        server.stop()


@pytest.mark.browser
@pytest.mark.model
def test_timeouts_and_http_errors_show_a_short_message_and_retry(
    page: Page, service: Service, pages: PageServer
) -> None:
    from playwright.sync_api import Route, expect

    held: list[Route] = []
    failure: dict[str, Any] = {}

    def api(route: Route) -> None:
        if route.request.method == "OPTIONS":
            route.fallback()
        elif failure.get("hang"):
            held.append(route)  # never answered: the widget's own timeout must end it
        elif failure:
            route.fulfill(
                status=failure["status"],
                json={
                    "error": {
                        "code": "x",
                        "message": failure["message"],
                        "status": failure["status"],
                        "request_id": "req-123",
                        "detail": None,
                    }
                },
                headers={
                    "Access-Control-Allow-Origin": pages.origin,
                    "Access-Control-Expose-Headers": "Retry-After, X-Request-ID",
                    **(
                        {"Retry-After": str(failure["retry_after"])}
                        if "retry_after" in failure
                        else {}
                    ),
                },
            )
        else:
            route.fallback()

    page.route("**/v1/ask", api)
    page.goto(pages.origin + "/slow.html")  # data-timeout=1500
    open_widget(page)
    box = page.get_by_role("textbox", name="Your question")
    error = page.locator("li.error")
    retry = page.get_by_role("button", name="Retry sending your question")

    failure.update(hang=True)
    ask(page, QUESTION)
    expect(error).to_contain_text("took too long")
    expect(box).to_have_value(QUESTION)

    failure.clear()
    failure.update(status=503, message="the service is still loading its index; try again shortly")
    retry.click()
    expect(error).to_contain_text("busy or starting up. Try again in a moment")
    expect(error).to_contain_text("Reference: req-123")

    failure.update(status=429, message="too many questions", retry_after=7)
    retry.click()
    expect(error).to_contain_text("a lot of questions in a short time. Wait 7 seconds")
    del failure["retry_after"]

    failure.update(status=422, message="question is 1200 characters; the limit is 1000")
    retry.click()
    expect(error).to_contain_text("The question was not accepted: question is 1200 characters")
    expect(box).to_have_value(QUESTION)

    failure.clear()
    retry.click()
    expect(page.locator("li.answered")).to_contain_text("up to fourteen days")
    expect(error).to_have_count(0)
    for route in held:
        with contextlib.suppress(Exception):  # the page gave up on it already
            route.abort()


@pytest.mark.browser
@pytest.mark.model
def test_aggressive_host_css_cannot_break_the_widget_and_cors_lets_that_site_call_the_api(
    page: Page, service: Service, pages: PageServer, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(pages.origin + "/hostile.html")
    launcher = page.get_by_role("button", name="Open chat: Ask about ketamine")
    expect(launcher).to_be_visible()
    box = launcher.bounding_box()
    assert box is not None and box["width"] == 60 and box["height"] == 60
    assert 1180 < box["x"] < 1280 and 700 < box["y"] < 800
    style = launcher.evaluate(
        "el => { const s = getComputedStyle(el); return [s.display, s.backgroundColor]; }"
    )
    assert style == ["flex", "rgb(15, 118, 110)"]
    open_widget(page)
    ask(page, QUESTION)
    answer = page.locator("li.answered").last
    expect(answer).to_contain_text("up to fourteen days")  # the cross-origin call went through
    text = answer.locator("p.text")
    assert text.evaluate("el => [getComputedStyle(el).fontSize, getComputedStyle(el).color]") == [
        "15px",
        "rgb(31, 41, 55)",
    ]
    answer.get_by_role("button", name=re.compile("^Show source 1")).click()
    expect(answer.locator("figure.source").nth(0)).to_be_visible()
    expect(page.get_by_role("button", name="Send question")).to_be_visible()
    page.screenshot(path=str(screenshots / "widget-hostile-css-1280x800.png"))


@pytest.mark.browser
@pytest.mark.model
def test_a_site_missing_from_cors_origins_is_blocked_by_the_browser(
    page: Page, service: Service
) -> None:
    from playwright.sync_api import expect

    with PageServer() as other:  # another port: an origin the service was not told about
        other.pages["/"] = host_page(service.url)
        page.goto(other.origin + "/")
        open_widget(page)
        ask(page, QUESTION)
        expect(page.locator("li.error")).to_contain_text("Can't reach the service")
        expect(page.locator("li.answered")).to_have_count(0)


@pytest.mark.browser
@pytest.mark.model
def test_data_attributes_set_position_colour_and_open_on_load(
    page: Page, service: Service, pages: PageServer
) -> None:
    from playwright.sync_api import expect

    page.goto(pages.origin + "/options.html")
    panel = page.get_by_role("dialog", name="Ask about ketamine")
    expect(panel).to_be_visible()  # data-open
    assert shadow_focus(page) == ""  # opening on load does not steal the page's focus
    box = panel.bounding_box()
    assert box is not None and box["x"] == 20  # data-position=left
    header = page.locator(".header")
    colours = header.evaluate(
        "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
    )
    assert colours == ["rgb(255, 215, 0)", "rgb(17, 24, 39)"]  # dark text on gold: readable
    assert low_contrast_text(page) == []
    # The page's own buttons are untouched by the widget's styles.
    expect(page.get_by_role("button", name="Page button")).to_be_visible()


# ---------------------------------------------------------------------------------------------
# Crisis resources beside another reply (the /v1/ask reply is stubbed in the browser)

METABOLIZED = "Ketamine is metabolized quickly in the body."
FIXED_CRISIS_LINKS = ["tel:988", "sms:988", "tel:911", "tel:18002221222"]


def stub_reply(answer: str, resources: str | None) -> dict[str, Any]:
    """An `answered` /v1/ask body with one citation, and `resources` as given."""
    return {
        "status": "answered",
        "answer": answer + " [1]",
        "citations": [
            {
                "id": 1,
                "doc_id": "d",
                "title": "What are the Effects of Ketamine on the Brain?",
                "section": "How Long Does Ketamine Stay in the Body?",
                "quote": answer,
                "start": 0,
                "end": len(answer),
                "url": None,
                "score": 1.0,
            }
        ],
        "disclaimer": DISCLAIMER,
        "suggestions": [],
        "resources": resources,
        "request_id": "stub",
    }


def stub_asks(page: Page, bodies: list[dict[str, Any]]) -> None:
    """Answer each POST /v1/ask of the page with the next of `bodies`."""
    from playwright.sync_api import Route

    queue = list(bodies)

    def reply(route: Route) -> None:
        route.fulfill(status=200, json=queue.pop(0))

    page.route("**/v1/ask", reply)


def follows(page: Page, first: Any, then: Any) -> bool:
    """Whether element `then` comes after element `first` in the document."""
    return bool(
        page.evaluate(
            "([a, b]) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING)",
            [first.element_handle(), then.element_handle()],
        )
    )


@pytest.mark.browser
def test_a_reply_with_resources_shows_the_crisis_resources_and_links_before_the_answer(
    page: Page, stub_service: Service, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    stub_asks(page, [stub_reply(METABOLIZED, CRISIS_MESSAGE), stub_reply(METABOLIZED, None)])
    page.goto(stub_service.url + "/")
    open_widget(page)
    ask(page, "I feel hopeless, how long does ketamine stay in the body?")
    reply = page.locator("li.answered").first
    resources = reply.locator(".resources")
    expect(resources).to_be_visible()
    expect(resources).to_have_attribute("aria-label", "Crisis resources")
    expect(resources.locator(".lead")).to_have_text("Help is available right now")
    expect(resources).to_contain_text(CRISIS_MESSAGE)
    links = resources.get_by_role("link")
    assert links.evaluate_all("as => as.map(a => a.getAttribute('href'))") == FIXED_CRISIS_LINKS
    expect(resources.get_by_role("link", name=re.compile("Call 988"))).to_be_visible()

    # First the resources and their tel:988 link, then the quoted answer, then the disclaimer.
    call_988 = resources.locator("a[href='tel:988']")
    answer_text = reply.locator("p.text", has_text=METABOLIZED)
    assert follows(page, resources.locator(".lead"), call_988)
    assert follows(page, call_988, answer_text)
    assert follows(page, answer_text, reply.locator(".disclaimer"))
    assert low_contrast_text(page) == []
    page.screenshot(path=str(screenshots / "widget-resources-1280x800.png"))
    reply.get_by_role("button", name=re.compile("^Show source 1")).click()
    expect(reply.locator("figure.source")).to_contain_text(METABOLIZED)
    # The live region, too, says the resources first.
    expect(page.locator(".live")).to_have_text(
        re.compile(r"^Help is available right now\. It sounds like .* Answer: Ketamine is metab")
    )

    ask(page, "How long does ketamine stay in the body?")  # no distress: no resources
    plain = page.locator("li.answered").nth(1)
    expect(plain).to_contain_text(METABOLIZED)
    expect(plain.locator(".resources")).to_have_count(0)
    expect(plain.locator("a[href^='tel:'], a[href^='sms:']")).to_have_count(0)
    expect(page.locator(".live")).to_have_text(re.compile(r"^Answer: Ketamine is metabolized"))

    page.reload()  # both replies come back from sessionStorage as they were
    expect(page.locator("li.answered")).to_have_count(2)
    expect(page.locator("li.answered").first.locator(".resources")).to_contain_text(CRISIS_MESSAGE)
    expect(page.locator("li.answered").nth(1).locator(".resources")).to_have_count(0)


@pytest.mark.browser
def test_resources_are_shown_as_text_and_stored_replies_without_resources_still_render(
    page: Page, stub_service: Service
) -> None:
    from playwright.sync_api import expect

    # Markup and links in `resources` are text; the only links are the widget's fixed ones.
    hostile = "<a href='tel:123'>Call 123</a><img src=x onerror=window.__pwned=1>"
    stub_asks(page, [stub_reply(METABOLIZED, hostile), stub_reply(METABOLIZED, "   ")])
    page.goto(stub_service.url + "/")
    open_widget(page)
    ask(page, "first")
    first = page.locator("li.answered").first
    expect(first.locator(".resources p.text")).to_have_text(hostile)
    links = first.locator(".resources").get_by_role("link")
    assert links.evaluate_all("as => as.map(a => a.getAttribute('href'))") == FIXED_CRISIS_LINKS
    ask(page, "second")  # blank resources: nothing to show
    expect(page.locator("li.answered").nth(1)).to_contain_text(METABOLIZED)
    expect(page.locator("li.answered").nth(1).locator(".resources")).to_have_count(0)

    # A conversation stored before `resources` existed: its replies lack the field.
    page.evaluate(
        """() => { for (const key of Object.keys(sessionStorage)) {
                     const data = JSON.parse(sessionStorage.getItem(key));
                     data.messages.forEach(m => { if (m.reply) delete m.reply.resources; });
                     sessionStorage.setItem(key, JSON.stringify(data)); } }"""
    )
    page.reload()
    expect(page.locator("li.answered")).to_have_count(2)
    expect(page.locator("li.answered").first).to_contain_text(METABOLIZED)
    expect(page.locator(".resources")).to_have_count(0)
    page.wait_for_timeout(200)  # give any injected handler its chance
    assert page.evaluate("window.__pwned") is None


AXE = (
    Path(__file__).resolve().parent / "browser" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
)


def axe_violations(page: Page) -> list[str]:
    """axe-core's violations on the page, the widget's (open) shadow root included."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: `make axe` installs axe-core from npm")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
    ]


@pytest.mark.browser
@pytest.mark.model
def test_axe_finds_no_violations_closed_open_after_an_answer_a_follow_up_and_a_rating(
    browser: Browser, service: Service
) -> None:
    from playwright.sync_api import expect

    # The demo page's CSP forbids injected scripts: the audit's own context sets it aside.
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    page.goto(service.url + "/")
    expect(page.get_by_role("button", name="Open chat: Ask about ketamine")).to_be_visible()
    assert axe_violations(page) == []
    open_widget(page)
    ask(page, QUESTION)
    expect(page.locator("li.answered")).to_have_count(1)
    more = page.get_by_role("button", name="Ask: Tell me more")
    expect(more).to_be_visible()  # the section holds more than the first answer quoted
    more.click()
    expect(page.locator("li.answered")).to_have_count(2)
    # A rated answer: a pressed button and the optional comment box.
    page.get_by_role("button", name="Helpful", exact=True).first.click()
    expect(page.get_by_role("textbox", name="Tell us more (optional)")).to_be_visible()
    violations = axe_violations(page)
    context.close()
    assert violations == []
