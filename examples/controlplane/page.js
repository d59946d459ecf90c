// The status page's script: every 2 seconds, GET /tenants and redraw the
// rows that changed; the actions of each row, the new-tenant button and the
// sweep (a dry run first). No framework, no build step; every value goes in
// as text. Times are the browser's local time, in one format.
"use strict";

(function () {
  const interval = 2000;
  const body = document.getElementById("tenants");
  const counts = document.getElementById("counts");
  const empty = document.getElementById("empty");
  const updated = document.getElementById("updated");
  const notice = document.getElementById("notice");
  const order = ["pending", "creating", "cloud_init", "injecting_secrets", "ready", "failed", "deleted"];
  // Buttons: label and tooltip, as page.go's actionLabels.
  const labels = {
    retry: ["Retry", "Retry now: a new attempt, whatever the attempts so far"],
    rotate: ["Rotate", "Inject the current secrets again and restart the service"],
    replace: ["Replace", "Give the tenant a new server; the old one serves until the new one is ready"],
    deprovision: ["Deprovision", "Delete the tenant's server and record it deleted"],
  };
  // Actions that ask for a second click, within armFor.
  const confirmFirst = { replace: true, deprovision: true };
  const armFor = 5000;
  const armed = new Map(); // "id action" -> when the arming ends
  const busy = new Set(); // "id action" in flight
  let rows = new Map(); // id -> { sig, tr }: rows redrawn only when they change
  let skew = 0; // the server's clock minus the browser's, in ms, when they differ
  let timer = 0;
  let fetching = false;
  let again = false;

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // The one time format of the page: local time, "2026-01-02 15:04:05".
  function local(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  // "42s", "3m 07s", "2h 05m", "3d 4h", as page.go's shortDuration.
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + pad(Math.floor(s % 3600 / 60)) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }

  function since(iso) {
    const t = Date.parse(iso);
    return isNaN(t) ? "" : duration(Date.now() + skew - t);
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }

  function statusSpan(status, text) {
    return el("span", text, "status s-" + status);
  }

  function button(id, action) {
    const key = id + " " + action;
    const b = el("button", labels[action][0]);
    b.type = "button";
    b.dataset.action = action;
    b.title = labels[action][1];
    if (armed.get(key) > Date.now()) arm(b);
    if (busy.has(key)) b.disabled = true;
    return b;
  }

  function arm(b) {
    b.classList.add("armed");
    b.textContent = "Confirm";
    b.title = "Click again to " + b.dataset.action;
  }

  function disarm(b) {
    b.classList.remove("armed");
    b.textContent = labels[b.dataset.action][0];
    b.title = labels[b.dataset.action][1];
  }

  function details(t) {
    const td = el("td", null, "details");
    if (t.error) {
      const e = el("div", t.error, "err");
      e.title = t.error;
      td.append(e);
    }
    if (t.status === "failed") {
      td.append(el("div", t.auto_retry ? "retried automatically" : "no automatic retry: Retry once the cause is fixed", "note"));
    }
    if (t.drift) td.append(el("div", "drift: " + t.drift, "drift"));
    if (t.retiring_server_id) td.append(el("div", "replacing server " + t.retiring_server_id, "note"));
    if (t.last_event) {
      const e = el("div", t.last_event.text, t.last_event.failed ? "event bad" : "event");
      e.title = local(t.last_event.at);
      td.append(e);
    }
    return td;
  }

  function durationCell(iso) {
    const td = el("td", since(iso), "dur");
    td.dataset.since = iso;
    return td;
  }

  function row(t) {
    const tr = el("tr");
    tr.dataset.id = t.id;
    tr.dataset.status = t.status;
    if (t.status === "deleted") tr.className = "deleted";

    const copy = el("button", t.id.slice(0, 8), "copy");
    copy.type = "button";
    copy.dataset.copy = t.id;
    copy.title = t.id + " (click to copy)";
    const id = el("td", null, "id");
    id.append(copy);

    const st = el("td");
    st.append(statusSpan(t.status, t.status));

    const server = el("td", t.server_id, "server");
    if (t.server_name) server.title = t.server_name;

    const created = el("td", null, "time");
    const time = el("time", local(t.created_at));
    time.dateTime = t.created_at;
    created.append(time);

    const actions = el("td", null, "actions");
    (t.actions || []).forEach(function (a) { if (labels[a]) actions.append(button(t.id, a)); });

    tr.append(id, st, durationCell(t.status_since || t.updated_at), durationCell(t.created_at), server,
      el("td", t.ipv4, "ip"), el("td", t.attempts, "num"), created, details(t), actions);
    return tr;
  }

  function newestFirst(a, b) {
    if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }

  function render(tenants) {
    tenants.sort(newestFirst);
    const next = new Map();
    const list = tenants.map(function (t) {
      const sig = JSON.stringify(t);
      let r = rows.get(t.id);
      if (!r || r.sig !== sig) r = { sig: sig, tr: row(t) };
      next.set(t.id, r);
      return r.tr;
    });
    rows = next;
    // Touch only the rows that changed, so that a focused button keeps
    // its focus and a half-read error stays open.
    const cur = Array.from(body.children);
    const sameOrder = cur.length === list.length && cur.every(function (tr, i) { return tr.dataset.id === list[i].dataset.id; });
    if (sameOrder) {
      cur.forEach(function (tr, i) { if (tr !== list[i]) tr.replaceWith(list[i]); });
    } else {
      body.replaceChildren.apply(body, list);
    }
    empty.hidden = tenants.length > 0;

    const n = {};
    tenants.forEach(function (t) { n[t.status] = (n[t.status] || 0) + 1; });
    counts.replaceChildren.apply(counts, order.filter(function (s) { return n[s]; })
      .map(function (s) { return statusSpan(s, n[s] + " " + s); }));
  }

  // The durations tick between refreshes.
  function tick() {
    document.querySelectorAll("td.dur[data-since]").forEach(function (td) {
      td.textContent = since(td.dataset.since);
    });
  }

  function zone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  async function refresh() {
    clearTimeout(timer);
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const res = await fetch("/tenants", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const server = Date.parse(res.headers.get("Date"));
      if (!isNaN(server)) {
        const d = server - Date.now();
        skew = Math.abs(d) > 2000 ? d : 0; // the Date header has whole seconds
      }
      const data = await res.json();
      render(data.tenants || []);
      const z = zone();
      updated.textContent = "updated " + local(new Date().toISOString()).slice(11) + " · times are local" + (z ? " (" + z + ")" : "");
      updated.classList.remove("stale");
    } catch (e) {
      updated.textContent = "cannot reach the control plane (" + e.message + "), retrying";
      updated.classList.add("stale");
    } finally {
      fetching = false;
      if (again) {
        again = false;
        refresh();
      } else {
        timer = setTimeout(refresh, interval);
      }
    }
  }

  function say(text, bad) {
    notice.textContent = local(new Date().toISOString()).slice(11) + "  " + text;
    notice.classList.toggle("bad", !!bad);
    notice.hidden = false;
  }

  // send makes an API request and returns its JSON answer; an error answer
  // throws, with the API's message.
  async function send(method, url) {
    const res = await fetch(url, { method: method, headers: { Accept: "application/json" } });
    const data = await res.json().catch(function () { return {}; });
    if (!res.ok) throw new Error(data.error || "HTTP " + res.status);
    return data;
  }

  async function act(id, action) {
    const key = id + " " + action;
    const name = labels[action][0] + " " + id.slice(0, 8);
    busy.add(key);
    try {
      const data = action === "deprovision" ?
        await send("DELETE", "/tenants/" + id) :
        await send("POST", "/tenants/" + id + "/" + action);
      say(name + ": " + data.result + " (now " + data.status + ")", data.status === "failed");
    } catch (e) {
      say(name + ": " + e.message, true);
    } finally {
      busy.delete(key);
      rows.delete(id); // redraw the row: its button is enabled again
      refresh();
    }
  }

  body.addEventListener("click", function (ev) {
    const err = ev.target.closest(".err");
    if (err) {
      err.classList.toggle("open");
      return;
    }
    const b = ev.target.closest("button");
    if (!b || b.disabled) return;
    const tr = b.closest("tr");
    if (b.dataset.copy) {
      if (navigator.clipboard) {
        navigator.clipboard.writeText(b.dataset.copy).then(function () { say("copied " + b.dataset.copy); }, function () {});
      }
      return;
    }
    const action = b.dataset.action;
    if (!action || !tr || !labels[action]) return;
    const id = tr.dataset.id;
    const key = id + " " + action;
    if (confirmFirst[action] && !(armed.get(key) > Date.now())) {
      armed.set(key, Date.now() + armFor);
      arm(b);
      setTimeout(function () {
        if (!(armed.get(key) > Date.now())) return;
        armed.delete(key);
        const cur = body.querySelector('tr[data-id="' + id + '"] button[data-action="' + action + '"]');
        if (cur) disarm(cur);
      }, armFor);
      return;
    }
    armed.delete(key);
    disarm(b);
    b.disabled = true;
    act(id, action);
  });

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  document.getElementById("new").addEventListener("click", async function (ev) {
    const b = ev.currentTarget;
    b.disabled = true;
    const id = uuid();
    try {
      const data = await send("POST", "/tenants/" + id);
      say("Provision " + id.slice(0, 8) + ": " + data.result, data.status === "failed");
    } catch (e) {
      say("cannot provision: " + e.message, true);
    } finally {
      b.disabled = false;
      refresh();
    }
  });

  // The sweep: a dry run first, whose list is shown; the real sweep only
  // when confirmed (it lists again, and deletes what is orphaned then).
  const panel = document.getElementById("sweep-panel");
  const summary = document.getElementById("sweep-summary");
  const orphans = document.getElementById("sweep-orphans");
  const confirm = document.getElementById("sweep-confirm");
  const sweep = document.getElementById("sweep");

  function showSweep(data) {
    const list = data.orphans || [];
    const deletable = list.filter(function (o) { return o.kept === "dry run"; }).length;
    const deleted = list.filter(function (o) { return o.deleted; }).length;
    const servers = data.listed === 1 ? " server" : " servers";
    summary.textContent = data.dry_run ?
      "Dry run: " + data.listed + servers + " of this control plane listed, " + list.length + " that no tenant owns; " +
        (deletable ? deletable + " would be deleted." : "nothing to delete.") :
      "Swept: " + data.listed + servers + " listed, " + list.length + " that no tenant owns, " + deleted + " deleted.";
    orphans.tBodies[0].replaceChildren.apply(orphans.tBodies[0], list.map(function (o) {
      const tr = el("tr");
      const outcome = o.deleted ? "deleted" : data.dry_run && o.kept === "dry run" ? "would be deleted" : "kept: " + o.kept;
      tr.append(el("td", o.server_id, "mono"), el("td", o.name, "mono"), el("td", o.tenant || "", "mono"),
        el("td", o.created ? local(o.created) : "unknown", "mono"), el("td", o.reason), el("td", outcome));
      return tr;
    }));
    orphans.hidden = list.length === 0;
    confirm.hidden = !(data.dry_run && deletable);
    confirm.textContent = "Delete " + deletable + " orphaned" + (deletable === 1 ? " server" : " servers");
    panel.hidden = false;
  }

  async function runSweep(dryRun) {
    sweep.disabled = true;
    confirm.disabled = true;
    try {
      showSweep(await send("POST", dryRun ? "/sweep" : "/sweep?dry_run=0"));
    } catch (e) {
      say("Sweep: " + e.message, true);
    } finally {
      sweep.disabled = false;
      confirm.disabled = false;
    }
  }

  sweep.addEventListener("click", function () { runSweep(true); });
  confirm.addEventListener("click", function () { runSweep(false); });
  document.getElementById("sweep-close").addEventListener("click", function () { panel.hidden = true; });

  // The server rendered the times in UTC: local time at once, then the
  // table from the API.
  document.querySelectorAll("time[datetime]").forEach(function (t) { t.textContent = local(t.dateTime); });
  setInterval(tick, 1000);
  refresh();
})();
