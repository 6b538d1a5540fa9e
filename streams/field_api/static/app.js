// The field-unit web app: signs a device in, logs its unit on and off, shows its current order on the district
// map, and reports progress. Every action is queued in localStorage with an id made here (its event_id) and sent
// until the field API has it, so that actions made without a connection are sent once it is back; the API
// publishes an event_id once, however often it is sent. Citizens' text is set as text, never as markup.
"use strict";
const $ = (id) => document.getElementById(id);
const store = {
  get: (k, d) => JSON.parse(localStorage.getItem("patrol." + k) || JSON.stringify(d)),
  set: (k, v) => localStorage.setItem("patrol." + k, JSON.stringify(v)),
};
let session = store.get("session", null);
let orders = store.get("orders", {});   // order_id -> {order, stage}
let streets = [];

function newId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}
function note(text) {
  const li = document.createElement("li");
  li.textContent = new Date().toLocaleTimeString() + " " + text;
  $("log").prepend(li);
}
function setConnected(on) { $("connection").textContent = on ? "online" : "offline"; $("connection").className = on ? "on" : "off"; }

// ---- the queue of actions ----
function enqueue(type, fields) {
  const event = { schema_version: 1, event_id: newId(), unit_id: session.unit_id, at: new Date().toISOString(),
                  type, ...fields };
  const queue = store.get("queue", []); queue.push(event); store.set("queue", queue);
  showQueue(); flush();
  return event;
}
function showQueue() { $("queue-count").textContent = store.get("queue", []).length; }
let flushing = false;
async function flush() {
  if (flushing || !session) return;
  flushing = true;
  try {
    for (;;) {
      const queue = store.get("queue", []);
      if (!queue.length) break;
      const event = queue[0];
      let response;
      try {
        response = await fetch("/field/v1/events", { method: "POST", body: JSON.stringify(event),
          headers: { "Content-Type": "application/json", Authorization: "Bearer " + session.token } });
      } catch (e) { setConnected(false); break; }  // no connection: kept, sent again later
      if (response.status >= 500 || response.status === 401) { if (response.status === 401) signOut("session ended"); break; }
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        note(`${event.type} refused: ${(body.detail && body.detail.error) || response.status}`);
      } else { note(`${event.type} sent`); }
      store.set("queue", store.get("queue", []).filter((e) => e.event_id !== event.event_id));
      showQueue();
    }
  } finally { flushing = false; }
}
window.addEventListener("online", flush);
setInterval(flush, 2000);

// ---- orders ----
function current() {
  const open = Object.values(orders).filter((o) => o.stage !== "resolved" && o.stage !== "declined");
  open.sort((a, b) => (a.order.issued_at < b.order.issued_at ? 1 : -1));
  return open[0];
}
// when each order reached this page (ms since the epoch): what the end-to-end test measures its latency by
window.orderSeenAt = {};
function take(order) {
  if (!window.orderSeenAt[order.order_id]) window.orderSeenAt[order.order_id] = Date.now();
  if (order.kind === "cancel") { delete orders[order.order_id]; note(`order ${order.order_id} cancelled`); }
  else if (!orders[order.order_id]) { orders[order.order_id] = { order, stage: "assigned" }; note(`new order ${order.order_id}`); }
  else orders[order.order_id].order = order;
  store.set("orders", orders); show();
}
// how far the unit got on an order before this page connected (reported from another device, or before a reload)
const RANK = ["assigned", "acknowledged", "en_route", "on_scene"];
function progressed(event) {
  const held = orders[event.order_id];
  const stage = { ack: "acknowledged" }[event.type] || event.type;
  if (held && RANK.indexOf(stage) > RANK.indexOf(held.stage)) { held.stage = stage; store.set("orders", orders); show(); }
}
function show() {
  const held = current();
  $("order").hidden = !held; $("no-order").hidden = !!held;
  drawMap(held && held.order);
  if (!held) return;
  const o = held.order;
  $("order-id").textContent = o.order_id; $("category").textContent = o.category;
  $("priority").textContent = "P" + o.priority; $("role").textContent = o.role + " · " + o.agency;
  $("stage").textContent = held.stage;
  $("address").textContent = (o.address ? o.address + " " : "") + `(${o.lat.toFixed(5)}, ${o.lon.toFixed(5)})`;
  $("deadline").textContent = o.ack_by ? new Date(o.ack_by).toLocaleTimeString() : "—";
  $("joint").textContent = o.joint_with && o.joint_with.length ? o.joint_with.join(", ") : "—";
}
setInterval(() => {
  const held = current();
  if (held && held.order.ack_by && held.stage === "assigned") {
    const left = Math.round((new Date(held.order.ack_by) - Date.now()) / 1000);
    $("left").textContent = left >= 0 ? `(${left} s left)` : `(${-left} s overdue)`;
  } else $("left").textContent = "";
}, 1000);

async function follow() {
  // server-sent events read with fetch, so that the token travels in a header; reconnects when cut
  for (;;) {
    if (!session) return;
    try {
      const response = await fetch("/field/v1/orders", { headers: { Authorization: "Bearer " + session.token } });
      if (response.status === 401) { signOut("session ended"); return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      setConnected(true); flush();
      const reader = response.body.getReader(); const decoder = new TextDecoder(); let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          const lines = block.split("\n");
          const kind = (lines.find((l) => l.startsWith("event: ")) || "event: order").slice(7);
          const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data && kind === "progress") progressed(JSON.parse(data));
          else if (data) take(JSON.parse(data));
        }
      }
    } catch (e) { /* dropped: try again */ }
    setConnected(false);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---- the map, drawn from the district's streets (no tiles: nothing is fetched from outside) ----
function bounds() {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const s of streets) for (const ring of rings(s.geometry)) for (const [x, y] of ring) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  return [x0, y0, x1, y1];
}
function rings(g) { return g.type === "Polygon" ? g.coordinates : g.coordinates.flat(); }
function drawMap(order) {
  const svg = $("map"); svg.replaceChildren();
  const here = streets.filter((s) => !session || !session.district || s.district === session.district);
  if (!here.length) return;
  const all = streets; streets = here; const [x0, y0, x1, y1] = bounds(); streets = all;
  const scale = 1000 / Math.max(x1 - x0, y1 - y0);
  const px = ([x, y]) => [(x - x0) * scale, (y1 - y) * scale];
  const ns = "http://www.w3.org/2000/svg";
  for (const s of here) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", rings(s.geometry).map((r) => "M" + r.map((p) => px(p).join(",")).join("L") + "Z").join(""));
    const title = document.createElementNS(ns, "title"); title.textContent = s.name; path.append(title);
    svg.append(path);
  }
  if (order) {
    const [cx, cy] = px([order.lon, order.lat]);
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("class", "order"); dot.setAttribute("id", "order-dot");
    dot.setAttribute("cx", cx); dot.setAttribute("cy", cy); dot.setAttribute("r", 14);
    svg.append(dot);
  }
}

// ---- signing in, logging on and off ----
async function signIn(deviceId, secret) {
  const response = await fetch("/field/v1/session", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ device_id: deviceId, secret }) });
  if (!response.ok) { note("sign-in refused"); $("login-view").dataset.refused = "1"; return; }
  session = await response.json();
  const home = session.profile && streets.find((s) => s.street === session.profile.home_street);
  session.district = home ? home.district : null;
  store.set("session", session); start();
}
function signOut(why) { session = null; store.set("session", null); note(why); $("login-view").hidden = false; $("duty-view").hidden = true; }
function centre(street) {
  const ring = rings(street.geometry)[0];
  const n = ring.length - 1; let x = 0, y = 0;
  for (const [a, b] of ring.slice(0, n)) { x += a; y += b; }
  return [y / n, x / n];
}
function logOn() {
  const p = session.profile;
  if (!p) { note("this unit is not in the register"); return; }
  const home = streets.find((s) => s.street === p.home_street);
  const [lat, lon] = home ? centre(home) : [0, 0];
  enqueue("log_on", { agency: p.agency, kind: p.kind, district: session.district, home_street: p.home_street,
    mode: p.mode || "foot", delegations: p.delegations.map((d) => d.category), lat, lon });
}
function act(type) {
  const held = current(); if (!held) return;
  enqueue(type, { order_id: held.order.order_id });
  held.stage = { ack: "acknowledged", decline: "declined" }[type] || type;
  store.set("orders", orders); show();
}
function start() {
  $("login-view").hidden = true; $("duty-view").hidden = false;
  $("unit").textContent = session.unit_id;
  const p = session.profile;
  $("profile").textContent = p ? `${p.agency} · ${p.kind} · ${p.home_street}` : "not in the unit register";
  show(); showQueue(); follow();
}

$("login").addEventListener("submit", (e) => { e.preventDefault(); signIn($("device").value.trim(), $("secret").value); });
$("logon").addEventListener("click", logOn);
$("logoff").addEventListener("click", () => enqueue("log_off", {}));
$("signout").addEventListener("click", () => signOut("signed out"));
for (const b of document.querySelectorAll("[data-action]")) b.addEventListener("click", () => act(b.dataset.action));

fetch("/field/v1/map").then((r) => r.json()).then((m) => { streets = m.streets; show(); }).catch(() => {});
if (session) start();
