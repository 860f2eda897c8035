// The jobs admin pages: "select all" on a registry list, and the export page's progress bar,
// which polls GET /api/v1/tasks/<id>/ until the job ends. No library needed.
(function () {
  "use strict";

  var selectAll = document.querySelector(".jobs-select-all");
  if (selectAll) {
    selectAll.addEventListener("change", function () {
      document.querySelectorAll('input[name="ids"]').forEach(function (box) {
        box.checked = selectAll.checked;
      });
    });
  }

  var root = document.getElementById("jobs-export");
  if (!root) return;
  var bar = document.getElementById("export-bar");
  var statusText = document.getElementById("export-status");
  var count = document.getElementById("export-count");
  var error = document.getElementById("export-error");
  var download = document.getElementById("export-download");

  function show(percent) {
    bar.style.width = percent + "%";
    bar.setAttribute("aria-valuenow", String(percent));
    bar.textContent = percent + "%";
  }

  function poll() {
    fetch(root.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.json(); })
      .then(function (body) {
        statusText.textContent = body.status || "";
        var progress = body.progress;
        if (progress && progress.total) {
          show(Math.floor((100 * progress.done) / progress.total));
          count.textContent = "已写入 " + progress.done + " / " + progress.total + " 行";
        }
        if (body.status === "finished") {
          show(100);
          download.classList.remove("d-none");
          return;
        }
        if (body.status === "failed" || body.status === "canceled" || body.status === "stopped") {
          error.textContent = "导出失败：" + (body.result || body.status);
          error.classList.remove("d-none");
          return;
        }
        setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
