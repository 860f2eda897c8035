// Flash-sale page: countdown, the buy request, then a full-screen spinner while polling the
// result every second until a final answer (or a timeout). The seats left follow the sale
// through the status route every few seconds, so a sell-out or the end shows without a reload.
// Plain JavaScript, no CDN.
(function () {
  "use strict";
  var root = document.getElementById("seckill");
  if (!root) return;

  var POLL_MS = 1000;
  var STATUS_MS = 2000;
  var TIMEOUT_MS = 60000;
  var startAt = parseInt(root.dataset.start, 10);
  var endAt = parseInt(root.dataset.end, 10);
  // The server's clock, not the visitor's: the offset is fixed when the page loads.
  var skew = parseInt(root.dataset.now, 10) - Date.now();
  var button = document.getElementById("seckill-buy");
  var countdown = document.getElementById("seckill-countdown");
  var message = document.getElementById("seckill-message");
  var overlay = document.getElementById("seckill-overlay");
  var overlayText = document.getElementById("seckill-overlay-text");
  var stockText = document.getElementById("seckill-stock");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var busy = false;
  var finished = false;
  // The sale's own state, as the server last said: seats gone, or closed by the admin.
  var soldOut = parseInt(root.dataset.stock, 10) <= 0;
  var closed = root.dataset.phase === "closed" || root.dataset.phase === "ended";

  function now() { return Date.now() + skew; }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var days = Math.floor(s / 86400);
    var text = pad(Math.floor(s % 86400 / 3600)) + ":" + pad(Math.floor(s % 3600 / 60)) + ":" + pad(s % 60);
    return days ? days + " 天 " + text : text;
  }

  function tick() {
    var t = now();
    var label = "立即秒杀";
    if (closed || t >= endAt) {
      countdown.textContent = "秒杀已结束";
      label = "已结束";
      button.disabled = true;
    } else if (soldOut) {
      countdown.textContent = "已售罄";
      label = "已售罄";
      button.disabled = true;
    } else if (t < startAt) {
      countdown.textContent = "距开始还有 " + duration(startAt - t);
      button.disabled = true;
    } else {
      countdown.textContent = "秒杀进行中，距结束还有 " + duration(endAt - t);
      button.disabled = busy || finished;
    }
    if (button.textContent !== label) button.textContent = label;
  }

  function show(text, kind) {
    message.textContent = text;
    message.className = "seckill-message" + (kind ? " " + kind : "");
    if (kind === "success" && root.dataset.ordersUrl) {
      var link = document.createElement("a");
      link.href = root.dataset.ordersUrl;
      link.textContent = "查看我的订单";
      message.appendChild(document.createTextNode(" "));
      message.appendChild(link);
    }
  }

  function wait(text) {
    overlayText.textContent = text;
    overlay.hidden = false;
  }

  function done(text, kind, final) {
    overlay.hidden = true;
    busy = false;
    if (final) finished = true;
    show(text, kind);
    tick();
    followStatus();
  }

  // Seats left and state from the status route; never disturbs a buy in progress.
  function followStatus() {
    request("GET", root.dataset.statusUrl).then(function (data) {
      if (data.code !== 100) return;
      stockText.textContent = String(data.stock);
      soldOut = data.state === "soldout";
      closed = data.state === "ended" || data.state === "closed";
      tick();
    }).catch(function () { /* a network blip: the next round asks again */ });
  }

  function request(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (body) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrf;
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return { code: 0, msg: "服务器返回了无法识别的内容" }; })
        .then(function (data) { data.status = response.status; return data; });
    });
  }

  function poll(ticket, deadline) {
    if (now() > deadline) {
      done("等待超时：结果还没出来，请稍后刷新页面查看。", "failure", false);
      return;
    }
    request("GET", root.dataset.resultUrl + "?task_id=" + encodeURIComponent(ticket)).then(function (data) {
      if (data.code === 100 && data.success === "1") {
        done("抢购成功！" + (data.msg && data.msg !== "抢购成功" ? data.msg : "订单已生成。"), "success", true);
      } else if (data.code === 100 && data.success === "0") {
        done("抢购失败：" + data.msg, "failure", false);
      } else if (data.code === 100) {
        wait(data.success === "3" ? "正在为您下单…" : "正在排队，请稍候…");
        setTimeout(function () { poll(ticket, deadline); }, POLL_MS);
      } else if (data.status === 429 || data.status >= 500) {
        setTimeout(function () { poll(ticket, deadline); }, POLL_MS);
      } else {
        done(data.msg || "查询失败", "failure", false);
      }
    }).catch(function () {
      setTimeout(function () { poll(ticket, deadline); }, POLL_MS);  // a network blip: keep trying
    });
  }

  button.addEventListener("click", function () {
    if (busy) return;
    busy = true;
    button.disabled = true;
    show("", "");
    wait("正在提交…");
    request("POST", root.dataset.buyUrl, { course_id: parseInt(root.dataset.course, 10) }).then(function (data) {
      if (data.code === 100) {
        wait("正在排队，请稍候…");
        poll(data.task_id, now() + TIMEOUT_MS);
      } else if (data.task_id) {
        wait("您已参与过本次秒杀，正在查询结果…");
        poll(data.task_id, now() + TIMEOUT_MS);
      } else {
        if (data.status === 409 && /售罄/.test(data.msg || "")) soldOut = true;
        done(data.msg || "请求失败", "failure", data.status === 409);
      }
    }).catch(function () {
      done("网络错误，请重试。", "failure", false);
    });
  });

  tick();
  setInterval(tick, 1000);
  if (root.dataset.statusUrl) {
    setInterval(function () { if (!closed) followStatus(); }, STATUS_MS);
  }
  if (root.dataset.ticket) {
    wait("正在查询您的抢购结果…");
    busy = true;
    poll(root.dataset.ticket, now() + TIMEOUT_MS);
  }
})();
