// The monitoring dashboard: fetches /admin/monitor/data every few seconds and redraws each
// section in place; worker controls post JSON with the CSRF token. No library needed.
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var refreshMs = (parseInt(root.dataset.refresh, 10) || 5) * 1000;
  var busy = false;
  var siteZone = document.body.dataset.siteZone || undefined;
  var clock = new Intl.DateTimeFormat("zh-CN", {
    timeZone: siteZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });

  // A moment (ISO text or Unix seconds) as the site's wall clock, "2026-12-02 05:20:37".
  function siteTime(value) {
    if (value === null || value === undefined || value === "") return null;
    var date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (isNaN(date.getTime())) return String(value);
    var parts = {};
    clock.formatToParts(date).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" + parts.second;
  }

  // What workers answer (Celery's English), in words.
  var REPLY_WORDS = [
    [/^terminate:/, "已撤销并终止正在执行的任务"],
    [/flagged as revoked/, "已标记为撤销"],
    [/pool will grow/, "进程池将增加"],
    [/pool will shrink/, "进程池将减少"],
    [/new rate limit set/, "新的速率限制已生效"],
    [/rate limit disabled/, "已取消速率限制"],
    [/unknown task/i, "工作进程不认识这个任务名"]
  ];

  function replyWords(text) {
    text = String(text);
    for (var i = 0; i < REPLY_WORDS.length; i++) {
      if (REPLY_WORDS[i][0].test(text)) return REPLY_WORDS[i][1];
    }
    return text;
  }

  function describeReplies(replies) {
    var hosts = Object.keys(replies || {});
    if (!hosts.length) return "";
    return hosts.map(function (host) {
      var reply = replies[host] || {};
      return host + "：" + replyWords(reply.ok || reply.error || "");
    }).join("；");
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function row(cells) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null || cell === undefined ? "—" : String(cell);
      tr.appendChild(td);
    });
    return tr;
  }

  function fill(id, rows, emptyText, columns) {
    var body = document.getElementById(id);
    body.textContent = "";
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = el("td", emptyText, "text-muted");
      td.colSpan = columns;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (r) { body.appendChild(r); });
  }

  // A process's first look at the workers takes a moment: the section says "loading" (not
  // "unavailable") and the page asks again a second later instead of at the next refresh.
  var LOADING_RETRY_MS = 1000;

  function sectionState(name, section) {
    var error = document.querySelector("#section-" + name + " .section-error");
    var text = section.ok ? "" : section.loading ? "（正在读取…）" : "（不可用：" + section.error + "）";
    if (error) error.textContent = text;
    return section.ok ? section.data : null;
  }

  function notice(text, ok, warning) {
    var box = document.getElementById("notice");
    box.textContent = text;
    box.className = "alert " + (warning ? "alert-warning" : ok ? "alert-success" : "alert-danger");
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (answer) {
        var detail = describeReplies(answer.replies);
        notice(answer.msg + (detail ? "（" + detail + "）" : ""), answer.code === 100 && answer.known !== false,
               answer.known === false);
        refresh();
      });
    }).catch(function (error) { notice("请求失败：" + error, false); });
  }

  function button(label, className, onClick) {
    var b = el("button", label, "btn btn-sm " + className + " mr-1");
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  function taskList(tasks) {
    var box = el("div");
    box.appendChild(el("span", tasks.length));
    tasks.slice(0, 5).forEach(function (task) {
      var line = el("div", null, "small text-muted");
      line.appendChild(el("span", task.name + " " + task.id.slice(0, 8) + " "));
      line.appendChild(button("终止", "btn-link p-0 text-danger", function () {
        if (confirm("终止任务 " + task.id + "？")) post(root.dataset.revokeUrl.replace("TASK_ID", task.id), {terminate: true});
      }));
      box.appendChild(line);
    });
    return box;
  }

  function drawWorkers(workers) {
    fill("workers", (workers || []).map(function (w) {
      var controls = el("span");
      if (w.online) {
        controls.appendChild(button("+1", "btn-outline-secondary", function () { post(root.dataset.poolUrl, {hostname: w.hostname, action: "grow", n: 1}); }));
        controls.appendChild(button("−1", "btn-outline-secondary", function () { post(root.dataset.poolUrl, {hostname: w.hostname, action: "shrink", n: 1}); }));
      }
      var state = el("span", w.online ? "在线" : "离线（最后在线 " + siteTime(w.last_seen) + "）", w.online ? "badge badge-success" : "badge badge-secondary");
      return row([w.hostname, state, w.online ? (w.pool || "") + " " + (w.processes || w.concurrency || "") : null,
                  w.online ? taskList(w.active) : null,
                  w.online ? w.reserved.length + " / " + w.scheduled.length : null,
                  w.online ? w.processed : null, controls]);
    }), workers ? "没有工作进程响应" : "不可用", 7);
  }

  function drawQueues(queues) {
    fill("queues", Object.keys(queues || {}).map(function (name) {
      var q = queues[name];
      return row([name, q.messages, q.consumers]);
    }), queues ? "没有队列" : "不可用", 3);
  }

  function drawTasks(tasks) {
    document.getElementById("state-chart").innerHTML = tasks ? tasks.state_chart : "";  // server-built, escaped SVG
    document.getElementById("throughput-chart").innerHTML = tasks ? tasks.throughput_chart : "";
    document.getElementById("last-minute").textContent = tasks ? tasks.last_minute : "—";
    fill("failures", (tasks ? tasks.failures : []).map(function (f) {
      var link = el("a", "异常堆栈");
      link.href = f.url;
      return row([siteTime(f.date_done), f.name, f.error, f.worker, link]);
    }), tasks ? "没有失败的任务" : "不可用", 5);
  }

  function definitionList(pairs) {
    var dl = el("dl", null, "row mb-0");
    pairs.forEach(function (pair) {
      dl.appendChild(el("dt", pair[0], "col-sm-4"));
      dl.appendChild(el("dd", pair[1] === null || pair[1] === undefined ? "—" : pair[1], "col-sm-8"));
    });
    return dl;
  }

  function drawBeat(beat) {
    var box = document.getElementById("beat");
    box.textContent = "";
    if (!beat) { box.appendChild(el("span", "不可用", "text-muted")); return; }
    var since = beat.seconds_since_tick === null || beat.seconds_since_tick === undefined ? "" : "（" + beat.seconds_since_tick + " 秒前）";
    box.appendChild(definitionList([["上次心跳", beat.last_tick ? siteTime(beat.last_tick) + since : null], ["持有锁的 beat", beat.holder]]));
    box.appendChild(el("h6", "接下来要执行的任务", "mt-2"));
    var due = beat.next_due;
    if (!due) { box.appendChild(el("span", "不可用", "text-muted")); return; }
    if (!due.length) box.appendChild(el("span", "没有启用的定时任务", "text-muted"));
    var list = el("ol", null, "small mb-0");
    due.forEach(function (item) {
      list.appendChild(el("li", typeof item === "object" ? [siteTime(item.next_run_at), item.name, item.task].filter(Boolean).join(" · ") : item));
    });
    box.appendChild(list);
  }

  var SALE_LABELS = {
    phase: "阶段", total: "总库存", stock_redis: "Redis 剩余库存",
    remaining_db: "数据库剩余库存", admitted: "已准入", queued: "排队中的订单",
    orders: "已完成订单", redis_ok: "Redis 正常"
  };
  var SALE_ORDER = ["phase", "total", "stock_redis", "remaining_db", "admitted", "queued", "orders", "redis_ok"];
  var PHASE_WORDS = { running: "进行中", upcoming: "未开始", ended: "已结束", closed: "已关闭" };

  function saleValue(key, value) {
    if (value === true) return "是";
    if (value === false) return "否";
    if (key === "phase") return PHASE_WORDS[value] || value;
    return value;
  }

  function drawSales(sales) {
    var box = document.getElementById("sales");
    box.textContent = "";
    if (!sales) { box.appendChild(el("span", "不可用", "text-muted")); return; }
    if (!sales.length) { box.appendChild(el("span", "没有进行中的秒杀", "text-muted")); return; }
    sales.forEach(function (sale) {
      box.appendChild(el("h3", (sale.name || "秒杀") + "（第 " + sale.id + " 场）", "h6"));
      var status = sale.status || {};
      if (status.error) { box.appendChild(el("p", "不可用：" + status.error, "text-danger")); return; }
      box.appendChild(definitionList(SALE_ORDER.filter(function (k) { return k in status; }).map(function (k) {
        return [SALE_LABELS[k], saleValue(k, status[k])];
      })));
    });
  }

  function refresh() {
    if (busy) return;
    busy = true;
    fetch(root.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        var s = answer.sections;
        drawWorkers(sectionState("workers", s.workers));
        drawQueues(sectionState("queues", s.queues));
        drawTasks(sectionState("tasks", s.tasks));
        drawBeat(sectionState("beat", s.beat));
        drawSales(sectionState("sales", s.sales));
        document.getElementById("updated").textContent = "更新于 " + (siteTime(answer.now) || siteTime(new Date().toISOString()));
        if (s.workers.loading || s.queues.loading) setTimeout(refresh, LOADING_RETRY_MS);
      })
      .catch(function (error) {
        document.getElementById("updated").textContent = "刷新失败：" + error;
      })
      .finally(function () { busy = false; });
  }

  document.getElementById("rate-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    post(root.dataset.rateUrl, {task_name: form.task_name.value, rate: form.rate.value});
  });
  document.getElementById("revoke-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    post(root.dataset.revokeUrl.replace("TASK_ID", encodeURIComponent(form.task_id.value.trim())),
         {terminate: form.terminate.checked});
  });

  refresh();
  setInterval(refresh, refreshMs);
})();
