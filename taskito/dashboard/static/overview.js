// Live overview: polls /api/overview and redraws the queue counts, the throughput chart
// and the worker list. Every value is written with textContent (never as HTML).
(function () {
  "use strict";
  var STATUSES = ["pending", "running", "completed", "failed", "dead", "cancelled"];
  var queuesTable = document.getElementById("queues");
  var readOnly = queuesTable.getAttribute("data-read-only") === "true";

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function actionLink(action, queue, label) {
    var a = el("a", label, "button");
    a.href = "/actions/" + action + "?queue=" + encodeURIComponent(queue);
    return a;
  }

  function drawQueues(data) {
    var body = queuesTable.tBodies[0];
    var rows = document.createDocumentFragment();
    data.queues.forEach(function (q) {
      var tr = el("tr");
      tr.setAttribute("data-queue", q.name);
      var name = el("td", null, "name");
      var link = el("a", q.name);
      link.href = "/jobs?queue=" + encodeURIComponent(q.name);
      name.appendChild(link);
      if (q.paused) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("span", "paused", "badge paused")); }
      tr.appendChild(name);
      STATUSES.forEach(function (s) {
        var td = el("td", q.counts[s], "num");
        td.setAttribute("data-status", s);
        tr.appendChild(td);
      });
      var act = el("td");
      if (!readOnly) act.appendChild(q.paused ? actionLink("resume", q.name, "Resume") : actionLink("pause", q.name, "Pause"));
      tr.appendChild(act);
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
    var foot = queuesTable.tFoot.rows[0];
    STATUSES.forEach(function (s) {
      foot.querySelector('[data-status="' + s + '"]').textContent = String(data.totals[s]);
    });
  }

  function drawThroughput(tp) {
    var svg = document.getElementById("throughput");
    var ns = "http://www.w3.org/2000/svg";
    var top = 1, total = 0;
    tp.points.forEach(function (p) { top = Math.max(top, p[1]); total += p[1]; });
    var frag = document.createDocumentFragment();
    tp.points.forEach(function (p, i) {
      var h = Math.round(p[1] / top * 1100) / 10;
      var r = document.createElementNS(ns, "rect");
      r.setAttribute("x", i * 20 + 1);
      r.setAttribute("y", 115 - h);
      r.setAttribute("width", 18);
      r.setAttribute("height", h);
      var t = document.createElementNS(ns, "title");
      t.textContent = String(p[1]);
      r.appendChild(t);
      frag.appendChild(r);
    });
    var line = document.createElementNS(ns, "line");
    line.setAttribute("x1", 0); line.setAttribute("y1", 115.5);
    line.setAttribute("x2", 600); line.setAttribute("y2", 115.5);
    frag.appendChild(line);
    svg.replaceChildren(frag);
    document.getElementById("throughput-total").textContent = String(total);
  }

  function drawWorkers(workers) {
    var body = document.getElementById("workers").tBodies[0];
    var frag = document.createDocumentFragment();
    if (!workers.length) {
      var tr = el("tr", null, "empty");
      var td = el("td", "No workers.");
      td.colSpan = 6;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    workers.forEach(function (w) {
      var tr = el("tr");
      [w.worker_id, w.hostname, w.pid, w.queues, w.status, w.heartbeat_age.toFixed(1) + "s ago"].forEach(function (v) {
        tr.appendChild(el("td", v));
      });
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
  }

  function poll() {
    fetch("/api/overview", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        drawQueues(data);
        drawThroughput(data.throughput);
        drawWorkers(data.workers);
        document.getElementById("updated").textContent = "Last update " + new Date(data.now).toLocaleTimeString() + ".";
      })
      .catch(function (e) {
        document.getElementById("updated").textContent = "Update failed (" + e.message + "); retrying.";
      })
      .then(function () { setTimeout(poll, 1500); });
  }
  setTimeout(poll, 1500);
})();
