// shopfloor console: the live timeline of a session page (server-sent events), and the
// overview's periodic refresh. No framework, nothing loaded from elsewhere.
"use strict";

function addEntry(body, entry) {
  const row = document.createElement("tr");
  row.className = "entry entry-" + entry.kind;
  row.dataset.id = String(entry.id);
  for (const text of [entry.at, entry.kind, entry.text]) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.appendChild(cell);
  }
  body.appendChild(row);
}

function showStatus(status) {
  const badge = document.getElementById("status");
  if (badge && status) {
    badge.textContent = status;
    badge.className = "status status-" + status;
  }
}

function followTimeline(body) {
  const live = document.getElementById("live");
  const source = new EventSource(body.dataset.stream);
  source.onopen = () => { live.textContent = "live"; };
  source.onerror = () => { live.textContent = "reconnecting…"; };
  source.addEventListener("entry", (event) => {
    const entry = JSON.parse(event.data);
    addEntry(body, entry);
    if (entry.kind === "status") showStatus(entry.status);
  });
  source.addEventListener("end", (event) => {
    source.close();
    showStatus(JSON.parse(event.data).status);
    live.textContent = "ended";
    for (const form of document.querySelectorAll(".actions form")) form.hidden = true;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const body = document.getElementById("timeline");
  if (body && body.dataset.stream) followTimeline(body);
  const every = Number(document.body.dataset.refresh || 0);
  if (every > 0) setTimeout(() => window.location.reload(), every);
});
