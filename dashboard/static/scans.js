// Live progress of running scans: polls the API every 3 seconds and
// redraws the "Running" table. No framework, no build step.
(function () {
  "use strict";
  var body = document.getElementById("running-rows");
  if (!body) { return; }
  function cell(tr, text) {
    var td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
  }
  function when(s) { return s ? s.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "—"; }
  function draw(running) {
    while (body.firstChild) { body.removeChild(body.firstChild); }
    if (!running.length) {
      var tr = document.createElement("tr");
      var td = document.createElement("td");
      td.colSpan = 6; td.className = "empty"; td.textContent = "Nothing running.";
      tr.appendChild(td); body.appendChild(tr);
      return;
    }
    running.forEach(function (p) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-testid", "running-row");
      cell(tr, p.location); cell(tr, p.trigger); cell(tr, when(p.queued)); cell(tr, when(p.started));
      cell(tr, p.phase || ""); cell(tr, p.total ? p.done + " / " + p.total : String(p.done || 0));
      body.appendChild(tr);
    });
  }
  function poll() {
    fetch("/api/v1/scans/running", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) { if (j) { draw(j.running || []); } })
      .catch(function () {})
      .finally(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 3000);
}());
