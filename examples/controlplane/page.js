// The status page's refresh: every 2 seconds, GET /tenants and redraw the
// table. No framework, no build step; every value goes in as text.
"use strict";

(function () {
  const interval = 2000;
  const body = document.getElementById("tenants");
  const counts = document.getElementById("counts");
  const empty = document.getElementById("empty");
  const updated = document.getElementById("updated");
  const order = ["pending", "creating", "cloud_init", "injecting_secrets", "ready", "failed", "deleted"];

  function cell(text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function statusSpan(status, text) {
    const span = document.createElement("span");
    span.className = "status s-" + status;
    span.textContent = text;
    return span;
  }

  // "2026-01-02T15:04:05.123Z" -> "2026-01-02 15:04:05", as the server renders it.
  function when(iso) {
    return typeof iso === "string" ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function render(tenants) {
    const rows = tenants.map(function (t) {
      const tr = document.createElement("tr");
      tr.dataset.id = t.id;
      tr.dataset.status = t.status;
      if (t.status === "deleted") tr.className = "deleted";
      const st = cell("");
      st.appendChild(statusSpan(t.status, t.status));
      tr.append(cell(t.id, "id"), st, cell(t.server_name, "server"), cell(t.ipv4, "ip"),
        cell(t.attempts), cell(when(t.updated_at)), cell(t.error, "error"));
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    empty.hidden = tenants.length > 0;

    const n = {};
    tenants.forEach(function (t) { n[t.status] = (n[t.status] || 0) + 1; });
    counts.replaceChildren.apply(counts, order.filter(function (s) { return n[s]; })
      .map(function (s) { return statusSpan(s, n[s] + " " + s); }));
  }

  async function refresh() {
    try {
      const res = await fetch("/tenants", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      render(data.tenants || []);
      updated.textContent = "updated " + new Date().toLocaleTimeString();
      updated.classList.remove("stale");
    } catch (e) {
      updated.textContent = "cannot reach the control plane (" + e.message + "), retrying";
      updated.classList.add("stale");
    } finally {
      setTimeout(refresh, interval);
    }
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  document.getElementById("new").addEventListener("click", async function (ev) {
    const button = ev.currentTarget;
    button.disabled = true;
    try {
      const res = await fetch("/tenants/" + uuid(), { method: "POST" });
      if (!res.ok) {
        const data = await res.json().catch(function () { return {}; });
        throw new Error(data.error || "HTTP " + res.status);
      }
    } catch (e) {
      updated.textContent = "cannot provision: " + e.message;
      updated.classList.add("stale");
    } finally {
      button.disabled = false;
    }
  });

  setTimeout(refresh, interval);
})();
