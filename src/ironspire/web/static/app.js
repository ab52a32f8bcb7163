// Ironspire's pages work as plain forms; this module adds what needs a script: live status dots
// (server-sent events), checks without a reload, and streamed chat replies with Stop.
// Everything from the server is inserted with textContent, never as HTML.
// No agent URL is built here: names may hold any printable character, so every one comes from
// the server already encoded (form actions, links, a turn's own URLs; see web/urls.py). A new
// one built in this file must encode the name as one segment: encodeURIComponent(name).

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function post(url, data = {}) {
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "X-CSRF-Token": csrf,
      "Content-Type": "application/x-www-form-urlencoded",
      Accept: "application/json",
    },
    body: new URLSearchParams(data),
  });
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function time(iso) {
  return iso ? iso.slice(11, 19) + " UTC" : "";
}

function showHealth(s) {
  const pid = s.provider;
  const dot = document.querySelector(`[data-dot="${CSS.escape(pid)}"]`);
  if (!dot) return;
  dot.className = "dot " + s.dot;
  dot.title = s.label;
  dot.dataset.state = s.state;
  const set = (attr, text) => {
    const node = document.querySelector(`[data-${attr}="${CSS.escape(pid)}"]`);
    if (node) node.textContent = text;
  };
  set("state-label", s.label);
  const ms = s.shown_latency_ms;
  set("when", s.checked ? `checked ${time(s.checked_at)}` + (ms != null ? ` · ${Math.round(ms)} ms` : "") : "");
  set("until", s.until ? `until ${time(s.until)}` : "");
  set("detail", s.detail || "");
  document.body.dataset.healthEvents = String(Number(document.body.dataset.healthEvents || 0) + 1);
}

function liveHealth() {
  const source = new EventSource("/events/health");
  source.addEventListener("health", (e) => showHealth(JSON.parse(e.data)));
  source.addEventListener("open", () => { document.body.dataset.health = "live"; });
  window.addEventListener("beforeunload", () => source.close());
}

function asyncForms() {
  for (const form of document.querySelectorAll("form[data-async]")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      try {
        const response = await post(form.action);
        const data = await response.json();
        for (const s of Array.isArray(data) ? data : [data]) if (s && s.provider) showHealth(s);
      } finally {
        if (button) button.disabled = false;
      }
    });
  }
}

// --- chat -----------------------------------------------------------------------------------

function setHud(hud) {
  if (!hud) return;
  const q = (k) => document.querySelector(`[data-hud="${k}"]`);
  q("model").textContent = hud.model_name || hud.model || "none";
  q("route").textContent = (hud.provider || "-") + (hud.model ? "/" + hud.model : "");
  q("override").textContent = hud.override ? "override" : "default";
  q("effort").textContent = hud.effort_text;
  q("effort").classList.toggle("unused", !hud.effort_used);
  q("effort").title = hud.effort_title;
  q("billed").textContent = hud.cost.billed_text;
  const api = q("api");
  api.textContent = "API-equivalent " + (hud.cost.api_text ?? "–");
  api.classList.toggle("hidden", !hud.cost.differs);
  const fb = hud.fallback;
  q("fallback").textContent = fb ? fb.routes.join(", ") + (fb.inherited ? " (workspace default)" : "") : "none";
  for (const [key, text] of [["last-fallback", hud.last_fallback], ["budget", hud.budget_warning]]) {
    q(key).textContent = text || "";
    q(key).classList.toggle("hidden", !text);
  }
  const bar = document.getElementById("context-bar");
  const c = hud.context;
  bar.max = c.window || 1;
  bar.value = Math.min(c.tokens, c.window || 1);
  bar.className = "ctx-" + c.level;
  bar.dataset.level = c.level;
  q("context").textContent = `${c.tokens} / ${c.window} tokens (${Math.round(c.share * 100)}%)`;
}

function bubble(role, by) {
  const article = el("article", "msg " + role);
  const head = el("header", "who", role);
  if (by) {
    head.append(" ");
    const span = el("span", "by", by);
    span.dataset.by = "";
    head.append(span);
  }
  article.append(head);
  document.getElementById("empty-history")?.remove();
  document.getElementById("transcript").append(article);
  return article;
}

// A remedy's button, as the server describes it: a link (get), a form post (post), or sending
// the last message again (retry).
function remedyControl(button, retry) {
  if (!button) return null;
  if (button.method === "get") {
    const link = el("a", "button", button.label);
    link.href = button.url;
    link.dataset.remedy = "link";
    return link;
  }
  const control = el("button", "remedy", button.label);
  control.type = "button";
  control.dataset.remedy = button.method;
  control.addEventListener("click", async () => {
    control.disabled = true;
    if (button.method === "retry") {
      retry();
      return;
    }
    await post(button.url, button.fields || {});
    window.location.reload();
  });
  return control;
}

function showError(error, retry) {
  const box = document.getElementById("turn-error");
  box.replaceChildren();
  const panel = el("div", "error turn-error");
  panel.setAttribute("role", "alert");
  panel.dataset.errorType = error.type;
  panel.append(el("strong", "", error.type), ": " + error.message);
  if (error.hint) panel.append(el("p", "hint", error.hint));
  for (const b of [error.button, error.alternative]) {
    const control = remedyControl(b, retry);
    if (control) panel.append(control);
  }
  box.append(panel);
}

function chat() {
  const section = document.querySelector("section.chat");
  const form = document.getElementById("composer");
  const stop = document.getElementById("stop");
  const send = document.getElementById("send");
  let current = null;
  let lastMessage = "";
  const resend = () => {
    form.querySelector("textarea").value = lastMessage;
    form.requestSubmit();
  };

  function follow(turn) {
    const reply = bubble("assistant", turn.provider ? `${turn.provider}/${turn.model ?? ""}` : "");
    reply.classList.add("streaming");
    let reasoning = null;
    let text = null;
    const calls = {};
    const source = new EventSource(turn.events);
    current = { turn, source };
    section.dataset.streaming = "1";
    send.disabled = true;
    stop.disabled = false;
    const finish = () => {
      source.close();
      reply.classList.remove("streaming");
      section.dataset.streaming = "";
      current = null;
      send.disabled = false;
      stop.disabled = true;
    };
    source.addEventListener("reasoning", (e) => {
      if (!reasoning) {
        const details = el("details", "reasoning");
        details.open = true;
        details.append(el("summary", "", "Reasoning"));
        reasoning = el("pre");
        details.append(reasoning);
        reply.insertBefore(details, text ? text : null);
      }
      reasoning.textContent += JSON.parse(e.data).text;
    });
    source.addEventListener("text", (e) => {
      if (!text) {
        text = el("div", "text");
        reply.append(text);
      }
      text.textContent += JSON.parse(e.data).text;
    });
    source.addEventListener("tool_call", (e) => {
      const d = JSON.parse(e.data);
      const line = el("div", "tool-call", "Tool call ");
      line.append(el("code", "", d.name), " ");
      calls[d.index] = el("code", "args", "");
      line.append(calls[d.index]);
      reply.append(line);
    });
    source.addEventListener("tool_args", (e) => {
      const d = JSON.parse(e.data);
      if (calls[d.index]) calls[d.index].textContent += d.arguments;
    });
    source.addEventListener("done", (e) => {
      const d = JSON.parse(e.data);
      if (d.message && d.message.provider) {
        const by = reply.querySelector("[data-by]");
        if (by) by.textContent = `${d.message.provider}/${d.message.model}`;
      }
      if (d.message && d.message.fallback) {
        const note = el("p", "fallback-notice", d.message.fallback);
        note.dataset.fallback = "";
        reply.querySelector("header").after(note);
      }
      reply.dataset.done = "1";
      setHud(d.hud);
      finish();
    });
    source.addEventListener("stopped", (e) => {
      const d = JSON.parse(e.data);
      reply.classList.add("stopped");
      reply.append(el("p", "note", d.note));
      section.dataset.stopped = String(Number(section.dataset.stopped || 0) + 1);
      setHud(d.hud);
      finish();
    });
    source.addEventListener("failed", (e) => {
      const d = JSON.parse(e.data);
      reply.classList.add("failed");
      showError(d.error, () => resend());
      setHud(d.hud);
      finish();
    });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = form.querySelector("textarea");
    const message = box.value;
    if (!message.trim() || current) return;
    document.getElementById("turn-error").replaceChildren();
    send.disabled = true;
    const response = await post(form.action, { message });
    const data = await response.json();
    if (!response.ok) {
      send.disabled = false;
      showError({ type: data.error, message: data.message, hint: data.hint, button: null }, resend);
      return;
    }
    lastMessage = message;
    box.value = "";
    const mine = bubble("user");
    mine.append(el("div", "text", message));
    follow(data);
  });
  form.querySelector("textarea").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  stop.addEventListener("click", async () => {
    if (!current) return;
    stop.disabled = true;
    await post(current.turn.stop);
  });
  if (section.dataset.running) {
    const id = section.dataset.running;
    follow({ id, events: `/turns/${id}/events`, stop: `/turns/${id}/stop` });
  }
}

// --- analytics ------------------------------------------------------------------------------

// The panel is drawn by the server (tables and SVG charts). A filter change submits the filter
// form (the filters live in the URL); a new ledger row (polled stamp) fetches this same page and
// swaps the panel in place, so a turn made in the chat appears without a reload. The new panel
// is a node of a document parsed from our own server's escaped HTML, moved in with replaceWith.
function bindFilters() {
  const form = document.getElementById("filter-bar");
  if (!form) return;
  for (const select of form.querySelectorAll("select")) {
    select.addEventListener("change", () => {
      if (select.name === "period" && select.value === "custom") return;  // wait for the dates
      form.requestSubmit();
    });
  }
}

function analytics() {
  bindFilters();
  let busy = false;
  async function poll() {
    const panel = document.getElementById("analytics-panel");
    if (!panel || busy) return;
    busy = true;
    try {
      const answer = await fetch("/api/analytics/stamp", { credentials: "same-origin" });
      const { stamp } = await answer.json();
      if (String(stamp) !== panel.dataset.stamp) {
        const html = await (await fetch(location.href, { credentials: "same-origin" })).text();
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("analytics-panel");
        if (fresh) {
          panel.replaceWith(document.adoptNode(fresh));
          bindFilters();
          const n = Number(document.body.dataset.analyticsRefreshes || 0) + 1;
          document.body.dataset.analyticsRefreshes = String(n);
        }
      }
    } catch (e) {
      // the server may be restarting; the next poll tries again
    } finally {
      busy = false;
    }
  }
  setInterval(poll, 2000);
}

const page = document.body.dataset.page;
if (page === "analytics") analytics();
if (page === "providers") {
  liveHealth();
  asyncForms();
}
if (page === "chat") chat();
document.body.dataset.ready = "1";
