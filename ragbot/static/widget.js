/*
 * ragbot chat widget: one tag, plain JavaScript, no build step, no framework.
 *
 *   <script src="https://HOST/widget.js" data-api="https://HOST"
 *           data-title="Ask about ketamine" defer></script>
 *
 * Options (data- attributes of that tag):
 *   data-api       API base URL; default: where widget.js was loaded from
 *   data-title     panel title; default "Ask about the article"
 *   data-color     primary colour, any CSS colour; text on it is black or white, whichever reads better
 *   data-position  right | left; default right
 *   data-open      open the panel on load (present, or "true")
 *   data-timeout   milliseconds before a question gives up; default 20000
 *
 * The API must list the host page's origin in RAGBOT_CORS_ORIGINS.
 *
 * Safety: everything that comes from the server, the user or sessionStorage is inserted as text
 * (textContent, append(string)); this file never parses HTML, and links only to http(s) URLs.
 * The widget lives in a Shadow DOM whose :host resets every inherited style, so the page's CSS
 * cannot reach in and the widget's CSS cannot leak out.
 */
(function () {
  "use strict";

  var HOST_TAG = "ragbot-widget";
  if (window.__ragbotWidget || document.querySelector(HOST_TAG)) return; // the tag was included twice
  window.__ragbotWidget = true;

  var script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  if (!script) return;

  var DEFAULT_TITLE = "Ask about the article";
  var DEFAULT_COLOR = "#0f766e";
  var DEFAULT_TIMEOUT_MS = 20000;
  var MAX_STORED_MESSAGES = 60;
  var HISTORY_TURNS = 3; // the API reads the last RAGBOT_HISTORY_TURNS (3) turns of a follow-up
  var MORE_QUESTION = "Tell me more";
  var STATUSES = ["answered", "no_answer", "refused", "crisis"];
  var SVG_NS = "http://www.w3.org/2000/svg";
  var ICONS = {
    chat: "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.5.4-1.3.1-1.3-.6V16H6.5 A2.5 2.5 0 0 1 4 13.5z",
    close: "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z",
    send: "M3.4 20.4 21 12 3.4 3.6 3.4 10l12 2-12 2z",
    restart: "M12 5V2L7.5 6.5 12 11V7.5a5 5 0 1 1-5 5H4.5A7.5 7.5 0 1 0 12 5z",
    phone: "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2c.3-.3.7-.4 1-.2 1.1.4 2.3.6 3.6.6.6 0 1 .4 1 1V20c0 .6-.4 1-1 1A17 17 0 0 1 3 4c0-.6.4-1 1-1h3.5c.6 0 1 .4 1 1 0 1.3.2 2.5.6 3.6.1.3 0 .7-.2 1z",
  };
  // Fixed links, never taken from a reply: 988 Suicide & Crisis Lifeline, 911, Poison Help.
  var CRISIS_LINKS = [
    { href: "tel:988", text: "Call 988", label: "Call 988, the Suicide and Crisis Lifeline" },
    { href: "sms:988", text: "Text 988", label: "Text 988, the Suicide and Crisis Lifeline" },
    { href: "tel:911", text: "Call 911", label: "Call 911 for an emergency" },
    { href: "tel:18002221222", text: "Poison Help 1-800-222-1222", label: "Call Poison Help at 1-800-222-1222" },
  ];

  var config = readConfig(script);
  var storageKey = "ragbot-widget:v1:" + config.api;
  var idCounter = 0;

  var state = {
    open: false,
    messages: [], // {role: "user", text} and {role: "bot", reply}; only answered exchanges
    meta: null,
    metaRequested: false,
    pending: false,
    failed: null, // {question, bubble, error}: the last question that did not get through
  };

  // ---------------------------------------------------------------------------------------------
  // Options

  function readConfig(tag) {
    var data = tag.dataset || {};
    var base = location.href;
    try {
      base = new URL(".", new URL(tag.src, location.href)).href;
    } catch (e) { /* keep the page's own address */ }
    return {
      api: String(data.api || base).trim().replace(/\/+$/, ""),
      title: String(data.title || "").trim() || DEFAULT_TITLE,
      color: validColor(data.color) || DEFAULT_COLOR,
      position: String(data.position || "").trim().toLowerCase() === "left" ? "left" : "right",
      open: flag(data.open),
      timeout: positiveInt(data.timeout) || DEFAULT_TIMEOUT_MS,
    };
  }

  function flag(value) {
    return value !== undefined && !/^\s*(false|0|no|off)\s*$/i.test(value);
  }

  function positiveInt(value) {
    var n = parseInt(value, 10);
    return n > 0 ? n : 0;
  }

  function validColor(value) {
    if (!value) return "";
    value = String(value).trim();
    return window.CSS && CSS.supports && CSS.supports("color", value) ? value : "";
  }

  // ---------------------------------------------------------------------------------------------
  // Colours: whatever data-color is, text on it and text in it keep WCAG AA contrast (4.5:1).

  function toRgb(color) {
    var ctx = document.createElement("canvas").getContext("2d");
    if (!ctx) return null;
    ctx.fillStyle = "#000";
    ctx.fillStyle = color;
    var value = String(ctx.fillStyle);
    if (value.charAt(0) === "#") {
      return [1, 3, 5].map(function (i) { return parseInt(value.slice(i, i + 2), 16); });
    }
    var parts = value.match(/[\d.]+/g);
    return parts && parts.length >= 3 ? parts.slice(0, 3).map(Number) : null;
  }

  function luminance(rgb) {
    var c = rgb.map(function (v) {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  }

  function contrast(a, b) {
    var la = luminance(a);
    var lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }

  function hex(rgb) {
    return "#" + rgb.map(function (v) { return ("0" + Math.round(v).toString(16)).slice(-2); }).join("");
  }

  function palette(color) {
    var white = [255, 255, 255];
    var black = [17, 24, 39];
    var rgb = toRgb(color) || toRgb(DEFAULT_COLOR) || [15, 118, 110];
    var onPrimary = contrast(rgb, white) >= contrast(rgb, black) ? white : black;
    var ink = rgb.slice();
    for (var step = 0; step < 20 && contrast(ink, white) < 4.6; step++) {
      ink = ink.map(function (v) { return v * 0.88; }); // darken until it reads on white
    }
    var tint = rgb.map(function (v) { return v + (255 - v) * 0.9; });
    return { primary: hex(rgb), onPrimary: hex(onPrimary), ink: hex(ink), tint: hex(tint) };
  }

  // ---------------------------------------------------------------------------------------------
  // Styles. Pixels, not rem: the page's root font size must not resize the widget.

  var CSS_TEXT = [
    ":host { all: initial !important; display: block !important; position: static !important;",
    "  visibility: visible !important; opacity: 1 !important; contain: none !important; }",
    "*, *::before, *::after { box-sizing: border-box; }",
    "[hidden] { display: none !important; }",
    ".root { font: 400 15px/1.5 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif;",
    "  color: #1f2937; -webkit-font-smoothing: antialiased; text-align: left; letter-spacing: normal;",
    "  text-transform: none; word-spacing: normal; white-space: normal; direction: ltr; }",
    "button, textarea, a { font: inherit; color: inherit; letter-spacing: inherit; }",
    "button { margin: 0; cursor: pointer; -webkit-appearance: none; appearance: none; }",
    ":focus { outline: none; }",
    ":focus-visible { outline: 3px solid var(--rb-ink); outline-offset: 2px; }",
    "svg { display: block; width: 24px; height: 24px; fill: currentColor; flex: none; }",
    ".sr { position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0;",
    "  overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap; border: 0; }",

    ".launcher { position: fixed; bottom: 20px; right: 20px; z-index: 2147483000; display: flex;",
    "  align-items: center; justify-content: center; width: 60px; height: 60px; padding: 0;",
    "  border: 2px solid transparent; border-radius: 50%; background: var(--rb-primary); color: var(--rb-on-primary);",
    "  box-shadow: 0 6px 20px rgba(17, 24, 39, .28), 0 2px 6px rgba(17, 24, 39, .18); transition: transform .15s ease; }",
    ".launcher:hover { transform: scale(1.06); }",
    ".launcher svg { width: 28px; height: 28px; }",
    ".root.left .launcher { right: auto; left: 20px; }",

    ".panel { position: fixed; bottom: 96px; right: 20px; z-index: 2147483001; display: flex;",
    "  flex-direction: column; width: 400px; height: 640px; max-height: calc(100vh - 116px);",
    "  background: #ffffff; border: 1px solid #d1d5db; border-radius: 16px; overflow: hidden;",
    "  box-shadow: 0 18px 50px rgba(17, 24, 39, .28), 0 4px 12px rgba(17, 24, 39, .12); }",
    ".root.left .panel { right: auto; left: 20px; }",

    ".header { display: flex; align-items: center; gap: 8px; padding: 14px 10px 14px 18px;",
    "  background: var(--rb-primary); color: var(--rb-on-primary); flex: none; }",
    ".header :focus-visible { outline-color: var(--rb-on-primary); outline-offset: -3px; }",
    ".heading { flex: 1; min-width: 0; }",
    ".title { margin: 0; font-size: 17px; font-weight: 650; line-height: 1.3; }",
    ".subtitle { margin: 2px 0 0; font-size: 13px; line-height: 1.35; overflow: hidden;",
    "  text-overflow: ellipsis; white-space: nowrap; }",
    ".icon-btn { display: flex; align-items: center; justify-content: center; width: 44px; height: 44px;",
    "  padding: 0; border: 0; border-radius: 10px; background: transparent; color: inherit; flex: none; }",
    ".icon-btn:hover { background: rgba(127, 127, 127, .22); }",
    ".icon-btn svg { width: 22px; height: 22px; }",

    ".log { flex: 1; position: relative; margin: 0; padding: 16px 14px 8px; list-style: none;",
    "  overflow-y: auto; overscroll-behavior: contain; background: #f9fafb; }",
    ".msg { display: block; margin: 0 0 14px; }",
    ".bubble { max-width: 100%; padding: 10px 14px; border-radius: 14px; overflow-wrap: anywhere; }",
    ".user { display: flex; justify-content: flex-end; }",
    ".user .bubble { max-width: 85%; background: var(--rb-primary); color: var(--rb-on-primary);",
    "  border-bottom-right-radius: 4px; white-space: pre-wrap; }",
    ".bot .bubble { background: #ffffff; border: 1px solid #e5e7eb; border-bottom-left-radius: 4px; }",
    ".text { margin: 0; }",
    ".lead { margin: 0 0 6px; font-weight: 600; }",
    ".cite { display: inline-flex; align-items: center; justify-content: center; min-width: 24px;",
    "  height: 24px; margin: 0 2px; padding: 0 6px; border: 0; border-radius: 12px; vertical-align: 1px;",
    "  background: var(--rb-ink); color: #ffffff; font-size: 12px; font-weight: 700; line-height: 1; }",
    ".cite[aria-expanded='true'] { background: #111827; }",
    ".source { margin: 10px 0 0; padding: 10px 12px; border-left: 4px solid var(--rb-ink);",
    "  border-radius: 0 8px 8px 0; background: var(--rb-tint); }",
    ".quote { margin: 0; font-style: italic; }",
    ".quote::before { content: '\\201C'; } .quote::after { content: '\\201D'; }",
    ".where { display: block; margin-top: 6px; font-size: 13px; color: #374151; }",
    ".where a { color: var(--rb-ink); font-weight: 600; text-decoration: underline; }",
    ".disclaimer { margin: 8px 2px 0; font-size: 12.5px; line-height: 1.45; color: #4b5563; }",

    ".crisis .bubble { border: 2px solid #b91c1c; background: #fef2f2; color: #450a0a; }",
    ".crisis .lead, .resources .lead { display: flex; align-items: center; gap: 8px; color: #991b1b; font-size: 16px; }",
    ".resources { margin: 0 0 12px; padding: 10px 12px; border: 2px solid #b91c1c; border-radius: 10px;",
    "  background: #fef2f2; color: #450a0a; }",
    ".actions { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 12px; }",
    ".action { display: inline-flex; align-items: center; gap: 6px; min-height: 44px; padding: 8px 14px;",
    "  border-radius: 10px; background: #b91c1c; color: #ffffff; font-weight: 700; text-decoration: none; }",
    ".action svg { width: 18px; height: 18px; }",
    ".action.secondary { background: #ffffff; color: #991b1b; border: 2px solid #b91c1c; }",
    ".crisis :focus-visible, .resources :focus-visible { outline-color: #450a0a; }",

    ".chips { margin: 10px 0 0; }",
    ".chip-group { display: flex; flex-wrap: wrap; gap: 8px; }",
    ".chips-label { width: 100%; margin: 0; font-size: 13px; color: #4b5563; }",
    ".chip { min-height: 36px; padding: 7px 12px; border: 1px solid var(--rb-ink); border-radius: 18px;",
    "  background: #ffffff; color: var(--rb-ink); font-size: 13.5px; line-height: 1.3; text-align: left; }",
    ".chip:hover { background: var(--rb-tint); }",

    ".rate { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin: 8px 0 0; }",
    ".rate-btn { min-height: 32px; padding: 4px 12px; border: 1px solid var(--rb-ink); border-radius: 16px;",
    "  background: #ffffff; color: var(--rb-ink); font-size: 13px; }",
    ".rate-btn:hover { background: var(--rb-tint); }",
    ".rate-btn[aria-pressed='true'] { background: var(--rb-ink); color: #ffffff; }",
    ".thanks { margin: 0; font-size: 12.5px; color: #374151; }",
    ".comment { display: flex; gap: 8px; width: 100%; margin: 4px 0 0; }",
    ".comment textarea { flex: 1; min-height: 36px; padding: 6px 8px; border: 1px solid #6b7280; border-radius: 8px;",
    "  font: inherit; font-size: 13px; color: #111827; background: #ffffff; resize: vertical; }",

    ".typing { display: inline-flex; align-items: center; gap: 10px; color: #374151; }",
    ".dots { display: inline-flex; gap: 4px; }",
    ".dots span { width: 7px; height: 7px; border-radius: 50%; background: #6b7280; animation: rb-blink 1.2s infinite ease-in-out; }",
    ".dots span:nth-child(2) { animation-delay: .2s; } .dots span:nth-child(3) { animation-delay: .4s; }",
    "@keyframes rb-blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: 1; } }",

    ".error .bubble { border: 1px solid #c2410c; background: #fff7ed; color: #7c2d12; }",
    ".error .text { font-weight: 600; }",
    ".ref { margin: 4px 0 0; font-size: 12px; color: #7c2d12; }",
    ".retry { margin-top: 8px; min-height: 36px; padding: 6px 16px; border: 0; border-radius: 8px;",
    "  background: #9a3412; color: #ffffff; font-weight: 700; }",

    ".form { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px 12px;",
    "  border-top: 1px solid #e5e7eb; background: #ffffff; flex: none; }",
    ".input { flex: 1; min-height: 44px; max-height: 120px; margin: 0; padding: 10px 12px; resize: none;",
    "  border: 1px solid #6b7280; border-radius: 10px; background: #ffffff; color: #111827;",
    "  font-size: 16px; line-height: 1.4; overflow-y: auto; }",
    ".input::placeholder { color: #6b7280; opacity: 1; }",
    ".input:focus-visible { outline-offset: 0; border-color: var(--rb-ink); }",
    ".send { display: flex; align-items: center; justify-content: center; width: 44px; height: 44px;",
    "  padding: 0; border: 0; border-radius: 10px; background: var(--rb-primary); color: var(--rb-on-primary); flex: none; }",
    ".send[aria-disabled='true'] { opacity: .55; cursor: progress; }",

    "@media (max-width: 480px) {",
    "  .panel, .root.left .panel { top: 0; right: 0; bottom: 0; left: 0; width: 100%; height: 100%;",
    "    max-height: none; border: 0; border-radius: 0; }",
    "  .root.open .launcher { display: none; }",
    "  .user .bubble { max-width: 90%; }",
    "}",
    "@media (prefers-reduced-motion: reduce) { * { animation: none !important; transition: none !important; } }",
    "@media (forced-colors: active) {",
    "  .launcher, .send, .cite, .chip, .retry, .action, .icon-btn, .rate-btn { border: 2px solid ButtonText; }",
    "  .panel, .bubble, .resources { border: 1px solid CanvasText; }",
    "}",
  ].join("\n");

  // ---------------------------------------------------------------------------------------------
  // DOM helpers: strings are only ever appended as text nodes.

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    var keys = Object.keys(attrs || {});
    for (var i = 0; i < keys.length; i++) {
      var key = keys[i];
      var value = attrs[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    [].concat(children || []).forEach(function (child) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    });
    return node;
  }

  function icon(name) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function nextId(prefix) {
    idCounter += 1;
    return "rb-" + prefix + "-" + idCounter;
  }

  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      var url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function str(value) {
    return typeof value === "string" ? value : "";
  }

  // ---------------------------------------------------------------------------------------------
  // Build the widget

  var host = document.createElement(HOST_TAG);
  var shadow = host.attachShadow({ mode: "open" });
  applyStyles(shadow);

  var colors = palette(config.color);
  var root = el("div", { class: "root " + config.position, lang: "en" });
  root.style.setProperty("--rb-primary", colors.primary);
  root.style.setProperty("--rb-on-primary", colors.onPrimary);
  root.style.setProperty("--rb-ink", colors.ink);
  root.style.setProperty("--rb-tint", colors.tint);

  var panelId = nextId("panel");
  var titleId = nextId("title");
  var launcher = el("button", {
    class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": panelId,
    "aria-label": "Open chat: " + config.title, title: config.title,
  }, icon("chat"));

  var subtitle = el("p", { class: "subtitle", hidden: true });
  var restartButton = el("button", {
    class: "icon-btn restart", type: "button", "aria-label": "Start a new conversation", title: "New conversation",
  }, icon("restart"));
  var closeButton = el("button", {
    class: "icon-btn close", type: "button", "aria-label": "Close chat", title: "Close",
  }, icon("close"));
  var header = el("div", { class: "header" }, [
    el("div", { class: "heading" }, [el("h2", { class: "title", id: titleId, text: config.title }), subtitle]),
    restartButton,
    closeButton,
  ]);
  var log = el("ol", { class: "log", "aria-label": "Conversation" });
  var live = el("div", { class: "sr live", "aria-live": "polite", "aria-atomic": "true", role: "status" });
  var inputId = nextId("input");
  var input = el("textarea", {
    class: "input", id: inputId, rows: "1", maxlength: "1000", "aria-label": "Your question",
    placeholder: "Ask a question about the article", autocomplete: "off", enterkeyhint: "send",
  });
  var sendButton = el("button", { class: "send", type: "submit", "aria-label": "Send question", title: "Send" },
    icon("send"));
  var form = el("form", { class: "form", "aria-label": "Ask a question", novalidate: true }, [
    el("label", { class: "sr", for: inputId, text: "Your question" }),
    input,
    sendButton,
  ]);
  var panel = el("section", {
    class: "panel", id: panelId, role: "dialog", "aria-modal": "false", "aria-labelledby": titleId, hidden: true,
  }, [header, log, form]);

  root.append(launcher, panel, live);
  shadow.append(root);

  function applyStyles(target) {
    // Constructed stylesheets are not inline styles, so a strict style-src CSP still allows them.
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS_TEXT);
      target.adoptedStyleSheets = [sheet];
      return;
    } catch (e) { /* older browsers: a <style> element */ }
    var style = document.createElement("style");
    style.textContent = CSS_TEXT;
    target.append(style);
  }

  // ---------------------------------------------------------------------------------------------
  // Replies: validated into a known shape before they are stored or shown.

  function normalizeReply(body) {
    if (!body || typeof body !== "object" || STATUSES.indexOf(body.status) < 0 || typeof body.answer !== "string") {
      return null;
    }
    var citations = Array.isArray(body.citations) ? body.citations : [];
    return {
      status: body.status,
      answer: body.answer,
      disclaimer: str(body.disclaimer),
      citations: citations.filter(function (c) { return c && typeof c === "object"; }).map(function (c) {
        return {
          id: Number(c.id), title: str(c.title), section: str(c.section), quote: str(c.quote), url: safeUrl(c.url),
          ref: str(c.ref),
        };
      }),
      suggestions: (Array.isArray(body.suggestions) ? body.suggestions : [])
        .filter(function (s) { return typeof s === "string" && s.trim(); }).slice(0, 6),
      // Absent from replies stored before the field existed: those render as they always did.
      resources: typeof body.resources === "string" && body.resources.trim() ? body.resources : null,
      more: body.more === true, // the section holds more: offer "Tell me more"
      // What the visitor rates: the reply's request_id, and their rating once sent.
      request_id: typeof body.request_id === "string" ? body.request_id.slice(0, 128) : "",
      rating: body.rating === "up" || body.rating === "down" ? body.rating : null,
    };
  }

  // The last turns of this conversation, oldest first, as the API's `history`: each question
  // and what its reply quoted, so that "why?" or "tell me more" is read in context.
  function history() {
    var turns = [];
    for (var i = 0; i + 1 < state.messages.length; i++) {
      var asked = state.messages[i], replied = state.messages[i + 1];
      if (asked.role !== "user" || replied.role !== "bot") continue;
      turns.push({
        question: String(asked.text).slice(0, 1000),
        citations: replied.reply.citations.map(function (c) { return c.ref || c.quote; })
          .filter(function (c) { return c; }).slice(0, 10),
      });
    }
    return turns.slice(-HISTORY_TURNS);
  }

  function hasResources(reply) {
    return reply.status !== "crisis" && !!reply.resources; // a crisis reply is the resources already
  }

  function renderUser(text) {
    var item = el("li", { class: "msg user" }, el("div", { class: "bubble" }, [
      el("span", { class: "sr", text: "You asked: " }), text,
    ]));
    log.append(item);
    return item;
  }

  function renderBot(reply) {
    var bubble = el("div", { class: "bubble" });
    var item = el("li", { class: "msg bot " + reply.status }, bubble);
    if (reply.status === "crisis") {
      bubble.append.apply(bubble, crisisHelp(reply.answer));
    } else {
      // Distress below the crisis threshold: the crisis resources first, then the reply as usual.
      if (hasResources(reply)) {
        bubble.append(el("div", { class: "resources", role: "group", "aria-label": "Crisis resources" },
          crisisHelp(reply.resources)));
      }
      bubble.append(answerText(reply));
    }
    if (reply.disclaimer) bubble.append(el("p", { class: "disclaimer", text: reply.disclaimer }));
    if (reply.status === "answered" && reply.request_id) bubble.append(ratingButtons(reply));
    log.append(item);
    var next = (reply.status === "answered" && reply.more ? [MORE_QUESTION] : []).concat(reply.suggestions);
    if (next.length) log.append(chips(next, "You could also ask:"));
    return item;
  }

  // "Helpful" / "Not helpful" under an answer: toggle buttons (aria-pressed) sent to /v1/feedback.
  function ratingButtons(reply) {
    var thanks = el("p", { class: "thanks", text: reply.rating ? "Thanks for your feedback." : "" });
    var buttons = [["up", "Helpful"], ["down", "Not helpful"]].map(function (choice) {
      return el("button", {
        type: "button",
        class: "rate-btn",
        "data-rating": choice[0],
        "aria-label": choice[1],
        "aria-pressed": reply.rating === choice[0] ? "true" : "false",
        onclick: function () { rate(reply, choice[0], buttons, thanks); },
      }, choice[1]);
    });
    var group = el("div", { class: "rate", role: "group", "aria-label": "Was this answer helpful?" }, buttons.concat(thanks));
    return group;
  }

  function sendFeedback(reply, rating, comment) {
    return request("/v1/feedback", {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(comment ? { request_id: reply.request_id, rating: rating, comment: comment }
        : { request_id: reply.request_id, rating: rating }),
    });
  }

  function rate(reply, rating, buttons, thanks) {
    if (reply.rating === rating) return;
    sendFeedback(reply, rating).then(function () {
      reply.rating = rating;
      save();
      buttons.forEach(function (b) {
        b.setAttribute("aria-pressed", b.getAttribute("data-rating") === rating ? "true" : "false");
      });
      thanks.textContent = "Thanks for your feedback.";
      announce("Thanks for your feedback.");
      var group = thanks.parentNode;
      if (group && !group.querySelector(".comment")) group.append(commentForm(reply, thanks));
    }, function () {
      thanks.textContent = "Your feedback wasn't sent. Try again later.";
    });
  }

  // An optional short comment once a rating is in; it is sent with the rating and replaces it.
  function commentForm(reply, thanks) {
    var box = el("textarea", { rows: "1", maxlength: "500", "aria-label": "Tell us more (optional)",
      placeholder: "Tell us more (optional)" });
    var form = el("form", { class: "comment", onsubmit: function (event) {
      event.preventDefault();
      var comment = box.value.trim();
      if (!comment || !reply.rating) return;
      sendFeedback(reply, reply.rating, comment).then(function () {
        form.remove();
        thanks.textContent = "Thanks, your comment was sent.";
        announce("Thanks, your comment was sent.");
      }, function () {
        thanks.textContent = "Your comment wasn't sent. Try again later.";
      });
    } }, [box, el("button", { type: "submit", class: "rate-btn", "aria-label": "Send comment" }, "Send")]);
    return form;
  }

  function crisisHelp(text) {
    // The links are the fixed CRISIS_LINKS; only the message comes from the reply, as text.
    return [
      el("p", { class: "lead" }, [icon("phone"), "Help is available right now"]),
      el("p", { class: "text", text: text }),
      el("div", { class: "actions", role: "group", "aria-label": "Crisis lines" }, CRISIS_LINKS.map(function (link, i) {
        return el("a", {
          class: "action" + (i === 3 ? " secondary" : ""), href: link.href, "aria-label": link.label,
        }, [i < 3 ? icon("phone") : null, link.text]);
      })),
    ];
  }

  function answerText(reply) {
    var wrap = el("div");
    var text = el("p", { class: "text" });
    var sources = el("div", { class: "sources" });
    var byId = {};
    reply.citations.forEach(function (c) { byId[c.id] = c; });
    String(reply.answer).split(/(\[\d+\])/).forEach(function (part) {
      var match = /^\[(\d+)\]$/.exec(part);
      var citation = match && byId[Number(match[1])];
      if (citation) text.append(marker(citation, sources));
      else if (part) text.append(part);
    });
    wrap.append(text, sources);
    return wrap;
  }

  function marker(citation, sources) {
    var sourceId = nextId("source");
    var where = el("span", { class: "where" }, [
      "Source " + citation.id + ": \u201C" + (citation.section || citation.title) + "\u201D",
      citation.section && citation.title ? ", in \u201C" + citation.title + "\u201D" : "",
    ]);
    if (citation.url) {
      where.append(" \u00B7 ", el("a", {
        href: citation.url, target: "_blank", rel: "noopener noreferrer",
        "aria-label": "Read the article (opens in a new tab)", text: "Read the article",
      }));
    }
    var figure = el("figure", { class: "source", id: sourceId, hidden: true }, [
      el("blockquote", { class: "quote", text: citation.quote }),
      el("figcaption", {}, where),
    ]);
    sources.append(figure);
    var button = el("button", {
      class: "cite", type: "button", "aria-expanded": "false", "aria-controls": sourceId,
      "aria-label": "Show source " + citation.id + (citation.section ? ": " + citation.section : ""),
      text: String(citation.id),
    });
    button.addEventListener("click", function () {
      var show = figure.hidden;
      figure.hidden = !show;
      button.setAttribute("aria-expanded", show ? "true" : "false");
      if (show) figure.scrollIntoView({ block: "nearest" });
    });
    return button;
  }

  function chips(questions, label) {
    // The group is inside the list item: a list item may not take another role (axe: list).
    return el("li", { class: "msg chips" }, el("div", {
      class: "chip-group", role: "group", "aria-label": "Suggested questions",
    }, [
      el("p", { class: "chips-label", text: label }),
    ].concat(questions.map(function (q) {
      return el("button", {
        class: "chip", type: "button", "aria-label": "Ask: " + q, text: q,
        onclick: function () { ask(q); },
      });
    }))));
  }

  function removeChips() {
    Array.prototype.forEach.call(log.querySelectorAll(".chips, .welcome"), function (node) { node.remove(); });
  }

  function renderWelcome() {
    if (state.messages.length || state.pending || state.failed || log.querySelector(".welcome")) return;
    var meta = state.meta;
    var bubble = el("div", { class: "bubble" }, [
      el("p", { class: "text", text: meta && meta.title
        ? "Ask a question about \u201C" + meta.title + "\u201D. Replies quote the article word for word, with numbered sources."
        : "Ask a question about the article. Replies quote it word for word, with numbered sources." }),
      el("p", { class: "disclaimer", text: "Educational information, not medical advice." }),
    ]);
    log.append(el("li", { class: "msg bot welcome" }, bubble));
    if (meta && meta.suggestions.length) log.append(chips(meta.suggestions, "Questions the article answers:"));
  }

  function renderAll() {
    log.textContent = "";
    state.messages.forEach(function (m, i) {
      if (m.role === "user") renderUser(m.text);
      else {
        renderBot(m.reply);
        if (i !== state.messages.length - 1) removeChips();
      }
    });
    renderWelcome();
    scrollToEnd();
  }

  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
  }

  function scrollToShow(item) {
    // Show the start of a reply; a long one is read from the top.
    log.scrollTop = Math.max(0, item.offsetTop - 12);
  }

  function announce(text) {
    live.textContent = "";
    setTimeout(function () { live.textContent = text; }, 60);
  }

  function spoken(reply) {
    if (reply.status === "crisis") return "Help is available right now. " + reply.answer;
    var text = reply.answer.replace(/\s*\[\d+\]/g, "");
    var n = reply.citations.length;
    var answer = "Answer: " + text + (n ? " " + n + (n === 1 ? " source." : " sources.") : "");
    // The resources are heard first, as they are seen first.
    return hasResources(reply) ? "Help is available right now. " + reply.resources + " " + answer : answer;
  }

  // ---------------------------------------------------------------------------------------------
  // Talking to the API

  function WidgetError(message, reference) {
    this.message = message;
    this.reference = reference || "";
  }

  function httpMessage(status, body, retryAfter) {
    var detail = body && body.error && typeof body.error.message === "string" ? body.error.message : "";
    // Retry-After (seconds) comes with 429 and 503; an absurd or missing value reads as "a moment".
    var wait = retryAfter > 0 && retryAfter <= 3600
      ? (retryAfter === 1 ? "1 second" : retryAfter + " seconds") : "a moment";
    if (status === 429) return "You've sent a lot of questions in a short time. Wait " + wait + ", then try again.";
    if (status === 413) return "That question is too long. Shorten it and try again.";
    if (status >= 400 && status < 500) {
      return "The question was not accepted" + (detail ? ": " + detail : " (" + status + ")") + ".";
    }
    if (status === 503) return "The service is busy or starting up. Try again in " + wait + ".";
    return "The service had a problem (" + status + "). Try again in a moment.";
  }

  function describe(error) {
    if (error instanceof WidgetError) return error;
    if (error && error.name === "AbortError") {
      return new WidgetError("The service took too long to answer. Try again.");
    }
    return new WidgetError("Can't reach the service. Check your connection and try again.");
  }

  function request(path, options) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, config.timeout) : null;
    var init = Object.assign({ credentials: "omit", mode: "cors", headers: { Accept: "application/json" } }, options);
    if (controller) init.signal = controller.signal;
    return fetch(config.api + path, init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok) {
          var reference = body && body.error && body.error.request_id ? String(body.error.request_id) : "";
          var retryAfter = parseInt(response.headers.get("Retry-After") || "", 10);
          throw new WidgetError(httpMessage(response.status, body, retryAfter), reference);
        }
        return body;
      });
    }).finally(function () {
      if (timer) clearTimeout(timer);
    });
  }

  function loadMeta() {
    if (state.metaRequested) return;
    state.metaRequested = true;
    request("/v1/meta", { method: "GET" }).then(function (body) {
      if (!body || typeof body !== "object") return;
      state.meta = {
        title: str(body.title),
        disclaimer: str(body.disclaimer),
        suggestions: (Array.isArray(body.suggestions) ? body.suggestions : [])
          .filter(function (s) { return typeof s === "string" && s.trim(); }).slice(0, 6),
      };
      if (body.max_question_chars > 0) input.setAttribute("maxlength", String(body.max_question_chars));
      if (state.meta.title) {
        subtitle.textContent = state.meta.title;
        subtitle.title = state.meta.title;
        subtitle.hidden = false;
      }
      if (log.querySelector(".welcome")) {
        removeChips(); // the welcome is on screen: redraw it with the title and the questions
        renderWelcome();
      }
    }, function () {
      state.metaRequested = false; // try again next time the panel opens
    });
  }

  function ask(question) {
    question = String(question || "").trim();
    if (!question || state.pending) return;
    if (state.failed) {
      state.failed.bubble.remove();
      state.failed.error.remove();
      state.failed = null;
    }
    removeChips();
    var bubble = renderUser(question);
    input.value = "";
    resizeInput();
    send(question, bubble);
  }

  function send(question, bubble) {
    setPending(true);
    var typing = el("li", { class: "msg bot pending" }, el("div", { class: "bubble typing" }, [
      el("span", { class: "dots", "aria-hidden": "true" }, [el("span"), el("span"), el("span")]),
      "Looking in the article\u2026",
    ]));
    log.append(typing);
    scrollToEnd();
    request("/v1/ask", {
      method: "POST",
      // The reply's record says it came through the widget.
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-Ragbot-Channel": "widget" },
      body: JSON.stringify({ question: question, history: history() }),
    }).then(function (body) {
      var reply = normalizeReply(body);
      if (!reply) throw new WidgetError("The service sent a reply the widget can't read. Try again.");
      typing.remove();
      setPending(false);
      state.messages.push({ role: "user", text: question }, { role: "bot", reply: reply });
      state.messages = state.messages.slice(-MAX_STORED_MESSAGES);
      save();
      if (input.value.trim() === question) {
        input.value = "";
        resizeInput();
      }
      scrollToShow(bubble);
      var item = renderBot(reply);
      scrollToShow(reply.status === "crisis" || hasResources(reply) ? item : bubble);
      announce(spoken(reply));
    }).catch(function (error) {
      typing.remove();
      setPending(false);
      showError(question, bubble, describe(error));
    });
  }

  function showError(question, bubble, error) {
    var retry = el("button", {
      class: "retry", type: "button", "aria-label": "Retry sending your question", text: "Retry",
    });
    var item = el("li", { class: "msg bot error" }, el("div", { class: "bubble", role: "alert" }, [
      el("p", { class: "text", text: error.message }),
      error.reference ? el("p", { class: "ref", text: "Reference: " + error.reference }) : null,
      retry,
    ]));
    log.append(item);
    scrollToEnd();
    state.failed = { question: question, bubble: bubble, error: item };
    if (!input.value.trim()) {
      input.value = question; // the question is not lost: edit it or send it again
      resizeInput();
    }
    retry.addEventListener("click", function () {
      if (state.pending) return;
      item.remove();
      state.failed = null;
      input.focus();
      send(question, bubble);
    });
  }

  function setPending(pending) {
    state.pending = pending;
    log.setAttribute("aria-busy", pending ? "true" : "false");
    sendButton.setAttribute("aria-disabled", pending ? "true" : "false");
  }

  // ---------------------------------------------------------------------------------------------
  // Open, close, keyboard, storage

  function openPanel(focus) {
    state.open = true;
    panel.hidden = false;
    root.classList.add("open");
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat: " + config.title);
    launcher.replaceChildren(icon("close"));
    renderWelcome();
    loadMeta();
    scrollToEnd();
    save();
    if (focus) input.focus();
  }

  function closePanel() {
    state.open = false;
    panel.hidden = true;
    root.classList.remove("open");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat: " + config.title);
    launcher.replaceChildren(icon("chat"));
    save();
    launcher.focus();
  }

  function restart() {
    if (state.pending) return;
    state.messages = [];
    state.failed = null;
    save();
    renderAll();
    input.focus();
  }

  function resizeInput() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }

  function save() {
    try {
      sessionStorage.setItem(storageKey, JSON.stringify({ v: 1, open: state.open, messages: state.messages }));
    } catch (e) { /* storage off or full: the conversation just won't survive a reload */ }
  }

  function restore() {
    try {
      var data = JSON.parse(sessionStorage.getItem(storageKey) || "null");
      if (!data || data.v !== 1 || !Array.isArray(data.messages)) return;
      var messages = [];
      data.messages.forEach(function (m) {
        if (m && m.role === "user" && typeof m.text === "string") messages.push({ role: "user", text: m.text });
        var reply = m && m.role === "bot" ? normalizeReply(m.reply) : null;
        if (reply) messages.push({ role: "bot", reply: reply });
      });
      state.messages = messages.slice(-MAX_STORED_MESSAGES);
      state.open = data.open === true;
    } catch (e) { /* unreadable: start afresh */ }
  }

  launcher.addEventListener("click", function () {
    if (state.open) closePanel();
    else openPanel(true);
  });
  closeButton.addEventListener("click", closePanel);
  restartButton.addEventListener("click", restart);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    ask(input.value);
  });
  input.addEventListener("keydown", function (event) {
    // Enter sends; Shift+Enter is a new line; never while an input method is composing.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask(input.value);
    }
  });
  input.addEventListener("input", resizeInput);
  root.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && state.open) {
      event.stopPropagation();
      closePanel();
    }
  });

  function mount() {
    document.body.append(host);
    if (state.open || config.open) openPanel(false); // without taking the page's focus
  }

  restore();
  renderAll();
  // A tag in <head> without defer runs before <body> exists.
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
