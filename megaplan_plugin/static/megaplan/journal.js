// Rows still on their way («ожидает») refresh by themselves: every few seconds the page asks
// for those rows as they are now and puts them in place; it stops when none is waiting.
// The status panel does the same with its counts of today. No framework: a timer and fetch.
(function () {
  var SECONDS = 3;

  function journal() {
    var table = document.querySelector("table.journal[data-rows-url]");
    if (!table || !window.fetch) return;
    function pending() {
      return Array.prototype.map.call(table.querySelectorAll("tr.state-pending[data-row-id]"),
                                      function (row) { return row.getAttribute("data-row-id"); });
    }
    function poll() {
      var ids = pending();
      if (!ids.length) return;
      fetch(table.getAttribute("data-rows-url") + "?ids=" + ids.join(","), {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : {rows: []}; })
        .then(function (answer) {
          answer.rows.forEach(function (fresh) {
            var old = table.querySelector('tr[data-row-id="' + fresh.id + '"]');
            if (old && fresh.state !== "pending") old.outerHTML = fresh.html;
          });
          if (pending().length) window.setTimeout(poll, SECONDS * 1000);
        })
        .catch(function () { window.setTimeout(poll, SECONDS * 4000); });
    }
    if (pending().length) window.setTimeout(poll, SECONDS * 1000);
  }

  function panel() {
    var counts = document.getElementById("today-counts");
    var source = counts && counts.getAttribute("data-status-url");
    if (!source || !window.fetch) return;
    function poll() {
      fetch(source, {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (status) {
          if (!status) return;
          ["sent", "pending", "failed", "skipped"].forEach(function (state) {
            var cell = counts.querySelector('[data-count="' + state + '"]');
            if (cell) cell.textContent = status.today[state];
          });
          if (status.today.pending > 0) window.setTimeout(poll, SECONDS * 1000);
        });
    }
    if (counts.querySelector('[data-count="pending"]').textContent.trim() !== "0") {
      window.setTimeout(poll, SECONDS * 1000);
    }
  }

  journal();
  panel();
})();
