// Bosun dashboard: keeps the page live. The server sends an event on /events when what it
// shows may have changed (at most 4 a second); this fetches the page's <main> again and
// swaps it in, unless the user is typing in a form or has a dialog open (then it waits).
"use strict";
(function () {
  const main = document.getElementById("main");
  const live = document.getElementById("live");
  if (!main || !live || !window.EventSource) return;
  let inFlight = false;
  let pending = false;

  function busy() {
    const a = document.activeElement;
    if (a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) return true;
    return main.querySelector("details.dialog[open]") !== null;
  }

  async function refresh() {
    if (inFlight || busy()) { pending = true; return; }
    inFlight = true;
    pending = false;
    try {
      const r = await fetch(location.href, { headers: { "x-bosun-fragment": "1" }, credentials: "same-origin" });
      if (r.redirected || r.status === 401) { location.assign("/login"); return; }
      if (r.ok) {
        const openDiffs = new Set(Array.from(main.querySelectorAll("details.diff[open] summary"), s => s.textContent));
        main.innerHTML = await r.text();
        main.querySelectorAll("details.diff summary").forEach(s => {
          if (openDiffs.has(s.textContent)) s.parentElement.open = true;
        });
        live.dataset.updated = String(Date.now());
      }
    } catch (_) {
      pending = true;
    } finally {
      inFlight = false;
      if (pending) setTimeout(refresh, 500);
    }
  }

  const es = new EventSource("/events");
  es.addEventListener("hello", () => { live.textContent = "● live"; live.classList.add("on"); });
  es.addEventListener("change", refresh);
  es.addEventListener("ended", () => { es.close(); location.assign("/login"); });
  es.onerror = () => { live.textContent = "○ reconnecting"; live.classList.remove("on"); };
  document.addEventListener("focusout", () => { if (pending) setTimeout(refresh, 0); });
  document.addEventListener("toggle", () => { if (pending) setTimeout(refresh, 0); }, true);
})();
