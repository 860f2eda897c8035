// Countdowns on sale cards: "距开始 01:02:03" from data-until (epoch ms), once a second.
(function () {
  "use strict";
  var items = document.querySelectorAll(".countdown[data-until]");
  if (!items.length) return;

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function text(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var days = Math.floor(s / 86400);
    var clock = pad(Math.floor(s % 86400 / 3600)) + ":" + pad(Math.floor(s % 3600 / 60)) + ":" + pad(s % 60);
    return days ? days + " 天 " + clock : clock;
  }

  function tick() {
    var now = Date.now();
    items.forEach(function (item) {
      var left = parseInt(item.dataset.until, 10) - now;
      item.textContent = left > 0 ? item.dataset.prefix + " " + text(left) : "已到时间，请刷新";
    });
  }

  tick();
  setInterval(tick, 1000);
})();
