// The simulator's SMS inbox: follows /_sim/stream (server-sent events) and answers through
// the simulator's JSON endpoints. No framework, no CDN: it must work offline.
"use strict";

(() => {
  const messages = new Map(); // id -> message entry (GET /_sim/messages shape)
  const replies = new Map(); // id -> inbound reply entry
  let selected = null; // the number whose thread is shown
  let chosen = false; // whether the user picked it (else the newest number is followed)
  let loaded = false; // whether the first snapshot arrived (no announcements before)
  const fresh = new Set(); // ids that arrived since the last render, to highlight

  const $ = (id) => document.getElementById(id);
  const FAILED = new Set(["delivery_failed", "sending_failed", "expired"]);
  const QUEUED = new Set(["queued", "sending"]);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function statusOf(message) {
    if (FAILED.has(message.status)) return "failed";
    if (QUEUED.has(message.status)) return "queued";
    return message.status === "delivered" ? "delivered" : "sent";
  }

  function time(iso) {
    const date = new Date(iso);
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  function digits(text) {
    return (text || "").replace(/\D/g, "");
  }

  let toastTimer = 0;
  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => box.classList.remove("show"), 2600);
  }

  function announce(text) {
    $("announce").textContent = text;
  }

  async function call(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error((data && data.detail) || `HTTP ${response.status}`);
    return data;
  }

  // --- grouping -------------------------------------------------------------------------

  function threads() {
    const byNumber = new Map();
    const add = (number, at, item) => {
      const thread = byNumber.get(number) || { number, last: "", items: [], optedOut: false };
      thread.items.push(item);
      if (at > thread.last) thread.last = at;
      byNumber.set(number, thread);
    };
    for (const m of messages.values()) add(m.to, m.received_at, { kind: "sms", at: m.received_at, m });
    for (const r of replies.values()) add(r.from, r.received_at, { kind: "reply", at: r.received_at, r });
    for (const thread of byNumber.values()) {
      thread.items.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
      const keyword = thread.items
        .filter((i) => i.kind === "reply")
        .map((i) => i.r.text.trim().toUpperCase())
        .find((t) => ["STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "UNSTOP"].includes(t));
      thread.optedOut = keyword !== undefined && keyword !== "START" && keyword !== "UNSTOP";
    }
    return [...byNumber.values()].sort((a, b) => (a.last < b.last ? 1 : -1));
  }

  // --- rendering ------------------------------------------------------------------------

  function render() {
    const focusKey = document.activeElement && document.activeElement.dataset.key;
    const all = threads();
    if ((!chosen || !all.some((t) => t.number === selected)) && all.length) selected = all[0].number;
    if (!all.length) selected = null;
    renderNumbers(all);
    renderThread(all.find((t) => t.number === selected));
    fresh.clear();
    if (focusKey) {
      const again = document.querySelector(`[data-key="${CSS.escape(focusKey)}"]`);
      if (again) again.focus();
    }
  }

  function renderNumbers(all) {
    const query = digits($("search").value);
    const list = $("number-list");
    list.replaceChildren();
    const shown = all.filter((t) => !query || digits(t.number).includes(query));
    for (const thread of shown) {
      const latest = thread.items.find((i) => i.kind === "sms");
      const summary = latest ? (latest.m.code ? `code ${latest.m.code}` : latest.m.text.slice(0, 30)) : "replies only";
      const button = el(
        "button",
        {
          type: "button",
          "data-key": `number:${thread.number}`,
          "data-number": thread.number,
          "aria-current": thread.number === selected ? "true" : "false",
          onclick: () => {
            selected = thread.number;
            chosen = true;
            render();
            $("thread").focus();
          },
        },
        el("span", { class: "num", text: thread.number }),
        el("span", { class: "when", text: time(thread.last) }),
        el(
          "span",
          { class: "last" },
          latest ? el("span", { class: `status ${statusOf(latest.m)}`, text: statusOf(latest.m) }) : null,
          el("span", { text: summary }),
          thread.optedOut ? el("span", { class: "chip stop", text: "STOP" }) : null,
        ),
      );
      list.append(el("li", {}, button));
    }
    $("no-numbers").hidden = shown.length > 0;
    $("no-numbers").textContent = all.length ? "No number matches." : "No messages yet.";
  }

  function renderThread(thread) {
    $("welcome").hidden = Boolean(thread);
    $("thread-head").hidden = !thread;
    const items = $("thread-items");
    items.replaceChildren();
    if (!thread) return;
    $("thread-title").textContent = thread.number;
    const sms = thread.items.filter((i) => i.kind === "sms").length;
    $("thread-meta").textContent =
      `${sms} message${sms === 1 ? "" : "s"}` + (thread.optedOut ? " · opted out (STOP)" : "");
    for (const item of thread.items) items.append(item.kind === "sms" ? messageCard(item.m) : replyBubble(item.r));
  }

  function messageCard(m) {
    const state = statusOf(m);
    const card = el("li", { class: `card${fresh.has(m.id) ? " fresh" : ""}`, "data-message": m.id, "data-status": state });
    card.append(
      el(
        "header",
        {},
        el("span", { class: "route", text: `${m.from} → ${m.to}` }),
        el("span", { text: `${m.sender_type.replaceAll("_", " ")} · ${time(m.received_at)}` }),
      ),
    );
    if (m.code) {
      const copy = el("button", {
        type: "button",
        class: "primary copy",
        "data-key": `copy:${m.id}`,
        "aria-label": `Copy code ${m.code}`,
        text: "Copy",
        onclick: (event) => copyCode(m.code, event.currentTarget),
      });
      card.append(el("div", { class: "code-row" }, el("span", { class: "code", text: m.code }), copy));
    }
    card.append(el("p", { class: "text", text: m.text }));
    const meta = el(
      "div",
      { class: "meta" },
      el("span", { class: `status ${state}`, title: m.status, text: state }),
      state === "failed" && m.status !== "delivery_failed" ? el("span", { text: m.status.replaceAll("_", " ") }) : null,
      m.error_codes.length ? el("span", { text: `Telnyx error ${m.error_codes.join(", ")}` }) : null,
      m.held ? el("span", { class: "held", text: "held: waiting for your answer" }) : null,
      m.outcome === "late" && state !== "delivered" ? el("span", { class: "held", text: "delivering late…" }) : null,
      m.outcome === "silent" ? el("span", { text: "silent: no receipt will come" }) : null,
      m.outcome === "failed" || m.outcome === "delivered" ? el("span", { text: "answered from this page" }) : null,
      m.messaging_profile_id ? el("span", { text: `profile ${m.messaging_profile_id.slice(0, 8)}…` }) : null,
    );
    card.append(meta);
    if (m.held) {
      const answer = (outcome, label, cls) =>
        el("button", {
          type: "button",
          class: cls,
          "data-key": `${outcome}:${m.id}`,
          "data-outcome": outcome,
          text: label,
          onclick: () => report(m, outcome),
        });
      card.append(
        el(
          "div",
          { class: "actions", role: "group", "aria-label": `Answer for the message to ${m.to} as the carrier` },
          el("span", { class: "muted", text: "Answer as the carrier:" }),
          answer("delivered", "Delivered"),
          answer("failed", "Delivery failed", "danger"),
          answer("late", `Delivered late (${lateSeconds()} s)`),
          answer("silent", "Stay silent"),
        ),
      );
    }
    return card;
  }

  function replyBubble(r) {
    const acked = r.delivered === null ? "posting webhook…" : r.delivered ? "webhook delivered" : "webhook failed";
    return el(
      "li",
      { class: `reply${fresh.has(r.id) ? " fresh" : ""}`, "data-reply": r.id },
      el("header", {}, el("span", { text: `${r.from} → ${r.to}` }), el("span", { text: time(r.received_at) })),
      el("p", { class: "text", text: r.text }),
      el("span", { class: "muted", text: acked }),
    );
  }

  // --- actions --------------------------------------------------------------------------

  async function copyCode(code, button) {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(code);
      } else {
        const area = el("textarea", { class: "sr-only", readonly: true });
        area.value = code;
        document.body.append(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      button.dataset.copied = code;
      button.textContent = "Copied ✓";
      toast(`Copied ${code}`);
      setTimeout(() => (button.textContent = "Copy"), 1500);
    } catch (error) {
      toast(`Could not copy: ${error.message}`);
    }
  }

  function lateSeconds() {
    return Math.max(0, Math.min(600, Math.round(Number($("late").value) || 0)));
  }

  async function report(m, outcome) {
    const body = { outcome };
    if (outcome === "late") body.delay_seconds = lateSeconds();
    try {
      await call("POST", `/_sim/messages/${encodeURIComponent(m.id)}/report`, body);
      toast(`${m.to}: ${outcome === "failed" ? "delivery failed" : outcome}`);
    } catch (error) {
      toast(error.message);
    }
  }

  async function reply(text) {
    if (!selected) return;
    try {
      const answer = await call("POST", "/_sim/inbound", { from: selected, text });
      toast(`${selected} replied ${text} to ${answer.to}: ${answer.delivered ? "webhook delivered" : "webhook failed"}`);
    } catch (error) {
      toast(error.message);
    }
  }

  // --- live updates ---------------------------------------------------------------------

  function apply(data, full) {
    if (full) {
      messages.clear();
      replies.clear();
    }
    const arrivals = [];
    for (const m of data.messages) {
      if (!messages.has(m.id) && loaded && !full) arrivals.push(m);
      if (!messages.has(m.id) && !full) fresh.add(m.id);
      messages.set(m.id, m);
    }
    for (const r of data.replies) {
      if (!replies.has(r.id) && !full) fresh.add(r.id);
      replies.set(r.id, r);
    }
    $("hold").checked = data.hold;
    loaded = true;
    if (arrivals.length) {
      const last = arrivals[arrivals.length - 1];
      announce(`New SMS to ${last.to}${last.code ? `, code ${last.code.split("").join(" ")}` : ""}`);
    }
    render();
  }

  let offlineTimer = 0;
  function connect() {
    const live = $("live");
    const source = new EventSource("/_sim/stream");
    source.addEventListener("open", () => {
      clearTimeout(offlineTimer);
      live.dataset.state = "live";
      live.textContent = "live";
    });
    // Each stream ends after a few seconds and the browser reconnects at once: only a
    // connection that stays away is worth showing.
    source.addEventListener("error", () => {
      clearTimeout(offlineTimer);
      offlineTimer = setTimeout(() => {
        live.dataset.state = "offline";
        live.textContent = "reconnecting";
      }, 3000);
    });
    source.addEventListener("snapshot", (event) => apply(JSON.parse(event.data), true));
    source.addEventListener("update", (event) => apply(JSON.parse(event.data), false));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("search").addEventListener("input", render);
    $("late").addEventListener("change", render);
    $("hold").addEventListener("change", async (event) => {
      try {
        await call("POST", "/_sim/hold", { hold: event.target.checked });
        toast(event.target.checked ? "New messages are held for your answer" : "New messages are delivered");
      } catch (error) {
        toast(error.message);
      }
    });
    $("clear").addEventListener("click", async () => {
      await call("DELETE", "/_sim/messages");
      chosen = false;
      toast("Inbox cleared");
    });
    for (const button of document.querySelectorAll("[data-reply]")) {
      button.addEventListener("click", () => reply(button.dataset.reply));
    }
    connect();
  });
})();
